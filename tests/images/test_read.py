"""imgkernel.images.read: decoding every format and mode, .npy, standard input, bad files."""

from __future__ import annotations

import io
import os
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from image_helpers import SAMPLES, FakeStream, png_bytes, rand
from PIL import Image as PILImage

from imgkernel.errors import UsageError
from imgkernel.images import (
    attach_alpha,
    check_stdin_once,
    probe_image,
    read_array,
    read_image,
    write_image,
)


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


# ------------------------------------------------------------------ npy


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
        # only uint8/uint16 are 8/16-bit pictures; other numbers are data (float32)
        (np.arange(6, dtype=np.int64).reshape(2, 3), np.float32),
        (np.arange(6, dtype=np.int32).reshape(2, 3) * 1000, np.float32),
        (np.arange(6, dtype=np.uint8).reshape(2, 3), np.uint8),
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
    assert img.pixels.dtype == np.float32  # True is 1.0, full scale of a float image
    np.testing.assert_array_equal(img.pixels, [[1.0, 0.0]])
    np.save(tmp_path / "c1.npy", np.ones((2, 3, 1), np.uint8))
    one = read_image(str(tmp_path / "c1.npy"))
    assert one.pixels.shape == (2, 3, 1)  # a trailing channel of 1 stays
    assert one.layout is not None and one.layout.restore(one.pixels).shape == (2, 3, 1)


@pytest.mark.parametrize(
    ("shape", "layout", "pixels"),
    [
        ((4, 5, 64), None, (4, 5, 64)),  # feature maps of any depth, channels last
        ((64, 4, 5), "chw", (4, 5, 64)),
        ((2, 32, 4, 5), None, (4, 5, 64)),  # a CNN batch: N*C planes
    ],
)
def test_npy_feature_maps_any_depth(tmp_path, shape, layout, pixels):
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.save(tmp_path / "m.npy", array)
    img = read_image(str(tmp_path / "m.npy"), layout=layout)
    assert img.pixels.shape == pixels
    assert img.layout is not None
    np.testing.assert_array_equal(img.layout.restore(img.pixels), array)


def test_npy_layout_is_checked(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((3, 4, 5), np.float32))
    with pytest.raises(UsageError, match="layout must be one of hwc, chw, got 'nhwc'"):
        read_image(str(tmp_path / "m.npy"), layout="nhwc")


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 1, 1), (0, 4), (2, 0, 3), (1, 0, 4, 4), ()])
def test_npy_bad_shape(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(UsageError, match="bad.npy") as exc:
        read_image(str(path))
    assert "shape" in str(exc.value)


def test_npy_feature_maps_read_as_they_are(tmp_path):
    # (N, C, H, W): a batch of CNN feature maps as 'imgkernel run --layer' writes
    maps = np.arange(2 * 5 * 3 * 4, dtype=np.float32).reshape(2, 5, 3, 4)
    np.save(tmp_path / "maps.npy", maps)
    image = read_image(str(tmp_path / "maps.npy"))
    assert image.layout is not None and image.layout.name == "nchw"
    np.testing.assert_array_equal(image.layout.restore(image.pixels), maps)


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


# ---------------------------------------------------------------- stdin


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


# ------------------------------------------------------------ bad input


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


# -------------------------------------------------------------- samples


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
        np.testing.assert_array_equal(img.pixels, attach_alpha(pixels, alpha))
    else:
        np.testing.assert_array_equal(img.pixels, pixels)
        if alpha is None:
            assert img.alpha is None
        else:
            np.testing.assert_array_equal(img.alpha, alpha)
    assert img.pixels.dtype == dtype


def test_standard_input_named_once():
    check_stdin_once(["a.png", "-", "b.png"])
    with pytest.raises(UsageError, match=r"standard input \('-'\) can be read only once"):
        check_stdin_once(["-", "a.png", "-"])


def test_probe_checks_without_decoding(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(png_bytes(rand((8, 8)))[:40])  # truncated, but starts like a PNG
    assert probe_image(str(path)) == "PNG"
    assert probe_image("-") == ""  # standard input is never read twice
    with pytest.raises(UsageError, match="no such file"):
        probe_image(str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(UsageError, match="not a recognised image"):
        probe_image(str(tmp_path / "notes.png"))


def test_read_array_any_shape_and_refusals(tmp_path, monkeypatch):
    np.save(tmp_path / "t.npy", np.zeros((2, 3, 4, 5), np.float32))
    assert read_array(str(tmp_path / "t.npy")).shape == (2, 3, 4, 5)
    (tmp_path / "p.png").write_bytes(png_bytes(rand((2, 2))))
    with pytest.raises(UsageError, match="not a .npy array"):
        read_array(str(tmp_path / "p.png"))
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="unreadable .npy array"):
        read_array(str(tmp_path / "o.npy"))
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    monkeypatch.setattr(sys, "stdin", FakeStream(buf.getvalue()))
    np.testing.assert_array_equal(read_array("-"), [0, 1, 2])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_read_whole(tmp_path):
    arr = rand((5, 4))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(png_bytes(arr)))
    writer.start()
    try:
        img = read_image(str(fifo))
    finally:
        writer.join(timeout=10)
    np.testing.assert_array_equal(img.pixels, arr)
