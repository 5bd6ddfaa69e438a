"""Elementwise activations and softmax: relu, leaky_relu, sigmoid, tanh, clip, hard_sigmoid,
hard_swish, softmax and log_softmax.

Each keeps in its training cache what its derivative needs (a mask, its
output, ...). The elementwise ones may overwrite an intermediate result
during inference (``INPLACE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, Params, Rng, Shape


def expit(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The logistic sigmoid ``1 / (1 + exp(-x))``, stable for large ``|x|`` (no overflow).

    (numpy only: importing scipy.special would cost more than a small model's run.)

    >>> expit(np.array([-800.0, 0.0, 800.0], np.float32))
    array([0. , 0.5, 1. ], dtype=float32)
    """
    negative = x < 0
    e = np.exp(-np.abs(x))  # in (0, 1]
    r = np.reciprocal(e + 1, out=out)  # 1 / (1 + exp(-|x|)): sigmoid(|x|)
    np.multiply(r, e, out=e)  # sigmoid(-|x|)
    np.copyto(r, e, where=negative)
    return r


class ReLU(Layer):
    """``max(x, 0)`` (ONNX ``Relu``)."""

    PER_SAMPLE = True

    type = "relu"
    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, np.float32(0))

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, np.float32(0), out=x)

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        mask = x > 0
        return x * mask, mask

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy * cache, {}


class LeakyReLU(Layer):
    """``x`` where positive, else ``alpha * x`` (ONNX ``LeakyRelu``)."""

    PER_SAMPLE = True

    type = "leaky_relu"
    ATTRS = {"alpha": 0.01}
    ARCH_KEYS = frozenset({"alpha"})
    INPLACE = True

    def configure(self, alpha: Any) -> None:
        self.alpha = attrs.number(alpha, "alpha")
        self._a = np.float32(self.alpha)

    def attributes(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.where(x < 0, x * self._a, x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.multiply(x, self._a, out=x, where=x < 0)

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        neg = x < 0
        a = x.dtype.type(self.alpha)
        return np.where(neg, x * a, x), (neg, a)

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        neg, a = cache
        return np.where(neg, dy * a, dy), {}


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))`` (ONNX ``Sigmoid``)."""

    PER_SAMPLE = True

    type = "sigmoid"
    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return expit(x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return expit(x, out=x)

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        y = expit(x)
        return y, y

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy * cache * (1 - cache), {}


class Tanh(Layer):
    """Hyperbolic tangent (ONNX ``Tanh``)."""

    PER_SAMPLE = True

    type = "tanh"
    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x, out=x)

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        y = np.tanh(x)
        return y, y

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy * (1 - cache * cache), {}


class Clip(Layer):
    """``x`` limited to ``[min, max]``; either bound may be absent (ONNX ``Clip``)."""

    PER_SAMPLE = True

    type = "clip"
    ATTRS = {"min": None, "max": None}
    ARCH_KEYS = frozenset({"min", "max"})
    INPLACE = True

    def configure(self, min: Any, max: Any) -> None:  # noqa: A002
        self.min = None if min is None else attrs.number(min, "min")
        self.max = None if max is None else attrs.number(max, "max")
        # min > max gives max everywhere, as ONNX Clip

    def attributes(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x
        if self.min is not None:
            out = np.maximum(out, np.float32(self.min))
        if self.max is not None:
            out = np.minimum(out, np.float32(self.max))
        return out if out is not x else x.copy()

    def inplace(self, x: np.ndarray) -> np.ndarray:
        if self.min is not None:
            np.maximum(x, np.float32(self.min), out=x)
        if self.max is not None:
            np.minimum(x, np.float32(self.max), out=x)
        return x

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        mask = np.ones(x.shape, bool)
        if self.min is not None:
            mask &= x >= self.min
        if self.max is not None:
            mask &= x <= self.max
        return self(x), mask

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy * cache, {}


class HardSigmoid(Layer):
    """``max(0, min(1, alpha * x + beta))`` (ONNX ``HardSigmoid``)."""

    PER_SAMPLE = True

    type = "hard_sigmoid"
    ATTRS = {"alpha": 0.2, "beta": 0.5}
    ARCH_KEYS = None
    INPLACE = True

    def configure(self, alpha: Any, beta: Any) -> None:
        self.alpha = attrs.number(alpha, "alpha")
        self.beta = attrs.number(beta, "beta")

    def attributes(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.inplace(np.array(x, dtype=np.float32))

    def inplace(self, x: np.ndarray) -> np.ndarray:
        if self.alpha != 1:
            np.multiply(x, np.float32(self.alpha), out=x)
        x += np.float32(self.beta)
        return np.clip(x, np.float32(0), np.float32(1), out=x)


class HardSwish(Layer):
    """``x * max(0, min(1, x / 6 + 1 / 2))`` (ONNX ``HardSwish``, MobileNetV3)."""

    PER_SAMPLE = True

    type = "hard_swish"
    ARCH_KEYS = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        gate = x * np.float32(1 / 6)
        gate += np.float32(0.5)
        np.clip(gate, np.float32(0), np.float32(1), out=gate)
        gate *= x
        return gate


class _AlongAxis(Layer):
    """A normalisation along ``axis``, or with ``flatten`` along all axes from ``axis`` on."""

    ATTRS = {"axis": -1, "flatten": False}

    def configure(self, axis: Any, flatten: Any) -> None:
        self.axis = attrs.integer(axis, "axis")
        self.flatten = attrs.boolean(flatten, "flatten")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis, "flatten": True} if self.flatten else {"axis": self.axis}

    def training_problem(self) -> str | None:
        return "cannot train a flattening softmax" if self.flatten else None

    def output_shape(self, shape: Shape) -> Shape:
        attrs.axis_index(self.axis, len(shape), inclusive=self.flatten and len(shape) > 0)
        return shape

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self.axis % max(len(shapes[0]), 1) != 0

    def _axes(self, x: np.ndarray) -> int | tuple[int, ...]:
        if not self.flatten:
            return self.axis
        a = self.axis + x.ndim if self.axis < 0 else self.axis
        return tuple(range(a, x.ndim))


class Softmax(_AlongAxis):
    """Softmax along one axis (ONNX opset-13 ``Softmax``; default the last).

    With ``flatten`` (ONNX ``Softmax`` before opset 13), the softmax is taken
    over all the axes from ``axis`` on together (the input coerced to 2-D).
    """

    type = "softmax"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        axes = self._axes(x)
        e = np.exp(x - np.max(x, axis=axes, keepdims=True))
        e /= np.sum(e, axis=axes, keepdims=True)
        return e

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        y = self(x)
        return y, y

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        y = cache
        return y * (dy - np.sum(dy * y, axis=self.axis, keepdims=True)), {}


class LogSoftmax(_AlongAxis):
    """``log(softmax(x))`` along one axis (ONNX ``LogSoftmax``; ``flatten`` as for softmax)."""

    type = "log_softmax"
    ARCH_KEYS = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        axes = self._axes(x)
        shifted = x - np.max(x, axis=axes, keepdims=True)
        shifted -= np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))
        return shifted
