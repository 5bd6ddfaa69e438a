"""Layers that only rearrange their input: flatten and reshape (ONNX rules)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape


class _Rearrange(Layer):
    """A layer whose backward pass puts the gradient back into the input's shape."""

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        return self(x), x.shape

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy.reshape(cache), {}


class Flatten(_Rearrange):
    """To 2-D: (attrs.prod(shape[:axis]), attrs.prod(shape[axis:])) as ONNX ``Flatten``."""

    type = "flatten"
    ATTRS = {"axis": 1}

    def configure(self, axis: Any) -> None:
        self.axis = attrs.integer(axis, "axis")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, shape: Shape) -> Shape:
        a = attrs.axis_index(self.axis, len(shape), inclusive=True)
        return (attrs.prod(shape[:a]), attrs.prod(shape[a:]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a = self.axis + x.ndim if self.axis < 0 else self.axis
        return x.reshape(math.prod(x.shape[:a]), -1)


class Reshape(_Rearrange):
    """To 2-D with ONNX ``Reshape`` rules: 0 copies the input dim, -1 is inferred."""

    type = "reshape"
    ATTRS = {"shape": None}
    ARCH_KEYS = None  # made by ONNX import, not written in architecture files

    def configure(self, shape: Any) -> None:
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise LayerError(f"shape must be a list of 2 integers, got {shape!r}")
        self.shape = (
            attrs.integer(shape[0], "shape[0]", -1),
            attrs.integer(shape[1], "shape[1]", -1),
        )
        if self.shape.count(-1) > 1:
            raise LayerError("shape may hold at most one -1")

    def attributes(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def output_shape(self, shape: Shape) -> Shape:
        dims: list[int | None] = []
        for i, d in enumerate(self.shape):
            if d == 0:
                if i >= len(shape):
                    raise LayerError(
                        f"shape[{i}] = 0 copies an axis the rank-{len(shape)} input lacks"
                    )
                dims.append(shape[i])
            else:
                dims.append(d)
        # the batch axis (None) cancels out if it is copied by a 0
        in_none = sum(d is None for d in shape)
        out_none = sum(d is None for d in dims)
        total = attrs.prod(d for d in shape if d is not None)
        known = attrs.prod(d for d in dims if d is not None and d != -1)
        assert total is not None and known is not None
        cannot = LayerError(f"cannot reshape {attrs.fmt_shape(shape)} to {list(self.shape)}")
        if -1 in dims:
            idx = dims.index(-1)
            if in_none > out_none:
                dims[idx] = None
            else:
                if known == 0 or total % known or in_none != out_none:
                    raise cannot
                dims[idx] = total // known
        elif in_none != out_none or known != total:
            raise cannot
        return tuple(dims)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)]
        return x.reshape(dims)
