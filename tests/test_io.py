"""Tests for imgkernel.images.io: reading, writing, display mapping and output names."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image as PILImage

from imgkernel.errors import ImgkernelError, UsageError
from imgkernel.images import io as kio
from imgkernel.images.io import (
    Image,
    expand_outputs,
    format_from_name,
    is_binary_format,
    read_image,
    to_display,
    write_image,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
RNG = np.random.default_rng(1234)


def rand(shape, dtype=np.uint8):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


class FakeStream:
    """Stands in for sys.stdin / sys.stdout: a text stream with a binary ``.buffer``."""

    def __init__(self, data: bytes = b"", tty: bool = False):
        self.buffer = io.BytesIO(data)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ----------------------------------------------------------------- reading modes


def test_image_max_value():
    assert Image(np.zeros((1, 1), np.uint8), None, "PNG", "x").max_value == 255
    assert Image(np.zeros((1, 1), np.uint16), None, "PNG", "x").max_value == 65535
    assert Image(np.zeros((1, 1), np.float32), None, "NPY", "x").max_value == 1.0


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "PPM"])
def test_roundtrip_gray_lossless(tmp_path, fmt):
    arr = rand((7, 9))
    path = tmp_path / f"g.{fmt.lower()}"
    write_image(str(path), arr)
    img = read_image(str(path))
    assert img.format == fmt
    assert img.pixels.shape == (7, 9) and img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels, arr)
    assert img.alpha is None


@pytest.mark.parametrize("ext", ["png", "tif", "bmp", "ppm", "webp"])
def test_roundtrip_rgb(tmp_path, ext):
    arr = rand((6, 5, 3))
    path = tmp_path / f"c.{ext}"
    write_image(str(path), arr, quality=100)
    img = read_image(str(path))
    assert img.pixels.shape == (6, 5, 3) and img.pixels.dtype == np.uint8
    if ext != "webp":  # lossy
        np.testing.assert_array_equal(img.pixels, arr)


def test_rgba_alpha_split_and_reattached(tmp_path):
    rgba = rand((5, 4, 4))
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(rgba))
    img = read_image(str(src))
    assert img.pixels.shape == (5, 4, 3)
    np.testing.assert_array_equal(img.pixels, rgba[:, :, :3])
    np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])
    out = tmp_path / "out.png"
    write_image(str(out), img.pixels, alpha=img.alpha)
    with PILImage.open(out) as back:
        assert back.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(back), rgba)
    # split_alpha=False keeps the channel
    kept = read_image(str(src), split_alpha=False)
    assert kept.alpha is None and kept.pixels.shape == (5, 4, 4)


def test_la_alpha_split(tmp_path):
    la = rand((3, 4, 2))
    src = tmp_path / "la.png"
    src.write_bytes(png_bytes(la))
    img = read_image(str(src))
    assert img.pixels.shape == (3, 4)
    np.testing.assert_array_equal(img.alpha, la[:, :, 1])
    out = tmp_path / "la-out.png"
    write_image(str(out), img.pixels, alpha=img.alpha)
    with PILImage.open(out) as back:
        assert back.mode == "LA"
        np.testing.assert_array_equal(np.asarray(back), la)


def test_16bit_png_stays_16bit(tmp_path):
    arr = rand((8, 6), np.uint16)
    path = tmp_path / "deep.png"
    write_image(str(path), arr)
    with PILImage.open(path) as im:
        assert im.mode == "I;16"
    img = read_image(str(path))
    assert img.pixels.dtype == np.uint16 and img.max_value == 65535
    np.testing.assert_array_equal(img.pixels, arr)


def test_16bit_tiff_and_big_endian(tmp_path):
    arr = rand((4, 5), np.uint16)
    path = tmp_path / "deep.tif"
    write_image(str(path), arr)
    np.testing.assert_array_equal(read_image(str(path)).pixels, arr)
    # I;16B (big-endian) image from Pillow
    be = PILImage.frombytes("I;16B", (5, 4), arr.astype(">u2").tobytes())
    path2 = tmp_path / "be.tif"
    be.save(path2)
    img = read_image(str(path2))
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, arr)


def test_16bit_pgm_mode_I(tmp_path):
    arr = rand((4, 5), np.uint16)
    path = tmp_path / "deep.pgm"
    write_image(str(path), arr)
    with PILImage.open(path) as im:
        assert im.mode in ("I", "I;16", "I;16B")
    img = read_image(str(path))
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, arr)


def test_palette_converted_to_rgb_and_rgba(tmp_path):
    p = PILImage.new("P", (4, 3))
    p.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    path = tmp_path / "p.png"
    p.save(path)
    img = read_image(str(path))
    assert img.pixels.shape == (3, 4, 3) and img.alpha is None
    assert tuple(img.pixels[0, 0]) == (10, 20, 30)
    assert tuple(img.pixels[1, 1]) == (200, 100, 0)
    # with a transparent palette entry -> RGBA, alpha split off
    path2 = tmp_path / "pt.png"
    p.save(path2, transparency=0)
    img2 = read_image(str(path2))
    assert img2.pixels.shape == (3, 4, 3)
    assert img2.alpha[0, 0] == 0 and img2.alpha[1, 1] == 255


def test_bilevel_and_cmyk_and_float_tiff(tmp_path):
    one = PILImage.new("1", (3, 2), 1)
    one.putpixel((0, 0), 0)
    one.save(tmp_path / "one.png")
    img = read_image(str(tmp_path / "one.png"))
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (2, 3)
    assert img.pixels[0, 0] == 0 and img.pixels[1, 2] == 255

    PILImage.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")
    img = read_image(str(tmp_path / "cmyk.tif"))
    assert img.pixels.shape == (2, 3, 3)
    assert tuple(img.pixels[0, 0]) == (255, 0, 0)

    f = rand((3, 4), np.float32)
    write_image(str(tmp_path / "f.tif"), f)
    img = read_image(str(tmp_path / "f.tif"))
    assert img.pixels.dtype == np.float32 and img.max_value == 1.0
    np.testing.assert_array_equal(img.pixels, f)


def test_color_key_transparency_becomes_alpha(tmp_path):
    arr = np.array([[5, 6], [7, 5]], np.uint8)
    PILImage.fromarray(arr).save(tmp_path / "t.png", transparency=5)
    img = read_image(str(tmp_path / "t.png"))
    np.testing.assert_array_equal(img.pixels, arr)
    np.testing.assert_array_equal(img.alpha, [[0, 255], [255, 0]])


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((2, 3), np.uint8)
    arr[0, 0] = 255
    im = PILImage.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "o.png", exif=exif)
    img = read_image(str(tmp_path / "o.png"))
    assert img.pixels.shape == (3, 2)
    assert img.pixels[0, 1] == 255


def test_jpeg_and_gif_read(tmp_path):
    arr = np.full((8, 8, 3), 128, np.uint8)
    write_image(str(tmp_path / "a.jpg"), arr)
    img = read_image(str(tmp_path / "a.jpg"))
    assert img.format == "JPEG" and img.pixels.shape == (8, 8, 3)
    assert np.abs(img.pixels.astype(int) - 128).max() <= 2
    img = read_image(str(SAMPLES / "cards" / "palette-bands.gif"))
    assert img.format == "GIF" and img.pixels.shape == (48, 64, 3)
    assert tuple(img.pixels[0, 0]) == (255, 0, 0)


# ----------------------------------------------------------------------- npy


def test_npy_float32_lossless(tmp_path):
    arr = rand((5, 6, 3), np.float32)
    arr[0, 0, 0] = np.float32(1e-30)
    path = tmp_path / "f.npy"
    write_image(str(path), arr)
    img = read_image(str(path))
    assert img.format == "NPY" and img.pixels.dtype == np.float32
    assert img.pixels.tobytes() == arr.tobytes()


def test_npy_alpha_appended(tmp_path):
    arr = rand((3, 4, 3))
    alpha = rand((3, 4))
    write_image(str(tmp_path / "a.npy"), arr, alpha=alpha)
    back = np.load(tmp_path / "a.npy")
    assert back.shape == (3, 4, 4)
    np.testing.assert_array_equal(back[:, :, 3], alpha)
    # npy channels are data: nothing is split off on reading
    img = read_image(str(tmp_path / "a.npy"))
    assert img.alpha is None and img.pixels.shape == (3, 4, 4)


@pytest.mark.parametrize(
    ("arr", "dtype"),
    [
        (np.arange(6, dtype=np.int64).reshape(2, 3), np.uint8),
        (np.arange(6, dtype=np.int32).reshape(2, 3) * 1000, np.uint16),
        (np.arange(6, dtype=np.int16).reshape(2, 3) - 3, np.float32),
        (np.arange(6, dtype=np.float64).reshape(2, 3) / 7, np.float32),
        (np.arange(6, dtype=np.float16).reshape(2, 3), np.float32),
        (np.arange(6, dtype=np.uint16).reshape(2, 3), np.uint16),
        (np.arange(6, dtype=">u2").reshape(2, 3), np.uint16),
    ],
)
def test_npy_dtypes(tmp_path, arr, dtype):
    np.save(tmp_path / "x.npy", arr)
    img = read_image(str(tmp_path / "x.npy"))
    assert img.pixels.dtype == dtype
    np.testing.assert_allclose(img.pixels, arr.astype(np.float64), rtol=1e-6)


def test_npy_bool_and_single_channel(tmp_path):
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    img = read_image(str(tmp_path / "b.npy"))
    assert img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels, [[255, 0]])
    np.save(tmp_path / "c1.npy", np.ones((2, 3, 1), np.uint8))
    assert read_image(str(tmp_path / "c1.npy")).pixels.shape == (2, 3)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5), (2, 3, 4, 1), (0, 4), ()])
def test_npy_bad_shape(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(UsageError, match="bad.npy") as exc:
        read_image(str(path))
    assert "shape" in str(exc.value)


def test_npy_object_and_complex_rejected(tmp_path):
    np.save(tmp_path / "o.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="o.npy"):
        read_image(str(tmp_path / "o.npy"))
    np.save(tmp_path / "c.npy", np.zeros((2, 2), np.complex64))
    with pytest.raises(UsageError, match="c.npy"):
        read_image(str(tmp_path / "c.npy"))


def test_npy_truncated(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((50, 50), np.float32))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UsageError, match=r"t\.npy: truncated or corrupt"):
        read_image(str(path))


def test_npy_max_pixels(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((20, 20), np.uint8))
    with pytest.raises(UsageError, match="--max-pixels"):
        read_image(str(tmp_path / "big.npy"), max_pixels=100)
    assert read_image(str(tmp_path / "big.npy"), max_pixels=400).pixels.shape == (20, 20)


# ---------------------------------------------------------------- stdin / stdout


def test_stdin_sniffs_magic_bytes(monkeypatch):
    arr = rand((4, 4, 3))
    monkeypatch.setattr(sys, "stdin", FakeStream(png_bytes(arr)))
    img = read_image("-")
    assert img.format == "PNG" and img.source == "-"
    np.testing.assert_array_equal(img.pixels, arr)


def test_stdin_npy(monkeypatch):
    arr = rand((3, 2), np.float32)
    buf = io.BytesIO()
    np.save(buf, arr)
    monkeypatch.setattr(sys, "stdin", FakeStream(buf.getvalue()))
    img = read_image("-")
    assert img.format == "NPY"
    np.testing.assert_array_equal(img.pixels, arr)


def test_format_sniffed_not_from_name(tmp_path):
    arr = rand((4, 4))
    path = tmp_path / "really-a-png.jpg"
    path.write_bytes(png_bytes(arr))
    img = read_image(str(path))
    assert img.format == "PNG"
    np.testing.assert_array_equal(img.pixels, arr)


def test_stdin_terminal_and_empty(monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeStream(b"", tty=True))
    with pytest.raises(UsageError, match="no input: give a file or pipe an image"):
        read_image("-")
    monkeypatch.setattr(sys, "stdin", FakeStream(b""))
    with pytest.raises(UsageError, match="standard input is empty"):
        read_image("-")
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(UsageError, match="no input"):
        read_image("-")


def test_stdin_garbage(monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeStream(b"hello world\n"))
    with pytest.raises(UsageError, match="standard input: not a recognised image"):
        read_image("-")


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


# ------------------------------------------------------------------ bad input


def test_missing_file():
    with pytest.raises(UsageError, match=r"nope/missing\.png: no such file"):
        read_image("nope/missing.png")


def test_directory_as_input(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        read_image(str(tmp_path))


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(UsageError, match=r"notes\.png: not a recognised image"):
        read_image(str(path))


def test_postscript_never_handed_to_pillow(tmp_path):
    # Pillow's EPS reader would run Ghostscript; only sniffed formats are decoded.
    path = tmp_path / "x.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(UsageError, match="not a recognised image"):
        read_image(str(path))


def test_imports_are_light():
    """io.py imports only numpy, stdlib and imgkernel.errors at module level (PIL lazily)."""
    import ast

    tree = ast.parse(Path(kio.__file__).read_text())
    allowed = set(sys.stdlib_module_names) | {"numpy", "imgkernel"}
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, name
            if name.startswith("imgkernel"):
                assert name == "imgkernel.errors"
    assert "scipy" not in Path(kio.__file__).read_text()


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(UsageError, match=r"empty\.png: file is empty"):
        read_image(str(path))


@pytest.mark.parametrize("keep", [20, 60, 0.5, 0.9])
def test_truncated_png(tmp_path, keep):
    data = png_bytes(rand((64, 64, 3)))
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "cut.png"
    path.write_bytes(data[:n])
    with pytest.raises(UsageError, match=r"cut\.png: ") as exc:
        read_image(str(path))
    assert exc.value.__cause__ is None  # one clean message, no chained traceback


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    PILImage.fromarray(rand((64, 64, 3))).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UsageError, match=r"cut\.jpg: truncated or corrupt image"):
        read_image(str(path))


def test_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(np.zeros((40, 40), np.uint8)))
    # over the limit but under 2x: Pillow only warns; we still refuse
    with pytest.raises(
        UsageError, match=r"bomb\.png: image too large \(1600 pixels, limit 1000\).*--max-pixels"
    ):
        read_image(str(path), max_pixels=1000)
    with pytest.raises(UsageError, match=r"1600 pixels, limit 100\).*--max-pixels"):
        read_image(str(path), max_pixels=100)
    assert read_image(str(path), max_pixels=1600).pixels.shape == (40, 40)
    assert read_image(str(path), max_pixels=0).pixels.shape == (40, 40)
    assert PILImage.MAX_IMAGE_PIXELS is not None  # global restored


def test_negative_max_pixels(tmp_path):
    with pytest.raises(UsageError, match="max pixels"):
        read_image(str(tmp_path / "x.png"), max_pixels=-1)


# ------------------------------------------------------------------- writing


def test_write_float_to_png_keeps_existing_target(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError, match=r"out\.png: PNG cannot store float32"):
        write_image(str(target), rand((4, 4), np.float32))
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.png"]


def test_failing_encoder_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")

    def boom(self, fp, format=None, **params):
        fp.write(b"partial data")
        raise OSError("encoder exploded")

    monkeypatch.setattr(PILImage.Image, "save", boom)
    with pytest.raises(ImgkernelError):
        write_image(str(target), rand((4, 4)))
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.png"]


def test_interrupt_during_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(str(tmp_path / "x.npy"), rand((2, 2)))
    assert listing(tmp_path) == []


def test_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    write_image(str(target), rand((3, 3)))
    assert read_image(str(target)).pixels.shape == (3, 3)
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert listing(tmp_path) == ["out.png"]


def test_new_file_not_private(tmp_path):
    old = os.umask(0o022)
    try:
        write_image(str(tmp_path / "new.png"), rand((3, 3)))
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "new.png").st_mode & 0o777) == 0o644


def test_nonexistent_directory(tmp_path):
    target = tmp_path / "missing" / "out.png"
    with pytest.raises(UsageError, match="does not exist"):
        write_image(str(target), rand((2, 2)))
    assert not (tmp_path / "missing").exists()
    assert listing(tmp_path) == []


def test_target_is_directory(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_image(str(tmp_path / "d.png"), rand((2, 2)))


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
    with pytest.raises(UsageError, match="shape"):
        write_image(str(tmp_path / "x.png"), np.zeros((2, 2, 5), np.uint8))
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


def test_dev_null_is_written_not_replaced():
    before = os.stat(os.devnull)
    write_image(os.devnull, rand((3, 3)), format="png")
    after = os.stat(os.devnull)
    assert stat_is_char_device(after.st_mode) and before.st_ino == after.st_ino


def stat_is_char_device(mode: int) -> bool:
    import stat

    return stat.S_ISCHR(mode)


def test_symlink_target_written_through(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    write_image(str(link), rand((2, 2)))
    assert link.is_symlink()
    assert read_image(str(real)).pixels.shape == (2, 2)


# ---------------------------------------------------------------- names/formats


def test_format_from_name():
    assert format_from_name("a/b.PNG") == "PNG"
    assert format_from_name("x.tiff") == "TIFF"
    assert format_from_name("x.npy") == "NPY"
    assert format_from_name("-") is None
    assert format_from_name("README") is None
    with pytest.raises(UsageError, match=r"\.png"):
        format_from_name("x.doc")


def test_is_binary_format():
    assert is_binary_format("PNG") and is_binary_format("NPY") and is_binary_format(None)
    assert not is_binary_format("txt") and not is_binary_format("JSON")


# -------------------------------------------------------------------- display


V = np.array([-300.0, -128.0, -1.0, 0.0, 0.5, 1.5, 100.4, 127.0, 254.6, 300.0], np.float32)


def test_display_clip():
    out = to_display(V, mode="clip", dtype=np.uint8, max_value=255)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 2, 100, 127, 255, 255])
    assert out.dtype == np.uint8


def test_display_abs():
    out = to_display(V, mode="abs", dtype=np.uint8, max_value=255)
    np.testing.assert_array_equal(out, [255, 128, 1, 0, 0, 2, 100, 127, 255, 255])


def test_display_offset():
    out = to_display(V, mode="offset", dtype=np.uint8, max_value=255)
    # v + 128, clipped to 0..255
    np.testing.assert_array_equal(out, [0, 0, 127, 128, 128, 130, 228, 255, 255, 255])
    out16 = to_display(
        np.array([-32768.0, 0.0, 32767.0]), mode="offset", dtype=np.uint16, max_value=65535
    )
    np.testing.assert_array_equal(out16, [0, 32768, 65535])
    outf = to_display(np.array([-0.5, 0.0, 0.25]), mode="offset", dtype=np.float32, max_value=1.0)
    np.testing.assert_allclose(outf, [0.0, 0.5, 0.75])


def test_display_normalize():
    v = np.array([[2.0, 4.0], [6.0, 12.0]])
    out = to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    # (v - 2) / 10 * 255 -> 0, 51, 102, 255
    np.testing.assert_array_equal(out, [[0, 51], [102, 255]])
    const = to_display(np.full((3, 3), 7.0), mode="normalize", dtype=np.uint8, max_value=255)
    np.testing.assert_array_equal(const, np.zeros((3, 3)))
    inverted = to_display(v, mode="normalize", dtype=np.uint8, max_value=255, scale=-1.0)
    np.testing.assert_array_equal(inverted, [[255, 204], [153, 0]])


def test_display_scale_and_offset():
    v = np.array([-10.0, 0.0, 10.0])
    # v*2 + 0.5*255 = -20+127.5, 127.5, 147.5 -> 107.5, 127.5, 147.5 -> rint half-even
    out = to_display(v, mode="clip", dtype=np.uint8, max_value=255, scale=2.0, offset=0.5)
    np.testing.assert_array_equal(out, [108, 128, 148])
    out = to_display(v, mode="abs", dtype=np.uint8, max_value=255, offset=-0.1)
    # |v - 25.5| -> 35.5, 25.5, 15.5 -> 36, 26, 16
    np.testing.assert_array_equal(out, [36, 26, 16])


def test_display_changes_units():
    # float feature map (full scale 1.0) to 8 and 16 bits
    v = np.array([0.0, 0.5, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint8, max_value=1.0), [0, 128, 255, 255]
    )
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint16, max_value=1.0), [0, 32768, 65535, 65535]
    )
    # uint8 units to float output
    out = to_display(np.array([0.0, 51.0, 255.0]), mode="clip", dtype=np.float32, max_value=255)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.2, 1.0], rtol=1e-6)


def test_display_nan_inf():
    v = np.array([np.nan, np.inf, -np.inf, 10.0, 20.0], np.float32)
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint8, max_value=255), [0, 255, 0, 10, 20]
    )
    np.testing.assert_array_equal(
        to_display(v, mode="normalize", dtype=np.uint8, max_value=255), [0, 255, 0, 0, 255]
    )


def test_display_chunked_matches_whole(monkeypatch):
    v = RNG.standard_normal((37, 11, 3)).astype(np.float32) * 200
    expected = to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    real_chunks = kio._row_chunks
    monkeypatch.setattr(kio, "_row_chunks", lambda h, row_size: real_chunks(h, row_size, 50))
    np.testing.assert_array_equal(
        to_display(v, mode="normalize", dtype=np.uint8, max_value=255), expected
    )


def test_display_validation():
    with pytest.raises(UsageError, match="display mode"):
        to_display(V, mode="sqrt", dtype=np.uint8, max_value=255)
    with pytest.raises(UsageError, match="dtype"):
        to_display(V, mode="clip", dtype=np.int16, max_value=255)
    with pytest.raises(UsageError, match="max value"):
        to_display(V, mode="clip", dtype=np.uint8, max_value=0)


@settings(max_examples=150, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(-1e6, 1e6, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
    ),
    mode=st.sampled_from(kio.DISPLAY_MODES),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    max_value=st.sampled_from([1.0, 255.0, 65535.0]),
    scale=st.floats(-100, 100),
    offset=st.floats(-2, 2),
)
def test_display_property_in_range(values, mode, dtype, max_value, scale, offset):
    out = to_display(
        values, mode=mode, dtype=dtype, max_value=max_value, scale=scale, offset=offset
    )
    assert out.dtype == np.dtype(dtype)
    assert out.shape == values.shape
    top = kio.max_value_for(dtype)
    assert np.all(out >= 0) and np.all(out <= top)
    assert not np.isnan(out).any()


# ------------------------------------------------------------------- outputs


def test_expand_single(tmp_path):
    assert expand_outputs(["a.png"], None, default_ext=None) == ["-"]
    assert expand_outputs(["a.png"], "-", default_ext=None) == ["-"]
    assert expand_outputs(["-"], None, default_ext=None) == ["-"]
    out = str(tmp_path / "x.png")
    assert expand_outputs(["a.png"], out, default_ext=".npy") == [out]


def test_expand_directory(tmp_path):
    d = str(tmp_path) + "/"
    assert expand_outputs(["in/a.png", "b.jpg"], d, default_ext=None) == [
        d + "a.png",
        d + "b.jpg",
    ]
    assert expand_outputs(["in/a.png", "b.jpg"], d, default_ext="npy") == [
        d + "a.npy",
        d + "b.npy",
    ]
    # existing directory without the trailing slash
    assert expand_outputs(["a.png"], str(tmp_path), default_ext=None) == [
        os.path.join(str(tmp_path), "a.png")
    ]
    assert expand_outputs(["-"], d, default_ext=None) == [d + "stdin.png"]


def test_expand_template(tmp_path):
    t = str(tmp_path) + "/{stem}-edges.png"
    assert expand_outputs(["x/a.png", "y/b.jpg"], t, default_ext=None) == [
        str(tmp_path) + "/a-edges.png",
        str(tmp_path) + "/b-edges.png",
    ]
    t2 = str(tmp_path) + "/{index:03d}_{name}"
    assert expand_outputs(["a.png", "b.jpg"], t2, default_ext=None) == [
        str(tmp_path) + "/001_a.png",
        str(tmp_path) + "/002_b.jpg",
    ]
    t3 = str(tmp_path) + "/{stem}.{ext}"
    assert expand_outputs(["a.png", "b.jpg"], t3, default_ext=".tif") == [
        str(tmp_path) + "/a.tif",
        str(tmp_path) + "/b.tif",
    ]
    sub = tmp_path / "in"
    sub.mkdir()
    assert expand_outputs([str(sub / "a.png")], "{dir}/{stem}.out.png", default_ext=None) == [
        str(sub / "a.out.png")
    ]


def test_expand_errors(tmp_path):
    with pytest.raises(UsageError, match="standard output"):
        expand_outputs(["a.png", "b.png"], None, default_ext=None)
    with pytest.raises(UsageError, match="standard output"):
        expand_outputs(["a.png", "b.png"], "-", default_ext=None)
    with pytest.raises(UsageError, match="directory ending in '/' or a template"):
        expand_outputs(["a.png", "b.png"], str(tmp_path / "out.png"), default_ext=None)
    with pytest.raises(UsageError, match="both be written"):
        expand_outputs(["x/a.png", "y/a.png"], str(tmp_path) + "/", default_ext=None)
    with pytest.raises(UsageError, match="both be written"):
        expand_outputs(["a.png", "b.png"], str(tmp_path) + "/same-{ext}.png", default_ext=None)
    with pytest.raises(UsageError, match=r"unknown field \{bogus\}"):
        expand_outputs(["a.png"], "{bogus}.png", default_ext=None)
    with pytest.raises(UsageError, match="malformed"):
        expand_outputs(["a.png"], "{stem.png", default_ext=None)
    with pytest.raises(UsageError, match="does not exist"):
        expand_outputs(["a.png", "b.png"], str(tmp_path / "nodir") + "/", default_ext=None)
    with pytest.raises(UsageError, match="only once"):
        expand_outputs(["-", "-"], str(tmp_path) + "/", default_ext=None)
    with pytest.raises(UsageError, match="no input"):
        expand_outputs([], None, default_ext=None)


# ------------------------------------------------------------------ samples


def test_sample_cards():
    cards = SAMPLES / "cards"
    v = read_image(str(cards / "stripes-vertical.png")).pixels
    h = read_image(str(cards / "stripes-horizontal.png")).pixels
    assert v.shape == (32, 32) and v.dtype == np.uint8
    np.testing.assert_array_equal(v, h.T)
    assert (v[0] != v[0, 0]).any() and (v[:, 0] == v[0, 0]).all()
    g = read_image(str(cards / "gradient-16bit.png")).pixels
    assert g.dtype == np.uint16 and g.max() == 65535
    rgba = read_image(str(cards / "rgba-disc.png"))
    assert rgba.alpha is not None and set(np.unique(rgba.alpha)) == {0, 128, 255}
    fm = read_image(str(cards / "feature-map.npy"))
    assert fm.pixels.dtype == np.float32 and fm.pixels.min() < 0 < fm.pixels.max()
    with PILImage.open(cards / "palette-bands.gif") as im:
        assert im.mode == "P"


def test_sample_photos_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 2_000_000
    for name in ("camera.png", "astronaut.png", "chelsea.png", "coffee.png"):
        img = read_image(str(SAMPLES / name))
        assert max(img.pixels.shape[:2]) <= 512


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    fmt=st.sampled_from(["png", "tif", "npy"]),
    layout=st.sampled_from(["L", "LA", "RGB", "RGBA", "L16"]),
)
def test_roundtrip_property(tmp_path_factory, data, fmt, layout):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9))
    dtype = np.uint16 if layout == "L16" else np.uint8
    channels = {"L": 0, "L16": 0, "LA": 1, "RGB": 3, "RGBA": 3}[layout]
    pix_shape = shape if channels <= 1 else (*shape, channels)
    pixels = data.draw(hnp.arrays(dtype, pix_shape))
    alpha = data.draw(hnp.arrays(dtype, shape)) if layout in ("LA", "RGBA") else None
    path = tmp_path_factory.mktemp("rt") / f"x.{fmt}"
    write_image(str(path), pixels, alpha=alpha)
    img = read_image(str(path))
    if fmt == "npy":
        np.testing.assert_array_equal(img.pixels, kio.attach_alpha(pixels, alpha))
    else:
        np.testing.assert_array_equal(img.pixels, pixels)
        if alpha is None:
            assert img.alpha is None
        else:
            np.testing.assert_array_equal(img.alpha, alpha)
    assert img.pixels.dtype == dtype
