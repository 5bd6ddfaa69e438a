"""Layers: each type against PyTorch and ONNX semantics, in-place activations, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.nn import (
    Model,
)
from imgkernel.nn.layers import (
    AvgPool,
    BatchNorm,
    Clip,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    LeakyReLU,
    MaxPool,
    MinPool,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
    make_layer,
)
from imgkernel.nn.spec import InputSpec

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def spec(c: int = 3, h: int = 8, w: int = 8) -> InputSpec:
    return InputSpec(channels=c, height=h, width=w)


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [
        (1, 0, 1, 1),
        (2, 1, 1, 1),
        ((1, 2), (0, 2, 1, 0), (2, 1), 1),
        (1, "same", 1, 3),
        (2, "same", 2, 1),
        (1, "valid", 1, 1),
    ],
)
def test_conv2d_layer_matches_torch(stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = rand(2, 6, 11, 10)
    w = rand(6, 6 // groups, 3, 3)
    b = rand(6)
    layer = Conv2D("c", w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    got = layer(x)
    xt = torch.from_numpy(x)
    s = stride if isinstance(stride, tuple) else (stride, stride)
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    if padding == "same":
        # SAME_UPPER: output ceil(n / s), extra pad at the end
        pads = []
        for n, ss, dd in zip((11, 10), s, d, strict=True):
            total = max((-(-n // ss) - 1) * ss + dd * 2 + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        xt = f.pad(xt, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    elif padding == "valid":
        pass
    elif isinstance(padding, tuple):
        t, bo, le, r = padding
        xt = f.pad(xt, (le, r, t, bo))
    else:
        xt = f.pad(xt, (padding,) * 4)
    want = f.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), s, 0, d, groups).numpy()
    assert got.shape == want.shape
    assert layer.output_shape((None, 6, 11, 10)) == (None, *want.shape[1:])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "size,stride,padding,ceil_mode,count_include_pad",
    [
        (2, None, 0, False, False),
        (3, 2, 1, True, False),
        (3, 2, 1, True, True),
        ((3, 2), (2, 1), (1, 0), False, True),
        (2, 2, 0, True, False),
    ],
)
def test_pool_layers_match_torch(size, stride, padding, ceil_mode, count_include_pad):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = rand(2, 3, 9, 8)
    xt = torch.from_numpy(x)
    kw = dict(size=size, stride=stride, padding=padding, ceil_mode=ceil_mode)
    st = size if stride is None else stride
    want_max = f.max_pool2d(xt, size, st, padding, ceil_mode=ceil_mode).numpy()
    want_min = -f.max_pool2d(-xt, size, st, padding, ceil_mode=ceil_mode).numpy()
    want_avg = f.avg_pool2d(
        xt, size, st, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
    ).numpy()
    for layer, want in (
        (MaxPool("p", **kw), want_max),
        (MinPool("p", **kw), want_min),
        (AvgPool("p", count_include_pad=count_include_pad, **kw), want_avg),
    ):
        got = layer(x)
        assert layer.output_shape((None, 3, 9, 8)) == (None, *want.shape[1:])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_global_pools():
    x = rand(2, 4, 5, 6)
    np.testing.assert_allclose(
        GlobalAvgPool("g")(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(GlobalMaxPool("g")(x), x.max(axis=(2, 3), keepdims=True))
    assert GlobalAvgPool("g").output_shape((None, 4, 5, 6)) == (None, 4, 1, 1)


def test_activations():
    x = rand(2, 3, 4, 5) * 5
    np.testing.assert_array_equal(ReLU("r")(x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(LeakyReLU("l", alpha=0.2)(x), np.where(x < 0, 0.2 * x, x), 1e-6)
    np.testing.assert_allclose(Sigmoid("s")(x), 1 / (1 + np.exp(-x.astype(np.float64))), 1e-5)
    np.testing.assert_allclose(Tanh("t")(x), np.tanh(x.astype(np.float64)), 1e-5, 1e-6)
    np.testing.assert_array_equal(Clip("c", min=-1.0, max=2.0)(x), np.clip(x, -1, 2))
    np.testing.assert_array_equal(Clip("c", min=0.5)(x), np.maximum(x, 0.5))
    np.testing.assert_array_equal(Clip("c")(x), x)
    np.testing.assert_array_equal(Dropout("d")(x), x)
    # sigmoid does not overflow
    assert np.all(np.isfinite(Sigmoid("s")(np.array([-1e4, 1e4], np.float32))))


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, 3])
def test_softmax_axis(axis):
    x = rand(2, 3, 4, 5) * 10
    e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    want = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(Softmax("s", axis=axis)(x), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "axis,shape", [(0, (1, 120)), (1, (2, 60)), (2, (6, 20)), (4, (120, 1)), (-1, (24, 5))]
)
def test_flatten_onnx_semantics(axis, shape):
    x = rand(2, 3, 4, 5)
    layer = Flatten("f", axis=axis)
    assert layer(x).shape == shape
    np.testing.assert_array_equal(layer(x).reshape(-1), x.reshape(-1))
    out = layer.output_shape((2, 3, 4, 5))
    assert out == shape


def test_dense_batchnorm_reshape():
    x = rand(5, 7)
    w, b = rand(3, 7), rand(3)
    np.testing.assert_allclose(Dense("d", w, b)(x), x @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        Dense("d", w, None, transpose_input=True)(x.T.copy()), x @ w.T, rtol=1e-5, atol=1e-5
    )
    # any rank: last axis
    x4 = rand(2, 3, 4, 7)
    np.testing.assert_allclose(Dense("d", w, b)(x4), x4 @ w.T + b, rtol=1e-5, atol=1e-5)

    xb = rand(2, 4, 3, 3)
    scale, bias, mean, var = rand(4), rand(4), rand(4), np.abs(rand(4)) + 0.1
    got = BatchNorm("bn", scale, bias, mean, var, epsilon=1e-3)(xb)
    c = (slice(None), None, None)
    want = (xb - mean[c]) / np.sqrt(var[c] + 1e-3) * scale[c] + bias[c]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    xr = rand(2, 3, 4, 5)
    assert Reshape("r", shape=[0, -1])(xr).shape == (2, 60)
    assert Reshape("r", shape=[-1, 20])(xr).shape == (6, 20)
    assert Reshape("r", shape=[0, -1]).output_shape((None, 3, 4, 5)) == (None, 60)
    with pytest.raises(UsageError):
        Reshape("r", shape=[7, -1]).output_shape((2, 3, 4, 5))


def test_batchnorm_matches_torch():
    torch = pytest.importorskip("torch")
    xb = rand(3, 4, 5, 5)
    scale, bias, mean, var = rand(4), rand(4), rand(4), np.abs(rand(4)) + 0.1
    want = torch.nn.functional.batch_norm(
        torch.from_numpy(xb),
        torch.from_numpy(mean),
        torch.from_numpy(var),
        torch.from_numpy(scale),
        torch.from_numpy(bias),
        False,
        0.1,
        1e-5,
    ).numpy()
    got = BatchNorm("bn", scale, bias, mean, var)(xb)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_make_layer_and_bad_names():
    assert isinstance(make_layer("relu", "r"), ReLU)
    with pytest.raises(UsageError, match="unknown layer type"):
        make_layer("gelu", "g")
    with pytest.raises(UsageError, match="duplicate"):
        Model.from_layers([ReLU("a"), ReLU("a")], input_spec=spec())


def test_inplace_activations_leave_input_alone():
    layers = [
        ReLU("r0"),
        Conv2D("c", rand(2, 1, 3, 3), None),
        LeakyReLU("l", alpha=0.5),
        Clip("cl", min=-0.1, max=0.2),
        Tanh("t"),
        Sigmoid("s"),
        Flatten("f"),
        ReLU("r1"),
    ]
    m = Model.from_layers(layers, input_spec=spec(1, 6, 6))
    x = rand(2, 1, 6, 6)
    keep = x.copy()
    y = m(x)
    np.testing.assert_array_equal(x, keep)  # the caller's array is untouched
    ref = x
    for layer in layers:
        ref = layer(ref)
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    for layer in layers:
        if layer.INPLACE:
            z = rand(3, 4) * 3
            np.testing.assert_allclose(layer.inplace(z.copy()), layer(z), rtol=1e-6)
