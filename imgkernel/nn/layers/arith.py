"""Elementwise arithmetic of tensors with numpy broadcasting: add, sub, mul, div, sum, prelu.

These read two (``sum``: one or more) tensors, e.g. a residual connection
``add(conv_out, shortcut)``; a constant operand is a ``constant`` node. They
may write into their first input when it has the result's shape
(``INPLACE``). Inference only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Layer, Shape


def _broadcast_per_sample(shapes: Sequence[Shape]) -> bool:
    """Whether broadcasting keeps samples apart: no operand but a batched one spans axis 0."""
    rank = max(len(s) for s in shapes)
    return all(len(s) < rank or s[0] in (None, 1) for s in shapes)


class _Binary(Layer):
    """``ufunc(a, b)`` with numpy broadcasting (ONNX multidirectional broadcasting)."""

    ARITY = (2, 2)
    ARCH_KEYS = None
    INPLACE = True
    ufunc: ClassVar[Any] = np.add

    def output_shape(self, *shapes: Shape) -> Shape:
        return attrs.broadcast(shapes)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return _broadcast_per_sample(shapes)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.ufunc(xs[0], xs[1])

    def inplace(self, *xs: np.ndarray) -> np.ndarray:
        a, b = xs
        if a.shape == np.broadcast_shapes(a.shape, b.shape):
            return self.ufunc(a, b, out=a)
        return self(*xs)


class Add(_Binary):
    """``a + b`` (ONNX ``Add``)."""

    type = "add"
    ufunc = np.add


class Sub(_Binary):
    """``a - b`` (ONNX ``Sub``)."""

    type = "sub"
    ufunc = np.subtract


class Mul(_Binary):
    """``a * b`` (ONNX ``Mul``)."""

    type = "mul"
    ufunc = np.multiply


class Div(_Binary):
    """``a / b`` (ONNX ``Div``; float division)."""

    type = "div"
    ufunc = np.true_divide


class Sum(Layer):
    """The sum of one or more tensors with broadcasting (ONNX ``Sum``)."""

    type = "sum"
    ARITY = (1, None)
    ARCH_KEYS = None
    INPLACE = True

    def output_shape(self, *shapes: Shape) -> Shape:
        return attrs.broadcast(shapes)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return _broadcast_per_sample(shapes)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        total = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for x in xs[2:]:
            total += x
        return total

    def inplace(self, *xs: np.ndarray) -> np.ndarray:
        total = xs[0]
        if total.shape != np.broadcast_shapes(*(x.shape for x in xs)):
            return self(*xs)
        for x in xs[1:]:
            total += x
        return total


class PRelu(Layer):
    """``x`` where positive, else ``slope * x``; the slope broadcasts to ``x`` (ONNX ``PRelu``)."""

    type = "prelu"
    ARITY = (2, 2)
    ARCH_KEYS = None
    INPLACE = True

    def output_shape(self, *shapes: Shape) -> Shape:
        x, slope = shapes
        if attrs.broadcast([x, slope]) != tuple(x) and len(slope) <= len(x):
            raise attrs.LayerError(
                f"slope {attrs.fmt_shape(slope)} does not broadcast to {attrs.fmt_shape(x)}"
            )
        return attrs.broadcast([x, slope])

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return _broadcast_per_sample(shapes)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        x, slope = xs
        return np.where(x < 0, x * slope, x)

    def inplace(self, *xs: np.ndarray) -> np.ndarray:
        x, slope = xs
        if x.shape != np.broadcast_shapes(x.shape, slope.shape):
            return self(*xs)
        return np.multiply(x, slope, out=x, where=x < 0)
