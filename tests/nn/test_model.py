"""Tests of imgkernel.nn: layers, the model, the .npz format, validation, classification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgkernel.errors import UsageError
from imgkernel.nn import (
    Model,
    classify,
    conv_filters,
    feature_grid,
    feature_maps,
    list_bundled_models,
    load_model,
    prepare_images,
    save_model,
)
from imgkernel.nn.demo import stripes_model
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


# ---------------------------------------------------------------- layers vs torch


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


# ---------------------------------------------------------------- model


def lenet(labels: list[str] | None = None) -> Model:
    layers = [
        Conv2D("conv1", rand(6, 1, 5, 5), rand(6), padding=2),
        ReLU("relu1"),
        MaxPool("pool1", size=2),
        Conv2D("conv2", rand(16, 6, 5, 5), rand(16)),
        ReLU("relu2"),
        AvgPool("pool2", size=2, stride=2),
        Flatten("flatten"),
        Dense("fc1", rand(120, 400) * 0.1, rand(120)),
        ReLU("relu3"),
        Dropout("drop"),
        Dense("fc2", rand(10, 120) * 0.1, rand(10)),
        Softmax("softmax"),
    ]
    return Model.from_layers(layers, labels or [str(i) for i in range(10)], spec(1, 28, 28))


def test_seed_summary_example():
    m = Model.from_layers(
        [Conv2D("conv1", rand(64, 3, 3, 3), rand(64), stride=1)],
        input_spec=InputSpec(channels=3, height=256, width=256),
    )
    s = m.summary()
    assert s.rows[0].output_shape == (None, 64, 254, 254)
    assert s.rows[0].params == 1792 and s.total_params == 1792
    text = str(s)
    assert "64 x 254 x 254" in text and "1,792" in text


def test_lenet_summary_and_forward_until():
    m = lenet()
    s = m.summary()
    assert [r.output_shape for r in s.rows][:7] == [
        (None, 6, 28, 28),
        (None, 6, 28, 28),
        (None, 6, 14, 14),
        (None, 16, 10, 10),
        (None, 16, 10, 10),
        (None, 16, 5, 5),
        (None, 400),
    ]
    assert s.total_params == 156 + 2416 + 48120 + 1210
    x = rand(3, 1, 28, 28)
    full = m(x)
    assert full.shape == (3, 10)
    np.testing.assert_allclose(full.sum(axis=1), 1, rtol=1e-5)
    until = m.forward(x, until="pool1")
    assert until.shape == (3, 6, 14, 14)
    np.testing.assert_array_equal(m.forward(x, until=2), until)
    np.testing.assert_array_equal(m.forward(x, until=-1), full)
    with pytest.raises(UsageError, match="no layer named"):
        m.forward(x, until="nope")
    with pytest.raises(UsageError, match="input must be"):
        m(rand(3, 1, 27, 28))


def test_save_load_round_trip(tmp_path: Path):
    layers = [
        Conv2D("c1", rand(4, 3, 3, 3), rand(4), stride=(1, 2), padding=(0, 1, 2, 1), dilation=1),
        BatchNorm("bn", rand(4), rand(4), rand(4), np.abs(rand(4)) + 0.5, epsilon=1e-3),
        LeakyReLU("lr", alpha=0.1),
        Conv2D("c2", rand(4, 2, 3, 3), None, padding="same", groups=2),
        Clip("clip", min=-1.0, max=1.0),
        MinPool("minp", size=2, stride=1, padding=1, ceil_mode=True),
        Sigmoid("sig"),
        AvgPool("avg", size=3, stride=2, padding=1, count_include_pad=True),
        Tanh("tanh"),
        GlobalMaxPool("gmax"),
        Reshape("reshape", shape=[0, -1]),
        Dense("fc", rand(5, 4), rand(5)),
        Softmax("sm", axis=1),
    ]
    m = Model.from_layers(
        layers, list("abcde"), InputSpec(3, 16, 12, mean=[0.5] * 3, std=[0.2] * 3)
    )
    path = tmp_path / "m.npz"
    save_model(m, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left
    m2 = load_model(str(path))
    assert m2.to_json() == m.to_json()
    x = rand(2, 3, 16, 12)
    np.testing.assert_array_equal(m2(x), m(x))
    # the header is a plain string, readable without pickle
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__model__"]))
    assert header["format"] == "imgkernel-model" and header["version"] == 1


# ---------------------------------------------------------------- validation


def write_npz(path: Path, header: dict | None, **arrays) -> Path:
    entries = dict(arrays)
    if header is not None:
        entries["__model__"] = np.array(json.dumps(header))
    np.savez(path, **entries)
    return path


def header(layers: list[dict], **extra) -> dict:
    h = {
        "format": "imgkernel-model",
        "version": 1,
        "input": {"channels": 1, "height": 8, "width": 8},
        "labels": [],
        "layers": layers,
    }
    h.update(extra)
    return h


CONV = {"type": "conv2d", "name": "c1", "weight": "c1.weight", "bias": "c1.bias"}
DENSE = {"type": "dense", "name": "fc", "weight": "fc.weight"}


def test_valid_handwritten_file_loads(tmp_path: Path):
    p = write_npz(
        tmp_path / "ok.npz",
        header([CONV, {"type": "flatten", "name": "f"}, DENSE], labels=["x", "y"]),
        **{"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "fc.weight": rand(2, 72)},
    )
    m = load_model(p)
    assert m.output_shape == (None, 2) and m.labels == ["x", "y"]
    # a uint8-bytes header is accepted too
    no_bias = {"type": "conv2d", "name": "c1", "weight": "c1.weight"}
    raw = np.frombuffer(json.dumps(header([no_bias])).encode(), np.uint8)
    np.savez(tmp_path / "bytes.npz", __model__=raw, **{"c1.weight": rand(2, 1, 3, 3)})
    assert load_model(tmp_path / "bytes.npz").layers[0].bias is None


@pytest.mark.parametrize(
    "layers,arrays,match",
    [
        (
            [CONV],
            {"c1.weight": rand(2, 1, 3, 3)},
            r"layer 0 \('c1', conv2d\): missing array 'c1.bias'",
        ),
        (
            [CONV, {"type": "flatten", "name": "f"}, DENSE],
            {"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "fc.weight": rand(2, 70)},
            r"layer 2 \('fc', dense\): weight expects 70 input features, got 72",
        ),
        (
            [CONV, {"type": "conv2d", "name": "c2", "weight": "w2"}],
            {"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "w2": rand(2, 3, 3, 3)},
            r"layer 1 \('c2', conv2d\): weight expects 3 input channels",
        ),
        ([{"type": "swish", "name": "act"}], {}, r"layer 0 \('act'\): unknown layer type 'swish'"),
        (
            [{"type": "leaky_relu", "name": "lr", "alpha": "big"}],
            {},
            r"layer 0 \('lr', leaky_relu\): alpha must be a number",
        ),
        (
            [{"type": "relu", "name": "r", "inplace": True}],
            {},
            r"layer 0 \('r', relu\): unknown attribute",
        ),
        (
            [{"type": "maxpool", "name": "p", "size": 9}],
            {},
            r"layer 0 \('p', maxpool\): the 9x9 pooling window .* padded input is only 8x8",
        ),
        (
            [{"type": "conv2d", "name": "c", "weight": "w", "stride": 0}],
            {"w": rand(1, 1, 3, 3)},
            r"layer 0 \('c', conv2d\): stride must be at least 1",
        ),
    ],
)
def test_validation_errors(tmp_path: Path, layers, arrays, match):
    p = write_npz(tmp_path / "bad.npz", header(layers), **arrays)
    with pytest.raises(UsageError, match=match):
        load_model(p)


def test_pickled_npz_is_rejected(tmp_path: Path):
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": True}
    p = write_npz(tmp_path / "p.npz", header([CONV]), **{"c1.weight": obj, "c1.bias": rand(2)})
    with pytest.raises(UsageError, match="pickle"):
        load_model(p)
    p2 = tmp_path / "p2.npz"
    np.savez(p2, __model__=np.array([json.dumps(header([]))], dtype=object))
    with pytest.raises(UsageError, match="pickled"):
        load_model(p2)


def test_not_a_model(tmp_path: Path):
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(UsageError, match="not an npz"):
        load_model(tmp_path / "t.npz")
    with pytest.raises(UsageError, match=r"no __model__"):
        load_model(write_npz(tmp_path / "n.npz", None, a=rand(2)))
    with pytest.raises(UsageError, match="not an imgkernel model"):
        load_model(write_npz(tmp_path / "f.npz", header([], format="keras")))
    with pytest.raises(UsageError, match="version 2"):
        load_model(write_npz(tmp_path / "v.npz", header([], version=2)))
    with pytest.raises(UsageError, match="no model file or bundled model"):
        load_model(tmp_path / "missing.npz")
    np.save(tmp_path / "single.npy", rand(3))
    with pytest.raises(UsageError, match="not an npz"):
        load_model(tmp_path / "single.npy")


def test_labels_must_match_output(tmp_path: Path):
    with pytest.raises(UsageError, match="3 labels"):
        Model.from_layers([Flatten("f"), Dense("d", rand(2, 64))], ["a", "b", "c"], spec(1))


def test_make_layer_and_bad_names():
    assert isinstance(make_layer("relu", "r"), ReLU)
    with pytest.raises(UsageError, match="unknown layer type"):
        make_layer("gelu", "g")
    with pytest.raises(UsageError, match="duplicate"):
        Model.from_layers([ReLU("a"), ReLU("a")], input_spec=spec())


# ---------------------------------------------------------------- images, classification


def stripes(vertical: bool, size: int = 40, period: int = 6, rgb: bool = False) -> np.ndarray:
    row = ((np.arange(size) // (period // 2)) % 2 * 255).astype(np.uint8)
    img = np.tile(row, (size, 1))
    if not vertical:
        img = img.T.copy()
    return np.stack([img] * 3, axis=2) if rgb else img


def stripe_pngs(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for i, (vert, rgb, size, period) in enumerate(
        [(True, False, 40, 6), (False, False, 32, 4), (True, True, 64, 10), (False, True, 50, 8)]
    ):
        p = tmp_path / f"stripes-{i}.png"
        Image.fromarray(stripes(vert, size, period, rgb)).save(p)
        out["vertical" if vert else "horizontal", i] = p  # type: ignore[index]
    return out


def read_png(path: Path) -> np.ndarray:
    try:
        from imgkernel.images.io import read_image

        return read_image(str(path)).pixels
    except ImportError:
        return np.asarray(Image.open(path))


def test_stripes_model_classifies_pngs(tmp_path: Path):
    m = stripes_model()
    files = stripe_pngs(tmp_path)
    images = [read_png(p) for p in files.values()]
    results = classify(m, images, top=2)
    for (label, _), res in zip(files, results, strict=True):
        assert res[0][0] == label and res[0][1] > 0.9
        assert res[1][0] != label
        assert abs(res[0][1] + res[1][1] - 1) < 1e-5
    # batched == one by one
    for img, res in zip(images, results, strict=True):
        single = classify(m, [img], top=2)[0]
        assert [lab for lab, _ in single] == [lab for lab, _ in res]
        np.testing.assert_allclose([p for _, p in single], [p for _, p in res], rtol=1e-5)
    # and batch_size does not matter
    small = classify(m, images, top=2, batch_size=1)
    assert [[lab for lab, _ in r] for r in small] == [[lab for lab, _ in r] for r in results]
    np.testing.assert_allclose(
        [[p for _, p in r] for r in small], [[p for _, p in r] for r in results], rtol=1e-5
    )


def test_sample_stripe_cards_if_present():
    cards = sorted(Path(__file__).parents[2].glob("sample_images/cards/stripes-*.png"))
    if not cards:
        pytest.skip("sample_images/cards/stripes-*.png not present")
    m = stripes_model()
    for card in cards:
        if "vert" in card.name or "horiz" in card.name:
            want = "vertical" if "vert" in card.name else "horizontal"
            assert classify(m, [read_png(card)], top=1)[0][0][0] == want


def test_bundled_stripes_model_matches_builder():
    assert "stripes" in list_bundled_models()
    m = load_model("stripes")
    ref = stripes_model()
    assert m.to_json() == ref.to_json()
    x = prepare_images(m, [stripes(True, 32)])
    np.testing.assert_array_equal(m(x), ref(x))


def test_prepare_images_spec():
    s = InputSpec(
        channels=3,
        height=4,
        width=6,
        resize="stretch",
        scale=1 / 255,
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.5, 1.0],
    )
    img = np.full((8, 12, 3), 255, np.uint8)
    x = prepare_images(s, [img, img[:, :, 0], np.ones((8, 12, 4), np.float32)])
    assert x.shape == (3, 3, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], 2.0, rtol=1e-5)
    np.testing.assert_allclose(x[:, 1], 1.0, rtol=1e-5)
    np.testing.assert_allclose(x[:, 2], 0.5, rtol=1e-5)
    g = InputSpec(channels=1, height=2, width=2, resize="none")
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(prepare_images(g, [rgb])[0, 0], 0.299, rtol=1e-4)
    with pytest.raises(UsageError, match="resize is 'none'"):
        prepare_images(g, [np.zeros((3, 3), np.uint8)])
    # fit keeps the aspect ratio and pads; crop fills the frame
    wide = np.full((10, 20), 255, np.uint8)
    fit = prepare_images(InputSpec(channels=1, height=10, width=10, resize="fit"), [wide])[0, 0]
    assert fit[0].max() == 0 and fit[5].min() == pytest.approx(1.0)
    crop = prepare_images(InputSpec(channels=1, height=10, width=10, resize="crop"), [wide])[0, 0]
    np.testing.assert_allclose(crop, 1.0, rtol=1e-5)
    # uint16 maps to the same 0..255 scale
    np.testing.assert_allclose(
        prepare_images(g, [np.full((2, 2), 65535, np.uint16)]), 1.0, rtol=1e-5
    )


def test_feature_grid_and_filters():
    m = stripes_model()
    maps = feature_maps(m, stripes(True, 32), "relu")
    assert maps.shape == (2, 30, 30)
    grid = feature_grid(maps)
    assert grid.dtype == np.uint8 and grid.ndim == 2
    # the vertical-edge map lights up, the horizontal one is black
    assert maps[0].max() > 0 and maps[1].max() == 0
    w = conv_filters(m)
    assert w.shape == (2, 1, 3, 3)
    g2 = feature_grid(w, labels=False)
    assert g2.ndim == 2
    rgb = feature_grid(rand(8, 3, 5, 5), cell=20)
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    with pytest.raises(UsageError):
        conv_filters(m, "relu")


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


# ---------------------------------------------------------------- review fixes


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"format":"imgkernel-model","version":1' + "0" * 5000 + "}", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "not valid JSON"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_crafted_header_is_a_usage_error_naming_the_file(tmp_path: Path, text, match):
    p = tmp_path / "crafted.npz"
    np.savez(p, __model__=np.array(text))
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")
    assert "\n" not in str(info.value)


def test_bad_header_encodings_name_the_file(tmp_path: Path):
    p = tmp_path / "bytes.npz"
    np.savez(p, __model__=np.frombuffer(b"\xff\xfe{}", np.uint8))
    with pytest.raises(UsageError, match="not valid UTF-8") as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")
    p2 = tmp_path / "floats.npz"
    np.savez(p2, __model__=rand(3))
    with pytest.raises(UsageError, match="must be a unicode string") as info:
        load_model(p2)
    assert str(info.value).startswith(f"{p2}: ")


def test_save_model_permissions_follow_umask_and_existing_file(tmp_path: Path):
    import os
    import stat

    m = stripes_model()
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.npz"
        save_model(m, new)
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        existing = tmp_path / "existing.npz"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        save_model(m, existing)
        assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert load_model(existing).to_json() == m.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.npz", "new.npz"]


def test_save_model_missing_directory_is_a_usage_error_naming_the_target(tmp_path: Path):
    target = tmp_path / "nodir" / "m.npz"
    with pytest.raises(UsageError, match="does not exist") as info:
        save_model(stripes_model(), target)
    assert str(info.value).startswith(f"{target}: ")
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize(
    "inp,match",
    [
        ({"channels": 1, "height": 10**9, "width": 10**9}, r"input height must be at most 16384"),
        ({"channels": 3, "height": 8, "width": 16385}, r"input width must be at most 16384"),
        ({"channels": 2, "height": 8, "width": 8}, r"input channels must be 1 or 3"),
        ({"channels": 1, "height": 0, "width": 8}, r"input height must be at least 1"),
    ],
)
def test_absurd_input_spec_is_rejected_on_load(tmp_path: Path, inp, match):
    p = write_npz(tmp_path / "huge.npz", header([{"type": "relu", "name": "r"}], input=inp))
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")


def test_largest_input_spec_is_accepted():
    s = InputSpec(channels=1, height=16384, width=16384)
    assert s.shape == (1, 16384, 16384)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"hello world", r"not an npz model file \(not a zip archive\)"),
        (b"", r"not an npz model file \(the file is empty\)"),
        (b"PK\x03\x04garbage", r"not an npz model file"),
    ],
)
def test_non_zip_file_is_not_called_a_pickle(tmp_path: Path, content, match):
    p = tmp_path / "short.npz"
    p.write_bytes(content)
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert "pickle" not in str(info.value)
    assert str(info.value).startswith(f"{p}: ")


def test_real_pickle_file_is_reported_as_a_pickle(tmp_path: Path):
    import pickle

    p = tmp_path / "model.npz"
    p.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(UsageError, match=r"not an npz model file \(a Python pickle") as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")


def test_forward_on_an_empty_batch_has_the_inferred_shape():
    m = stripes_model()
    x = np.zeros((0, 1, 32, 32), np.float32)
    out = m(x)
    assert out.shape == (0, 2) and out.dtype == np.float32
    assert m.forward(x, until="pool").shape == (0, 2, 1, 1)
    assert m.forward(x, until=0).shape == (0, 2, 30, 30)
    assert classify(m, []) == []
    # a None that is not the batch axis alone (flatten over axis 0) becomes 0 too
    f = Model.from_layers([Flatten("f", axis=0)], input_spec=spec(1, 4, 4))
    assert f(np.zeros((0, 1, 4, 4), np.float32)).shape == (1, 0)
    assert f(np.zeros((2, 1, 4, 4), np.float32)).shape == (1, 32)
    with pytest.raises(UsageError, match="model input must be"):
        m(np.zeros((0, 3, 32, 32), np.float32))
