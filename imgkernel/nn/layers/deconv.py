"""Transposed convolution (1-, 2- or 3-D): the ``conv_transpose`` layer. Inference only.

Each input cell spreads its values, weighted by the kernel, over a window of
the output (the gradient of a convolution with respect to its input): one
matmul per group gives every cell's contribution to every kernel tap, and
one strided slice-add per tap puts them in place (*col2im*); the padding is
then cut off the borders.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Layer, LayerError, Shape


class ConvTranspose(Layer):
    """Transposed convolution (PyTorch ``ConvTranspose2d`` / ONNX ``ConvTranspose``).

    ``weight`` is (C, K/groups, k1, ..., kd) for an (N, C, n1, ..., nd)
    input. Output size per axis: ``stride*(n-1) + output_padding +
    dilation*(k-1) + 1 - pad_begin - pad_end``. ``padding`` lists (begin,
    end) for each spatial axis in turn; a negative pad adds zeros (ONNX
    ``output_shape`` larger than the natural size).
    """

    PER_SAMPLE = True

    type = "conv_transpose"
    ATTRS = {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1}
    ARRAYS = ("weight", "bias")
    OPTIONAL = ("bias",)
    ARCH_KEYS = None

    def configure(
        self, stride: Any, padding: Any, output_padding: Any, dilation: Any, groups: Any
    ) -> None:
        w = self.arrays["weight"]
        if w.ndim < 3 or min(w.shape) < 1:
            raise LayerError(f"weight must be (C, K/groups, k1, ...), got shape {w.shape}")
        d = w.ndim - 2
        self.stride = attrs.tuple_of(stride, d, "stride")
        self.dilation = attrs.tuple_of(dilation, d, "dilation")
        self.output_padding = attrs.tuple_of(output_padding, d, "output_padding", 0)
        self.padding = attrs.tuple_of(padding, 2 * d, "padding", -(1 << 20))
        self.groups = attrs.integer(groups, "groups", 1)
        if w.shape[0] % self.groups:
            raise LayerError(f"groups={self.groups} must divide the {w.shape[0]} input channels")
        for op, s, dl in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= max(s, dl):
                raise LayerError(f"output_padding {op} must be less than the stride or dilation")
        k = w.shape[1] * self.groups
        b = self.arrays.get("bias")
        if b is not None and b.shape != (k,):
            raise LayerError(f"bias must have shape ({k},), got {b.shape}")
        self.weight, self.bias = w, b

    def attributes(self) -> dict[str, Any]:
        return {
            "stride": list(self.stride),
            "padding": list(self.padding),
            "output_padding": list(self.output_padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
        }

    def _full(self, n: int, i: int) -> int:
        """The output size along spatial axis ``i`` before the padding is cut."""
        k = self.weight.shape[2 + i]
        return self.stride[i] * (n - 1) + self.output_padding[i] + self.dilation[i] * (k - 1) + 1

    def output_shape(self, shape: Shape) -> Shape:
        d = self.weight.ndim - 2
        c = self.weight.shape[0]
        if len(shape) != d + 2 or shape[1] != c:
            raise LayerError(
                f"expects an (N, {c}, {d} spatial axes) input, got {attrs.fmt_shape(shape)}"
            )
        out: list[int | None] = [shape[0], self.weight.shape[1] * self.groups]
        for i, n in enumerate(shape[2:]):
            if n is None:
                out.append(None)
                continue
            size = self._full(n, i) - self.padding[2 * i] - self.padding[2 * i + 1]
            if size < 1:
                raise LayerError(f"the output would be empty along spatial axis {i}")
            out.append(size)
        return tuple(out)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        g = self.groups
        cg, kg = c // g, self.weight.shape[1]
        taps = self.weight.shape[2:]
        full = tuple(self._full(s, i) for i, s in enumerate(spatial))
        out = np.zeros((n, kg * g, *full), np.float32)
        flat = x.reshape(n, g, cg, math.prod(spatial))
        for gi in range(g):
            w = self.weight[gi * cg : (gi + 1) * cg].reshape(cg, -1)
            cols = np.matmul(w.T, flat[:, gi])  # (n, kg * taps, cells)
            cols = cols.reshape(n, kg, math.prod(taps), *spatial)
            dst = out[:, gi * kg : (gi + 1) * kg]
            for t, offsets in enumerate(product(*(range(k) for k in taps))):
                window = tuple(
                    slice(o * dl, o * dl + s * (m - 1) + 1, s)
                    for o, dl, s, m in zip(
                        offsets, self.dilation, self.stride, spatial, strict=True
                    )
                )
                dst[(slice(None), slice(None), *window)] += cols[:, :, t]
        y = _crop(out, self.padding) if any(self.padding) else out
        if self.bias is not None:
            y += self.bias.reshape(-1, *([1] * len(spatial)))
        return y


def _crop(full: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    """Cut ``padding`` (begin, end per spatial axis) off ``full``; a negative pad adds zeros."""
    spatial = full.shape[2:]
    sizes = [f - padding[2 * i] - padding[2 * i + 1] for i, f in enumerate(spatial)]
    out = np.zeros((*full.shape[:2], *sizes), np.float32)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for i, (f, size) in enumerate(zip(spatial, sizes, strict=True)):
        begin = padding[2 * i]
        lo, hi = max(begin, 0), min(f, begin + size)
        src.append(slice(lo, hi))
        dst.append(slice(lo - begin, hi - begin))
    out[tuple(dst)] = full[tuple(src)]
    return out
