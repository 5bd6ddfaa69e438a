"""Elementwise activations and softmax: relu, leaky_relu, sigmoid, tanh, clip, softmax.

Each keeps in its training cache what its derivative needs (a mask, its
output, ...). The elementwise ones may overwrite an intermediate result
during inference (``INPLACE``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape


class ReLU(Layer):
    """``max(x, 0)`` (ONNX ``Relu``)."""

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

    type = "clip"
    ATTRS = {"min": None, "max": None}
    ARCH_KEYS = frozenset({"min", "max"})
    INPLACE = True

    def configure(self, min: Any, max: Any) -> None:  # noqa: A002
        self.min = None if min is None else attrs.number(min, "min")
        self.max = None if max is None else attrs.number(max, "max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise LayerError(f"clip min {self.min!r} is greater than max {self.max!r}")

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


class Softmax(Layer):
    """Softmax along one axis (ONNX opset-13 ``Softmax``; default the last)."""

    type = "softmax"
    ATTRS = {"axis": -1}

    def configure(self, axis: Any) -> None:
        self.axis = attrs.integer(axis, "axis")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, shape: Shape) -> Shape:
        attrs.axis_index(self.axis, len(shape))
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
        e /= np.sum(e, axis=self.axis, keepdims=True)
        return e

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        y = self(x)
        return y, y

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        y = cache
        return y * (dy - np.sum(dy * y, axis=self.axis, keepdims=True)), {}
