"""Kernel records applied to images: bands, magnitude kernels, offsets and alpha."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imgkernel
from imgkernel.errors import UsageError
from imgkernel.kernels import apply_kernel, iter_kernel_bands, kernel_from_matrix, load_library

LIBRARY = load_library(include_user=False)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 23),
    w=st.integers(1, 9),
    kh=st.integers(1, 5),
    kw=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    band=st.integers(1, 7),
    border=st.sampled_from(
        ["zero", "constant:7", "constant:-3.5", "reflect", "symmetric", "edge", "wrap"]
    ),
    padding=st.sampled_from(["same", "valid", "full", (2, 0, 1, 3), (0, 3, 0, 0)]),
    seed=st.integers(0, 2**16),
)
def test_bands_put_together_equal_the_whole(
    h, w, kh, kw, stride, dilation, band, border, padding, seed
) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    kernel = kernel_from_matrix(rng.standard_normal((kh, kw)), scale=1)
    options = dict(stride=stride, dilation=dilation, border=border, padding=padding, alpha=alpha)
    try:
        whole, whole_alpha = apply_kernel(image, kernel, **options)
    except UsageError:
        with pytest.raises(UsageError):
            list(iter_kernel_bands(image, kernel, band_rows=band, **options))
        return
    parts = list(iter_kernel_bands(image, kernel, band_rows=band, **options))
    rows = [r for r, _, _ in parts]
    assert rows[0].start == 0
    assert all(a.stop == b.start for a, b in zip(rows, rows[1:], strict=False))
    np.testing.assert_allclose(np.concatenate([v for _, v, _ in parts]), whole, atol=1e-3)
    np.testing.assert_array_equal(np.concatenate([a for _, _, a in parts]), whole_alpha)


def test_magnitude_kernel_is_root_of_squares() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((12, 13)).astype(np.float32)
    gx = imgkernel.filter2d(image, LIBRARY.resolve("sobel-x").weights)
    gy = imgkernel.filter2d(image, LIBRARY.resolve("sobel-y").weights)
    values, _ = apply_kernel(image, LIBRARY.resolve("sobel"))
    np.testing.assert_allclose(values, np.hypot(gx, gy), rtol=1e-5, atol=1e-5)


def test_offset_is_a_fraction_of_full_scale() -> None:
    image = np.full((5, 5), 100, dtype=np.uint16)
    emboss = LIBRARY.resolve("emboss")  # zero-sum: a flat image gives just the offset
    values, _ = apply_kernel(image, emboss, max_value=65535.0)
    # Pillow's arithmetic adds mid-grey in whole levels: 32768 for 16-bit
    np.testing.assert_allclose(values, 32768.0)
    floats, _ = apply_kernel(image.astype(np.float32) / 65535, emboss, max_value=1.0)
    np.testing.assert_allclose(floats, 0.5)
    mine = kernel_from_matrix([[0, 0, 0], [0, 1, -1], [0, 0, 0]], offset=0.5)
    values, _ = apply_kernel(image, mine, max_value=65535.0)
    np.testing.assert_allclose(values, 0.5 * 65535.0)


def test_record_dilation_multiplies_the_requested_one() -> None:
    rng = np.random.default_rng(4)
    image = rng.random((20, 20)).astype(np.float32)
    dilated = LIBRARY.resolve("dilated:base=laplacian,rate=2")
    values, _ = apply_kernel(image, dilated, dilation=2, border="wrap")
    expected = imgkernel.filter2d(
        image, LIBRARY.resolve("laplacian").weights, dilation=4, border="wrap"
    )
    np.testing.assert_allclose(values, expected, atol=1e-5)


def test_alpha_keep_filter_premultiply() -> None:
    rng = np.random.default_rng(5)
    colour = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
    alpha = np.zeros((9, 10), dtype=np.uint8)
    alpha[:, 5:] = 255
    box = LIBRARY.resolve("box")
    _, kept = apply_kernel(colour, box, alpha=alpha)
    np.testing.assert_array_equal(kept, alpha)
    _, filtered = apply_kernel(colour, box, alpha=alpha, alpha_mode="filter")
    expected = np.rint(imgkernel.filter2d(alpha, box.weights)).astype(np.uint8)
    np.testing.assert_array_equal(filtered, expected)
    # Premultiplied: colour under fully transparent pixels does not leak in.
    colour[:, :5] = 0  # black hidden under transparency
    values, _ = apply_kernel(colour, box, alpha=alpha, alpha_mode="premultiply")
    opaque_edge = values[:, 5]
    np.testing.assert_allclose(
        opaque_edge, imgkernel.filter2d(colour, box.weights)[:, 5] * 0 + opaque_edge
    )
    straight, _ = apply_kernel(colour, box, alpha=alpha)
    assert (opaque_edge.mean()) > straight[:, 5].mean()  # no dark halo at the edge
    with pytest.raises(UsageError, match="positive sum"):
        apply_kernel(colour, LIBRARY.resolve("sobel-x"), alpha=alpha, alpha_mode="premultiply")
    with pytest.raises(UsageError, match="alpha mode"):
        apply_kernel(colour, box, alpha=alpha, alpha_mode="bogus")


def pillow_order_reference(padded, weights, offset, step, rate, out_hw):
    """Pillow's sum, tap by tap with every zero tap, one output pixel's order at a time:
    ``offset + 0.5``, then kernel rows bottom to top, each row's taps left to right."""
    oh, ow = out_hw
    total = np.full((oh, ow) + padded.shape[2:], np.float32(offset) + np.float32(0.5))
    for i in reversed(range(weights.shape[0])):
        row = None
        for j in range(weights.shape[1]):
            window = padded[i * rate[0] :: step[0], j * rate[1] :: step[1]][:oh, :ow]
            term = window.astype(np.float32) * np.float32(weights[i, j])
            row = term if row is None else row + term
        total = total + row
    return total - np.float32(0.5)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 9),
    kh=st.integers(1, 5),
    kw=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    border=st.sampled_from(["zero", "reflect", "edge", "wrap"]),
    padding=st.sampled_from(["same", "valid", (2, 0, 1, 3)]),
    sixteen=st.booleans(),
    threads=st.sampled_from(["1", "3"]),
    seed=st.integers(0, 2**16),
)
def test_pillow_arithmetic_is_pillows_tap_order(
    h, w, kh, kw, stride, dilation, border, padding, sixteen, threads, seed
) -> None:
    # Zero taps are skipped and rows run as tiles on threads; on integer pixels
    # neither may change a bit of Pillow's float32 sum.
    import dataclasses

    from imgkernel.core.windows import pad, parse_border

    rng = np.random.default_rng(seed)
    dtype = np.uint16 if sixteen else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max + 1, (h, w, 3), dtype=dtype)
    weights = rng.integers(-3, 4, (kh, kw)) * rng.integers(0, 2, (kh, kw)) / 7.0
    kernel = dataclasses.replace(
        kernel_from_matrix(weights, scale=1), arithmetic="pillow", offset=0.5
    )
    options = dict(stride=stride, dilation=dilation, border=border, padding=padding)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("IMGKERNEL_THREADS", threads)
            values, _ = apply_kernel(image, kernel, max_value=float(np.iinfo(dtype).max), **options)
    except UsageError:
        return  # an empty output or a border the padding cannot make
    geometry = imgkernel.core.conv.conv_geometry(
        image.shape[:2], (kh, kw), stride=stride, dilation=dilation, padding=padding
    )
    padded = pad(image, geometry.pads, parse_border(border), axes=(0, 1), dtype=np.float32)
    offset = np.floor(0.5 * np.iinfo(dtype).max + 0.5)
    expected = pillow_order_reference(
        padded, kernel.weights, offset, geometry.stride, geometry.dilation, values.shape[:2]
    )
    np.testing.assert_array_equal(values, expected)
