"""Layers that only rearrange their input: flatten, reshape, transpose, (un)squeeze, identity."""

from __future__ import annotations

import math
from collections.abc import Sequence
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

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return attrs.axis_index(self.axis, len(shapes[0]), inclusive=True) == 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a = self.axis + x.ndim if self.axis < 0 else self.axis
        return x.reshape(math.prod(x.shape[:a]), -1)


class Reshape(_Rearrange):
    """ONNX ``Reshape`` to a constant target: 0 copies the input dim (unless ``allowzero``),
    -1 is inferred."""

    type = "reshape"
    ATTRS = {"shape": None, "allowzero": False}
    ARCH_KEYS = None  # made by ONNX import, not written in architecture files

    def configure(self, shape: Any, allowzero: Any) -> None:
        if not isinstance(shape, (list, tuple)):
            raise LayerError(f"shape must be a list of integers, got {shape!r}")
        self.shape = attrs.ints(shape, "shape", -1)
        self.allowzero = attrs.boolean(allowzero, "allowzero")
        if self.shape.count(-1) > 1:
            raise LayerError("shape may hold at most one -1")
        if self.allowzero and -1 in self.shape and 0 in self.shape:
            raise LayerError("shape may not hold both -1 and 0 with allowzero")

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape)}
        if self.allowzero:
            out["allowzero"] = True
        return out

    def _target(self, shape: Shape) -> list[int | None]:
        dims: list[int | None] = []
        for i, d in enumerate(self.shape):
            if d == 0 and not self.allowzero:
                if i >= len(shape):
                    raise LayerError(
                        f"shape[{i}] = 0 copies an axis the rank-{len(shape)} input lacks"
                    )
                dims.append(shape[i])
            else:
                dims.append(d)
        return dims

    def output_shape(self, shape: Shape) -> Shape:
        dims = self._target(shape)
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

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self.shape[:1] == (0,) and not self.allowzero

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self._target(x.shape))  # type: ignore[arg-type]


class Transpose(_Rearrange):
    """Permute the axes (ONNX ``Transpose``; no ``perm``: reverse them)."""

    type = "transpose"
    ATTRS = {"perm": None}
    ARCH_KEYS = None

    def configure(self, perm: Any) -> None:
        self.perm = None if perm is None else attrs.ints(perm, "perm", 0)

    def attributes(self) -> dict[str, Any]:
        return {"perm": None if self.perm is None else list(self.perm)}

    def _perm(self, rank: int) -> tuple[int, ...]:
        if self.perm is None:
            return tuple(range(rank - 1, -1, -1))
        if sorted(self.perm) != list(range(rank)):
            raise LayerError(f"perm {list(self.perm)} is not a permutation of {rank} axes")
        return self.perm

    def output_shape(self, shape: Shape) -> Shape:
        return tuple(shape[a] for a in self._perm(len(shape)))

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self._perm(len(shapes[0]))[:1] == (0,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(self._perm(x.ndim))

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return dy.transpose(np.argsort(self._perm(dy.ndim))), {}


class Squeeze(_Rearrange):
    """Drop axes of size 1 (ONNX ``Squeeze``; no ``axes``: all of them)."""

    type = "squeeze"
    ATTRS = {"axes": None}
    ARCH_KEYS = None

    def configure(self, axes: Any) -> None:
        self.axes = None if axes is None else attrs.ints(axes, "axes")

    def attributes(self) -> dict[str, Any]:
        return {"axes": None if self.axes is None else list(self.axes)}

    def output_shape(self, shape: Shape) -> Shape:
        if self.axes is None:
            return tuple(d for d in shape if d != 1)
        axes = attrs.axes_of(self.axes, len(shape))
        for a in axes:
            if shape[a] not in (1, None):
                raise LayerError(f"cannot squeeze axis {a} of size {shape[a]}")
        return tuple(d for i, d in enumerate(shape) if i not in axes)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self.axes is not None and 0 not in attrs.axes_of(self.axes, len(shapes[0]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.squeeze(x, axis=None if self.axes is None else tuple(self.axes))


class Unsqueeze(_Rearrange):
    """Insert axes of size 1 at ``axes`` of the output (ONNX ``Unsqueeze``)."""

    type = "unsqueeze"
    ATTRS = {"axes": None}
    ARCH_KEYS = None

    def configure(self, axes: Any) -> None:
        if axes is None:
            raise LayerError("missing attribute 'axes'")
        self.axes = attrs.ints(axes, "axes")

    def attributes(self) -> dict[str, Any]:
        return {"axes": list(self.axes)}

    def output_shape(self, shape: Shape) -> Shape:
        rank = len(shape) + len(self.axes)
        axes = attrs.axes_of(self.axes, rank)
        dims = iter(shape)
        return tuple(1 if i in axes else next(dims) for i in range(rank))

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return 0 not in attrs.axes_of(self.axes, len(shapes[0]) + len(self.axes))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.expand_dims(x, tuple(attrs.axes_of(self.axes, x.ndim + len(self.axes))))


class Identity(_Rearrange):
    """The input itself (ONNX ``Identity``)."""

    PER_SAMPLE = True

    type = "identity"
    ARCH_KEYS = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x
