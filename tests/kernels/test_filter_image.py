"""imgkernel.kernels.filter_image: choosing a kernel and filtering decoded images for output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.images import Display, Image, OutputOptions, read_image
from imgkernel.kernels import apply_kernel, kernel_from_matrix, load_library
from imgkernel.kernels.filter_image import choose_kernel, filter_files, filter_image

RNG = np.random.default_rng(7)


def gray(shape=(300, 40), dtype=np.uint8, alpha=None) -> Image:
    top = np.iinfo(dtype).max
    pixels = RNG.integers(0, top + 1, shape, dtype=dtype)
    return Image(pixels, alpha, "PNG", "gray.png")


def test_choose_kernel_takes_exactly_one_source(tmp_path: Path) -> None:
    assert choose_kernel("sobel").name == load_library().resolve("sobel").name
    np.testing.assert_allclose(choose_kernel(matrix="1 1; 1 1").weights, np.ones((2, 2)))
    np.testing.assert_allclose(
        choose_kernel(matrix="1 1; 1 1", divisor="sum").weights, np.full((2, 2), 0.25)
    )
    np.testing.assert_allclose(choose_kernel(matrix="2 4", divisor=2).weights, [[1, 2]])
    sobel = load_library().resolve("sobel-x").weights
    np.testing.assert_allclose(choose_kernel("sobel-x", divisor=8).weights, sobel / 8)
    # a zero-sum kernel has no sum to divide by: it stays as written
    np.testing.assert_allclose(choose_kernel("sobel-x", divisor="sum").weights, sobel)
    with pytest.raises(UsageError, match="scale must not be 0, got 0"):
        choose_kernel("sobel-x", divisor=0)
    np.save(tmp_path / "k.npy", np.eye(3))
    assert choose_kernel(kernel_file=str(tmp_path / "k.npy")).shape == (3, 3)
    with pytest.raises(UsageError, match="give a KERNEL name"):
        choose_kernel()
    with pytest.raises(UsageError, match="give only one of KERNEL, --matrix and --kernel-file"):
        choose_kernel("sobel", matrix="1")


@pytest.mark.parametrize("name", ["sobel", "emboss", "gaussian:sigma=3"])
def test_bands_equal_the_whole_result(name: str) -> None:
    # 300 rows: more than one band of 256 output rows
    image = gray()
    kernel = choose_kernel(name)
    pixels, alpha = filter_image(image, kernel, "PNG")
    values, _ = apply_kernel(image.pixels, kernel, max_value=255.0)
    expected = Display().pixels(values, image, "PNG", kernel.display)
    assert alpha is None and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, expected)


def test_npy_keeps_floats_and_display_maps_them() -> None:
    image = gray((6, 7))
    kernel = choose_kernel("sobel-x")
    raw, _ = filter_image(image, kernel, "NPY", stride=2)
    values, _ = apply_kernel(image.pixels, kernel, stride=2)
    assert raw.dtype == np.float32
    # the unit rule: an 8-bit source goes to float output divided by 255
    np.testing.assert_allclose(raw, values / 255, rtol=1e-6)
    clipped, _ = filter_image(image, kernel, "npy", display=Display(mode="clip"), stride=2)
    np.testing.assert_allclose(clipped, np.clip(values, 0, 255) / 255, atol=1e-6)


def test_alpha_follows_the_pixels_type() -> None:
    alpha = np.full((4, 5), 255, np.uint8)
    image = Image(np.zeros((4, 5), np.float32), alpha, "TIFF", "f.tif")
    pixels, out_alpha = filter_image(image, kernel_from_matrix([[1.0]]), "PNG")
    assert pixels.dtype == np.uint8 and out_alpha is not None and out_alpha.dtype == np.uint8
    deep = gray((4, 5), np.uint16, alpha=np.full((4, 5), 128, np.uint8))
    pixels, out_alpha = filter_image(deep, kernel_from_matrix([[1.0]]), "PNG")
    assert pixels.dtype == np.uint16 and out_alpha is not None
    np.testing.assert_array_equal(out_alpha, np.full((4, 5), 128 * 257, np.uint16))


def test_text_formats_are_refused() -> None:
    with pytest.raises(UsageError, match="filter cannot write json"):
        filter_image(gray((3, 3)), choose_kernel("box"), "JSON")


def test_filter_files(tmp_path: Path) -> None:
    source = tmp_path / "in.npy"
    np.save(source, np.ones((5, 5), np.float32))
    filter_files([str(source)], choose_kernel("box"), OutputOptions(output=str(tmp_path / "o.npy")))
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), np.ones((5, 5)), atol=1e-6)
    filter_files(
        [str(source)],
        choose_kernel("box"),
        OutputOptions(output=str(tmp_path / "o.png")),
        display=Display(mode="clip"),
    )
    assert read_image(str(tmp_path / "o.png")).pixels.dtype == np.uint8
