"""Resizing tensors: the ``resize`` layer (ONNX ``Resize`` and ``Upsample``). Inference only.

Interpolation is separable: along each resized axis the output is a fixed
linear map of the input, an (out, in) matrix whose rows hold the
interpolation weights of every output cell (nearest: one 1; linear: two
weights; cubic: four; with ``antialias`` a wider, downscaled kernel when
shrinking). The matrices follow the ONNX reference implementation (the
coordinate transformation modes, nearest rounding modes, ``exclude_outside``,
``keep_aspect_ratio_policy``, ``tf_crop_and_resize`` with its extrapolation
value) and are built once per input size; each axis is then one matmul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Layer, LayerError, Shape

MODES = ("nearest", "linear", "cubic")
COORDINATES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
)
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
POLICIES = ("stretch", "not_larger", "not_smaller")


def _source(mode: str, n_in: int, n_out: int, scale: float, roi: tuple[float, float]) -> Any:
    """Each output cell's coordinate in the input, and which fall outside (tf_crop_and_resize)."""
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in
    outside = None
    if mode == "align_corners":
        x = np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi
        x = (
            np.full(n_out, (hi - lo) * (n_in - 1) / 2)
            if width == 1
            else (y * (hi - lo) * (n_in - 1) / (width - 1))
        )
        x = x + lo * (n_in - 1)
        outside = (x < 0) | (x > n_in - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = n_in / 2 * (1 - n_out / width)
        x = offset + (y + 0.5) / scale - 0.5
    return x, outside


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


class Resize(Layer):
    """Resize with nearest, linear or cubic interpolation (ONNX ``Resize``).

    Give ``scales`` or ``sizes`` (per axis of ``axes``, default all axes);
    the other attributes are ONNX's, ``roi`` as its input.
    """

    type = "resize"
    ATTRS = {
        "mode": "nearest",
        "scales": None,
        "sizes": None,
        "axes": None,
        "coordinate_transformation_mode": "half_pixel",
        "nearest_mode": "round_prefer_floor",
        "cubic_coeff_a": -0.75,
        "exclude_outside": False,
        "extrapolation_value": 0.0,
        "antialias": False,
        "keep_aspect_ratio_policy": "stretch",
        "roi": None,
    }
    ARCH_KEYS = None

    def configure(self, **a: Any) -> None:
        for key, allowed in (
            ("mode", MODES),
            ("coordinate_transformation_mode", COORDINATES),
            ("nearest_mode", NEAREST),
            ("keep_aspect_ratio_policy", POLICIES),
        ):
            if a[key] not in allowed:
                raise LayerError(f"{key} must be one of {', '.join(allowed)}, got {a[key]!r}")
        self.mode, self.coordinates = a["mode"], a["coordinate_transformation_mode"]
        self.nearest, self.policy = a["nearest_mode"], a["keep_aspect_ratio_policy"]
        self.cubic_a = attrs.number(a["cubic_coeff_a"], "cubic_coeff_a")
        self.extrapolation = attrs.number(a["extrapolation_value"], "extrapolation_value")
        self.exclude_outside = attrs.boolean(a["exclude_outside"], "exclude_outside")
        self.antialias = attrs.boolean(a["antialias"], "antialias")
        if (a["scales"] is None) == (a["sizes"] is None):
            raise LayerError("give one of scales and sizes")
        self.scales = None if a["scales"] is None else tuple(self._numbers(a["scales"], "scales"))
        self.sizes = None if a["sizes"] is None else attrs.ints(a["sizes"], "sizes", 0)
        if self.scales is not None and min(self.scales, default=1) <= 0:
            raise LayerError(f"scales must be positive, got {list(self.scales)}")
        self.axes = None if a["axes"] is None else attrs.ints(a["axes"], "axes")
        self.roi = None if a["roi"] is None else tuple(self._numbers(a["roi"], "roi"))
        self._cache: dict[tuple[int, int, float, tuple[float, float]], Any] = {}

    @staticmethod
    def _numbers(value: Any, what: str) -> list[float]:
        if not isinstance(value, (list, tuple)):
            raise LayerError(f"{what} must be a list of numbers, got {value!r}")
        return [attrs.number(v, what) for v in value]

    def attributes(self) -> dict[str, Any]:
        out = {key: getattr(self, attr) for key, attr in _ATTRIBUTE_NAMES.items()}
        for key in ("scales", "sizes", "axes", "roi"):
            value = getattr(self, key)
            out[key] = None if value is None else list(value)
        return out

    def _axes(self, rank: int) -> tuple[int, ...]:
        """The resized axes in the order scales, sizes and roi list them."""
        if self.axes is None:
            return tuple(range(rank))
        attrs.axes_of(self.axes, rank)  # checks range and repeats
        return tuple(a + rank if a < 0 else a for a in self.axes)

    def _plan(self, shape: Shape) -> list[tuple[float, int | None]]:
        """(scale, output size) of every axis of an input of ``shape``."""
        rank = len(shape)
        axes = self._axes(rank)
        given = self.scales if self.scales is not None else self.sizes
        assert given is not None
        if len(given) != len(axes):
            raise LayerError(f"{len(given)} scales/sizes do not fit {len(axes)} axes")
        plan: list[tuple[float, int | None]] = [(1.0, d) for d in shape]
        if self.scales is not None:
            for a, s in zip(axes, self.scales, strict=True):
                n = shape[a]
                plan[a] = (s, n if s == 1 else None if n is None else int(s * n))
            return plan
        assert self.sizes is not None
        if any(shape[a] is None or shape[a] == 0 for a in axes):
            raise LayerError("resizing to sizes needs known, non-empty input sizes")
        ratios = [size / shape[a] for a, size in zip(axes, self.sizes, strict=True)]  # type: ignore[operator]
        if self.policy != "stretch":
            scale = min(ratios) if self.policy == "not_larger" else max(ratios)
            for a in axes:
                plan[a] = (scale, int(scale * shape[a] + 0.5))  # type: ignore[operator]
            return plan
        for a, size, r in zip(axes, self.sizes, ratios, strict=True):
            plan[a] = (r, size)
        return plan

    def output_shape(self, shape: Shape) -> Shape:
        return tuple(size for _, size in self._plan(shape))

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return self._plan(shapes[0])[0] == (1.0, shapes[0][0]) and self._roi(0, len(shapes[0])) == (
            0.0,
            1.0,
        )

    def _roi(self, axis: int, rank: int) -> tuple[float, float]:
        if self.roi is None or self.coordinates != "tf_crop_and_resize":
            return (0.0, 1.0)
        axes = list(self._axes(rank))
        if axis not in axes:
            return (0.0, 1.0)
        k, n = axes.index(axis), len(axes)
        if len(self.roi) != 2 * n:
            raise LayerError(f"roi must list 2 numbers per resized axis, got {len(self.roi)}")
        return (self.roi[k], self.roi[n + k])

    def _coeffs(self, r: np.ndarray, scale: float) -> np.ndarray:
        """Interpolation weights (n_out, taps) for the fractional positions ``r``."""
        col = r[:, None]
        if self.mode == "nearest":
            if self.nearest == "round_prefer_floor":
                up = col > 0.5
            elif self.nearest == "round_prefer_ceil":
                up = col >= 0.5
            else:
                up = np.full_like(col, self.nearest == "ceil", dtype=bool)
            up = up | (col == 1)
            return np.hstack([~up, up]).astype(np.float64)
        if not self.antialias:
            if self.mode == "linear":
                return np.hstack([1 - col, col])
            return _cubic(np.arange(-1, 3)[None, :] - col, self.cubic_a)
        s = min(scale, 1.0)
        reach = 1 if self.mode == "linear" else 2
        start = math.floor(-reach / s) + 1
        taps = (np.arange(start, 2 - start) - col) * s
        c = np.clip(1 - np.abs(taps), 0, 1) if reach == 1 else _cubic(taps, self.cubic_a)
        return c / c.sum(axis=1, keepdims=True)

    def weights(self, n_in: int, n_out: int, scale: float, roi: tuple[float, float]) -> Any:
        """The (n_out, n_in) interpolation matrix of one axis and its extrapolated rows."""
        key = (n_in, n_out, scale, roi)
        if key in self._cache:
            return self._cache[key]
        x, outside = _source(self.coordinates, n_in, n_out, scale, roi)
        whole = np.floor(x)
        coeffs = self._coeffs(np.where(x == whole, 1.0, x - whole), scale)
        n = coeffs.shape[1]
        pad = math.ceil(n / 2)
        p = np.floor(x + pad)
        frac = x + pad - p
        if n % 2 == 0:
            offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
        else:
            offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
        idx = (p + offset).astype(np.int64)[:, None] + np.arange(n)[None, :] - pad
        if self.exclude_outside:
            coeffs = np.where((idx < 0) | (idx >= n_in), 0.0, coeffs)
            total = coeffs.sum(axis=1, keepdims=True)
            coeffs = coeffs / np.where(total == 0, 1.0, total)
        matrix = np.zeros((n_out, n_in))
        rows = np.repeat(np.arange(n_out), n)
        np.add.at(matrix, (rows, np.clip(idx, 0, n_in - 1).reshape(-1)), coeffs.reshape(-1))
        found = (matrix.T.astype(np.float32), outside)
        self._cache[key] = found
        return found

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x
        for a, (scale, size) in enumerate(self._plan(x.shape)):
            assert size is not None
            roi = self._roi(a, x.ndim)
            if math.isclose(scale, 1.0) and size == y.shape[a] and roi == (0.0, 1.0):
                continue
            if size == 0 or y.shape[a] == 0:
                y = np.zeros((*y.shape[:a], size, *y.shape[a + 1 :]), np.float32)
                continue
            matrix, outside = self.weights(y.shape[a], size, scale, roi)
            moved = np.moveaxis(y, a, -1) @ matrix
            if outside is not None and outside.any():
                moved[..., outside] = np.float32(self.extrapolation)
            y = np.moveaxis(moved, -1, a)
        return np.ascontiguousarray(y, dtype=np.float32)


_ATTRIBUTE_NAMES = {
    "mode": "mode",
    "coordinate_transformation_mode": "coordinates",
    "nearest_mode": "nearest",
    "cubic_coeff_a": "cubic_a",
    "exclude_outside": "exclude_outside",
    "extrapolation_value": "extrapolation",
    "antialias": "antialias",
    "keep_aspect_ratio_policy": "policy",
}
