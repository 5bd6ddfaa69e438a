"""Randomised parity of ``filter2d`` / ``conv2d`` against independent implementations.

Oracles: ``tests/reference.py`` (naive, float64, numpy.pad borders) and
``scipy.ndimage.correlate`` / ``convolve`` where the border modes correspond:

    ours        numpy.pad    scipy.ndimage
    zero        constant 0   constant (cval=0)
    constant v  constant v   constant (cval=v)
    edge        edge         nearest
    reflect     reflect      mirror
    symmetric   symmetric    reflect
    wrap        wrap         wrap

Each fast path (``method=...``) is also compared with the direct one on the
kernels it supports. Images are small (<= 40x40) except a few medium ones
that exercise tiling and threading.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import scipy.ndimage as ndi
from reference import (
    BORDER_TO_NUMPY,
    expected_filter_shape,
    naive_conv2d,
    naive_filter2d,
    resolve_pads,
)

import imgkernel
from imgkernel.core import correlate as _correlate

BORDERS = ["zero", "constant", "reflect", "symmetric", "edge", "wrap"]
ALIASES = sorted(set(BORDER_TO_NUMPY) - set(BORDERS))
ALL_BORDER_NAMES = BORDERS + ALIASES
DTYPES = [np.uint8, np.uint16, np.float32, np.float64]
PADDINGS = ["valid", "same", "full", 2, (1, 3), (0, 2, 1, 3)]

#: The compute paths the core exposes (grows as fast paths land).
METHODS = [m for m in getattr(_correlate, "METHODS", ("auto", "direct")) if m != "auto"]


def make_image(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 65536, size=shape).astype(np.uint16)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    return (rng.standard_normal(shape) * 100).astype(dtype)


def make_kernel(rng, kh, kw):
    return rng.standard_normal((kh, kw)).round(3)


def scale_of(x, w):
    """Magnitude of the sums involved: max|x| * sum|w| (at least 1)."""
    return max(
        float(np.max(np.abs(np.asarray(x, dtype=np.float64)), initial=0.0))
        * float(np.sum(np.abs(w))),
        1.0,
    )


def assert_close(got, expected, x, w, *, rel=1e-5, what=""):
    """Tolerance suited to float32 accumulation relative to the input's scale."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=rel, atol=rel * scale_of(x, w), err_msg=what)


def border_args(border):
    """(filter2d/conv2d border argument, numpy-side name, cval) for a border spec."""
    if isinstance(border, tuple):
        return border, "constant", float(border[1])
    if isinstance(border, str) and ":" in border:
        name, _, value = border.partition(":")
        return border, name, float(value)
    return border, border, 0.0


def check_filter(image, kernel, *, rel=1e-5, **kw):
    border = kw.pop("border", "reflect")
    arg, name, cval = border_args(border)
    extra = {}
    if "cval" in kw:
        cval = kw["cval"]
        extra["cval"] = kw.pop("cval")
    got = imgkernel.filter2d(image, kernel, border=arg, **extra, **kw)
    assert got.dtype == np.float32
    ref = naive_filter2d(image, kernel, border=name, cval=cval, **kw)
    assert_close(got, ref, image, kernel, rel=rel, what=f"border={border!r} {kw}")
    return got


# --------------------------------------------------------------------------- filter2d


@pytest.mark.parametrize("kh,kw", list(itertools.product(range(1, 8), range(1, 8))))
def test_every_kernel_size(kh, kw):
    rng = np.random.default_rng(100 * kh + kw)
    img = make_image(rng, (13, 11, 3), np.float32)
    k = make_kernel(rng, kh, kw)
    out = check_filter(img, k, padding="same", border="reflect")
    assert out.shape == (13, 11, 3)
    check_filter(img[..., 0], k, padding="valid", border="zero", bias=2.5)
    check_filter(img, k, padding="full", border="edge")
    check_filter(img[..., :1], k, padding="same", border="wrap", stride=2)
    check_filter(img, k, padding="same", border="symmetric", stride=(2, 3), dilation=(2, 1))


GEOMETRY = list(
    itertools.product(
        [1, 2, 3, (1, 2), (3, 1)],  # stride
        [1, 2, 3, (2, 1)],  # dilation
        PADDINGS,
    )
)


@pytest.mark.parametrize("case", range(len(GEOMETRY)))
def test_stride_dilation_padding(case):
    stride, dilation, padding = GEOMETRY[case]
    rng = np.random.default_rng(case)
    border = BORDERS[case % len(BORDERS)]
    channels = [None, 1, 3, 4][case % 4]
    shape = (17, 19) if channels is None else (17, 19, channels)
    img = make_image(rng, shape, DTYPES[case % len(DTYPES)])
    kh, kw = [(3, 4), (1, 5), (4, 1), (2, 2), (5, 3)][case % 5]
    k = make_kernel(rng, kh, kw)
    out = check_filter(img, k, stride=stride, dilation=dilation, padding=padding, border=border)
    assert out.shape[:2] == expected_filter_shape((17, 19), (kh, kw), stride, dilation, padding)


@pytest.mark.parametrize("border", ALL_BORDER_NAMES + [("constant", 7.5), "constant:-3"])
@pytest.mark.parametrize("padding", ["same", "full", (4, 1, 0, 5)])
def test_every_border_and_alias(border, padding):
    rng = np.random.default_rng(len(str(border)) * 7 + len(str(padding)))
    img = make_image(rng, (9, 8, 3), np.uint8)
    k = make_kernel(rng, 5, 3)
    check_filter(img, k, padding=padding, border=border)
    check_filter(img[..., 1], k, padding=padding, border=border, dilation=(1, 2))


def test_constant_border_value_keyword():
    rng = np.random.default_rng(5)
    img = make_image(rng, (6, 7), np.float32)
    k = make_kernel(rng, 3, 3)
    check_filter(img, k, padding="full", border="constant", cval=12.0)
    # constant without a value is 0, i.e. zero
    np.testing.assert_array_equal(
        imgkernel.filter2d(img, k, border="constant", padding="full"),
        imgkernel.filter2d(img, k, border="zero", padding="full"),
    )
    # a ones kernel fully outside the image sees only the value: full padding corner
    out = imgkernel.filter2d(img, np.ones((3, 3)), border=("constant", 2.0), padding="full")
    assert out[0, 0] == pytest.approx(8 * 2.0 + img[0, 0], rel=1e-6)


def test_reflect_is_numpy_reflect_not_scipy_reflect():
    # row 1 2 3, 1x3 kernel [1, 0, 0] picks the left neighbour: with numpy's
    # reflect (d c b | a b c d) the left neighbour of 1 is 2; with numpy's
    # symmetric (scipy's "reflect") it is 1; edge -> 1; wrap -> 3.
    row = np.array([[1.0, 2.0, 3.0]])
    pick_left = [[1.0, 0.0, 0.0]]
    for border, first in [
        ("reflect", 2),
        ("mirror", 2),
        ("reflect101", 2),
        ("default", 2),
        ("symmetric", 1),
        ("edge", 1),
        ("replicate", 1),
        ("nearest", 1),
        ("wrap", 3),
        ("circular", 3),
        ("tile", 3),
        ("grid-wrap", 3),
        ("zero", 0),
        ("zeros", 0),
        ("black", 0),
    ]:
        out = imgkernel.filter2d(row, pick_left, padding="same", border=border)
        assert out[0, 0] == first, border


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("img_hw", [(1, 1), (1, 5), (5, 1), (2, 3), (4, 5)])
def test_kernel_larger_than_image(border, img_hw):
    # pads wider than the image: reflect/symmetric/wrap repeat like numpy.pad
    rng = np.random.default_rng(sum(img_hw))
    img = make_image(rng, (*img_hw, 2), np.float32)
    k = make_kernel(rng, 9, 7)
    check_filter(img, k, padding="full", border=border)
    check_filter(img, k, padding="same", border=border)
    check_filter(img[..., 0], k, padding=(8, 3, 6, 6), border=border, dilation=1)
    check_filter(img, np.ones((3, 3)), padding=12, border=border, dilation=(4, 5), stride=3)


def test_kernel_that_does_not_fit_is_refused():
    with pytest.raises(ValueError):
        imgkernel.filter2d(np.ones((4, 4)), np.ones((5, 5)), padding="valid")
    with pytest.raises(ValueError):
        imgkernel.conv2d(np.ones((1, 4, 4)), np.ones((1, 1, 3, 3)), dilation=2)


@pytest.mark.parametrize("dtype", DTYPES + [np.int16, np.int32, np.bool_])
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_dtypes_and_channels(dtype, channels):
    rng = np.random.default_rng(channels or 0)
    shape = (23, 18) if channels is None else (23, 18, channels)
    img = make_image(rng, shape, dtype)
    k = make_kernel(rng, 3, 5)  # signed weights: results far outside the input's range
    out = check_filter(img, k, padding="same", border="symmetric", bias=-1.25)
    assert out.shape == shape
    check_filter(img, k, padding="valid", border="zero", stride=(2, 1))


def test_non_contiguous_and_not_mutated():
    rng = np.random.default_rng(9)
    base = make_image(rng, (30, 40, 4), np.uint8)
    views = [
        base[::2, ::-1],
        base[3:20, 5:31, 1:],
        np.asfortranarray(base[..., 0]),
        base.transpose(1, 0, 2),
        base[..., 2],
    ]
    k = make_kernel(rng, 4, 3)
    for v in views:
        before = v.copy()
        check_filter(v, k, padding="same", border="edge", stride=(1, 2))
        np.testing.assert_array_equal(v, before)


def test_convolve_flag_matches_reference_flip():
    rng = np.random.default_rng(11)
    img = make_image(rng, (15, 16, 3), np.float64)
    for kh, kw in [(3, 3), (2, 4), (5, 2), (1, 6)]:
        k = make_kernel(rng, kh, kw)
        got = imgkernel.filter2d(img, k, convolve=True, padding="same", border="wrap")
        ref = naive_filter2d(img, k[::-1, ::-1], padding="same", border="wrap")
        assert_close(got, ref, img, k)


@pytest.mark.parametrize("bad", [0, -1, (1, 0), (0, 2), (-2, 1)])
def test_non_positive_stride_or_dilation_is_a_value_error(bad):
    img = np.ones((8, 8))
    w = np.ones((1, 1, 3, 3))
    for kw in ({"stride": bad}, {"dilation": bad}):
        with pytest.raises(ValueError):
            imgkernel.filter2d(img, np.ones((3, 3)), **kw)
        with pytest.raises(imgkernel.UsageError):
            imgkernel.conv2d(img[None], w, **kw)


# --------------------------------------------------------------------------- scipy.ndimage

SCIPY_MODE = {
    "zero": "constant",
    "constant": "constant",
    "edge": "nearest",
    "reflect": "mirror",
    "symmetric": "reflect",
    "wrap": "wrap",
}


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("k_hw", [(3, 3), (5, 3), (1, 7), (2, 2), (4, 3), (6, 5), (7, 1)])
def test_matches_scipy_ndimage(border, k_hw):
    """Stride 1, dilation 1, "same" padding, image larger than the kernel.

    scipy centres a kernel of size k at index k//2 + origin: output[i] =
    sum_j w[j] * x[i + j - k//2 - origin]. Ours with "same" pads (k-1)//2 before
    (the odd extra pad of an even kernel goes at the end), i.e. the anchor is at
    (k-1)//2: equal to scipy's for odd k (origin 0); for even k it is k//2 - 1,
    which is scipy's with origin=-1. For convolve, scipy flips the kernel and,
    for even sizes, shifts the origin by one more (origin' = -origin - 1), which
    lands exactly on our anchor with origin=0 for every size. The image is wider
    than the kernel so no border is wider than the image (where scipy's mirror
    extension is not guaranteed to repeat like numpy.pad).
    """
    rng = np.random.default_rng(k_hw[0] * 10 + k_hw[1])
    img = make_image(rng, (24, 21, 3), np.float64)
    k = make_kernel(rng, *k_hw)
    cval = 4.5 if border == "constant" else 0.0
    arg = ("constant", cval) if border == "constant" else border
    mode = SCIPY_MODE[border]
    k3 = k[:, :, None]
    origin = [-1 if n % 2 == 0 else 0 for n in k_hw] + [0]
    want = ndi.correlate(img, k3, mode=mode, cval=cval, origin=origin)
    got = imgkernel.filter2d(img, k, padding="same", border=arg)
    assert_close(got, want, img, k, what="correlate")
    want = ndi.convolve(img, k3, mode=mode, cval=cval)
    got = imgkernel.filter2d(img, k, padding="same", border=arg, convolve=True)
    assert_close(got, want, img, k, what="convolve")


# --------------------------------------------------------------------------- conv2d

CONV_CASES = [
    # (N, C, K, groups)
    (None, 1, 1, 1),
    (1, 3, 4, 1),
    (2, 3, 2, 1),
    (1, 4, 6, 2),
    (2, 4, 4, 4),  # depthwise
    (1, 3, 6, 3),  # depthwise, channel multiplier 2
    (2, 6, 9, 3),
    (1, 5, 5, 5),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("geom", range(4))
def test_conv2d_against_reference(case, dtype, geom):
    n, c, k, groups = CONV_CASES[case]
    stride, dilation, padding, border = [
        (1, 1, 0, "zero"),
        (2, 1, "same", "zero"),
        ((1, 2), (2, 1), 1, "reflect"),
        (3, 2, "full", "edge"),
    ][geom]
    rng = np.random.default_rng(case * 100 + geom)
    shape = (c, 14, 11) if n is None else (n, c, 14, 11)
    x = make_image(rng, shape, dtype)
    kh, kw = [(3, 3), (2, 3), (1, 1), (4, 2)][(case + geom) % 4]
    w = rng.standard_normal((k, c // groups, kh, kw)).astype(
        np.float64 if dtype == np.float64 else np.float32
    )
    b = rng.standard_normal(k) if case % 2 else None
    got = imgkernel.conv2d(
        x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, border=border
    )
    want_dtype = np.float64 if dtype == np.float64 else np.float32
    assert got.dtype == want_dtype
    pads = resolve_pads(padding, x.shape[-2:], (kh, kw), stride, dilation)
    ref = naive_conv2d(x, w, b, stride, pads, dilation, groups, border)
    assert got.ndim == x.ndim
    rel = 1e-12 if dtype == np.float64 else 1e-5
    assert_close(got, ref, x, w[0] * c, rel=rel)


@pytest.mark.parametrize("border", BORDERS)
def test_conv2d_depthwise_equals_filter2d_per_channel(border):
    rng = np.random.default_rng(3)
    img = make_image(rng, (12, 13, 3), np.float32)
    kernels = [make_kernel(rng, 3, 4) for _ in range(3)]
    w = np.stack(kernels)[:, None]  # (3, 1, 3, 4)
    x = np.moveaxis(img, -1, 0)
    got = imgkernel.conv2d(x, w, groups=3, padding="same", border=border, stride=(1, 2))
    for ch in range(3):
        one = imgkernel.filter2d(
            img[..., ch], kernels[ch], padding="same", border=border, stride=(1, 2)
        )
        assert_close(got[ch], one, img, kernels[ch])


def test_conv2d_sums_over_channels():
    # K filters spanning all C channels == sum of per-channel filter2d + bias
    rng = np.random.default_rng(21)
    x = make_image(rng, (3, 10, 9), np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    b = np.array([0.5, -2.0])
    got = imgkernel.conv2d(x, w, b, padding=1)
    for f in range(2):
        acc = (
            sum(
                imgkernel.filter2d(x[c], w[f, c], padding=1, border="zero").astype(np.float64)
                for c in range(3)
            )
            + b[f]
        )
        assert_close(got[f], acc, x, w[f])


# --------------------------------------------------------------------------- fast paths


def _gauss(n, sigma):
    t = np.arange(n) - (n - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def supported_kernels(method, rng):
    """Kernels on which ``method`` must agree with the direct path."""
    sob = np.outer([1, 2, 1], [-1, 0, 1]).astype(float)
    separable = [
        np.outer(_gauss(5, 1.0), _gauss(7, 1.5)),
        sob,
        sob.T,
        np.outer(_gauss(9, 2.0), _gauss(9, 2.0)),
        np.outer([1.0], _gauss(7, 1.0)),
        np.outer(_gauss(6, 1.0), [1.0]),
        np.outer(rng.standard_normal(4), rng.standard_normal(3)),
    ]
    box = [
        np.full((s, t), 1.0 / (s * t))
        for s, t in [
            (1, 1),
            (2, 2),
            (3, 3),
            (5, 5),
            (1, 9),
            (7, 1),
            (4, 6),
            (11, 11),
            (31, 31),
            (15, 31),
        ]
    ]
    box.append(np.full((3, 3), 2.0))  # not normalised
    large = [
        rng.standard_normal((15, 15)),
        rng.standard_normal((17, 21)),
        np.outer(_gauss(25, 4.0), _gauss(25, 4.0)),
    ]
    general = [rng.standard_normal((3, 3)), rng.standard_normal((2, 5))]
    return {
        "direct": general + separable[:2] + box[:3],
        "separable": separable,
        "box": box,
        "fft": large + general,
    }.get(method, general + separable + box[:4] + large[:1])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "geom",
    [
        dict(padding="same", border="reflect"),
        dict(padding="valid", border="zero"),
        dict(padding="full", border="wrap", stride=2),
        dict(padding=(3, 0, 5, 1), border="edge", dilation=(2, 1)),
        dict(padding="same", border="symmetric", stride=(1, 3), dilation=2),
    ],
)
def test_fast_path_matches_direct(method, geom):
    rng = np.random.default_rng(len(method))
    img = make_image(rng, (40, 37, 3), np.uint8)
    for k in supported_kernels(method, rng):
        oh, ow = expected_filter_shape(
            img.shape[:2], k.shape, geom.get("stride", 1), geom.get("dilation", 1), geom["padding"]
        )
        if oh < 1 or ow < 1:  # does not fit this geometry
            continue
        try:
            fast = imgkernel.filter2d(img, k, method=method, **geom)
        except imgkernel.UsageError as exc:  # a path may refuse geometry it cannot do
            if "method" in str(exc) or "support" in str(exc):
                continue
            raise
        direct = imgkernel.filter2d(img, k, method="direct", **geom)
        what = f"{method} {k.shape} {geom}"
        assert_close(fast, direct, img, k, rel=1e-4, what=what)
        assert_close(fast, naive_filter2d(img, k, **geom), img, k, rel=1e-4, what=what)


@pytest.mark.skipif("box" not in METHODS, reason="no box path in this core")
@pytest.mark.parametrize("border", ["reflect", "zero", "wrap"])
def test_box_path_every_size_1_to_31(border):
    rng = np.random.default_rng(31)
    img = make_image(rng, (40, 37, 3), np.uint8)
    for s in range(1, 32):
        k = np.full((s, s), 1.0 / (s * s))
        got = imgkernel.filter2d(img, k, method="box", padding="same", border=border)
        ref = naive_filter2d(img, k, padding="same", border=border)
        assert_close(got, ref, img, k, rel=1e-4, what=f"box {s}x{s} {border}")


@pytest.mark.skipif("separable" not in METHODS, reason="no separable path in this core")
@pytest.mark.parametrize("size", [3, 5, 9, 15, 25])
def test_separable_path_gaussians(size):
    rng = np.random.default_rng(size)
    img = make_image(rng, (40, 33, 3), np.float32)
    k = np.outer(_gauss(size, size / 5), _gauss(size, size / 4))
    for kwargs in (
        dict(padding="same", border="symmetric"),
        dict(padding="valid", border="zero", stride=(2, 1)),
        dict(padding="full", border="edge", dilation=(1, 2)),
    ):
        got = imgkernel.filter2d(img, k, method="separable", **kwargs)
        assert_close(
            got,
            naive_filter2d(img, k, **kwargs),
            img,
            k,
            rel=1e-4,
            what=f"separable {size} {kwargs}",
        )


@pytest.mark.parametrize("method", METHODS)
def test_fast_path_never_silently_wrong(method):
    """Forcing a path on a kernel it does not support must raise or still be right."""
    rng = np.random.default_rng(77)
    img = make_image(rng, (20, 22), np.float32)
    for k in [rng.standard_normal((4, 4)), rng.standard_normal((15, 16)), np.eye(3)]:
        try:
            got = imgkernel.filter2d(img, k, method=method, padding="same")
        except ValueError:
            continue
        assert_close(got, naive_filter2d(img, k), img, k, rel=1e-4, what=f"{method} {k.shape}")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError):
        imgkernel.filter2d(np.ones((5, 5)), np.ones((3, 3)), method="no-such-path")


def test_auto_picks_something_correct_for_each_family():
    rng = np.random.default_rng(8)
    img = make_image(rng, (40, 40, 3), np.uint16)
    for k in supported_kernels("auto", rng):
        got = imgkernel.filter2d(img, k, padding="same", border="edge")
        assert_close(
            got, naive_filter2d(img, k, border="edge"), img, k, rel=1e-4, what=str(k.shape)
        )


# --------------------------------------------------------------------------- medium sizes


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding="same", border="reflect"),
        dict(padding="valid", border="zero", stride=2, dilation=2),
        dict(padding="full", border="wrap", stride=(3, 1)),
    ],
)
def test_medium_image_tiling(kwargs):
    rng = np.random.default_rng(300)
    img = make_image(rng, (300, 257, 3), np.uint8)
    k = make_kernel(rng, 5, 6)
    check_filter(img, k, **kwargs)


MEDIUM_KERNELS = {
    "direct": lambda rng: make_kernel(rng, 7, 7),
    "box": lambda rng: np.full((15, 15), 1 / 225),
    "separable": lambda rng: np.outer(_gauss(9, 2.0), _gauss(11, 2.5)),
    "fft": lambda rng: make_kernel(rng, 21, 19),
}


@pytest.mark.parametrize("method", METHODS)
def test_medium_image_threads_do_not_change_results(monkeypatch, method):
    rng = np.random.default_rng(301)
    img = make_image(rng, (300, 257, 3), np.float32)
    k = MEDIUM_KERNELS.get(method, MEDIUM_KERNELS["direct"])(rng)
    monkeypatch.setenv("IMGKERNEL_THREADS", "1")
    one = imgkernel.filter2d(img, k, method=method)
    monkeypatch.setenv("IMGKERNEL_THREADS", "4")
    four = imgkernel.filter2d(img, k, method=method)
    np.testing.assert_allclose(one, four, rtol=1e-6, atol=1e-6 * scale_of(img, k))
    assert_close(four, naive_filter2d(img, k), img, k, rel=1e-4, what=method)


@pytest.mark.parametrize("method", METHODS)
def test_medium_image_each_method_uint16_strided(method):
    rng = np.random.default_rng(303)
    img = make_image(rng, (300, 257, 3), np.uint16)
    k = MEDIUM_KERNELS.get(method, MEDIUM_KERNELS["direct"])(rng)
    kwargs = dict(padding="same", border="symmetric", stride=(2, 3))
    try:
        got = imgkernel.filter2d(img, k, method=method, **kwargs)
    except imgkernel.UsageError as exc:
        pytest.skip(f"{method} refuses stride: {exc}")
    assert_close(got, naive_filter2d(img, k, **kwargs), img, k, rel=1e-4, what=method)


def test_medium_conv2d_batch():
    rng = np.random.default_rng(302)
    x = make_image(rng, (2, 3, 64, 57), np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8)
    got = imgkernel.conv2d(x, w, b, padding="same", stride=2)
    pads = resolve_pads("same", (64, 57), (3, 3), 2, 1)
    assert_close(got, naive_conv2d(x, w, b, 2, pads), x, w[0] * 3)


# --------------------------------------------------------------------------- random sweep


def _sweep_cases(count=400, seed=2024):
    r = random.Random(seed)
    cases = []
    for _ in range(count):
        cases.append(
            dict(
                h=r.randint(1, 24),
                w=r.randint(1, 24),
                kh=r.randint(1, 7),
                kw=r.randint(1, 7),
                stride=(r.randint(1, 3), r.randint(1, 3)),
                dilation=(r.randint(1, 3), r.randint(1, 3)),
                padding=r.choice(
                    [
                        "same",
                        "full",
                        r.randint(0, 4),
                        (r.randint(0, 3), r.randint(0, 3)),
                        tuple(r.randint(0, 5) for _ in range(4)),
                    ]
                ),
                border=r.choice(ALL_BORDER_NAMES),
                channels=r.choice([None, 1, 2, 3, 4]),
                dtype=r.choice(DTYPES),
                convolve=r.random() < 0.3,
                seed=r.randrange(1 << 30),
            )
        )
    return cases


SWEEP = _sweep_cases()


@pytest.mark.parametrize("i", range(len(SWEEP)))
def test_random_sweep(i):
    c = SWEEP[i]
    rng = np.random.default_rng(c["seed"])
    shape = (c["h"], c["w"]) if c["channels"] is None else (c["h"], c["w"], c["channels"])
    img = make_image(rng, shape, c["dtype"])
    k = make_kernel(rng, c["kh"], c["kw"])
    pads = resolve_pads(
        c["padding"], (c["h"], c["w"]), (c["kh"], c["kw"]), c["stride"], c["dilation"]
    )
    fits = (
        c["h"] + pads[0] + pads[1] >= c["dilation"][0] * (c["kh"] - 1) + 1
        and c["w"] + pads[2] + pads[3] >= c["dilation"][1] * (c["kw"] - 1) + 1
    )
    kw = dict(
        stride=c["stride"],
        dilation=c["dilation"],
        padding=c["padding"],
        border=c["border"],
        convolve=c["convolve"],
    )
    if not fits:
        with pytest.raises(ValueError):
            imgkernel.filter2d(img, k, **kw)
        return
    check_filter(img, k, **kw)


@pytest.mark.parametrize(
    "border", ["symmetric", "wrap", ("constant", 2.5), "constant:-1", "replicate", "circular"]
)
def test_conv2d_borders(border):
    rng = np.random.default_rng(404)
    x = make_image(rng, (2, 4, 9, 8), np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    arg, name, cval = border_args(border)
    got = imgkernel.conv2d(x, w, padding=(2, 1, 0, 3), groups=2, border=arg, stride=(2, 1))
    ref = naive_conv2d(x, w, None, (2, 1), (2, 1, 0, 3), 1, 2, name, cval)
    assert_close(got, ref, x, w[0] * 2)


# Non-finite pixels: a NaN/inf should only reach the outputs whose window
# holds it, whichever path "auto" picks. FFT would spread it over a whole tile
# and the banded-Toeplitz separable path over whole rows (0 * NaN = NaN), so
# filter2d sends float images holding NaN or inf to the direct path.
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("kernel", ["box", "fft", "separable"])
def test_non_finite_pixels_stay_local_under_auto(bad, kernel):
    rng = np.random.default_rng(55)
    img = rng.random((60, 60))
    img[30, 30] = bad
    k = {
        "box": np.full((5, 5), 1 / 25),
        "fft": rng.random((21, 21)),
        "separable": np.outer(_gauss(7, 1.5), _gauss(7, 1.5)),
    }[kernel]
    with np.errstate(invalid="ignore"):
        auto = imgkernel.filter2d(img, k)
        direct = imgkernel.filter2d(img, k, method="direct")
    np.testing.assert_array_equal(np.isnan(auto), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(auto), np.isinf(direct))
    finite = np.isfinite(direct)
    assert_close(auto[finite], direct[finite], img[np.isfinite(img)], k, rel=1e-4)
