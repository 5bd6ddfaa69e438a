"""Tests for imgkernel.core.pool: seeds, ONNX reference parity, torch parity, properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgkernel.core.pool import global_pool, pool2d
from imgkernel.core.windows import output_size
from imgkernel.errors import UsageError

# The lecture notes' feature map (seed 001, "Step 2 - Max Pooling").
FMAP = np.array(
    [
        [0, 1, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 0, 1, 2, 1],
        [1, 4, 2, 1, 0],
        [0, 0, 1, 2, 1],
    ]
)


# --------------------------------------------------------------------------- seeds


def test_seed_max_pool_2x2_stride2_keeps_partial_windows():
    # The notes' pooled feature map is 3x3: the partial right/bottom windows
    # are kept, i.e. ceil_mode (or "same" padding). Checked by hand: e.g. the
    # bottom-left window holds only [0, 0] -> 0, the bottom-right only [1].
    expected = np.array([[1, 1, 0], [4, 2, 1], [0, 2, 1]])
    np.testing.assert_array_equal(pool2d(FMAP, 2, 2, ceil_mode=True), expected)
    np.testing.assert_array_equal(pool2d(FMAP, 2, padding="same"), expected)
    # Without ceil_mode only the full windows remain.
    np.testing.assert_array_equal(pool2d(FMAP, 2), expected[:2, :2])


def test_seed_flattening_order():
    # Step 3 of the notes flattens the pooled map row by row.
    flat = pool2d(FMAP, 2, ceil_mode=True).ravel()
    np.testing.assert_array_equal(flat, [1, 1, 0, 4, 2, 1, 0, 2, 1])


def test_seed_shape_256x256x64():
    x = np.random.default_rng(0).random((256, 256, 64), dtype=np.float32)
    out = pool2d(x, 2, 2)
    assert out.shape == (128, 128, 64)
    np.testing.assert_array_equal(out, x.reshape(128, 2, 128, 2, 64).max(axis=(1, 3)))
    t = pool2d(np.moveaxis(x, 2, 0)[None], 2, layout="tensor")
    assert t.shape == (1, 64, 128, 128)


def test_seed_average_pool_red_channel_corner():
    # Seed 000's red channel (zero-padded border shown), 2x2 window, stride 2.
    red = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 156, 155, 156, 158, 158],
            [0, 153, 154, 157, 159, 159],
            [0, 149, 151, 155, 158, 159],
            [0, 146, 146, 149, 153, 158],
            [0, 145, 143, 143, 148, 158],
        ],
        dtype=np.uint8,
    )
    avg = pool2d(red, 2, mode="avg")
    assert avg.dtype == np.float32
    np.testing.assert_allclose(avg[0], [39, 77.75, 79])  # (0+0+155+156)/4 = 77.75
    np.testing.assert_array_equal(pool2d(red, 2)[1], [153, 157, 159])


# ------------------------------------------------------------------- ONNX parity


def _onnx_pool(x, op, k, s, pads, d, ceil, cip):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    attrs = {
        "kernel_shape": list(k),
        "strides": list(s),
        "pads": [pads[0], pads[2], pads[1], pads[3]],
        "dilations": list(d),
        "ceil_mode": int(ceil),
    }
    if op == "AveragePool":
        attrs["count_include_pad"] = int(cip)
    node = helper.make_node(op, ["X"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    del onnx
    return ReferenceEvaluator(model).run(None, {"X": x})[0]


def _overhang(n, k, s, d, before, after, ceil):
    out = output_size(n, k, s, d, before, after, ceil_mode=ceil)
    return max(0, (out - 1) * s + d * (k - 1) + 1 - (n + before + after))


def _onnx_cases():
    rng = np.random.default_rng(1234)
    cases = []
    for k, s, d, ceil in itertools.product([1, 2, 3, 4], [1, 2, 3], [1, 2], [False, True]):
        for op, cip in [("MaxPool", False), ("AveragePool", False), ("AveragePool", True)]:
            kh, kw = k, int(rng.integers(1, 5))
            dh, dw = d, int(rng.integers(1, 3))
            h = int(rng.integers(dh * (kh - 1) + 1, 10))
            w = int(rng.integers(dw * (kw - 1) + 1, 10))
            pads = [int(rng.integers(0, kh)), int(rng.integers(0, kh))]
            pads += [int(rng.integers(0, kw)), int(rng.integers(0, kw))]
            if op == "MaxPool" and s == 1 and dh == dw == 1:
                # onnx.reference's stride-1 MaxPool reads pads as
                # (top, bottom, left, right); it agrees with the spec when
                # bottom == left. Its ceil_mode there is off too (at stride 1
                # ceil_mode changes nothing, see test_ceil_mode_stride1_noop).
                pads[1] = min(pads[2], kh - 1)
                pads[2] = pads[1]
                if ceil:
                    continue
            if op == "AveragePool" and (
                _overhang(h, kh, s, dh, pads[0], pads[1], ceil) > 1
                or _overhang(w, kw, s, dw, pads[2], pads[3], ceil) > 1
            ):
                # onnx.reference splits a ceil_mode overhang >= 2 between both
                # ends, shifting the windows; torch parity covers these.
                continue
            cases.append((op, (kh, kw), (s, s), tuple(pads), (dh, dw), ceil, cip, (h, w)))
    return cases


@pytest.mark.parametrize("op,k,s,pads,d,ceil,cip,hw", _onnx_cases())
def test_onnx_reference_parity(op, k, s, pads, d, ceil, cip, hw):
    x = (
        np.random.default_rng(hash((k, s, pads, d, hw)) % 2**32)
        .standard_normal((2, 3, *hw))
        .astype(np.float32)
    )
    ref = _onnx_pool(x, op, k, s, pads, d, ceil, cip)
    mode = "max" if op == "MaxPool" else "avg"
    got = pool2d(
        x,
        k,
        s,
        mode=mode,
        padding=pads,
        dilation=d,
        ceil_mode=ceil,
        count_include_pad=cip,
        layout="tensor",
    )
    assert got.shape == ref.shape
    assert got.dtype == np.float32
    if mode == "max":
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_ceil_mode_stride1_noop(mode):
    x = np.random.default_rng(9).standard_normal((7, 6, 2))
    for pads in [(0, 1, 1, 2), (2, 0, 0, 1)]:
        a = pool2d(x, (3, 4), 1, mode=mode, padding=pads, ceil_mode=True)
        np.testing.assert_array_equal(a, pool2d(x, (3, 4), 1, mode=mode, padding=pads))


def test_onnx_reference_overhang_bug_is_not_copied():
    # 6 cells, window 4, stride 3, pad 1 each side, ceil_mode: the last window
    # starts at padded index 6 and hangs 2 cells past the pad. onnx.reference
    # puts one of those 2 cells before the input (shifting every window);
    # PyTorch and this library keep the windows where the spec puts them.
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 1, 6)
    got = pool2d(
        x, (1, 4), (1, 3), mode="avg", padding=(0, 0, 1, 1), ceil_mode=True, layout="tensor"
    )
    # windows over padded [p 0 1 2 3 4 5 p]: [p,0,1,2], [2,3,4,5], [5,p]
    np.testing.assert_allclose(got.ravel(), [1.0, 3.5, 5.0])
    got = pool2d(
        x,
        (1, 4),
        (1, 3),
        mode="avg",
        padding=(0, 0, 1, 1),
        ceil_mode=True,
        count_include_pad=True,
        layout="tensor",
    )
    # divisors 4, 4 and 2 (the pad cell counts, the overhang cell does not)
    np.testing.assert_allclose(got.ravel(), [0.75, 3.5, 2.5])


# ------------------------------------------------------------------ torch parity


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


@pytest.mark.parametrize(
    "k,s,p,ceil,d",
    [
        (k, s, p, ceil, d)
        for k in (1, 2, 3, 4)
        for s in (1, 2, 3)
        for p in range(0, k // 2 + 1)
        for ceil in (False, True)
        for d in (1, 2)
    ],
)
def test_torch_max_pool_parity(k, s, p, ceil, d):
    torch, F = _torch()
    x = np.random.default_rng(k * 100 + s * 10 + p).standard_normal((2, 3, 11, 9))
    x = x.astype(np.float32)
    if p > ((k - 1) * d + 1) // 2:
        pytest.skip("torch requires pad <= span / 2")
    ref = F.max_pool2d(torch.from_numpy(x), k, s, p, dilation=d, ceil_mode=ceil).numpy()
    got = pool2d(x, k, s, padding=p, dilation=d, ceil_mode=ceil, layout="tensor")
    np.testing.assert_array_equal(got, ref)
    ref_min = -F.max_pool2d(torch.from_numpy(-x), k, s, p, dilation=d, ceil_mode=ceil).numpy()
    np.testing.assert_array_equal(
        pool2d(x, k, s, mode="min", padding=p, dilation=d, ceil_mode=ceil, layout="tensor"), ref_min
    )


@pytest.mark.parametrize(
    "k,s,p,ceil,cip",
    [
        (k, s, p, ceil, cip)
        for k in (1, 2, 3, 4, 5)
        for s in (1, 2, 3, 4)
        for p in range(0, k // 2 + 1)
        for ceil in (False, True)
        for cip in (False, True)
    ],
)
def test_torch_avg_pool_parity(k, s, p, ceil, cip):
    # Includes ceil_mode windows hanging beyond the padding: torch's divisor
    # (cells inside input + padding) is the one implemented.
    torch, F = _torch()
    x = np.random.default_rng(k * 100 + s * 10 + p).standard_normal((1, 2, 10, 13))
    x = x.astype(np.float32)
    ref = F.avg_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil, count_include_pad=cip).numpy()
    got = pool2d(
        x, k, s, mode="avg", padding=p, ceil_mode=ceil, count_include_pad=cip, layout="tensor"
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_torch_avg_default_count_include_pad_differs():
    torch, F = _torch()
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    torch_default = F.avg_pool2d(torch.from_numpy(x), 3, 1, 1).numpy()
    assert torch_default[0, 0, 0, 0] == pytest.approx(4 / 9)  # pads counted
    ours = pool2d(x, 3, 1, mode="avg", padding=1, layout="tensor")
    assert ours[0, 0, 0, 0] == 1.0  # ONNX default: pads not counted
    np.testing.assert_allclose(
        pool2d(x, 3, 1, mode="avg", padding=1, count_include_pad=True, layout="tensor"),
        torch_default,
    )


def test_torch_refuses_what_onnx_allows():
    torch, F = _torch()
    x = torch.zeros((1, 1, 6, 6))
    with pytest.raises(RuntimeError):
        F.avg_pool2d(x, 3, 1, 2)  # pad > kernel / 2
    assert pool2d(np.zeros((6, 6)), 3, 1, padding=2, mode="avg").shape == (8, 8)
    with pytest.raises(RuntimeError):
        F.max_pool2d(x, 2, 1, 2, dilation=3)  # pad > kernel / 2, even though span is 4
    assert pool2d(np.zeros((6, 6)), 3, 1, padding=2, dilation=2).shape == (6, 6)


# ------------------------------------------------------------------- properties


@st.composite
def pool_args(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = (
        draw(st.integers(0, kh - 1)),
        draw(st.integers(0, kh - 1)),
        draw(st.integers(0, kw - 1)),
        draw(st.integers(0, kw - 1)),
    )
    h = draw(st.integers(dh * (kh - 1) + 1, 12))
    w = draw(st.integers(dw * (kw - 1) + 1, 12))
    c = draw(st.sampled_from([1, 3, 20]))
    ceil = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (kh, kw), (sh, sw), (dh, dw), pads, (h, w, c), ceil, seed


@settings(max_examples=60, deadline=None)
@given(pool_args())
def test_max_ge_avg_ge_min_and_shape(args):
    k, s, d, pads, shape, ceil, seed = args
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    kw = dict(padding=pads, dilation=d, ceil_mode=ceil)
    mx = pool2d(x, k, s, mode="max", **kw)
    av = pool2d(x, k, s, mode="avg", **kw)
    mn = pool2d(x, k, s, mode="min", **kw)
    oh = output_size(shape[0], k[0], s[0], d[0], pads[0], pads[1], ceil_mode=ceil)
    ow = output_size(shape[1], k[1], s[1], d[1], pads[2], pads[3], ceil_mode=ceil)
    assert mx.shape == av.shape == mn.shape == (oh, ow, shape[2])
    real = ~np.isnan(av)  # windows of dilated taps may miss the input entirely
    assert np.all(mx[real] >= av[real] - 1e-5)
    assert np.all(av[real] >= mn[real] - 1e-5)


@settings(max_examples=40, deadline=None)
@given(pool_args())
def test_image_and_tensor_layouts_agree(args):
    k, s, d, pads, shape, ceil, seed = args
    x = np.random.default_rng(seed).integers(0, 65535, size=shape, dtype=np.uint16)
    for mode in ("max", "min", "avg"):
        img = pool2d(x, k, s, mode=mode, padding=pads, dilation=d, ceil_mode=ceil)
        ten = pool2d(
            np.moveaxis(x, 2, 0)[None],
            k,
            s,
            mode=mode,
            padding=pads,
            dilation=d,
            ceil_mode=ceil,
            layout="tensor",
        )
        np.testing.assert_array_equal(np.moveaxis(ten[0], 0, 2), img)
        if mode != "avg":
            assert img.dtype == np.uint16


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**16))
def test_size1_stride1_is_identity_and_global_avg_is_mean(h, w, c, seed):
    x = np.random.default_rng(seed).integers(0, 255, size=(h, w, c), dtype=np.uint8)
    for mode in ("max", "min"):
        out = pool2d(x, 1, 1, mode=mode)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(pool2d(x, 1, 1, mode="avg"), x.astype(np.float32))
    g = global_pool(x)
    assert g.shape == (1, 1, c) and g.dtype == np.float32
    np.testing.assert_allclose(g[0, 0], x.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_array_equal(global_pool(x, "max")[0, 0], x.max(axis=(0, 1)))
    np.testing.assert_array_equal(global_pool(x, "min")[0, 0], x.min(axis=(0, 1)))


def test_global_pool_layouts_and_onnx():
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 4)).astype(np.float32)
    g = global_pool(x, layout="tensor")
    assert g.shape == (2, 3, 1, 1) and g.dtype == np.float32
    np.testing.assert_allclose(g, x.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    assert global_pool(x[0], "max", layout="tensor").shape == (3, 1, 1)
    assert global_pool(x[0, 0]).shape == (1, 1)
    assert global_pool(x.astype(np.float64), layout="tensor").dtype == np.float64
    # equals a full-size window
    np.testing.assert_allclose(
        pool2d(x, (5, 4), mode="avg", layout="tensor"), g, rtol=1e-6, atol=1e-6
    )


# ------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["max", "min"])
def test_dtype_preserved_with_padding(dtype, mode):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    x = np.full((5, 6, 3), info.max if mode == "min" else info.min, dtype=dtype)
    x[2, 3] = 7
    out = pool2d(x, 3, 2, mode=mode, padding=1, ceil_mode=True)
    assert out.dtype == dtype
    # pads never win: the extreme values of the dtype survive next to them
    assert out[0, 0, 0] == x[0, 0, 0]
    assert out[1, 1, 0] == 7


def test_uint16_avg_does_not_wrap():
    x = np.full((4, 4), 65535, dtype=np.uint16)
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg"), np.full((2, 2), 65535.0))
    assert pool2d(x.astype(np.float64), 2, mode="mean").dtype == np.float64


def test_large_image_strided_channels_last_matches_reshape():
    x = np.random.default_rng(3).integers(0, 255, (301, 403, 3), dtype=np.uint8)
    ref = x[:300, :402].reshape(150, 2, 201, 2, 3).max(axis=(1, 3))
    np.testing.assert_array_equal(pool2d(x, 2), ref)
    ref3 = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2]
    np.testing.assert_array_equal(pool2d(x, 3, 2), ref3.max(axis=(3, 4)))
    np.testing.assert_allclose(
        pool2d(x, 3, 2, mode="average"), ref3.mean(axis=(3, 4), dtype=np.float64), rtol=1e-6
    )


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"size": 0}, "0"),
        ({"size": (2, -1)}, "(2, -1)"),
        ({"size": 2, "stride": 0}, "0"),
        ({"size": 2, "stride": (1, -3)}, "(1, -3)"),
        ({"size": 2, "dilation": 0}, "0"),
        ({"size": 2, "padding": 2}, "2"),
        ({"size": (3, 2), "padding": (1, 2)}, "(1, 2)"),
        ({"size": 3, "padding": (0, 3, 0, 0)}, "(0, 3, 0, 0)"),
        ({"size": 2, "padding": "bogus"}, "'bogus'"),
        ({"size": 2, "padding": -1}, "-1"),
        ({"size": 9}, "9"),
        ({"size": 3, "dilation": 4}, "4"),
        ({"size": 2, "mode": "median"}, "'median'"),
        ({"size": 2, "layout": "nchw"}, "'nchw'"),
    ],
)
def test_bad_input_raises_usage_error(kwargs, needle):
    x = np.zeros((6, 6, 2))
    with pytest.raises(UsageError) as exc:
        pool2d(x, **kwargs)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "shape,layout",
    [
        ((6,), "image"),
        ((2, 6, 6, 3), "image"),
        ((6, 6), "tensor"),
        ((1, 1, 1, 6, 6), "tensor"),
        ((0, 6), "image"),
    ],
)
def test_bad_ndim_raises_usage_error(shape, layout):
    with pytest.raises(UsageError) as exc:
        pool2d(np.zeros(shape), 1, layout=layout)
    assert str(shape) in str(exc.value)
    with pytest.raises(UsageError):
        global_pool(np.zeros(shape), layout=layout)


def test_bad_global_mode_and_dtype():
    with pytest.raises(UsageError, match="'sum'"):
        global_pool(np.zeros((2, 2)), "sum")
    with pytest.raises(UsageError, match="complex"):
        pool2d(np.zeros((2, 2), dtype=complex), 1)
    assert issubclass(UsageError, ValueError)


def test_ceil_mode_keeps_one_window_on_inputs_shorter_than_it() -> None:
    """ONNX and PyTorch: ceil((1 - 2) / 2) + 1 = 1 output for a 1-row input and a 2x2 window."""
    x = np.arange(6, dtype=np.float32).reshape(1, 6)
    np.testing.assert_array_equal(pool2d(x, 2, ceil_mode=True), [[1, 3, 5]])
    np.testing.assert_array_equal(pool2d(x, 2, ceil_mode=True, mode="avg"), [[0.5, 2.5, 4.5]])
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.max_pool2d(torch.from_numpy(x)[None, None], 2, ceil_mode=True)
    np.testing.assert_array_equal(pool2d(x, 2, ceil_mode=True), t[0, 0].numpy())


# --------------------------------------------------------------------------- bands


@settings(max_examples=150, deadline=None)
@given(
    hw=st.tuples(st.integers(1, 23), st.integers(1, 9)),
    channels=st.sampled_from([None, 1, 3]),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 3))),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 2)),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    mode=st.sampled_from(["max", "avg", "min"]),
    ceil_mode=st.booleans(),
    include=st.booleans(),
    band_rows=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_pool_bands_equal_the_whole_image(
    hw, channels, size, stride, dilation, pad, mode, ceil_mode, include, band_rows, seed
):
    from imgkernel.core.poolbands import iter_pool_bands

    shape = hw if channels is None else (*hw, channels)
    x = np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)
    limits = (size[0], size[0], size[1], size[1])
    pad = tuple(min(p, k - 1) for p, k in zip(pad, limits, strict=True))
    options = dict(
        padding=pad, dilation=dilation, ceil_mode=ceil_mode, mode=mode, count_include_pad=include
    )
    try:
        whole = pool2d(x, size, stride, **options)
    except UsageError:
        return  # the window does not fit this image
    bands = list(iter_pool_bands(x, size, stride, band_rows=band_rows, **options))
    assert [b.start for b, _ in bands] == list(range(0, whole.shape[0], band_rows))
    np.testing.assert_array_equal(np.concatenate([r for _, r in bands]), whole)
