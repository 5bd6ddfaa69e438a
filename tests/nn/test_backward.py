"""The backward pass: each trainable layer and the loss vs finite differences and torch."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_close, numeric_grad

from imgkernel.core.pool import pool2d
from imgkernel.errors import UsageError
from imgkernel.nn.layers import (
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    conv2d_backward,
    conv2d_forward,
    make_layer,
    pool2d_backward,
    pool2d_forward,
)
from imgkernel.nn.train.loss import softmax_cross_entropy
from imgkernel.nn.train.network import Network

CONV_CASES = [
    dict(stride=(1, 1), padding=0, dilation=(1, 1), groups=1),
    dict(stride=(2, 2), padding=1, dilation=(1, 1), groups=1),
    dict(stride=(1, 2), padding=(1, 0, 2, 1), dilation=(1, 1), groups=1),
    dict(stride=(1, 1), padding="same", dilation=(2, 1), groups=1),
    dict(stride=(2, 1), padding=1, dilation=(1, 1), groups=2),
    dict(stride=(1, 1), padding=1, dilation=(1, 1), groups=4),  # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: str(c))
def test_conv2d_gradients_finite_differences(case):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 6, 7))
    groups = case["groups"]
    w = rng.standard_normal((4, 4 // groups, 3, 2))
    b = rng.standard_normal(4)
    y0, _ = conv2d_forward(x, w, b, **case)
    up = rng.standard_normal(y0.shape)

    def loss():
        return float(np.sum(conv2d_forward(x, w, b, **case)[0] * up))

    _, cache = conv2d_forward(x, w, b, **case)
    dx, dw, db = conv2d_backward(cache, up)
    assert_close(dx, numeric_grad(loss, x))
    assert_close(dw, numeric_grad(loss, w))
    assert_close(db, numeric_grad(loss, b))


@pytest.mark.parametrize("case", CONV_CASES[:5], ids=lambda c: str(c))
def test_conv2d_forward_matches_library_conv(case):
    from imgkernel.core.conv import conv2d

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 4 // case["groups"], 3, 2)).astype(np.float32)
    y, _ = conv2d_forward(x, w, None, **case)
    assert_close(y, conv2d(x, w, **case), rtol=1e-4, atol=1e-5)


POOL_CASES = [
    dict(mode="max", size=(2, 2), stride=(2, 2), padding=0),
    dict(mode="max", size=(3, 3), stride=(2, 2), padding=1),
    dict(mode="max", size=(3, 2), stride=(1, 2), padding=(1, 0, 1, 1), ceil_mode=True),
    dict(mode="max", size=(2, 2), stride=(1, 1), padding=0, dilation=(2, 2)),
    dict(mode="min", size=(2, 3), stride=(2, 1), padding=0),
    dict(mode="avg", size=(2, 2), stride=(2, 2), padding=0),
    dict(mode="avg", size=(3, 3), stride=(2, 2), padding=1),
    dict(mode="avg", size=(3, 3), stride=(2, 2), padding=1, count_include_pad=True),
    dict(mode="avg", size=(2, 3), stride=(2, 2), padding=(1, 0, 1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c))
def test_pool_gradients_finite_differences(case):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    y0, cache = pool2d_forward(x, **case)
    up = rng.standard_normal(y0.shape)

    def loss():
        return float(np.sum(pool2d_forward(x, **case)[0] * up))

    assert_close(pool2d_backward(cache, up), numeric_grad(loss, x))


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c))
def test_pool_forward_matches_pool2d(case):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    args = dict(case)
    mode, size, stride = args.pop("mode"), args.pop("size"), args.pop("stride")
    y, _ = pool2d_forward(x, size, stride, mode=mode, **args)
    assert_close(y, pool2d(x, size, stride, mode=mode, layout="tensor", **args), rtol=1e-6)


def _net_grad_check(layers, input_shape, x, n_classes=3, seed=0, rtol=1e-5):
    """Finite-difference check of every parameter and the input through a Network."""
    rng = np.random.default_rng(seed)
    net = Network(layers, input_shape, dtype=np.float64)
    y = rng.integers(0, n_classes, len(x))
    x = x.astype(np.float64)

    def loss():
        z, _ = net.forward(x, training=False)
        return softmax_cross_entropy(z, y)[0]

    z, caches = net.forward(x)
    _, dz, _ = softmax_cross_entropy(z, y)
    grads = net.backward(caches, dz)
    for key, p in net.params.items():
        assert_close(grads[key], numeric_grad(loss, p), rtol=rtol)
    assert_close(net.input_gradient(x, dz), numeric_grad(loss, x), rtol=rtol)


@pytest.mark.parametrize(
    "act",
    [
        ReLU("act"),
        LeakyReLU("act", alpha=0.1),
        Sigmoid("act"),
        Tanh("act"),
        make_layer("clip", "act", min=-0.5, max=0.7),
    ],
    ids=lambda a: a.type,
)
def test_activation_and_dense_gradients(act):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 3, 3))
    # move inputs away from kinks so central differences are exact
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    x = np.where(np.abs(x - 0.7) < 0.05, 0.2, x)
    x = np.where(np.abs(x + 0.5) < 0.05, 0.2, x)
    layers = [
        act,
        Flatten("flat"),
        Dense("fc", rng.standard_normal((5, 18)), rng.standard_normal(5)),
        Tanh("t"),
        Dense("out", rng.standard_normal((3, 5)), rng.standard_normal(3)),
        Softmax("sm"),
    ]
    _net_grad_check(layers, (2, 3, 3), x)


def test_global_pools_inner_softmax_and_dropout_eval_gradients():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 4, 4))
    for pool in ("global_avgpool", "global_maxpool"):
        layers = [
            make_layer(
                "conv2d", "c", weight=rng.standard_normal((4, 2, 3, 3)), bias=np.zeros(4), padding=1
            ),
            make_layer(pool, "g"),
            Flatten("f"),
            Softmax("inner"),
            Dropout("d", rate=0.5),
            Dense("fc", rng.standard_normal((3, 4)), rng.standard_normal(3)),
            Softmax("sm"),
        ]
        _net_grad_check(layers, (2, 4, 4), x)


def test_conv_pool_network_gradients():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 6, 6))
    layers = [
        make_layer(
            "conv2d",
            "c1",
            weight=rng.standard_normal((3, 2, 3, 3)),
            bias=rng.standard_normal(3),
            padding="same",
        ),
        ReLU("r"),
        MaxPool("p", size=2),
        make_layer("conv2d", "c2", weight=rng.standard_normal((4, 3, 2, 2)), stride=1),
        make_layer("avgpool", "a", size=2, stride=1, padding=1),
        Flatten("f"),
        Dense("fc", rng.standard_normal((3, 36)) * 0.3, rng.standard_normal(3)),
        Softmax("sm"),
    ]
    _net_grad_check(layers, (2, 6, 6), x)


def test_softmax_cross_entropy_gradient_and_stability():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    _, g, _ = softmax_cross_entropy(z, y)
    assert_close(g, numeric_grad(lambda: softmax_cross_entropy(z, y)[0], z))
    loss, g, p = softmax_cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2e4)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(p))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_label_smoothed_cross_entropy_gradient(eps):
    rng = np.random.default_rng(18)
    z = rng.standard_normal((6, 5)) * 3
    y = np.array([0, 4, 1, 1, 2, 3])
    loss, g, p = softmax_cross_entropy(z, y, eps)
    assert_close(g, numeric_grad(lambda: softmax_cross_entropy(z, y, eps)[0], z))
    # by definition: -sum(target * log softmax) averaged over the samples
    target = np.full(z.shape, eps / 5) + (1 - eps) * np.eye(5)[y]
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(float(-(target * logp).sum(axis=1).mean()), rel=1e-12)
    assert_close(g, (p - target) / len(y), rtol=1e-12, atol=1e-15)
    if eps == 0:
        plain = softmax_cross_entropy(z, y)
        assert loss == plain[0] and np.array_equal(g, plain[1])
    # stable for huge logits too
    big, gb, _ = softmax_cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([0]), eps)
    assert np.isfinite(big) and np.all(np.isfinite(gb))
    for bad in (-0.1, 1.0):
        with pytest.raises(UsageError, match="label smoothing"):
            softmax_cross_entropy(z, y, bad)


def test_label_smoothing_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    z = rng.standard_normal((7, 4))
    y = rng.integers(0, 4, 7)
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.tensor(y), label_smoothing=0.2)
    tl.backward()
    loss, g, _ = softmax_cross_entropy(z, y, 0.2)
    assert loss == pytest.approx(float(tl.detach()), rel=1e-12)
    assert_close(g, tz.grad.numpy(), rtol=1e-10)


def test_label_smoothing_network_gradients():
    rng = np.random.default_rng(20)
    layers = [
        Flatten("f"),
        make_layer("dense", "d", weight=rng.standard_normal((3, 12)), bias=rng.standard_normal(3)),
        Softmax("s"),
    ]
    net = Network(layers, (1, 3, 4), dtype=np.float64)
    x = rng.standard_normal((5, 1, 3, 4))
    y = np.array([0, 2, 1, 1, 0])

    def loss():
        return net.loss_and_grads(x, y, None, 0.15)[0]

    _, _, grads = net.loss_and_grads(x, y, None, 0.15)
    for key, p in net.params.items():
        assert_close(grads[key], numeric_grad(loss, p))


def test_dropout_is_inverted_in_training_mode():
    layer = Dropout("d", rate=0.25)
    net = Network([layer], (1, 100, 100))
    x = np.ones((4, 1, 100, 100), np.float32)
    out, caches = net.forward(x, training=True, rng=np.random.default_rng(0))
    kept = out != 0
    assert 0.72 < kept.mean() < 0.78
    assert np.allclose(out[kept], 1 / 0.75)
    dx = net.backward(caches, np.ones_like(out))
    assert dx == {}
    assert np.array_equal(net.forward(x)[0], x)  # identity at inference


def test_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = F.conv2d(tx, tw, tb, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    up = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(up))
    y, cache = conv2d_forward(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    assert_close(y, ty.detach().numpy(), rtol=1e-10)
    dx, dw, db = conv2d_backward(cache, up)
    assert_close(dx, tx.grad.numpy(), rtol=1e-10)
    assert_close(dw, tw.grad.numpy(), rtol=1e-10)
    assert_close(db, tb.grad.numpy(), rtol=1e-10)

    for mode in ("max", "avg"):
        tx = torch.tensor(x, requires_grad=True)
        if mode == "max":
            ty = F.max_pool2d(tx, 3, stride=2, padding=1, ceil_mode=True)
        else:
            ty = F.avg_pool2d(tx, 3, stride=2, padding=1, count_include_pad=False)
        up = rng.standard_normal(ty.shape)
        ty.backward(torch.tensor(up))
        y, cache = pool2d_forward(x, (3, 3), (2, 2), mode=mode, padding=1, ceil_mode=mode == "max")
        assert_close(y, ty.detach().numpy(), rtol=1e-10)
        assert_close(pool2d_backward(cache, up), tx.grad.numpy(), rtol=1e-10)

    # dense + cross-entropy
    feats = rng.standard_normal((5, 7))
    wd = rng.standard_normal((4, 7))
    bd = rng.standard_normal(4)
    labels = np.array([0, 3, 2, 1, 3])
    tf = torch.tensor(feats, requires_grad=True)
    twd = torch.tensor(wd, requires_grad=True)
    tbd = torch.tensor(bd, requires_grad=True)
    tl = F.cross_entropy(F.linear(tf, twd, tbd), torch.tensor(labels))
    tl.backward()
    net = Network([Dense("fc", wd, bd), Softmax("sm")], (7, 1, 1), dtype=np.float64)
    net.params = {"fc.weight": wd.copy(), "fc.bias": bd.copy()}
    net.layers.insert(0, Flatten("f"))
    loss, _, grads = net.loss_and_grads(feats.reshape(5, 7, 1, 1), labels)
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    assert_close(grads["fc.weight"], twd.grad.numpy(), rtol=1e-10)
    assert_close(grads["fc.bias"], tbd.grad.numpy(), rtol=1e-10)
