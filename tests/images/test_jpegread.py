"""The libjpeg-turbo JPEG reader against Pillow: the same pixels, or Pillow reads the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from imgkernel.errors import UsageError
from imgkernel.images import read_image
from imgkernel.images.jpegread import plain_jpeg_size, read_plain_jpeg

pytest.importorskip("simplejpeg")

PHOTO = Path(__file__).resolve().parents[2] / "sample_images" / "astronaut.png"


def jpeg_bytes(array: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="JPEG", **options)
    return buf.getvalue()


def pillow_pixels(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A crop of the sample photo (smooth areas and edges), tiled up to any size."""
    base = np.asarray(PILImage.open(PHOTO).convert("RGB"))
    y, x = seed % 200, (seed * 7) % 200
    reps = (-(-h // 300) + 1, -(-w // 300) + 1, 1)
    return np.ascontiguousarray(np.tile(base[y : y + 300, x : x + 300], reps)[:h, :w])


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    quality=st.integers(5, 100),
    subsampling=st.sampled_from([0, 1, 2]),  # 4:4:4, 4:2:2, 4:2:0
    progressive=st.booleans(),
    gray=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_same_pixels_as_pillow(h, w, quality, subsampling, progressive, gray, seed):
    array = photo(h, w, seed)
    if gray:
        array = np.asarray(PILImage.fromarray(array).convert("L"))
    options = dict(quality=quality, progressive=progressive)
    if not gray:
        options["subsampling"] = subsampling
    data = jpeg_bytes(array, **options)
    got = read_plain_jpeg(io.BytesIO(data), None)
    assert got is not None  # a plain JPEG takes the fast path
    want = pillow_pixels(data)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_read_image_takes_it_and_matches_pillow(tmp_path: Path):
    array = photo(123, 201, 3)
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_bytes(array, quality=90))
    image = read_image(str(path))
    assert image.format == "JPEG" and image.alpha is None
    np.testing.assert_array_equal(image.pixels, pillow_pixels(path.read_bytes()))


def with_exif_orientation(data: bytes, orientation: int) -> bytes:
    with PILImage.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_one_is_plain_and_six_goes_to_pillow(tmp_path: Path):
    data = jpeg_bytes(photo(40, 64, 1), quality=95)
    upright = with_exif_orientation(data, 1)
    turned = with_exif_orientation(data, 6)
    assert plain_jpeg_size(upright) == (40, 64, 3)
    assert plain_jpeg_size(turned) is None
    path = tmp_path / "turned.jpg"
    path.write_bytes(turned)
    image = read_image(str(path))  # Pillow's reader, which applies the rotation
    assert image.pixels.shape == (64, 40, 3)


@pytest.mark.parametrize(
    "case",
    ["cmyk", "truncated", "trailing", "mpo", "damaged", "not-jpeg"],
)
def test_unusual_files_go_to_pillow(case: str, tmp_path: Path):
    array = photo(48, 40, 2)
    data = jpeg_bytes(array, quality=90)
    if case == "cmyk":
        buf = io.BytesIO()
        PILImage.fromarray(array).convert("CMYK").save(buf, format="JPEG")
        data = buf.getvalue()
    elif case == "truncated":
        data = data[: len(data) // 2]
    elif case == "trailing":
        data = data + b"extra bytes after the image"
    elif case == "mpo":
        buf = io.BytesIO()
        first, second = PILImage.fromarray(array), PILImage.fromarray(array[::-1].copy())
        first.save(buf, format="MPO", save_all=True, append_images=[second])
        data = buf.getvalue()
    elif case == "damaged":
        cut = data.index(b"\xff\xda") + 40
        data = data[:cut] + b"\xff\xd0" * 20 + data[cut + 40 :]  # stray restart markers
    else:
        data = b"\x89PNG\r\n\x1a\n" + data
    assert read_plain_jpeg(io.BytesIO(data), None) is None
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    if case in ("truncated", "not-jpeg"):
        with pytest.raises(UsageError):
            read_image(str(path))
    elif case != "damaged":  # Pillow may or may not read past the damage
        assert read_image(str(path)).pixels.shape[:2] == (48, 40)


def test_pixel_limit_is_left_to_pillow(tmp_path: Path):
    data = jpeg_bytes(photo(30, 30, 4), quality=80)
    assert read_plain_jpeg(io.BytesIO(data), 899) is None
    assert read_plain_jpeg(io.BytesIO(data), 900) is not None
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="pixels"):
        read_image(str(path), max_pixels=899)
    stream = io.BytesIO(data)
    assert read_plain_jpeg(stream, 10) is None and stream.tell() == 0  # left at its start


def test_pipeline_jpeg_in_equals_png_in(tmp_path: Path):
    # A user's chain: the same picture as JPEG through the fast reader and as
    # PNG (decoded by Pillow from the JPEG's pixels) must filter alike.
    from click.testing import CliRunner

    from imgkernel.cli import cli

    data = jpeg_bytes(photo(90, 120, 5), quality=85)
    (tmp_path / "in.jpg").write_bytes(data)
    PILImage.fromarray(pillow_pixels(data)).save(tmp_path / "in.png")
    runner = CliRunner()
    for name in ("in.jpg", "in.png"):
        args = ["filter", "sobel", str(tmp_path / name), "-o", str(tmp_path / f"{name}.png")]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    a = np.asarray(PILImage.open(tmp_path / "in.jpg.png"))
    b = np.asarray(PILImage.open(tmp_path / "in.png.png"))
    np.testing.assert_array_equal(a, b)
    # The JPEG on standard input, PNG (asked for: stdout keeps JPEG) out: the same picture.
    piped = runner.invoke(cli, ["filter", "sobel", "-", "--format", "png"], input=data)
    assert piped.exit_code == 0, piped.output
    np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(piped.stdout_bytes))), a)


def test_xmp_orientation_goes_to_pillow(tmp_path: Path):
    # Pillow reads the orientation from XMP when EXIF has none, and the reader
    # rotates by it: such a file is not plain.
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
        b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
        b'tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    data = jpeg_bytes(photo(60, 100, 6), quality=90, xmp=xmp)
    assert plain_jpeg_size(data) is None
    path = tmp_path / "xmp.jpg"
    path.write_bytes(data)
    with PILImage.open(path) as im:
        assert im.getexif().get(0x0112) == 6  # Pillow takes it from the XMP
    assert read_image(str(path)).pixels.shape[:2] == (100, 60)  # and the reader rotates


def test_pipeline_jpeg_to_jpeg_is_pillows_encoding_of_the_result(tmp_path: Path):
    # JPEG in, JPEG out, as a user runs it (file and stdin/stdout): the bytes
    # are Pillow's JPEG of the library's whole-image result, although the
    # command hands Pillow the result four bytes a pixel, with no copy.
    from click.testing import CliRunner

    from imgkernel.cli import cli
    from imgkernel.images import Image
    from imgkernel.kernels import choose_kernel, filter_image

    data = jpeg_bytes(photo(70, 95, 8), quality=90)
    (tmp_path / "in.jpg").write_bytes(data)
    image = Image(pillow_pixels(data), None, "JPEG", "in.jpg")
    result, _ = filter_image(image, choose_kernel("gaussian:sigma=2"), "PNG")
    expected = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(result)).save(expected, format="JPEG", quality=90)
    runner = CliRunner()
    args = ["filter", "gaussian:sigma=2", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o.jpg")]
    assert runner.invoke(cli, args).exit_code == 0
    assert (tmp_path / "o.jpg").read_bytes() == expected.getvalue()
    piped = runner.invoke(cli, ["filter", "gaussian:sigma=2", "-"], input=data)
    assert piped.exit_code == 0 and piped.stdout_bytes == expected.getvalue()
