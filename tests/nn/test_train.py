"""Training: optimizers, the loop, architectures, image folders, the bundled digits model."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from PIL import Image
from reference import assert_close

from imgkernel.errors import UsageError
from imgkernel.nn import Model, classify, load_model, save_model
from imgkernel.nn.train import fit, train_folder
from imgkernel.nn.train.arch import build_network, load_arch
from imgkernel.nn.train.loop import evaluate
from imgkernel.nn.train.network import Network
from imgkernel.nn.train.optim import SGD, Adam


def test_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(5)]
    for ours, theirs in (
        (
            SGD(0.1, momentum=0.9, weight_decay=0.01),
            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        ),
        (
            Adam(0.01, weight_decay=0.01),
            lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01),
        ),
    ):
        params = {"p": p0.copy()}
        tp = torch.tensor(p0.copy(), requires_grad=True)
        opt = theirs([tp])
        for g in grads:
            ours.step(params, {"p": g.copy()})
            tp.grad = torch.tensor(g)
            opt.step()
        assert_close(params["p"], tp.detach().numpy(), rtol=1e-10)


def _blobs(n=96, seed=0):
    """Two classes: bright top half vs bright bottom half, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    x[y == 0, :, :3] += 1
    x[y == 1, :, 3:] += 1
    return x, y


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_loss_goes_down(optimizer):
    x, y = _blobs()
    net = build_network("tiny", (1, 6, 6), 2, seed=0)
    hist = fit(net, x, y, epochs=8, batch_size=16, optimizer=optimizer, seed=0)
    assert hist[-1].loss < 0.5 * hist[0].loss
    assert hist[-1].accuracy > 0.95


def test_seeded_runs_are_identical_and_seeds_differ():
    x, y = _blobs()

    def run(seed):
        net = build_network("default", (1, 6, 6), 2, seed=seed)
        fit(net, x, y, epochs=2, batch_size=8, seed=seed, augment=1)
        return net.params

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_callbacks_are_called():
    x, y = _blobs(40)
    net = build_network("mlp", (1, 6, 6), 2, seed=0)
    seen_batches, seen_epochs = [], []
    fit(
        net,
        x,
        y,
        epochs=2,
        batch_size=16,
        on_batch=lambda e, b, n, loss: seen_batches.append((e, b, n)),
        on_epoch=lambda e, s: seen_epochs.append((e, s.epochs)),
        x_val=x,
        y_val=y,
    )
    assert seen_batches == [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3)]
    assert seen_epochs == [(1, 2), (2, 2)]


def test_ema_is_the_bias_corrected_average_of_the_trajectory():
    x, y = _blobs(40)
    decay = 0.9

    def make():
        net = build_network("mlp", (1, 6, 6), 2, seed=0)
        return Network(net.layers, net.input_shape, params=net.params, dtype=np.float64)

    net = make()
    trajectory = []
    hist = fit(
        net,
        x,
        y,
        epochs=3,
        batch_size=16,
        optimizer="sgd",
        lr=0.05,
        seed=0,
        augment=1,
        ema=decay,
        x_val=x,
        y_val=y,
        on_batch=lambda *a: trajectory.append({k: v.copy() for k, v in net.params.items()}),
    )
    t = len(trajectory)
    assert t == 9
    for key in net.params:
        num = sum((1 - decay) * decay ** (t - i) * w[key] for i, w in enumerate(trajectory, 1))
        assert_close(net.params[key], num / (1 - decay**t), rtol=1e-12, atol=1e-14)
    # the last validation figures are those of the averaged weights
    assert hist[-1].val_loss == pytest.approx(evaluate(net, x, y)[0], rel=1e-12)
    # averaging does not change the training itself
    plain = make()
    fit(plain, x, y, epochs=3, batch_size=16, optimizer="sgd", lr=0.05, seed=0, augment=1)
    assert all(np.array_equal(plain.params[k], trajectory[-1][k]) for k in plain.params)
    # a single step: the average is that step's weights
    one = make()
    seen = []
    fit(
        one,
        x[:8],
        y[:8],
        epochs=1,
        batch_size=8,
        lr=0.01,
        ema=0.999,
        seed=0,
        on_batch=lambda *a: seen.append({k: v.copy() for k, v in one.params.items()}),
    )
    assert all(np.allclose(one.params[k], seen[0][k], rtol=1e-12) for k in seen[0])
    for bad in (-0.5, 1.0):
        with pytest.raises(UsageError, match="ema"):
            fit(make(), x, y, epochs=1, ema=bad)
    with pytest.raises(UsageError, match="label smoothing"):
        fit(make(), x, y, epochs=1, label_smoothing=1.5)


def test_arch_toml(tmp_path):
    path = tmp_path / "arch.toml"
    path.write_text(
        'description = "test"\n'
        '[[layer]]\ntype = "conv2d"\nfilters = 4\nsize = [3, 3]\npadding = "same"\n'
        '[[layer]]\ntype = "leaky_relu"\nalpha = 0.2\n'
        '[[layer]]\ntype = "avgpool"\nsize = 2\n'
        '[[layer]]\ntype = "flatten"\n'
        '[[layer]]\ntype = "dropout"\nrate = 0.1\n'
        '[[layer]]\ntype = "dense"\n'
    )
    specs, desc = load_arch(path)
    assert desc == "test" and len(specs) == 6
    net = build_network(str(path), (3, 8, 8), 5)
    types = [layer.type for layer in net.layers]
    assert types == ["conv2d", "leaky_relu", "avgpool", "flatten", "dropout", "dense", "softmax"]
    assert net.params["dense1.weight"].shape == (5, 64)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[[layer]]\ntype = "conv2d"\nfilters = 4\nsize = 5\n'
            '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dense"\n',
            "does not fit",
        ),
        ('[[layer]]\ntype = "batchnorm"\n', "cannot train"),
        ('[[layer]]\ntype = "conv2d"\nfilters = 4\nkernel = 3\n', "unknown key"),
        ('[[layer]]\ntype = "conv2d"\nfilters = 4\n', "must be N x 3"),
        ("not toml [", "not valid TOML"),
        ("x = 1\n", "unknown top-level"),
    ],
)
def test_bad_arch_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "arch.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        build_network(str(path), (1, 4, 4), 3)


def test_default_arch_scales_and_rejects_tiny_inputs():
    small = build_network("default", (1, 8, 8), 10)
    big = build_network("default", (3, 64, 64), 10)
    assert len(big.layers) > len(small.layers)
    with pytest.raises(UsageError, match="too small"):
        build_network("default", (1, 3, 3), 2)
    with pytest.raises(UsageError, match="unknown architecture"):
        build_network("resnet", (1, 8, 8), 2)


def _write_folder(root, n_per_class=12, size=6, seed=0):
    rng = np.random.default_rng(seed)
    for label, rows in (("bottom", slice(size // 2, None)), ("top", slice(0, size // 2))):
        d = root / label
        d.mkdir(parents=True)
        for i in range(n_per_class):
            img = rng.integers(0, 60, (size, size)).astype(np.uint8)
            img[rows] += 150
            Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_train_folder_round_trip(tmp_path):
    data = _write_folder(tmp_path / "data")
    (data / "top" / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(data / "top" / "odd-size.png")
    warnings, epochs, starts = [], [], []
    out = tmp_path / "m.npz"
    result = train_folder(
        data,
        out,
        arch="tiny",
        epochs=6,
        batch_size=8,
        lr=0.01,
        val_split=0.25,
        seed=1,
        on_warning=warnings.append,
        on_epoch=lambda e, s: epochs.append(s),
        on_start=starts.append,
    )
    assert any("notes.txt" in w for w in warnings)
    assert len(epochs) == 6 and epochs[-1].val_accuracy is not None
    assert starts[0]["labels"] == ["bottom", "top"] and starts[0]["input"] == (1, 6, 6)
    assert result.val_count == 6 and result.train_count == 19
    model = load_model(str(out))
    assert model.labels == ["bottom", "top"]
    spec = model.input_spec
    assert (spec.channels, spec.height, spec.width) == (1, 6, 6)
    assert spec.scale == pytest.approx(1 / 255)
    assert result.val_accuracy == 1.0
    top = np.full((6, 6), 20, np.uint8)
    top[:3] = 220
    assert classify(model, [top, top[::-1]], top=1)[0][0][0] == "top"
    assert classify(model, [top, top[::-1]], top=1)[1][0][0] == "bottom"
    # the same seed writes the same model
    again = train_folder(
        data, None, arch="tiny", epochs=6, batch_size=8, lr=0.01, val_split=0.25, seed=1
    )
    for a, b in zip(model.layers, again.model.layers, strict=True):
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k])


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "no such data folder"),
        ("empty", "no label sub-folders"),
        ("single", "only one label"),
        ("noimages", "no images"),
    ],
)
def test_bad_data_folders(tmp_path, setup, message):
    root = tmp_path / "d"
    if setup != "missing":
        root.mkdir()
    if setup == "single":
        (root / "a").mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "a" / "x.png")
    if setup == "noimages":
        (root / "a").mkdir()
        (root / "b").mkdir()
        (root / "a" / "x.txt").write_text("hello")
    out = tmp_path / "m.npz"
    with pytest.raises(UsageError, match=message):
        train_folder(root, out, epochs=1)
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_train_folder_ema_and_label_smoothing(tmp_path):
    data = _write_folder(tmp_path / "data")
    kw = dict(arch="tiny", epochs=4, batch_size=8, lr=0.01, val_split=0.25, seed=2)
    plain = train_folder(data, None, **kw)
    out = tmp_path / "ema.npz"
    smooth = train_folder(data, out, ema=0.9, label_smoothing=0.1, **kw)
    assert smooth.val_accuracy == 1.0 and smooth.train_accuracy == 1.0
    saved = load_model(str(out))
    differs = False
    for a, b, c in zip(plain.model.layers, smooth.model.layers, saved.layers, strict=True):
        for k in a.arrays:
            differs |= not np.array_equal(a.arrays[k], b.arrays[k])
            assert np.array_equal(b.arrays[k], c.arrays[k])
    assert differs
    again = train_folder(data, None, ema=0.9, label_smoothing=0.1, **kw)
    for a, b in zip(smooth.model.layers, again.model.layers, strict=True):
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k])
    with pytest.raises(UsageError, match="ema"):
        train_folder(data, tmp_path / "x.npz", ema=1.0)
    with pytest.raises(UsageError, match="label smoothing"):
        train_folder(data, tmp_path / "x.npz", label_smoothing=-0.1)
    assert not (tmp_path / "x.npz").exists()


def test_impossible_sizes_and_options(tmp_path):
    data = _write_folder(tmp_path / "data", n_per_class=3, size=4)
    out = tmp_path / "m.npz"
    arch = tmp_path / "big.toml"
    arch.write_text(
        '[[layer]]\ntype = "conv2d"\nfilters = 2\nsize = 7\n'
        '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dense"\n'
    )
    with pytest.raises(UsageError, match="does not fit"):
        train_folder(data, out, arch=str(arch), epochs=1)
    with pytest.raises(UsageError, match="too small"):
        train_folder(data, out, input_size="3x3", epochs=1)
    with pytest.raises(UsageError, match="optimizer"):
        train_folder(data, out, optimizer="rmsprop")
    with pytest.raises(UsageError, match="input size"):
        train_folder(data, out, input_size="axb")
    with pytest.raises(UsageError, match="does not exist"):
        train_folder(data, tmp_path / "nope" / "m.npz")
    assert not out.exists()


def test_rgb_and_mixed_sizes(tmp_path):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label, ch in (("red", 0), ("blue", 2)):
        (data / label).mkdir(parents=True)
        for i in range(6):
            size = (8, 8) if i else (12, 10)
            img = rng.integers(0, 50, (*size, 3)).astype(np.uint8)
            img[:, :, ch] += 200
            Image.fromarray(img).save(data / label / f"{i}.png")
    result = train_folder(data, None, arch="tiny", epochs=3, val_split=0)
    spec = result.model.input_spec
    assert (spec.channels, spec.height, spec.width) == (3, 8, 8)
    gray = train_folder(
        data, None, arch="tiny", epochs=1, val_split=0, color="gray", input_size="5x7"
    )
    assert gray.model.input_spec.shape == (1, 5, 7)


def test_digits_subset_trains_well_above_chance(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    d = load_digits()
    pix = np.rint(d.images * 255 / 16).astype(np.uint8)
    root = tmp_path / "digits"
    for i in range(400):
        folder = root / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pix[i]).save(folder / f"{i}.png")
    result = train_folder(root, tmp_path / "d.npz", epochs=8, val_split=0.2, seed=0)
    assert result.val_accuracy > 0.7
    model = load_model(str(tmp_path / "d.npz"))
    test = list(pix[1500:1600])
    predicted = [r[0][0] for r in classify(model, test, top=1)]
    assert np.mean(np.array(predicted) == d.target[1500:1600].astype(str)) > 0.7


def test_bundled_digits_model_classifies_samples():
    model = load_model("digits")
    assert model.labels == [str(i) for i in range(10)]
    root = os.path.join(os.path.dirname(__file__), "..", "..", "sample_images", "digits")
    files = sorted(f for f in os.listdir(root) if f.endswith(".png"))
    assert len(files) == 10
    from imgkernel.images import read_image

    images = [read_image(os.path.join(root, f)) for f in files]
    predicted = [r[0][0] for r in classify(model, images, top=1)]
    truth = [f.split("-")[1] for f in files]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 9


def test_network_round_trips_through_model(tmp_path):
    net = build_network("default", (1, 8, 8), 3, seed=0)
    model = net.to_model(["a", "b", "c"])
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(str(tmp_path / "m.npz"))
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    ours = net.forward(x, logits=False)[0]
    assert_close(loaded.forward(x), ours, rtol=1e-5, atol=1e-6)
    assert isinstance(loaded, Model)


# --- learning-rate schedules, early stopping, the defaults of train_folder ---------------


def test_schedules():
    from imgkernel.nn.train.schedule import scheduled_lr

    total = 40
    cosine = [scheduled_lr(0.1, "cosine", s, total) for s in range(total)]
    # the arithmetic of the original cosine schedule, bit for bit
    assert cosine == [0.1 * 0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total)]
    assert [scheduled_lr(0.1, "constant", s, total) for s in range(total)] == [0.1] * total
    warm = [scheduled_lr(0.1, "cosine", s, total, warmup_steps=4) for s in range(total)]
    assert warm[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert warm[4] == 0.1 and all(a >= b for a, b in zip(warm[4:], warm[5:], strict=False))
    warm = [scheduled_lr(0.1, "constant", s, total, warmup_steps=2) for s in range(total)]
    assert warm[:3] == pytest.approx([0.05, 0.1, 0.1]) and warm[-1] == 0.1
    one = [scheduled_lr(0.1, "onecycle", s, total) for s in range(total)]
    peak = int(np.argmax(one))
    assert peak == 12 and one[peak] == pytest.approx(0.1)
    assert one[0] == pytest.approx(0.1 / 25) and one[-1] < 0.001
    assert all(a < b for a, b in zip(one[:peak], one[1 : peak + 1], strict=True))
    assert all(a >= b for a, b in zip(one[peak:], one[peak + 1 :], strict=False))


def _snapshots(net, seen):
    return lambda epoch, stats: seen.append({k: v.copy() for k, v in net.params.items()})


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_early_stopping_restores_the_best_epoch(ema):
    x, y = _blobs(64)
    xv, yv = _blobs(32, seed=1)
    yv = 1 - yv  # the validation labels are wrong: the validation loss soon grows
    net = build_network("mlp", (1, 6, 6), 2, seed=0)
    seen, weights = [], []
    averaged = []

    def on_epoch(epoch, stats):
        seen.append(stats)
        weights.append({k: v.copy() for k, v in net.params.items()})

    kw = dict(epochs=40, batch_size=16, lr=0.01, seed=0, x_val=xv, y_val=yv, ema=ema)
    hist = fit(net, x, y, patience=3, on_epoch=on_epoch, **kw)
    best = hist.best_epoch
    losses = [s.val_loss for s in hist]
    assert best == 1 + int(np.argmin(losses)) and hist[-1].best_epoch == best
    assert hist.stopped_early and len(hist) == best + 3 < 40
    assert hist.restored
    assert all(s.best_epoch == 1 + int(np.argmin(losses[: s.epoch])) for s in seen)
    assert hist[-1].best_val_loss == losses[best - 1]
    assert hist[-1].best_val_accuracy == hist[best - 1].val_accuracy
    # the weights kept are those validated at the best epoch
    assert evaluate(net, xv, yv)[0] == pytest.approx(losses[best - 1], rel=1e-6)
    if not ema:
        assert all(np.array_equal(net.params[k], weights[best - 1][k]) for k in net.params)
    # patience 0: every epoch, the last weights, the best epoch still recorded
    full = build_network("mlp", (1, 6, 6), 2, seed=0)
    hist0 = fit(full, x, y, patience=0, on_epoch=_snapshots(full, averaged), **kw)
    assert len(hist0) == 40 and not hist0.stopped_early and not hist0.restored
    assert hist0.best_epoch == best
    assert [s.val_loss for s in hist0[: len(hist)]] == losses  # the same run up to the stop
    if not ema:
        assert all(np.array_equal(full.params[k], averaged[-1][k]) for k in full.params)
    # min_epochs holds the stop off
    late = fit(build_network("mlp", (1, 6, 6), 2, seed=0), x, y, patience=3, min_epochs=30, **kw)
    assert len(late) == 30 and late.best_epoch == best and late.restored
    # without validation data: all epochs, nothing to restore
    kw.update(x_val=None, y_val=None)
    plain = fit(build_network("mlp", (1, 6, 6), 2, seed=0), x, y, patience=3, **kw)
    assert len(plain) == 40 and plain.best_epoch is None and not plain.restored


def test_early_stopping_that_never_triggers_keeps_the_last_epoch():
    x, y = _blobs(64)
    net = build_network("tiny", (1, 6, 6), 2, seed=0)
    hist = fit(net, x, y, epochs=6, batch_size=16, lr=0.01, x_val=x, y_val=y, patience=10)
    assert len(hist) == 6 and not hist.stopped_early
    assert hist.restored == (hist.best_epoch != 6)
    assert evaluate(net, x, y)[0] == pytest.approx(hist[hist.best_epoch - 1].val_loss, rel=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(patience=-1), "patience"),
        (dict(min_epochs=-2), "min epochs"),
        (dict(min_epochs=5, epochs=4), "min epochs"),
        (dict(warmup=-1), "warmup"),
        (dict(warmup=1.5), "warmup"),
        (dict(schedule="linear"), "schedule"),
    ],
)
def test_bad_stopping_and_schedule_options(bad, message):
    x, y = _blobs(16)
    kw = dict(epochs=2, **bad) if "epochs" not in bad else bad
    with pytest.raises(UsageError, match=message):
        fit(build_network("tiny", (1, 6, 6), 2, seed=0), x, y, **kw)


def test_train_folder_defaults_match_the_cli_and_folder_defaults():
    import inspect

    from imgkernel.cli.train import train_command
    from imgkernel.nn.train.options import FOLDER_DEFAULTS

    signature = inspect.signature(train_folder).parameters
    cli_defaults = {p.name: p.default for p in train_command.params}
    for field in FOLDER_DEFAULTS.__dataclass_fields__:
        expected = getattr(FOLDER_DEFAULTS, field)
        assert signature[field].default == expected, field
        if expected is not None:  # lr: None, the optimizer's own default (no click default)
            assert cli_defaults[field] == expected, field
    assert cli_defaults["val_split"] == signature["val_split"].default


def test_train_folder_early_stopping_is_reproducible(tmp_path):
    data = tmp_path / "noise"  # nothing to learn: the validation loss soon grows
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(16):
            pixels = rng.integers(0, 256, (6, 6), dtype=np.uint8)
            Image.fromarray(pixels).save(data / label / f"{i}.png")
    kw = dict(arch="tiny", epochs=30, batch_size=8, val_split=0.25, seed=3, patience=2)
    a = train_folder(data, None, **kw)
    b = train_folder(data, None, **kw)
    assert a.best_epoch == b.best_epoch and len(a.history) == len(b.history)
    assert a.stopped_early and a.restored and len(a.history) == a.best_epoch + 2
    for la, lb in zip(a.model.layers, b.model.layers, strict=True):
        for k in la.arrays:
            assert np.array_equal(la.arrays[k], lb.arrays[k])
    assert a.val_accuracy == a.history[a.best_epoch - 1].val_accuracy
