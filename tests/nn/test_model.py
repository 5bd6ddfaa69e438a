"""The model: summary, forward, classification of images, input preparation, feature maps."""

from __future__ import annotations

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
)
from imgkernel.nn.demo import stripes_model
from imgkernel.nn.layers import (
    AvgPool,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    ReLU,
    Softmax,
)
from imgkernel.nn.spec import InputSpec

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def spec(c: int = 3, h: int = 8, w: int = 8) -> InputSpec:
    return InputSpec(channels=c, height=h, width=w)


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


def test_labels_must_match_output(tmp_path: Path):
    with pytest.raises(UsageError, match="3 labels"):
        Model.from_layers([Flatten("f"), Dense("d", rand(2, 64))], ["a", "b", "c"], spec(1))


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
        from imgkernel.images import read_image

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


def test_largest_input_spec_is_accepted():
    s = InputSpec(channels=1, height=16384, width=16384)
    assert s.shape == (1, 16384, 16384)


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


def test_bundled_stripes_model_matches_builder():
    assert "stripes" in list_bundled_models()
    m = load_model("stripes")
    ref = stripes_model()
    assert m.to_json() == ref.to_json()
    x = prepare_images(m, [stripes(True, 32)])
    np.testing.assert_array_equal(m(x), ref(x))
