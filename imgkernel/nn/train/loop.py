"""Training small CNNs: the backward pass, optimizers and ``imgkernel train``.

The forward pass of :mod:`imgkernel.nn.model` computes a layer's output; here
each trainable layer type also gets a *backward* function that turns the
gradient of the loss with respect to the layer's output into gradients for
its input and its weights. Everything is built on the same sliding-window
primitive as inference (:func:`imgkernel.core.windows.window_view`):

* conv2d: the forward pass keeps its im2col columns; the weight gradient is
  one matmul of the output gradient with those columns, the input gradient a
  matmul with the weights followed by *col2im*, which adds the column
  gradients back over the windows with one strided slice-add per kernel tap
  (``kh * kw`` vectorised adds, no loop over pixels);
* max/min pooling route the gradient to the (first) winning cell of each
  window, average pooling spreads it over the window's counted cells (ONNX
  semantics: padding, ``ceil_mode``, ``count_include_pad``);
* softmax and cross-entropy are fused: ``d loss / d logits = (p - onehot) / N``.

:func:`train_folder` is what ``imgkernel train`` runs: it reads an image
folder (one sub-folder per label), builds an architecture (a named default
or a TOML layer list, see ``docs/training.md``), trains it with mini-batch
SGD or Adam and writes a model ready for :func:`imgkernel.nn.model.classify`.

Runs are reproducible: the seed drives one :class:`numpy.random.Generator`
(initialisation, validation split, shuffling, dropout), and BLAS is limited
to one thread while training (when threadpoolctl is installed) so the
summation order does not depend on the machine's thread count.

Examples
--------
A tiny network learns to tell bright images from dark ones:

>>> rng = np.random.default_rng(0)
>>> x = rng.random((64, 1, 6, 6)).astype(np.float32)
>>> y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
>>> net = build_network("tiny", (1, 6, 6), 2, seed=0)
>>> history = fit(net, x, y, epochs=20, batch_size=16, lr=0.01, seed=0)
>>> history[-1].loss < history[0].loss
True
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgkernel.core.parallel import blas_single_thread
from imgkernel.core.windows import Border, output_size, pad, resolve_padding, window_view
from imgkernel.errors import UsageError
from imgkernel.nn.model import (
    LAYER_TYPES,
    InputSpec,
    Layer,
    Model,
    make_layer,
    predict_proba,
    prepare_image,
    save_model,
)

__all__ = [
    "ARCHITECTURES",
    "Adam",
    "EpochStats",
    "Network",
    "SGD",
    "TrainResult",
    "build_network",
    "conv2d_backward",
    "conv2d_forward",
    "fit",
    "load_arch",
    "load_image_folder",
    "pool2d_backward",
    "pool2d_forward",
    "softmax_cross_entropy",
    "train_folder",
]

#: Layer types the backward pass knows.
TRAINABLE_TYPES = (
    "conv2d",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "clip",
    "softmax",
    "maxpool",
    "avgpool",
    "minpool",
    "global_avgpool",
    "global_maxpool",
    "flatten",
    "reshape",
    "dense",
    "dropout",
)

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.01}


# ----------------------------------------------------------------------------
# conv2d forward / backward (im2col + col2im on window_view)


@dataclass
class _ConvCache:
    x_shape: tuple[int, ...]
    pads: tuple[int, int, int, int]
    padded_hw: tuple[int, int]
    out_hw: tuple[int, int]
    cols: np.ndarray  # (groups, cg*kh*kw, N*oh*ow)
    weight: np.ndarray
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    has_bias: bool


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: Any = 0,
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, _ConvCache]:
    """Convolution (as :func:`imgkernel.core.conv.conv2d`, zero padding) keeping its im2col columns.

    ``x`` is (N, C, H, W), ``weight`` (K, C/groups, kh, kw). Works in the
    dtype of ``x`` (float64 for gradient checks). Returns the output
    (N, K, oh, ow) and a cache for :func:`conv2d_backward`.
    """
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    if cg * groups != c or k % groups:
        raise UsageError(
            f"conv2d weight {weight.shape} with groups={groups} does not fit {c} input channels"
        )
    stride = (int(stride[0]), int(stride[1]))
    dilation = (int(dilation[0]), int(dilation[1]))
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    xp = pad(x, pads, Border("zero"), dtype=x.dtype)
    hp, wp = xp.shape[2:]
    oh = output_size(hp, kh, stride[0], dilation[0])
    ow = output_size(wp, kw, stride[1], dilation[1])
    if oh < 1 or ow < 1:
        raise UsageError(f"the {kh}x{kw} kernel does not fit the padded {hp}x{wp} input")
    win = window_view(xp, (kh, kw), stride, dilation, (oh, ow))  # (n, c, oh, ow, kh, kw)
    cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(groups, cg * kh * kw, n * oh * ow)
    wmat = weight.astype(x.dtype, copy=False).reshape(groups, k // groups, cg * kh * kw)
    out = np.matmul(wmat, cols).reshape(k, n, oh, ow)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False).reshape(k, 1, 1, 1)
    y = np.ascontiguousarray(out.transpose(1, 0, 2, 3))
    cache = _ConvCache(
        x.shape, pads, (hp, wp), (oh, ow), cols, weight, stride, dilation, groups, bias is not None
    )
    return y, cache


def _col2im_add(
    dxp: np.ndarray,
    dcols: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> None:
    """Add window gradients ``dcols`` (N, C, kh, kw, oh, ow) back into padded ``dxp``."""
    kh, kw = dcols.shape[2:4]
    oh, ow = out_hw
    sh, sw = stride
    dh, dw = dilation
    for i in range(kh):
        r0 = i * dh
        rows = slice(r0, r0 + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            c0 = j * dw
            dxp[:, :, rows, c0 : c0 + sw * (ow - 1) + 1 : sw] += dcols[:, :, i, j]


def conv2d_backward(
    cache: _ConvCache, dy: np.ndarray, *, need_input: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients ``(dx, dweight, dbias)`` of a convolution from the output gradient ``dy``.

    ``dweight = dy_cols @ cols.T`` (one matmul per group); ``dx`` is
    ``weight.T @ dy_cols`` scattered back over the windows (col2im).
    ``dx`` is None when ``need_input`` is false (the first layer).
    """
    n, c, h, w = cache.x_shape
    k, cg, kh, kw = cache.weight.shape
    g = cache.groups
    oh, ow = cache.out_hw
    dyc = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(g, k // g, n * oh * ow)
    dw = np.matmul(dyc, cache.cols.transpose(0, 2, 1)).reshape(k, cg, kh, kw)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    if not need_input:
        return None, dw, db
    wmat = cache.weight.astype(dy.dtype, copy=False).reshape(g, k // g, cg * kh * kw)
    dcols = np.matmul(wmat.transpose(0, 2, 1), dyc)  # (g, cg*kh*kw, n*oh*ow)
    dcols = dcols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
    top, _, left, _ = cache.pads
    dxp = np.zeros((n, c, *cache.padded_hw), dtype=dy.dtype)
    _col2im_add(dxp, dcols, (oh, ow), cache.stride, cache.dilation)
    dx = np.ascontiguousarray(dxp[:, :, top : top + h, left : left + w])
    return dx, dw, db


# ----------------------------------------------------------------------------
# pooling forward / backward (ONNX semantics)


@dataclass
class _PoolCache:
    mode: str
    x_shape: tuple[int, ...]
    all_pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    argmax: np.ndarray | None = None  # (N, C, oh, ow) tap index, max/min
    divisor: np.ndarray | None = None  # (oh, ow), avg


def _counts(n: int, k: int, s: int, d: int, before: int, after: int, out: int, incl: bool):
    taps = np.arange(out)[:, None] * s - before + np.arange(k)[None, :] * d
    lo, hi = (-before, n + after) if incl else (0, n)
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


def pool2d_forward(
    x: np.ndarray,
    size: tuple[int, int],
    stride: tuple[int, int] | None = None,
    *,
    mode: str = "max",
    padding: Any = 0,
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
    count_include_pad: bool = False,
) -> tuple[np.ndarray, _PoolCache]:
    """Max, min or average pooling of (N, C, H, W) ``x`` as :func:`imgkernel.core.pool.pool2d`.

    Max and min keep the index of the first winning tap of every window for
    :func:`pool2d_backward` (one vectorised compare per tap).
    """
    n, c, h, w = x.shape
    stride = size if stride is None else stride
    kh, kw = size
    sh, sw = stride
    dh, dw = dilation
    pads = resolve_padding(padding, (h, w), size, stride, dilation)
    top, bottom, left, right = pads
    if max(top, bottom) >= kh or max(left, right) >= kw:
        raise UsageError(f"pool padding {pads} must be smaller than the window {kh}x{kw}")
    oh = output_size(h, kh, sh, dh, top, bottom, ceil_mode=ceil_mode)
    ow = output_size(w, kw, sw, dw, left, right, ceil_mode=ceil_mode)
    if oh < 1 or ow < 1:
        raise UsageError(f"the {kh}x{kw} pooling window does not fit the {h}x{w} input")
    extra_h = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + top + bottom))
    extra_w = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + left + right))
    all_pads = (top, bottom + extra_h, left, right + extra_w)
    cache = _PoolCache(mode, x.shape, all_pads, (oh, ow), size, stride, dilation)
    if mode == "avg":
        from imgkernel.core.pool import pool2d

        y = pool2d(
            x,
            size,
            stride,
            mode="avg",
            padding=pads,
            dilation=dilation,
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
            layout="tensor",
        )
        ch = _counts(h, kh, sh, dh, top, bottom, oh, count_include_pad)
        cw = _counts(w, kw, sw, dw, left, right, ow, count_include_pad)
        cache.divisor = (ch[:, None] * cw[None, :]).astype(x.dtype)
        return y, cache
    sign = 1 if mode == "max" else -1
    fill = -np.inf if mode == "max" else np.inf
    xp = pad(x, all_pads, Border("constant", fill), dtype=x.dtype)
    best: np.ndarray | None = None
    arg = np.zeros((n, c, oh, ow), np.int32)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            tap = xp[:, :, rows, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
            if best is None:
                best = tap.copy()
                continue
            better = tap > best if sign > 0 else tap < best
            np.copyto(best, tap, where=better)
            np.copyto(arg, np.int32(i * kw + j), where=better)
    assert best is not None
    cache.argmax = arg
    return best, cache


def pool2d_backward(cache: _PoolCache, dy: np.ndarray) -> np.ndarray:
    """Input gradient of a pooling: to the argmax (max/min) or spread over the window (avg)."""
    n, c, h, w = cache.x_shape
    top, bottom, left, right = cache.all_pads
    kh, kw = cache.size
    sh, sw = cache.stride
    dh, dw = cache.dilation
    oh, ow = cache.out_hw
    dxp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=dy.dtype)
    if cache.mode == "avg":
        assert cache.divisor is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cache.divisor > 0, dy / cache.divisor, 0).astype(dy.dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            if cache.mode == "avg":
                dxp[:, :, rows, cols] += share
            else:
                assert cache.argmax is not None
                dxp[:, :, rows, cols] += np.where(cache.argmax == i * kw + j, dy, 0)
    return np.ascontiguousarray(dxp[:, :, top : top + h, left : left + w])


# ----------------------------------------------------------------------------
# loss


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax(``logits``) against integer ``labels``, fused.

    Returns ``(loss, dlogits, probabilities)``; computed through log-sum-exp
    of the max-shifted logits, so large logits neither overflow nor lose the
    gradient: ``dlogits = (softmax - onehot) / N``.

    With ``label_smoothing`` = e > 0 the target of every sample is
    ``(1 - e) * onehot + e / K`` for K classes (as
    ``torch.nn.functional.cross_entropy(..., label_smoothing=e)``) and
    ``dlogits = (softmax - target) / N``.

    >>> loss, grad, p = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([0]))
    >>> float(loss), grad.tolist()
    (0.0, [[0.0, 0.0]])
    >>> loss, grad, p = softmax_cross_entropy(np.zeros((1, 4)), np.array([2]), 0.2)
    >>> round(loss, 6) == round(float(np.log(4)), 6), np.round(grad, 6).tolist()
    (True, [[0.2, 0.2, -0.6, 0.2]])
    """
    eps = float(label_smoothing)
    if not 0 <= eps < 1:
        raise UsageError(f"label smoothing must be in [0, 1), got {label_smoothing!r}")
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    idx = np.arange(len(labels))
    logs = np.log(s[:, 0])
    logp = z[idx, labels] - logs
    if eps:
        k = logits.shape[1]
        mean_logp = z.mean(axis=1, dtype=np.float64) - logs  # mean over classes of log p
        per = (1 - eps) * logp.astype(np.float64) + eps * mean_logp
        loss = float(-np.mean(per)) + 0.0
    else:
        loss = float(-np.mean(logp, dtype=np.float64)) + 0.0  # no -0.0
    p = e / s
    grad = p.copy()
    if eps:
        grad -= grad.dtype.type(eps / k)
        grad[idx, labels] -= grad.dtype.type(1 - eps)
    else:
        grad[idx, labels] -= 1
    grad /= len(labels)
    return loss, grad.astype(logits.dtype, copy=False), p


# ----------------------------------------------------------------------------
# layers: forward in training mode and backward


def _layer_forward(
    layer: Layer, p: dict[str, np.ndarray], x: np.ndarray, training: bool, rng: Any
) -> tuple[np.ndarray, Any]:
    t = layer.type
    if t == "conv2d":
        return conv2d_forward(
            x,
            p["weight"],
            p.get("bias"),
            stride=layer.stride,  # type: ignore[attr-defined]
            padding=layer.padding,  # type: ignore[attr-defined]
            dilation=layer.dilation,  # type: ignore[attr-defined]
            groups=layer.groups,  # type: ignore[attr-defined]
        )
    if t == "dense":
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        y = x2 @ p["weight"].T
        if "bias" in p:
            y += p["bias"]
        return y.reshape(*shape[:-1], -1), (x2, shape)
    if t in ("maxpool", "avgpool", "minpool"):
        return pool2d_forward(
            x,
            layer.size,  # type: ignore[attr-defined]
            layer.stride,  # type: ignore[attr-defined]
            mode={"maxpool": "max", "avgpool": "avg", "minpool": "min"}[t],
            padding=layer.padding,  # type: ignore[attr-defined]
            dilation=layer.dilation,  # type: ignore[attr-defined]
            ceil_mode=layer.ceil_mode,  # type: ignore[attr-defined]
            count_include_pad=layer.count_include_pad,  # type: ignore[attr-defined]
        )
    if t == "global_avgpool":
        return x.mean(axis=(2, 3), keepdims=True), x.shape
    if t == "global_maxpool":
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        arg = flat.argmax(axis=2)
        y = np.take_along_axis(flat, arg[:, :, None], axis=2)
        return y.reshape(n, c, 1, 1), (x.shape, arg)
    if t == "relu":
        mask = x > 0
        return x * mask, mask
    if t == "leaky_relu":
        neg = x < 0
        a = x.dtype.type(layer.alpha)  # type: ignore[attr-defined]
        return np.where(neg, x * a, x), (neg, a)
    if t == "sigmoid":
        from scipy.special import expit

        y = expit(x)
        return y, y
    if t == "tanh":
        y = np.tanh(x)
        return y, y
    if t == "clip":
        y = layer(x)
        mask = np.ones(x.shape, bool)
        if layer.min is not None:  # type: ignore[attr-defined]
            mask &= x >= layer.min  # type: ignore[attr-defined]
        if layer.max is not None:  # type: ignore[attr-defined]
            mask &= x <= layer.max  # type: ignore[attr-defined]
        return y, mask
    if t == "softmax":
        y = layer(x)
        return y, y
    if t in ("flatten", "reshape"):
        return layer(x), x.shape
    if t == "dropout":
        rate = layer.rate  # type: ignore[attr-defined]
        if not training or rate <= 0:
            return x, None
        if rate >= 1:
            mask = np.zeros(x.shape, x.dtype)
        else:
            keep = rng.random(x.shape, dtype=np.float32) >= rate
            mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - rate))
        return x * mask, mask
    raise UsageError(f"training does not support {t} layers (layer {layer.name!r})")


def _layer_backward(
    layer: Layer, p: dict[str, np.ndarray], cache: Any, dy: np.ndarray, need_input: bool
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    t = layer.type
    if t == "conv2d":
        dx, dw, db = conv2d_backward(cache, dy, need_input=need_input)
        grads = {"weight": dw}
        if db is not None:
            grads["bias"] = db
        return dx, grads
    if t == "dense":
        x2, shape = cache
        d2 = dy.reshape(-1, dy.shape[-1])
        grads = {"weight": d2.T @ x2}
        if "bias" in p:
            grads["bias"] = d2.sum(axis=0)
        dx = (d2 @ p["weight"]).reshape(shape) if need_input else None
        return dx, grads
    if t in ("maxpool", "avgpool", "minpool"):
        return pool2d_backward(cache, dy), {}
    if t == "global_avgpool":
        shape = cache
        scale = dy.dtype.type(1.0 / (shape[2] * shape[3]))
        return np.broadcast_to(dy * scale, shape).copy(), {}
    if t == "global_maxpool":
        shape, arg = cache
        n, c = shape[:2]
        dx = np.zeros((n, c, shape[2] * shape[3]), dy.dtype)
        np.put_along_axis(dx, arg[:, :, None], dy.reshape(n, c, 1), axis=2)
        return dx.reshape(shape), {}
    if t == "relu":
        return dy * cache, {}
    if t == "leaky_relu":
        neg, a = cache
        return np.where(neg, dy * a, dy), {}
    if t == "sigmoid":
        return dy * cache * (1 - cache), {}
    if t == "tanh":
        return dy * (1 - cache * cache), {}
    if t == "clip":
        return dy * cache, {}
    if t == "softmax":
        y = cache
        axis = layer.axis  # type: ignore[attr-defined]
        return y * (dy - np.sum(dy * y, axis=axis, keepdims=True)), {}
    if t in ("flatten", "reshape"):
        return dy.reshape(cache), {}
    if t == "dropout":
        return (dy if cache is None else dy * cache), {}
    raise UsageError(f"training does not support {t} layers (layer {layer.name!r})")


# ----------------------------------------------------------------------------
# network


class Network:
    """A sequential network being trained: model layers plus their weights.

    The :class:`imgkernel.nn.model.Layer` objects give the types and attributes;
    the weights live in ``params`` (``"name.key"`` -> array, as in the model
    file) in ``dtype`` (float32 for training, float64 for gradient checks).
    A trailing softmax is fused with the cross-entropy loss.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: tuple[int, int, int],
        params: dict[str, np.ndarray] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            if layer.type not in TRAINABLE_TYPES:
                raise UsageError(
                    f"layer {layer.name!r}: training does not support {layer.type} layers "
                    f"(supported: {', '.join(TRAINABLE_TYPES)})"
                )
            if layer.type == "dense" and layer.transpose_input:  # type: ignore[attr-defined]
                raise UsageError(f"layer {layer.name!r}: cannot train a transpose_input dense")
        source = (
            params
            if params is not None
            else {
                f"{layer.name}.{key}": arr
                for layer in self.layers
                for key, arr in layer.arrays.items()
            }
        )
        self.params = {k: np.array(v, dtype=self.dtype) for k, v in source.items()}

    @classmethod
    def from_model(cls, model: Model, dtype: Any = np.float32) -> Network:
        return cls(model.layers, model.input_spec.shape, dtype=dtype)

    def layer_params(self, layer: Layer) -> dict[str, np.ndarray]:
        prefix = layer.name + "."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    @property
    def fused_softmax(self) -> bool:
        return bool(self.layers) and self.layers[-1].type == "softmax"

    def forward(
        self,
        x: np.ndarray,
        *,
        training: bool = False,
        rng: np.random.Generator | None = None,
        logits: bool = True,
    ) -> tuple[np.ndarray, list[Any]]:
        """Run the layers; with ``logits`` stop before a trailing softmax."""
        stop = len(self.layers) - (1 if logits and self.fused_softmax else 0)
        caches = []
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers[:stop]:
            x, cache = _layer_forward(layer, self.layer_params(layer), x, training, rng)
            caches.append(cache)
        return x, caches

    def backward(self, caches: list[Any], dout: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter gradients from the gradient ``dout`` of the (logit) output."""
        grads: dict[str, np.ndarray] = {}
        dy: np.ndarray | None = dout
        for i in range(len(caches) - 1, -1, -1):
            layer = self.layers[i]
            assert dy is not None
            dy, g = _layer_backward(layer, self.layer_params(layer), caches[i], dy, i > 0)
            for key, arr in g.items():
                grads[f"{layer.name}.{key}"] = arr
        return grads

    def input_gradient(self, x: np.ndarray, dout: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input (for tests)."""
        _, caches = self.forward(x, training=False)
        dy: np.ndarray | None = dout
        for i in range(len(caches) - 1, -1, -1):
            layer = self.layers[i]
            assert dy is not None
            dy, _ = _layer_backward(layer, self.layer_params(layer), caches[i], dy, True)
        assert dy is not None
        return dy

    def loss_and_grads(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator | None = None,
        label_smoothing: float = 0.0,
    ) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
        """Softmax cross-entropy loss, the logits and the parameter gradients (training mode)."""
        z, caches = self.forward(x, training=True, rng=rng)
        if z.ndim != 2:
            raise UsageError(f"the network's output is {z.shape[1:]}, not one value per class")
        loss, dz, _ = softmax_cross_entropy(z, y, label_smoothing)
        return loss, z, self.backward(caches, dz)

    def predict_logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outs = [
            self.forward(x[i : i + batch_size])[0] for i in range(0, max(len(x), 1), batch_size)
        ]
        return np.concatenate(outs) if outs else np.zeros((0, 0), self.dtype)

    def to_model(
        self, labels: Sequence[str] | None = None, spec: InputSpec | None = None, description=""
    ) -> Model:
        """A :class:`Model` with fresh layers holding the current weights (as float32)."""
        layers = []
        for layer in self.layers:
            attrs = layer.attributes()
            arrays = {k: v.astype(np.float32) for k, v in self.layer_params(layer).items()}
            layers.append(make_layer(layer.type, layer.name, **attrs, **arrays))
        if spec is None:
            c, h, w = self.input_shape
            spec = InputSpec(channels=c, height=h, width=w)
        return Model(layers, labels, spec, description)


# ----------------------------------------------------------------------------
# optimizers


class SGD:
    """Stochastic gradient descent with momentum and L2 weight decay (as ``torch.optim.SGD``)."""

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.lr, self.momentum = lr, momentum
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for key, g in grads.items():
            p = params[key]
            if self.weight_decay:
                g = g + p.dtype.type(self.weight_decay) * p
            if self.momentum:
                v = self.velocity.get(key)
                if v is None:
                    v = self.velocity[key] = g.astype(p.dtype, copy=True)
                else:
                    v *= p.dtype.type(self.momentum)
                    v += g
                g = g + p.dtype.type(self.momentum) * v if self.nesterov else v
            p -= p.dtype.type(self.lr) * g


class Adam:
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient (as ``torch.optim.Adam``)."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for key, g in grads.items():
            p = params[key]
            f = p.dtype.type
            if self.weight_decay:
                g = g + f(self.weight_decay) * p
            m = self.m.setdefault(key, np.zeros_like(p))
            v = self.v.setdefault(key, np.zeros_like(p))
            m *= f(b1)
            m += f(1 - b1) * g
            v *= f(b2)
            v += f(1 - b2) * (g * g)
            denom = np.sqrt(v) / f(math.sqrt(c2))
            denom += f(self.eps)
            p -= f(self.lr / c1) * (m / denom)


def make_optimizer(
    name: str, lr: float | None = None, *, momentum: float = 0.9, weight_decay: float = 0.0
) -> SGD | Adam:
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose adam or sgd")
    rate = DEFAULT_LR[key] if lr is None else float(lr)
    if not math.isfinite(rate) or rate <= 0:
        raise UsageError(f"learning rate must be a positive number, got {lr!r}")
    if weight_decay < 0 or not math.isfinite(weight_decay):
        raise UsageError(f"weight decay must be >= 0, got {weight_decay!r}")
    if key == "sgd":
        return SGD(rate, momentum=momentum, weight_decay=weight_decay)
    return Adam(rate, weight_decay=weight_decay)


# ----------------------------------------------------------------------------
# initialisation and architectures


def init_weight(
    rng: np.random.Generator, shape: tuple[int, ...], method: str, groups: int = 1
) -> np.ndarray:
    """He (normal, fan-in, gain sqrt 2) or Xavier (uniform, fan-in + fan-out) weights.

    ``shape`` is (K, C/groups, kh, kw) for conv or (out, in) for dense.
    """
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive
    fan_out = shape[0] // groups * receptive
    if method == "he":
        std = math.sqrt(2.0 / fan_in)
        return (rng.standard_normal(shape) * std).astype(np.float32)
    if method == "xavier":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    raise UsageError(f"unknown init {method!r}; choose he or xavier")


#: Named architectures: ``default`` (a small CNN scaled by the input size),
#: ``tiny`` (one conv block, for tests and quick experiments), ``mlp``.
ARCHITECTURES = ("default", "tiny", "mlp")


def _default_specs(name: str, shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    c, h, w = shape
    side = min(h, w)
    if name == "mlp":
        return [
            {"type": "flatten"},
            {"type": "dense", "units": 128},
            {"type": "relu"},
            {"type": "dense"},
        ]
    if name == "tiny":
        specs: list[dict[str, Any]] = [
            {"type": "conv2d", "filters": 8, "size": 3, "padding": "same"},
            {"type": "relu"},
        ]
        if side >= 4:
            specs.append({"type": "maxpool", "size": 2})
        return [*specs, {"type": "flatten"}, {"type": "dense"}]
    if side < 4:
        raise UsageError(
            f"the input {h}x{w} is too small for the default architecture (at least 4x4); "
            "use --input-size or --arch mlp"
        )

    # conv 3x3 x16 -> relu -> maxpool 2 -> conv 3x3 x32 -> relu, then
    # (maxpool 2 -> conv doubling the width, at most 128) while the maps are
    # 8+ pixels across; flatten small maps, global-average larger ones.
    def conv(filters: int) -> list[dict[str, Any]]:
        return [
            {"type": "conv2d", "filters": filters, "size": 3, "padding": "same"},
            {"type": "relu"},
        ]

    specs = [*conv(16), {"type": "maxpool", "size": 2}, *conv(32)]
    h, w, filters = h // 2, w // 2, 32
    while min(h, w) >= 8:
        specs.append({"type": "maxpool", "size": 2})
        h, w = h // 2, w // 2
        if min(h, w) < 8 or filters >= 128:
            break
        filters *= 2
        specs += conv(filters)
    if h * w * filters <= 4096:
        specs += [{"type": "flatten"}]  # small maps: keep where things are
    else:
        specs += [{"type": "global_avgpool"}, {"type": "flatten"}]
    specs += [{"type": "dense", "units": 64}, {"type": "relu"}, {"type": "dense"}]
    return specs


_SPEC_KEYS = {
    "conv2d": {"filters", "size", "stride", "padding", "dilation", "groups", "bias", "init"},
    "dense": {"units", "bias", "init"},
    "maxpool": {"size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad"},
    "avgpool": {"size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad"},
    "minpool": {"size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad"},
    "leaky_relu": {"alpha"},
    "clip": {"min", "max"},
    "dropout": {"rate"},
    "softmax": set(),
    "flatten": set(),
}


def _build_layers(
    specs: Sequence[dict[str, Any]],
    shape: tuple[int, int, int],
    n_classes: int,
    rng: np.random.Generator,
    where: str,
) -> list[Layer]:
    """Layers (with initialised weights) from a list of layer specs."""
    from imgkernel.nn.model import LayerError  # noqa: F401  (documented error type)

    layers: list[Layer] = []
    cur: tuple[int | None, ...] = (None, *shape)
    counts: Counter[str] = Counter()
    dense_idx = [i for i, s in enumerate(specs) if s.get("type") == "dense"]
    last_dense = dense_idx[-1] if dense_idx else -1
    names: set[str] = set()
    for i, raw in enumerate(specs):
        spec = dict(raw)
        kind = spec.pop("type", None)
        label = f"{where}layer {i}"
        if not isinstance(kind, str):
            raise UsageError(f"{label}: missing 'type'")
        kind = kind.strip().lower()
        if kind not in TRAINABLE_TYPES or kind == "reshape":
            known = ", ".join(t for t in TRAINABLE_TYPES if t != "reshape")
            raise UsageError(f"{label}: cannot train a {kind!r} layer; use one of {known}")
        counts[kind] += 1
        name = spec.pop("name", None) or f"{kind}{counts[kind]}"
        if not isinstance(name, str) or name in names:
            raise UsageError(f"{label}: bad or duplicate name {name!r}")
        names.add(name)
        allowed = _SPEC_KEYS.get(kind, set())
        unknown = set(spec) - allowed
        if unknown:
            raise UsageError(
                f"{label} ({kind}): unknown key(s) {', '.join(sorted(unknown))}"
                f"{'; allowed: ' + ', '.join(sorted(allowed)) if allowed else ''}"
            )
        try:
            layer = _make_trainable(
                kind, name, spec, cur, n_classes, i == last_dense, rng, specs, i
            )
            cur = layer.output_shape(cur)
        except UsageError as exc:
            raise UsageError(f"{label} ({kind} {name!r}): {exc}") from None
        layers.append(layer)
    if not layers or layers[-1].type != "softmax":
        taken = {layer.name for layer in layers}
        name = "softmax"
        while name in taken:
            name += "_"
        layers.append(make_layer("softmax", name))
        try:
            cur = layers[-1].output_shape(cur)
        except UsageError as exc:
            raise UsageError(f"{where}{exc}") from None
    if len(cur) != 2 or cur[1] != n_classes:
        fmt = " x ".join("N" if d is None else str(d) for d in cur)
        raise UsageError(
            f"{where}the network's output is {fmt}; it must be N x {n_classes} "
            "(end with a flatten and a dense layer giving one value per class)"
        )
    return layers


def _next_is_relu(specs: Sequence[dict[str, Any]], i: int) -> bool:
    nxt = specs[i + 1].get("type") if i + 1 < len(specs) else None
    return nxt in ("relu", "leaky_relu")


def _make_trainable(
    kind: str,
    name: str,
    spec: dict[str, Any],
    cur: tuple[int | None, ...],
    n_classes: int,
    is_last_dense: bool,
    rng: np.random.Generator,
    specs: Sequence[dict[str, Any]],
    i: int,
) -> Layer:
    init = spec.pop("init", None) or ("he" if _next_is_relu(specs, i) else "xavier")
    if kind == "conv2d":
        if len(cur) != 4:
            raise UsageError("conv2d needs an (N, C, H, W) input; is there a flatten before it?")
        filters = spec.pop("filters", None)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise UsageError(f"'filters' must be a positive integer, got {filters!r}")
        size = spec.pop("size", 3)
        kh, kw = (size, size) if isinstance(size, int) else tuple(size)
        groups = spec.get("groups", 1)
        c_in = int(cur[1])  # type: ignore[arg-type]
        if not isinstance(groups, int) or groups < 1 or c_in % groups or filters % groups:
            raise UsageError(
                f"groups={groups!r} must divide the {c_in} input channels and {filters} filters"
            )
        bias = spec.pop("bias", True)
        weight = init_weight(rng, (filters, c_in // groups, int(kh), int(kw)), init, groups)
        arrays = {"weight": weight}
        if bias:
            arrays["bias"] = np.zeros(filters, np.float32)
        spec.setdefault("padding", "valid")
        return make_layer("conv2d", name, **spec, **arrays)
    if kind == "dense":
        if len(cur) != 2:
            raise UsageError("dense needs a flat (N, features) input; add a flatten before it")
        units = spec.pop("units", "classes" if is_last_dense else None)
        if units == "classes":
            units = n_classes
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise UsageError(f"'units' must be a positive integer or \"classes\", got {units!r}")
        bias = spec.pop("bias", True)
        n_in = int(cur[1])  # type: ignore[arg-type]
        arrays = {"weight": init_weight(rng, (units, n_in), init)}
        if bias:
            arrays["bias"] = np.zeros(units, np.float32)
        return make_layer("dense", name, **arrays)
    if kind == "softmax":
        return make_layer("softmax", name)
    return make_layer(kind, name, **spec)


def _check_arch_name(arch: str | os.PathLike[str]) -> None:
    """Fail early on an unknown architecture name or an unreadable TOML file."""
    text = os.fspath(arch)
    if text.lower().endswith(".toml") or os.path.exists(text):
        load_arch(text)
    else:
        raise UsageError(
            f"unknown architecture {text!r}; use {', '.join(ARCHITECTURES)} or a .toml file"
        )


def load_arch(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], str]:
    """Read a TOML architecture: ``[[layer]]`` tables -> (layer specs, description)."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{source}: no such architecture file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a directory, not an architecture file") from None
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source}: not a UTF-8 text file") from None
    unknown = set(data) - {"layer", "description"}
    if unknown:
        raise UsageError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            "expected [[layer]] tables and an optional description"
        )
    layers = data.get("layer")
    if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
        raise UsageError(f"{source}: no [[layer]] tables")
    desc = data.get("description", "")
    return [dict(x) for x in layers], str(desc)


def build_network(
    arch: str | os.PathLike[str] | Sequence[dict[str, Any]],
    input_shape: tuple[int, int, int],
    n_classes: int,
    *,
    seed: int | None = 0,
    rng: np.random.Generator | None = None,
) -> Network:
    """A freshly initialised :class:`Network` for a named architecture, a TOML file or specs."""
    gen = rng if rng is not None else np.random.default_rng(seed)
    where = ""
    if isinstance(arch, (str, os.PathLike)):
        text = os.fspath(arch)
        if text in ARCHITECTURES:
            specs = _default_specs(text, input_shape)
        elif text.lower().endswith(".toml") or os.path.exists(text):
            specs, _ = load_arch(text)
            where = f"{text}: "
        else:
            raise UsageError(
                f"unknown architecture {text!r}; use {', '.join(ARCHITECTURES)} or a .toml file"
            )
    else:
        specs = [dict(s) for s in arch]
    c, h, w = input_shape
    try:
        layers = _build_layers(specs, input_shape, n_classes, gen, where)
    except UsageError as exc:
        raise UsageError(f"input {h}x{w}x{c}: {exc}") from None
    return Network(layers, input_shape)


# ----------------------------------------------------------------------------
# training loop


@dataclass
class EpochStats:
    """Progress after one epoch (``epoch`` counts from 1)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0


def evaluate(net: Network, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` in inference mode."""
    if len(x) == 0:
        return float("nan"), float("nan")
    z = net.predict_logits(x)
    loss, _, p = softmax_cross_entropy(z, y)
    return loss, float(np.mean(p.argmax(axis=1) == y))


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Every (C, H, W) sample of ``x`` shifted by up to ``max_shift`` pixels, edges repeated."""
    s = int(max_shift)
    n, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(offsets):
        out[i] = xp[i, :, dy : dy + h, dx : dx + w]
    return out


def random_affine(
    x: np.ndarray, shift: float, rotate: float, zoom: float, rng: np.random.Generator
) -> np.ndarray:
    """Every sample of ``x`` (N, C, H, W) moved by a random small affine map (bilinear).

    Shifts up to ``shift`` pixels, rotations up to ``rotate`` degrees, scales
    within ``1 / (1 + zoom)`` .. ``1 + zoom``; edge pixels are repeated.
    """
    n, c, h, w = x.shape
    ang = np.deg2rad(rng.uniform(-rotate, rotate, n))
    scale = np.exp(rng.uniform(-math.log1p(zoom), math.log1p(zoom), n))
    t = rng.uniform(-shift, shift, (n, 2))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy = (np.arange(h) - cy)[None, :, None]
    xx = (np.arange(w) - cx)[None, None, :]
    cos = (np.cos(ang) / scale)[:, None, None]
    sin = (np.sin(ang) / scale)[:, None, None]
    sy = cos * yy - sin * xx + cy - t[:, 0, None, None]
    sx = sin * yy + cos * xx + cx - t[:, 1, None, None]
    y0 = np.floor(sy)
    x0 = np.floor(sx)
    wy = (sy - y0).astype(x.dtype)[..., None]
    wx = (sx - x0).astype(x.dtype)[..., None]
    y0i = np.clip(y0.astype(np.intp), 0, h - 1)
    y1i = np.clip(y0.astype(np.intp) + 1, 0, h - 1)
    x0i = np.clip(x0.astype(np.intp), 0, w - 1)
    x1i = np.clip(x0.astype(np.intp) + 1, 0, w - 1)
    hwc = x.transpose(0, 2, 3, 1)
    ni = np.arange(n)[:, None, None]
    top = hwc[ni, y0i, x0i] * (1 - wx) + hwc[ni, y0i, x1i] * wx
    bottom = hwc[ni, y1i, x0i] * (1 - wx) + hwc[ni, y1i, x1i] * wx
    out = top * (1 - wy) + bottom * wy
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def fit(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: str | SGD | Adam = "adam",
    lr: float | None = None,
    weight_decay: float = 0.0,
    seed: int | None = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: Callable[[int, EpochStats], None] | None = None,
    on_batch: Callable[[int, int, int, float], None] | None = None,
    augment: int = 0,
    rotate: float = 0.0,
    zoom: float = 0.0,
    schedule: str = "cosine",
    single_thread_blas: bool = True,
    ema: float = 0.0,
    label_smoothing: float = 0.0,
) -> list[EpochStats]:
    """Train ``net`` in place on prepared (N, C, H, W) ``x`` and integer labels ``y``.

    Mini-batches of ``batch_size`` in an order reshuffled every epoch by a
    generator seeded with ``seed``. ``on_batch(epoch, batch, batches, loss)``
    is called after every step, ``on_epoch(epoch, stats)`` after every
    epoch. ``augment`` > 0 shifts every training image by a random number
    of pixels (up to ``augment`` each way, edge pixels repeated). Returns the
    per-epoch statistics (training loss/accuracy as the running mean over
    the epoch's batches, validation in inference mode). ``rotate``
    (degrees) and ``zoom`` (fraction) add random rotations and scalings
    (with sub-pixel shifts up to ``augment``, bilinear). ``schedule``
    "cosine" decays the learning rate along a half cosine to zero over the
    run (per step), "constant" keeps it.

    ``ema`` = d > 0 keeps an exponential moving average of the weights,
    updated after every optimizer step and bias-corrected like Adam's
    moments: after t steps with weights w_1 .. w_t it is
    ``sum_i (1 - d) d**(t - i) w_i / (1 - d**t)``. The per-epoch validation
    figures use the averaged weights, and at the end they replace the
    trained weights in ``net``. ``label_smoothing`` as in
    :func:`softmax_cross_entropy`.
    """
    if not 0 <= float(ema) < 1:
        raise UsageError(f"ema must be in [0, 1), got {ema!r}")
    if not 0 <= float(label_smoothing) < 1:
        raise UsageError(f"label smoothing must be in [0, 1), got {label_smoothing!r}")
    if schedule not in ("cosine", "constant"):
        raise UsageError(f"unknown learning-rate schedule {schedule!r}; use cosine or constant")
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    opt = (
        make_optimizer(optimizer, lr, weight_decay=weight_decay)
        if isinstance(optimizer, str)
        else optimizer
    )
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=net.dtype)
    y = np.asarray(y, dtype=np.int64)
    n = len(x)
    if n == 0:
        raise UsageError("there are no training samples")
    batches = -(-n // batch_size)
    base_lr = opt.lr
    total_steps = epochs * batches
    history: list[EpochStats] = []
    decay = float(ema)
    averaged = {k: np.zeros(v.shape, np.float64) for k, v in net.params.items()} if decay else None
    ema_steps = 0

    def ema_weights() -> dict[str, np.ndarray]:
        assert averaged is not None
        corr = 1.0 - decay**ema_steps
        return {k: (a / corr).astype(net.dtype) for k, a in averaged.items()}

    ctx = blas_single_thread() if single_thread_blas else contextlib.nullcontext()
    with ctx:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(n)
            total_loss = 0.0
            correct = 0
            for b in range(batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                if rotate or zoom:
                    xb = random_affine(x[idx], augment, rotate, zoom, rng)
                elif augment:
                    xb = random_shift(x[idx], augment, rng)
                else:
                    xb = x[idx]
                loss, z, grads = net.loss_and_grads(xb, y[idx], rng, label_smoothing)
                if not math.isfinite(loss):
                    raise UsageError(
                        f"the loss became {loss} in epoch {epoch}; lower the learning rate"
                    )
                if schedule == "cosine":
                    step = (epoch - 1) * batches + b
                    opt.lr = base_lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                opt.step(net.params, grads)
                if averaged is not None:
                    ema_steps += 1
                    for key, acc in averaged.items():
                        acc *= decay
                        acc += (1.0 - decay) * net.params[key]
                total_loss += loss * len(idx)
                correct += int(np.sum(z.argmax(axis=1) == y[idx]))
                if on_batch is not None:
                    on_batch(epoch, b + 1, batches, loss)
            stats = EpochStats(epoch, epochs, total_loss / n, correct / n)
            if x_val is not None and y_val is not None and len(x_val):
                if averaged is not None:
                    raw = net.params
                    net.params = ema_weights()
                    try:
                        stats.val_loss, stats.val_accuracy = evaluate(net, x_val, y_val)
                    finally:
                        net.params = raw
                else:
                    stats.val_loss, stats.val_accuracy = evaluate(net, x_val, y_val)
            stats.seconds = time.perf_counter() - t0
            history.append(stats)
            if on_epoch is not None:
                on_epoch(epoch, stats)
    if averaged is not None:
        net.params = ema_weights()
    return history


# ----------------------------------------------------------------------------
# image folders


@dataclass
class Dataset:
    """Images of an image folder prepared for a network."""

    x: np.ndarray  # (N, C, H, W) float32, before mean/std normalisation
    y: np.ndarray  # (N,) int64
    labels: list[str]
    paths: list[str]
    spec: InputSpec
    skipped: list[str] = field(default_factory=list)


def parse_size(value: str | int | Sequence[int] | None) -> tuple[int, int] | None:
    """``"HxW"``, ``"N"``, N or (H, W) -> (H, W).

    >>> parse_size("28x32"), parse_size(8)
    ((28, 32), (8, 8))
    """
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = value.lower().replace(",", "x").split("x")
            dims = tuple(int(p) for p in parts)
        elif isinstance(value, int):
            dims = (value, value)
        else:
            dims = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"input size must be HxW (e.g. 28x28), got {value!r}") from None
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) != 2 or min(dims) < 1:
        raise UsageError(f"input size must be HxW with positive sizes, got {value!r}")
    if dims[0] * dims[1] > 4096 * 4096:
        raise UsageError(f"input size {dims[0]}x{dims[1]} is too large")
    return (dims[0], dims[1])


def load_image_folder(
    data_dir: str | os.PathLike[str],
    *,
    input_size: str | int | Sequence[int] | None = None,
    color: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Dataset:
    """Read an image folder: one sub-folder per label (sorted), images inside.

    Files that are not images (or cannot be read) are skipped with a warning
    through ``on_warning``; hidden files are ignored. Images are prepared the
    way :func:`imgkernel.nn.model.classify` prepares them: converted to ``color``
    ("gray" or "rgb"; default gray when every image is grey), stretched to
    ``input_size`` (default: the most common size), scaled to 0..1.
    """
    from imgkernel import images as imgio

    root = os.fspath(data_dir)
    if not os.path.exists(root):
        raise UsageError(f"{root}: no such data folder")
    if not os.path.isdir(root):
        raise UsageError(f"{root}: not a folder (expected one sub-folder per label)")
    warn = on_warning or (lambda message: None)
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    label_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    stray = [e for e in entries if e not in label_dirs]
    if stray:
        warn(
            f"{root}: ignoring {len(stray)} file(s) outside label folders "
            f"(e.g. {stray[0]}); images go in one sub-folder per label"
        )
    if not label_dirs:
        raise UsageError(f"{root}: no label sub-folders (expected one sub-folder per label)")
    images: list[Any] = []
    ys: list[int] = []
    paths: list[str] = []
    skipped: list[str] = []
    labels: list[str] = []
    for label in label_dirs:
        folder = os.path.join(root, label)
        found = 0
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            if fname.startswith(".") or os.path.isdir(path):
                continue
            try:
                img = imgio.read_image(path)
            except UsageError as exc:
                skipped.append(path)
                warn(f"skipping {exc}")
                continue
            images.append(img.pixels)
            ys.append(len(labels))
            paths.append(path)
            found += 1
        if found == 0:
            warn(f"{folder}: no images; label {label!r} left out")
            continue
        labels.append(label)
    if not images:
        raise UsageError(f"{root}: no images found in the label sub-folders")
    if len(labels) < 2:
        raise UsageError(
            f"{root}: only one label ({labels[0]!r}) has images; training needs at least two"
        )
    size = parse_size(input_size)
    if size is None:
        counted = Counter((int(p.shape[0]), int(p.shape[1])) for p in images)
        size = counted.most_common(1)[0][0]
    if color is None:
        gray = all(p.ndim == 2 or p.shape[2] <= 2 for p in images)
        channels = 1 if gray else 3
    else:
        key = color.strip().lower()
        if key in ("gray", "grey", "l"):
            channels = 1
        elif key in ("rgb", "color", "colour"):
            channels = 3
        else:
            raise UsageError(f"color must be gray or rgb, got {color!r}")
    spec = InputSpec(channels=channels, height=size[0], width=size[1], scale=1 / 255)
    x = np.empty((len(images), channels, size[0], size[1]), np.float32)
    for i, pixels in enumerate(images):
        x[i] = prepare_image(spec, pixels)
    return Dataset(x, np.asarray(ys, np.int64), labels, paths, spec, skipped)


def stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``fraction`` of every class, rounded."""
    if not 0 <= fraction < 1:
        raise UsageError(f"validation split must be in [0, 1), got {fraction!r}")
    train, val = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@dataclass
class TrainResult:
    """What :func:`train_folder` did."""

    model: Model
    history: list[EpochStats]
    labels: list[str]
    train_count: int
    val_count: int
    train_accuracy: float
    val_accuracy: float | None
    skipped: list[str]
    seconds: float
    output: str | None


def train_folder(
    data_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    arch: str | os.PathLike[str] = "default",
    epochs: int = 15,
    batch_size: int = 32,
    lr: float | None = None,
    optimizer: str = "adam",
    val_split: float = 0.1,
    input_size: str | int | Sequence[int] | None = None,
    color: str | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    normalize: bool = True,
    augment: int = 0,
    rotate: float = 0.0,
    zoom: float = 0.0,
    schedule: str = "cosine",
    ema: float = 0.0,
    label_smoothing: float = 0.0,
    description: str | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[int, EpochStats], None] | None = None,
    on_batch: Callable[[int, int, int, float], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a classifier on an image folder, write it to ``output``: ``imgkernel train``.

    ``data_dir`` holds one sub-folder per label. ``val_split`` of every
    class is held out (stratified, by ``seed``) for the validation accuracy.
    With ``normalize`` the per-channel mean and std of the training images
    go into the model's input spec. ``augment``/``rotate``/``zoom`` (random
    shifts, rotations, scalings of the training images), ``schedule``,
    ``ema`` (the saved model holds the moving average of the weights) and
    ``label_smoothing`` as in :func:`fit`. ``on_start(info)`` is called once the
    data is read and the network built (``info`` holds ``labels``,
    ``train``, ``val``, ``input`` (C, H, W), ``params``, ``summary``,
    ``batches``); ``on_epoch``/``on_batch`` as in :func:`fit`;
    ``on_warning(message)`` for skipped files. Nothing is printed. The model
    file is written atomically at the end (nothing is written on error).
    """
    t0 = time.perf_counter()
    target = None if output is None else os.fspath(output)
    if target is not None:
        if os.path.isdir(target):
            raise UsageError(f"{target}: is a directory; give the model file name")
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            raise UsageError(f"{target}: the folder {parent} does not exist")
    if isinstance(optimizer, str) and optimizer.strip().lower() not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {optimizer!r}; choose adam or sgd")
    if isinstance(epochs, bool) or int(epochs) < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if int(batch_size) < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if not 0 <= float(val_split) < 1:
        raise UsageError(f"validation split must be in [0, 1), got {val_split!r}")
    make_optimizer(optimizer, lr, weight_decay=weight_decay)  # validate early
    if not 0 <= float(ema) < 1:
        raise UsageError(f"ema must be in [0, 1), got {ema!r}")
    if not 0 <= float(label_smoothing) < 1:
        raise UsageError(f"label smoothing must be in [0, 1), got {label_smoothing!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if not (math.isfinite(float(rotate)) and 0 <= float(rotate) <= 180):
        raise UsageError(f"rotate must be 0 to 180 degrees, got {rotate!r}")
    if not (math.isfinite(float(zoom)) and 0 <= float(zoom) < 1):
        raise UsageError(f"zoom must be in [0, 1), got {zoom!r}")
    # Everything that can be checked without the images is checked before
    # reading a possibly large folder: the size and the architecture file.
    parse_size(input_size)
    if isinstance(arch, (str, os.PathLike)) and os.fspath(arch) not in ARCHITECTURES:
        _check_arch_name(arch)
    data = load_image_folder(data_dir, input_size=input_size, color=color, on_warning=on_warning)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = stratified_split(data.y, float(val_split), rng)
    spec = data.spec
    x = data.x
    if normalize:
        xs = x[train_idx]
        mean = xs.mean(axis=(0, 2, 3), dtype=np.float64)
        std = xs.std(axis=(0, 2, 3), dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        spec = InputSpec(
            channels=spec.channels,
            height=spec.height,
            width=spec.width,
            scale=spec.scale,
            mean=[round(float(m), 6) for m in mean],
            std=[round(float(s), 6) for s in std],
        )
        m32 = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
        s32 = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
        x = (x - m32) / s32  # as prepare_image does
    net = build_network(arch, spec.shape, len(data.labels), rng=rng)
    model0 = net.to_model(data.labels, spec)
    if on_start is not None:
        on_start(
            {
                "labels": list(data.labels),
                "train": int(len(train_idx)),
                "val": int(len(val_idx)),
                "input": spec.shape,
                "color": spec.color,
                "params": model0.param_count,
                "summary": str(model0.summary()),
                "batches": -(-len(train_idx) // int(batch_size)),
                "skipped": list(data.skipped),
            }
        )
    history = fit(
        net,
        x[train_idx],
        data.y[train_idx],
        epochs=int(epochs),
        batch_size=int(batch_size),
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        seed=int(rng.integers(2**63)),
        x_val=x[val_idx] if len(val_idx) else None,
        y_val=data.y[val_idx] if len(val_idx) else None,
        on_epoch=on_epoch,
        on_batch=on_batch,
        augment=augment,
        rotate=rotate,
        zoom=zoom,
        schedule=schedule,
        ema=float(ema),
        label_smoothing=float(label_smoothing),
    )
    if description is None:
        arch_name = os.path.basename(os.fspath(arch))
        description = (
            f"trained by imgkernel train on {os.path.basename(os.path.abspath(data_dir))} "
            f"({len(train_idx)} images, arch {arch_name}, {epochs} epochs, seed {seed})"
        )
    model = net.to_model(data.labels, spec, description)
    # final accuracies through the inference path classify() uses
    train_acc = _accuracy(model, x[train_idx], data.y[train_idx])
    val_acc = _accuracy(model, x[val_idx], data.y[val_idx]) if len(val_idx) else None
    if target is not None:
        try:
            save_model(model, target)
        except OSError as exc:
            raise UsageError(f"{target}: cannot write the model ({exc.strerror})") from None
    return TrainResult(
        model,
        history,
        list(data.labels),
        int(len(train_idx)),
        int(len(val_idx)),
        train_acc,
        val_acc,
        list(data.skipped),
        time.perf_counter() - t0,
        target,
    )


def _accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) == 0:
        return float("nan")
    probs = predict_proba(model, x, batch_size=256)
    return float(np.mean(probs.argmax(axis=1) == y))


# make the layer registry visible to readers of this module
assert all(t in LAYER_TYPES for t in TRAINABLE_TYPES)
