"""Property-based tests (hypothesis) of filter2d / conv2d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import BORDER_TO_NUMPY, expected_filter_shape, naive_filter2d

import imgkernel

BORDERS = ["zero", "constant", "reflect", "symmetric", "edge", "wrap"]
ALL_BORDERS = sorted(set(BORDERS) | set(BORDER_TO_NUMPY))

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dims = st.integers(1, 12)
ksize = st.integers(1, 6)
pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))
paddings = st.one_of(
    st.sampled_from(["same", "valid", "full"]),
    st.integers(0, 4),
    st.tuples(st.integers(0, 4), st.integers(0, 4)),
    st.tuples(*[st.integers(0, 5)] * 4),
)


@st.composite
def images(draw, dtype=None, min_side=1, max_side=12):
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (h, w) if channels is None else (h, w, channels)
    dtype = dtype or draw(st.sampled_from(["uint8", "uint16", "float32", "float64"]))
    if dtype == "uint8":
        elements = st.integers(0, 255)
    elif dtype == "uint16":
        elements = st.integers(0, 65535)
    else:
        elements = st.integers(-1000, 1000).map(lambda v: v / 8)  # exact in float32
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


@st.composite
def kernels(draw, max_side=6):
    kh = draw(st.integers(1, max_side))
    kw = draw(st.integers(1, max_side))
    return draw(
        hnp.arrays(np.float64, (kh, kw), elements=st.integers(-64, 64).map(lambda v: v / 16))
    )


def scale(x, k):
    return max(
        float(np.abs(np.asarray(x, dtype=np.float64)).max(initial=0)) * float(np.abs(k).sum()), 1.0
    )


@SETTINGS
@given(img=images(), kh=ksize, kw=ksize, border=st.sampled_from(ALL_BORDERS))
def test_identity_kernel_returns_the_image(img, kh, kw, border):
    # With "same" at stride 1 the anchor is ((kh-1)//2, (kw-1)//2); a single 1
    # there copies the image whatever fills the border.
    k = np.zeros((kh, kw))
    k[(kh - 1) // 2, (kw - 1) // 2] = 1
    out = imgkernel.filter2d(img, k, padding="same", border=border)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img.astype(np.float32))


@SETTINGS
@given(
    img=images(dtype="float64"),
    k=kernels(),
    a=st.integers(-4, 4),
    b=st.integers(-4, 4),
    border=st.sampled_from(BORDERS),
    seed=st.integers(0, 2**32 - 1),
)
def test_linearity(img, k, a, b, border, seed):
    y = np.random.default_rng(seed).integers(-100, 100, size=img.shape).astype(np.float64)
    kw = dict(padding="same", border=border)
    lhs = imgkernel.filter2d(a * img + b * y, k, **kw).astype(np.float64)
    rhs = a * imgkernel.filter2d(img, k, **kw).astype(np.float64) + b * imgkernel.filter2d(
        y, k, **kw
    ).astype(np.float64)
    tol = 1e-5 * (abs(a) * scale(img, k) + abs(b) * scale(y, k) + 1)
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=tol)


@SETTINGS
@given(img=images(dtype="float32", max_side=20), kh=st.integers(1, 9), kw=st.integers(1, 9))
def test_box_blur_with_wrap_keeps_the_mean(img, kh, kw):
    # Every pixel of the periodic image enters exactly kh*kw windows, each
    # weighted 1/(kh*kw): the total (hence the mean) is unchanged, even when
    # the kernel is larger than the image.
    k = np.full((kh, kw), 1.0 / (kh * kw))
    out = imgkernel.filter2d(img, k, padding="same", border="wrap")
    assert out.shape == img.shape
    axes = (0, 1)
    np.testing.assert_allclose(
        out.astype(np.float64).mean(axis=axes),
        img.astype(np.float64).mean(axis=axes),
        rtol=1e-5,
        atol=1e-4 * (np.abs(img).max(initial=0) + 1),
    )


@SETTINGS
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    kh=st.integers(1, 8),
    kw=st.integers(1, 8),
    stride=st.one_of(st.integers(1, 4), pairs),
    dilation=st.one_of(st.integers(1, 3), pairs),
    padding=paddings,
    channels=st.sampled_from([None, 2]),
)
def test_output_shape_formula(h, w, kh, kw, stride, dilation, padding, channels):
    # floor((in + before + after - dilation*(k-1) - 1) / stride) + 1, with "same"
    # giving ceil(in / stride).
    img = np.zeros((h, w) if channels is None else (h, w, channels), dtype=np.uint8)
    k = np.ones((kh, kw))
    oh, ow = expected_filter_shape((h, w), (kh, kw), stride, dilation, padding)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError):
            imgkernel.filter2d(img, k, stride=stride, dilation=dilation, padding=padding)
        return
    out = imgkernel.filter2d(
        img, k, stride=stride, dilation=dilation, padding=padding, border="zero"
    )
    assert out.shape[:2] == (oh, ow)
    assert out.shape[2:] == img.shape[2:]
    if padding == "same":
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        assert (oh, ow) == (-(-h // sh), -(-w // sw))
    # conv2d follows the same geometry
    x = np.zeros((1, h, w), dtype=np.float32)
    res = imgkernel.conv2d(
        x, k[None, None].astype(np.float32), stride=stride, dilation=dilation, padding=padding
    )
    assert res.shape == (1, oh, ow)


@SETTINGS
@given(
    img=images(),
    k=kernels(),
    border=st.sampled_from(BORDERS),
    padding=paddings,
    stride=st.one_of(st.integers(1, 3), pairs),
    dilation=st.integers(1, 2),
)
def test_convolve_is_correlation_with_flipped_kernel(img, k, border, padding, stride, dilation):
    kw = dict(border=border, padding=padding, stride=stride, dilation=dilation)
    try:
        flipped = imgkernel.filter2d(img, k[::-1, ::-1].copy(), **kw)
    except ValueError:  # kernel does not fit the padded image
        return
    conv = imgkernel.filter2d(img, k, convolve=True, **kw)
    np.testing.assert_allclose(conv, flipped, rtol=1e-6, atol=1e-6 * scale(img, k))


@SETTINGS
@given(
    img=images(min_side=2),
    k=kernels(max_side=4),
    border=st.sampled_from(BORDERS),
    stride=st.integers(1, 3),
)
def test_conv2d_depthwise_equals_filter2d_per_channel(img, k, border, stride):
    if img.ndim == 2:
        img = img[:, :, None]
    c = img.shape[2]
    scaled = [k * (i + 1) for i in range(c)]
    w = np.stack(scaled)[:, None].astype(np.float32)  # (C, 1, kh, kw)
    x = np.moveaxis(img, -1, 0)
    got = imgkernel.conv2d(x, w, groups=c, padding="same", border=border, stride=stride)
    for i in range(c):
        one = imgkernel.filter2d(
            img[..., i], scaled[i], padding="same", border=border, stride=stride
        )
        np.testing.assert_allclose(got[i], one, rtol=1e-5, atol=1e-5 * scale(img, scaled[i]))


@SETTINGS
@given(
    img=images(dtype="float32"),
    k=kernels(),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    pads=st.tuples(*[st.integers(0, 4)] * 4),
    border=st.sampled_from(BORDERS),
)
def test_stride_is_subsampling_of_stride_1(img, k, sh, sw, pads, border):
    try:
        full = imgkernel.filter2d(img, k, padding=pads, border=border)
    except ValueError:
        return
    strided = imgkernel.filter2d(img, k, padding=pads, border=border, stride=(sh, sw))
    np.testing.assert_allclose(strided, full[::sh, ::sw], rtol=1e-6, atol=1e-6 * scale(img, k))


@SETTINGS
@given(
    img=images(dtype="float32"),
    k=kernels(max_side=4),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    border=st.sampled_from(BORDERS),
)
def test_dilation_equals_kernel_with_inserted_zeros(img, k, dh, dw, border):
    kh, kw = k.shape
    big = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1))
    big[::dh, ::dw] = k
    pads = (dh * (kh - 1), dh * (kh - 1), dw * (kw - 1), dw * (kw - 1))  # "full"
    a = imgkernel.filter2d(img, k, dilation=(dh, dw), padding=pads, border=border)
    b = imgkernel.filter2d(img, big, padding=pads, border=border)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * scale(img, k))


@SETTINGS
@given(
    img=images(dtype="float64", min_side=2),
    k=kernels(),
    dy=st.integers(-5, 5),
    dx=st.integers(-5, 5),
)
def test_wrap_border_commutes_with_circular_shift(img, k, dy, dx):
    out = imgkernel.filter2d(img, k, padding="same", border="wrap")
    shifted = imgkernel.filter2d(
        np.roll(img, (dy, dx), axis=(0, 1)), k, padding="same", border="wrap"
    )
    np.testing.assert_allclose(
        shifted, np.roll(out, (dy, dx), axis=(0, 1)), rtol=1e-6, atol=1e-6 * scale(img, k)
    )


@SETTINGS
@given(
    img=images(),
    k=kernels(),
    bias=st.integers(-300, 300).map(lambda v: v / 4),
    border=st.sampled_from(BORDERS),
)
def test_bias_is_added_everywhere_and_matches_reference(img, k, bias, border):
    got = imgkernel.filter2d(img, k, bias=bias, border=border)
    base = imgkernel.filter2d(img, k, border=border)
    np.testing.assert_allclose(
        got, base + np.float32(bias), rtol=1e-6, atol=1e-6 * (scale(img, k) + abs(bias))
    )
    ref = naive_filter2d(img, k, bias=bias, border=border)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * (scale(img, k) + abs(bias)))


@SETTINGS
@given(
    n=st.integers(1, 3),
    groups=st.integers(1, 3),
    cpg=st.integers(1, 2),
    kpg=st.integers(1, 2),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.sampled_from([0, 1, "same"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv2d_decomposes_over_batch_filters_and_groups(
    n, groups, cpg, kpg, kh, kw, stride, padding, seed
):
    rng = np.random.default_rng(seed)
    c, k = groups * cpg, groups * kpg
    x = rng.standard_normal((n, c, 7, 6)).astype(np.float32)
    w = rng.standard_normal((k, cpg, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    kw_ = dict(stride=stride, padding=padding)
    out = imgkernel.conv2d(x, w, b, groups=groups, **kw_)
    tol = 1e-5 * (np.abs(x).max() * np.abs(w).sum() + 1)
    for i in range(n):
        # one sample, 3-D in and out
        np.testing.assert_allclose(
            imgkernel.conv2d(x[i], w, b, groups=groups, **kw_), out[i], rtol=1e-5, atol=tol
        )
    for f in range(k):
        g = f // kpg
        # filter f sees only its group's channels
        single = imgkernel.conv2d(x[:, g * cpg : (g + 1) * cpg], w[f : f + 1], b[f : f + 1], **kw_)
        np.testing.assert_allclose(single[:, 0], out[:, f], rtol=1e-5, atol=tol)
