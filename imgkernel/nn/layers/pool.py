"""Pooling layers: max, average and min pooling over windows, and global pooling.

Inference runs :func:`imgkernel.core.pool.pool2d`/``global_pool``; the window
geometry (pads, ``ceil_mode`` overhang, output size, counted cells) is
:func:`imgkernel.core.geometry.pool_geometry`'s, for inference, shape inference
and training alike. For training, max/min pooling route the gradient to the
(first) winning cell of each window, average pooling spreads it over the
window's counted cells (ONNX semantics: padding, ``ceil_mode``,
``count_include_pad``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from imgkernel.core.geometry import PoolGeometry, pool_geometry
from imgkernel.core.pool import global_pool, pool2d
from imgkernel.core.windows import Border, pad
from imgkernel.errors import UsageError
from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape


@dataclass
class PoolCache:
    """What :func:`pool2d_backward` needs from :func:`pool2d_forward`."""

    mode: str
    x_shape: tuple[int, ...]
    geometry: PoolGeometry
    argmax: np.ndarray | None = None  # (N, C, oh, ow) tap index, max/min
    divisor: np.ndarray | None = None  # (oh, ow), avg


def _taps(geometry: PoolGeometry) -> Iterator[tuple[int, slice, slice]]:
    """(tap index, row slice, column slice) of every window tap in the padded input."""
    (kh, kw), (sh, sw), (dh, dw) = geometry.size, geometry.stride, geometry.dilation
    oh, ow = geometry.out_hw
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            yield i * kw + j, rows, slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


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
) -> tuple[np.ndarray, PoolCache]:
    """Max, min or average pooling of (N, C, H, W) ``x`` as :func:`imgkernel.core.pool.pool2d`.

    Max and min keep the index of the first winning tap of every window for
    :func:`pool2d_backward` (one vectorised compare per tap).
    """
    n, c, h, w = x.shape
    geometry = pool_geometry((h, w), size, stride, padding, dilation, ceil_mode=ceil_mode)
    cache = PoolCache(mode, x.shape, geometry)
    if mode == "avg":
        y = pool2d(
            x,
            geometry.size,
            geometry.stride,
            mode="avg",
            padding=geometry.pads,
            dilation=geometry.dilation,
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
            layout="tensor",
        )
        ch, cw = geometry.counts(count_include_pad)
        cache.divisor = (ch[:, None] * cw[None, :]).astype(x.dtype)
        return y, cache
    fill = -np.inf if mode == "max" else np.inf
    xp = pad(x, geometry.all_pads, Border("constant", fill), dtype=x.dtype)
    best: np.ndarray | None = None
    arg = np.zeros((n, c, *geometry.out_hw), np.int32)
    for tap, rows, cols in _taps(geometry):
        window = xp[:, :, rows, cols]
        if best is None:
            best = window.copy()
            continue
        better = window > best if mode == "max" else window < best
        np.copyto(best, window, where=better)
        np.copyto(arg, np.int32(tap), where=better)
    assert best is not None
    cache.argmax = arg
    return best, cache


def pool2d_backward(cache: PoolCache, dy: np.ndarray) -> np.ndarray:
    """Input gradient of a pooling: to the argmax (max/min) or spread over the window (avg)."""
    n, c, h, w = cache.x_shape
    top, bottom, left, right = cache.geometry.all_pads
    dxp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=dy.dtype)
    if cache.mode == "avg":
        assert cache.divisor is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cache.divisor > 0, dy / cache.divisor, 0).astype(dy.dtype)
    for tap, rows, cols in _taps(cache.geometry):
        if cache.mode == "avg":
            dxp[:, :, rows, cols] += share
        else:
            assert cache.argmax is not None
            dxp[:, :, rows, cols] += np.where(cache.argmax == tap, dy, 0)
    return np.ascontiguousarray(dxp[:, :, top : top + h, left : left + w])


class _Pool(Layer):
    PER_SAMPLE = True
    mode: ClassVar[str] = "max"
    ATTRS = {
        "size": None,
        "stride": None,
        "padding": 0,
        "dilation": 1,
        "ceil_mode": False,
        "count_include_pad": False,
    }
    ARCH_KEYS = frozenset(ATTRS)

    def configure(
        self,
        size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil_mode: Any,
        count_include_pad: Any,
    ) -> None:
        if size is None:
            raise LayerError("missing attribute 'size'")
        self.ceil_mode = attrs.boolean(ceil_mode, "ceil_mode")
        self.count_include_pad = attrs.boolean(count_include_pad, "count_include_pad")
        if not isinstance(size, (list, tuple)) or len(size) == 2:
            self._configure_2d(size, stride, padding, dilation)
            return
        # 1-D or 3-D (and more): pooled one axis at a time
        self.size = attrs.ints(size, "size", 1)
        d = len(self.size)
        self.stride = self.size if stride is None else attrs.tuple_of(stride, d, "stride")
        self.dilation = attrs.tuple_of(dilation, d, "dilation")
        if isinstance(padding, str):
            self.padding = attrs.padding(padding)
        else:
            self.padding = attrs.tuple_of(padding, 2 * d, "padding", 0)

    def _configure_2d(self, size: Any, stride: Any, padding: Any, dilation: Any) -> None:
        self.size = attrs.pair(size, "size")
        self.stride = self.size if stride is None else attrs.pair(stride, "stride")
        self.padding = attrs.padding(padding)
        self.dilation = attrs.pair(dilation, "dilation")
        self._size = attrs.simple(self.size)
        self._kw = {
            "mode": self.mode,
            "padding": attrs.simple(self.padding),
            "dilation": attrs.simple(self.dilation),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "layout": "tensor",
        }
        self._stride = attrs.simple(self.stride)

    def attributes(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "padding": attrs.jsonable_padding(self.padding),
            "dilation": list(self.dilation),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def training_problem(self) -> str | None:
        return None if len(self.size) == 2 else "training supports 2-D pooling only"

    def _axis(self, i: int, n: int) -> tuple[tuple[int, int], dict[str, Any]]:
        """Spatial axis ``i`` of ``n`` cells as a (n x 1) 2-D pooling: size and keywords."""
        pads: Any = self.padding
        if not isinstance(pads, str):
            pads = (pads[2 * i], pads[2 * i + 1], 0, 0)
        kw = {
            "stride": (self.stride[i], 1),
            "padding": pads,
            "dilation": (self.dilation[i], 1),
            "ceil_mode": self.ceil_mode,
        }
        return (self.size[i], 1), kw

    def output_shape(self, shape: Shape) -> Shape:
        d = len(self.size)
        if len(shape) != d + 2:
            raise LayerError(
                f"{self.type} of {d} spatial axes needs a rank-{d + 2} input, "
                f"got {attrs.fmt_shape(shape)}"
            )
        try:
            if d == 2:
                hw = attrs.spatial(shape, self.type)
                geometry = pool_geometry(
                    hw,
                    self.size,
                    self.stride,
                    self.padding,
                    self.dilation,
                    ceil_mode=self.ceil_mode,
                )
                return (shape[0], shape[1], *geometry.out_hw)
            out = list(shape[:2])
            for i, n in enumerate(shape[2:]):
                if n is None:
                    raise LayerError(f"{self.type} needs known spatial sizes")
                size, kw = self._axis(i, n)
                out.append(pool_geometry((n, 1), size, **kw).out_hw[0])
            return tuple(out)
        except UsageError as exc:
            raise LayerError(str(exc)) from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(self.size) == 2:
            return pool2d(x, self._size, self._stride, **self._kw)
        for i in range(len(self.size)):
            shape = x.shape
            size, kw = self._axis(i, shape[2 + i])
            planes = x.reshape(math.prod(shape[: 2 + i]), 1, shape[2 + i], -1)
            kw.update(mode=self.mode, count_include_pad=self.count_include_pad, layout="tensor")
            y = pool2d(planes, size, **kw)
            x = y.reshape(*shape[: 2 + i], y.shape[2], *shape[3 + i :])
        return x

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        return pool2d_forward(
            x,
            self.size,  # type: ignore[arg-type]
            self.stride,  # type: ignore[arg-type]
            mode=self.mode,
            padding=self.padding,
            dilation=self.dilation,  # type: ignore[arg-type]
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
        )

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return pool2d_backward(cache, dy), {}


class MaxPool(_Pool):
    """Max pooling (ONNX ``MaxPool``)."""

    type = "maxpool"
    mode = "max"


class AvgPool(_Pool):
    """Average pooling (ONNX ``AveragePool``)."""

    type = "avgpool"
    mode = "avg"


class MinPool(_Pool):
    """Min pooling (the max pool of the negated input)."""

    type = "minpool"
    mode = "min"


class _GlobalPool(Layer):
    PER_SAMPLE = True
    mode: ClassVar[str] = "avg"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 4:
            if len(shape) < 3:
                raise LayerError(f"{self.type} needs an (N, C, ...) input, got rank {len(shape)}")
            return (shape[0], shape[1]) + (1,) * (len(shape) - 2)
        attrs.spatial(shape, self.type)
        return (shape[0], shape[1], 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            reduce = np.mean if self.mode == "avg" else np.max
            return reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True)
        return global_pool(x, self.mode, layout="tensor")


class GlobalAvgPool(_GlobalPool):
    """Mean of each channel, keeping dims: (N, C, 1, 1) (ONNX ``GlobalAveragePool``)."""

    type = "global_avgpool"
    mode = "avg"

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        return x.mean(axis=(2, 3), keepdims=True), x.shape

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        shape = cache
        scale = dy.dtype.type(1.0 / (shape[2] * shape[3]))
        return np.broadcast_to(dy * scale, shape).copy(), {}


class GlobalMaxPool(_GlobalPool):
    """Maximum of each channel, keeping dims: (N, C, 1, 1) (ONNX ``GlobalMaxPool``)."""

    type = "global_maxpool"
    mode = "max"

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        arg = flat.argmax(axis=2)
        y = np.take_along_axis(flat, arg[:, :, None], axis=2)
        return y.reshape(n, c, 1, 1), (x.shape, arg)

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        shape, arg = cache
        n, c = shape[:2]
        dx = np.zeros((n, c, shape[2] * shape[3]), dy.dtype)
        np.put_along_axis(dx, arg[:, :, None], dy.reshape(n, c, 1), axis=2)
        return dx.reshape(shape), {}
