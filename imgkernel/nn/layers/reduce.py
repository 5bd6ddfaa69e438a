"""Reductions over axes: ``reduce_mean`` (ONNX ``ReduceMean``). Inference only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Layer, Shape


class ReduceMean(Layer):
    """The mean over ``axes`` (null: all axes), keeping them as size 1 with ``keepdims``.

    An empty ``axes`` list reduces nothing when ``noop_with_empty_axes``, else
    every axis (ONNX ``ReduceMean``). Over the spatial axes (``[2, 3]``) this
    is a global average pool.
    """

    type = "reduce_mean"
    ATTRS = {"axes": None, "keepdims": True, "noop_with_empty_axes": False}
    ARCH_KEYS = None

    def configure(self, axes: Any, keepdims: Any, noop_with_empty_axes: Any) -> None:
        self.axes = None if axes is None else attrs.ints(axes, "axes")
        self.keepdims = attrs.boolean(keepdims, "keepdims")
        self.noop = attrs.boolean(noop_with_empty_axes, "noop_with_empty_axes")

    def attributes(self) -> dict[str, Any]:
        return {
            "axes": None if self.axes is None else list(self.axes),
            "keepdims": self.keepdims,
            "noop_with_empty_axes": self.noop,
        }

    def _axes(self, rank: int) -> tuple[int, ...] | None:
        """The reduced axes; None: nothing to reduce."""
        if self.axes is None or not self.axes:
            return None if self.noop else tuple(range(rank))
        return attrs.axes_of(self.axes, rank)

    def output_shape(self, shape: Shape) -> Shape:
        axes = self._axes(len(shape))
        if axes is None:
            return shape
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in axes)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        axes = self._axes(len(shapes[0]))
        return axes is None or 0 not in axes

    def __call__(self, x: np.ndarray) -> np.ndarray:
        axes = self._axes(x.ndim)
        if axes is None:
            return x
        return np.asarray(np.mean(x, axis=axes, keepdims=self.keepdims, dtype=np.float32))
