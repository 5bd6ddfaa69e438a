"""imgkernel.images.write: what each format stores, save options, standard output."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from image_helpers import FakeStream, listing, rand
from PIL import Image as PILImage

from imgkernel.errors import UsageError
from imgkernel.images import (
    SAVE_OPTIONS,
    read_array,
    read_image,
    write_array,
    write_image,
    write_text,
)
from imgkernel.images.formats import FORMATS
from imgkernel.images.write import check_save_options, pillow_options


def test_stdout_write(monkeypatch):
    fake = FakeStream()
    monkeypatch.setattr(sys, "stdout", fake)
    arr = rand((3, 5))
    write_image("-", arr)  # PNG by default
    data = fake.buffer.getvalue()
    assert data.startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(data))), arr)
    fake2 = FakeStream()
    monkeypatch.setattr(sys, "stdout", fake2)
    write_image("-", arr.astype(np.float32), format="npy")
    np.testing.assert_array_equal(np.load(io.BytesIO(fake2.buffer.getvalue())), arr)


def test_stdout_terminal_refused(monkeypatch):
    fake = FakeStream(tty=True)
    monkeypatch.setattr(sys, "stdout", fake)
    with pytest.raises(UsageError, match="refusing to write binary image data to a terminal"):
        write_image("-", rand((2, 2)))
    assert fake.buffer.getvalue() == b""


def test_stdout_nothing_written_on_encode_error(monkeypatch):
    fake = FakeStream()
    monkeypatch.setattr(sys, "stdout", fake)
    with pytest.raises(UsageError, match="float32"):
        write_image("-", rand((2, 2), np.float32), format="png")
    assert fake.buffer.getvalue() == b""


def test_write_float_to_png_keeps_existing_target(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError, match=r"out\.png: PNG cannot store float32"):
        write_image(str(target), rand((4, 4), np.float32))
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.png"]


def test_unknown_extension_and_format(tmp_path):
    with pytest.raises(UsageError, match=r"x\.xyz: unknown image file extension '\.xyz'.*\.png"):
        write_image(str(tmp_path / "x.xyz"), rand((2, 2)))
    with pytest.raises(UsageError, match="cannot tell the image format"):
        write_image(str(tmp_path / "noext"), rand((2, 2)))
    with pytest.raises(UsageError, match="unknown image format 'bogus'"):
        write_image(str(tmp_path / "x.png"), rand((2, 2)), format="bogus")
    assert listing(tmp_path) == []
    # format overrides the extension
    write_image(str(tmp_path / "noext"), rand((2, 2)), format="jpg")
    assert read_image(str(tmp_path / "noext")).format == "JPEG"


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"compress_level": 10}, "compress level"),
        ({"compress_level": -1}, "compress level"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
        ({"quality": 50.5}, "quality"),
    ],
)
def test_option_validation(tmp_path, kw, msg):
    with pytest.raises(UsageError, match=msg):
        write_image(str(tmp_path / "x.jpg"), rand((2, 2)), **kw)
    assert listing(tmp_path) == []


def test_compress_level_changes_size(tmp_path):
    arr = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    write_image(str(tmp_path / "a.png"), arr, compress_level=0)
    write_image(str(tmp_path / "b.png"), arr, compress_level=9)
    assert (tmp_path / "a.png").stat().st_size > (tmp_path / "b.png").stat().st_size
    np.testing.assert_array_equal(read_image(str(tmp_path / "a.png")).pixels, arr)


def test_jpeg_quality(tmp_path):
    arr = rand((32, 32, 3))
    write_image(str(tmp_path / "lo.jpg"), arr, quality=5)
    write_image(str(tmp_path / "hi.jpg"), arr, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_jpeg_drops_alpha_and_scales_16bit(tmp_path):
    rgb = np.full((8, 8, 3), 200, np.uint8)
    write_image(str(tmp_path / "a.jpg"), rgb, alpha=np.zeros((8, 8), np.uint8), quality=100)
    img = read_image(str(tmp_path / "a.jpg"))
    assert img.pixels.shape == (8, 8, 3) and img.alpha is None
    assert abs(int(img.pixels[4, 4, 0]) - 200) <= 1
    deep = np.full((8, 8), 257 * 100, np.uint16)
    write_image(str(tmp_path / "d.jpg"), deep, quality=100)
    img = read_image(str(tmp_path / "d.jpg"))
    assert img.pixels.dtype == np.uint8
    assert abs(int(img.pixels[4, 4]) - 100) <= 1


def test_16bit_rgb_png_scaled_to_8bit(tmp_path):
    deep = np.full((2, 2, 3), 65535, np.uint16)
    deep[0, 0] = (0, 257, 514)
    write_image(str(tmp_path / "c.png"), deep)
    img = read_image(str(tmp_path / "c.png"))
    assert img.pixels.dtype == np.uint8
    assert tuple(img.pixels[0, 0]) == (0, 1, 2) and tuple(img.pixels[1, 1]) == (255, 255, 255)


def test_float_colour_tiff_rejected(tmp_path):
    with pytest.raises(UsageError, match=r"\.npy"):
        write_image(str(tmp_path / "c.tif"), rand((2, 2, 3), np.float32))
    assert listing(tmp_path) == []


def test_write_bad_arrays(tmp_path):
    with pytest.raises(UsageError, match="5 channels cannot be stored as PNG .*--format npy"):
        write_image(str(tmp_path / "x.png"), np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(UsageError, match="shape"):
        write_image(str(tmp_path / "x.png"), np.zeros((2, 2, 3, 1), np.uint8))
    with pytest.raises(UsageError, match="int32"):
        write_image(str(tmp_path / "x.png"), np.zeros((2, 2), np.int32))
    with pytest.raises(UsageError, match="alpha"):
        write_image(str(tmp_path / "x.png"), np.zeros((2, 2), np.uint8), alpha=np.zeros((3, 3)))
    with pytest.raises(UsageError, match="already has 4 channels"):
        write_image(str(tmp_path / "x.png"), rand((2, 2, 4)), alpha=rand((2, 2)))
    assert listing(tmp_path) == []


def test_other_formats_write(tmp_path):
    rgba = rand((6, 6, 4))
    for ext in ("gif", "bmp", "webp", "tif", "ppm"):
        write_image(str(tmp_path / f"x.{ext}"), rgba[:, :, :3], alpha=rgba[:, :, 3])
        img = read_image(str(tmp_path / f"x.{ext}"))
        assert img.pixels.shape[:2] == (6, 6)
    img = read_image(str(tmp_path / "x.webp"))
    assert img.alpha is not None
    write_image(str(tmp_path / "g.webp"), rand((4, 4)))  # gray stored as RGB
    assert read_image(str(tmp_path / "g.webp")).pixels.shape == (4, 4, 3)


# ------------------------------------------------------------- save options


def test_save_options_table_is_consistent():
    for name, option in SAVE_OPTIONS.items():
        assert option.minimum <= min(option.defaults.values()) <= option.maximum, name
        assert set(option.defaults) <= set(FORMATS), name


def test_save_options_apply_only_to_their_formats():
    assert pillow_options("PNG", {}) == {"compress_level": 1}
    assert pillow_options("PNG", {"compress_level": 9, "quality": 5}) == {"compress_level": 9}
    assert pillow_options("WEBP", {"quality": 70}) == {"quality": 70}
    assert pillow_options("TIFF", {"quality": 70, "compress_level": 3}) == {}


def test_unknown_save_option_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="dpi"):
        write_image(str(tmp_path / "x.png"), rand((2, 2)), dpi=72)
    assert check_save_options({"quality": np.int64(80)}) == {"quality": 80}
    assert listing(tmp_path) == []


def test_write_text_and_array(tmp_path):
    write_text(str(tmp_path / "a.json"), '{"a": 1}\n')
    assert (tmp_path / "a.json").read_text() == '{"a": 1}\n'
    write_array(str(tmp_path / "t.npy"), np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    np.testing.assert_array_equal(
        read_array(str(tmp_path / "t.npy")), np.arange(24).reshape(2, 3, 4)
    )
    with pytest.raises(UsageError, match="object array"):
        write_array(str(tmp_path / "o.npy"), np.array([None, 1], dtype=object))


def test_jpeg_of_rgb_four_bytes_apart_is_pillows_jpeg_of_the_same_pixels(tmp_path):
    # Filter results bound for JPEG sit in an (H, W, 4) buffer that the encoder
    # maps as Pillow's RGBX: the file must be byte for byte Pillow's own JPEG of
    # the RGB pixels, whatever the fourth byte holds.
    from imgkernel.images.write import rgbx_base

    rng = np.random.default_rng(5)
    for h, w in [(1, 1), (7, 13), (64, 33)]:
        four = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        view = four[:, :, :3]
        assert rgbx_base(view) is four
        write_image(str(tmp_path / "mapped.jpg"), view, quality=85)
        expected = io.BytesIO()
        PILImage.fromarray(np.ascontiguousarray(view)).save(expected, format="JPEG", quality=85)
        assert (tmp_path / "mapped.jpg").read_bytes() == expected.getvalue()


def test_only_whole_rgbx_buffers_are_mapped():
    from imgkernel.images.write import rgbx_base

    four = np.zeros((6, 5, 4), np.uint8)
    assert rgbx_base(four[:, :, 1:]) is None  # starts at the second byte
    assert rgbx_base(four[::2, :, :3]) is None  # every other row
    assert rgbx_base(four[1:, :, :3]) is None  # not the buffer's start
    assert rgbx_base(four.astype(np.uint16)[:, :, :3]) is None
    assert rgbx_base(np.zeros((6, 5, 3), np.uint8)) is None
