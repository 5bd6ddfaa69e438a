"""Layers that make tensors: constant, concat, pad (ONNX rules). Inference only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Layer, LayerError, Shape

PAD_MODES = ("constant", "reflect", "edge", "wrap")


class Constant(Layer):
    """A stored tensor (ONNX ``Constant`` or an initializer read as data); it reads nothing."""

    PER_SAMPLE = True

    type = "constant"
    ARRAYS = ("value",)
    ARITY = (0, 0)
    ARCH_KEYS = None

    def configure(self) -> None:
        self.value = self.arrays["value"].view()
        self.value.flags.writeable = False  # shared by every run: never overwritten

    def output_shape(self, *shapes: Shape) -> Shape:
        return tuple(self.value.shape)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.value


class Concat(Layer):
    """Join tensors along ``axis`` (ONNX ``Concat``)."""

    type = "concat"
    ATTRS = {"axis": None}
    ARITY = (1, None)
    ARCH_KEYS = None

    def configure(self, axis: Any) -> None:
        if axis is None:
            raise LayerError("missing attribute 'axis'")
        self.axis = attrs.integer(axis, "axis")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, *shapes: Shape) -> Shape:
        rank = len(shapes[0])
        a = attrs.axis_index(self.axis, rank)
        if any(len(s) != rank for s in shapes):
            raise LayerError(f"inputs of ranks {[len(s) for s in shapes]} cannot be joined")
        out: list[int | None] = []
        for i in range(rank):
            dims = [s[i] for s in shapes]
            if i == a:
                out.append(None if None in dims else sum(d for d in dims if d is not None))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                shown = ", ".join(attrs.fmt_shape(s) for s in shapes)
                raise LayerError(f"cannot join {shown} along axis {a}")
            out.append(known.pop() if known else None)
        return tuple(out)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self.axis % len(shapes[0]) != 0

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return np.concatenate(xs, axis=self.axis)


class Pad(Layer):
    """Pad (or, with negative pads, crop) each axis (ONNX ``Pad``).

    ``pads`` lists the amounts before every axis, then after every axis (as
    ONNX); ``mode`` is constant (``value``), reflect, edge or wrap.
    """

    type = "pad"
    ATTRS = {"pads": None, "mode": "constant", "value": 0.0}
    ARCH_KEYS = None

    def configure(self, pads: Any, mode: Any, value: Any) -> None:
        if pads is None:
            raise LayerError("missing attribute 'pads'")
        self.pads = attrs.ints(pads, "pads")
        if len(self.pads) % 2:
            raise LayerError(f"pads must list 2 numbers per axis, got {list(self.pads)}")
        if mode not in PAD_MODES:
            raise LayerError(f"mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
        self.mode = str(mode)
        self.value = attrs.number(value, "value")

    def attributes(self) -> dict[str, Any]:
        return {"pads": list(self.pads), "mode": self.mode, "value": self.value}

    def _widths(self, rank: int) -> list[tuple[int, int]]:
        if len(self.pads) != 2 * rank:
            raise LayerError(f"{len(self.pads)} pads do not fit a rank-{rank} input")
        return [(self.pads[i], self.pads[i + rank]) for i in range(rank)]

    def output_shape(self, shape: Shape) -> Shape:
        out: list[int | None] = []
        for d, (before, after) in zip(shape, self._widths(len(shape)), strict=True):
            if d is None:
                out.append(None)
                continue
            size = d + before + after
            if size < 0 or (self.mode != "constant" and (before > 0 or after > 0) and d == 0):
                raise LayerError(f"cannot pad an axis of {d} by ({before}, {after})")
            if self.mode == "reflect" and max(before, after) >= d > 0:
                raise LayerError(f"reflect padding of ({before}, {after}) needs more than {d}")
            out.append(size)
        return tuple(out)

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self._widths(len(shapes[0]))[0] == (0, 0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        widths = self._widths(x.ndim)
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
        x = x[crop]
        grow = [(max(b, 0), max(a, 0)) for b, a in widths]
        if self.mode == "constant":
            return np.pad(x, grow, mode="constant", constant_values=np.float32(self.value))
        return np.pad(x, grow, mode=self.mode)  # type: ignore[call-overload]
