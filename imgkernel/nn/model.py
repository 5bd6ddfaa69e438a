"""Small CNNs: layers, a sequential model, its ``.npz`` file format, inference.

A :class:`Model` is a list of layers applied in order to an ``(N, C, H, W)``
float32 batch, plus the class ``labels`` and an :class:`InputSpec` telling how
to turn an image into the network's input. Layers are small objects holding
their weights; the work is done by the library's pure functions
(:func:`imgkernel.core.conv.conv2d`, :func:`imgkernel.core.pool.pool2d`, ...).

The file format is described in ``docs/model-format.md``; :func:`load_model`
validates a file completely (shapes are propagated from the input through
every layer) so that a model that loads also runs.

Layer indices are 0-based everywhere (summary rows, error messages, ``until``).

Examples
--------
The lecture notes' example: 64 filters of 3x3 over a 256x256 RGB image.

>>> rng = np.random.default_rng(0)
>>> m = Model.from_layers(
...     [Conv2D("conv1", rng.standard_normal((64, 3, 3, 3)), np.zeros(64))],
...     input_spec=InputSpec(channels=3, height=256, width=256))
>>> print(m.summary())
  #  name   type    output shape    params
  0  conv1  conv2d  64 x 254 x 254   1,792
total parameters: 1,792
"""

from __future__ import annotations

import io as _io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

import numpy as np

from imgkernel.core.conv import conv2d
from imgkernel.core.windows import as_pair, output_size, resolve_padding
from imgkernel.errors import UsageError

FORMAT = "imgkernel-model"
VERSION = 1
MODEL_KEY = "__model__"

Shape = tuple[int | None, ...]


class LayerError(UsageError):
    """A bad layer attribute or shape; the model adds the layer's index and name."""


# ----------------------------------------------------------------------------
# attribute helpers


def _int(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise LayerError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise LayerError(f"{what} must be at least {minimum}, got {value}")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LayerError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise LayerError(f"{what} must be finite, got {value!r}")
    return float(value)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    raise LayerError(f"{what} must be true or false, got {value!r}")


def _pair(value: Any, what: str) -> tuple[int, int]:
    try:
        return as_pair(value, what)
    except UsageError as exc:
        raise LayerError(str(exc)) from None


def _padding(value: Any) -> str | tuple[int, ...]:
    """Normalise a padding spec: "same", "valid" or (top, bottom, left, right)."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name not in ("same", "valid"):
            raise LayerError(f"padding must be 'same', 'valid' or integers, got {value!r}")
        return name
    try:
        return resolve_padding(value, (1, 1), (1, 1))
    except UsageError as exc:
        raise LayerError(str(exc)) from None


def _simple(value: Any) -> Any:
    """The cheapest equivalent form of a pair/padding for the library calls."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return int(value[0])
    return value


def _jsonable_padding(p: str | tuple[int, ...]) -> str | list[int]:
    return p if isinstance(p, str) else list(p)


def _axis(axis: int, rank: int, what: str = "axis", *, inclusive: bool = False) -> int:
    hi = rank if inclusive else rank - 1
    if not -rank <= axis <= hi:
        raise LayerError(f"{what} {axis} is out of range for a rank-{rank} input")
    return axis + rank if axis < 0 else axis


def _prod(dims: Iterable[int | None]) -> int | None:
    total = 1
    for d in dims:
        if d is None:
            return None
        total *= d
    return total


def _fmt_shape(shape: Shape) -> str:
    return " x ".join("N" if d is None else str(d) for d in shape)


def _weight_array(value: Any, what: str, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise LayerError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise LayerError(f"{what} must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise LayerError(f"{what} contains NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)


# ----------------------------------------------------------------------------
# layers


class Layer:
    """Base class: a named step holding attributes and weight arrays.

    Subclasses define ``type``, ``ATTRS`` (attribute name -> default) and
    ``ARRAYS`` (weight names, in file order; ``OPTIONAL`` ones may be absent).
    """

    type: ClassVar[str] = ""
    ATTRS: ClassVar[dict[str, Any]] = {}
    ARRAYS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    #: Elementwise layers define ``inplace(x)``, which may overwrite ``x``.
    INPLACE: ClassVar[bool] = False

    def __init__(self, name: str, *arrays: Any, **kwargs: Any) -> None:
        if len(arrays) > len(self.ARRAYS):
            raise LayerError(f"a {self.type} layer takes at most {len(self.ARRAYS)} arrays")
        for key, value in zip(self.ARRAYS, arrays, strict=False):
            if key in kwargs:
                raise LayerError(f"{key} given twice")
            kwargs[key] = value
        if not isinstance(name, str) or not name:
            raise LayerError(f"layer name must be a non-empty string, got {name!r}")
        self.name = name
        unknown = set(kwargs) - set(self.ATTRS) - set(self.ARRAYS)
        if unknown:
            raise LayerError(
                f"unknown attribute(s) {', '.join(sorted(unknown))} for a {self.type} layer"
            )
        self.arrays: dict[str, np.ndarray] = {}
        for key in self.ARRAYS:
            value = kwargs.get(key)
            if value is None:
                if key not in self.OPTIONAL:
                    raise LayerError(f"missing weight array {key!r}")
                continue
            self.arrays[key] = _weight_array(value, key)
        attrs = {k: kwargs.get(k, d) for k, d in self.ATTRS.items()}
        self.configure(**attrs)

    # -- to be overridden -------------------------------------------------
    def configure(self, *args: Any, **attrs: Any) -> None:
        """Validate and store attributes (and derived constants)."""

    def attributes(self) -> dict[str, Any]:
        """Attributes as written to the model file (JSON values)."""
        return {}

    def output_shape(self, shape: Shape) -> Shape:
        """Shape of the output for an input of ``shape`` (None = any batch size)."""
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- common -------------------------------------------------------------
    @property
    def param_count(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))

    def spec(self) -> dict[str, Any]:
        """The layer's JSON entry; weights are referred to by npz entry name."""
        out: dict[str, Any] = {"type": self.type, "name": self.name}
        out.update(self.attributes())
        for key in self.arrays:
            out[key] = f"{self.name}.{key}"
        return out

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self.attributes().items())
        return f"{type(self).__name__}({self.name!r}{', ' if attrs else ''}{attrs})"


def _spatial(shape: Shape, what: str) -> tuple[int, int]:
    if len(shape) != 4 or shape[2] is None or shape[3] is None:
        raise LayerError(f"{what} needs an (N, C, H, W) input, got {_fmt_shape(shape)}")
    return int(shape[2]), int(shape[3])


class Conv2D(Layer):
    """2-D convolution (PyTorch ``Conv2d`` / ONNX ``Conv``) via :func:`conv2d`."""

    type = "conv2d"
    ATTRS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    ARRAYS = ("weight", "bias")
    OPTIONAL = ("bias",)

    def configure(self, stride: Any, padding: Any, dilation: Any, groups: Any) -> None:
        w = self.arrays["weight"]
        if w.ndim != 4:
            raise LayerError(f"weight must be 4-D (K, C/groups, kh, kw), got shape {w.shape}")
        if min(w.shape) < 1:
            raise LayerError(f"weight shape {w.shape} has an empty axis")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.padding = _padding(padding)
        self.groups = _int(groups, "groups", 1)
        if w.shape[0] % self.groups:
            raise LayerError(f"groups={self.groups} must divide the {w.shape[0]} filters")
        b = self.arrays.get("bias")
        if b is not None and b.shape != (w.shape[0],):
            raise LayerError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
        self.weight, self.bias = w, b
        self._kw = {
            "stride": _simple(self.stride),
            "padding": _simple(self.padding),
            "dilation": _simple(self.dilation),
            "groups": self.groups,
        }

    def attributes(self) -> dict[str, Any]:
        return {
            "stride": list(self.stride),
            "padding": _jsonable_padding(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
        }

    def output_shape(self, shape: Shape) -> Shape:
        h, w = _spatial(shape, "conv2d")
        k, cg, kh, kw = self.weight.shape
        if shape[1] != cg * self.groups:
            raise LayerError(
                f"weight expects {cg * self.groups} input channels "
                f"({cg} per group x {self.groups}), got {shape[1]}"
            )
        pads = resolve_padding(self.padding, (h, w), (kh, kw), self.stride, self.dilation)
        oh = output_size(h, kh, self.stride[0], self.dilation[0], pads[0], pads[1])
        ow = output_size(w, kw, self.stride[1], self.dilation[1], pads[2], pads[3])
        if oh < 1 or ow < 1:
            raise LayerError(f"the {kh}x{kw} kernel does not fit the padded {h}x{w} input")
        return (shape[0], k, oh, ow)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return conv2d(x, self.weight, self.bias, **self._kw)


class _Pool(Layer):
    mode: ClassVar[str] = "max"
    ATTRS = {
        "size": None,
        "stride": None,
        "padding": 0,
        "dilation": 1,
        "ceil_mode": False,
        "count_include_pad": False,
    }

    def configure(self, size, stride, padding, dilation, ceil_mode, count_include_pad) -> None:  # noqa: E501
        if size is None:
            raise LayerError("missing attribute 'size'")
        self.size = _pair(size, "size")
        self.stride = self.size if stride is None else _pair(stride, "stride")
        self.padding = _padding(padding)
        self.dilation = _pair(dilation, "dilation")
        self.ceil_mode = _bool(ceil_mode, "ceil_mode")
        self.count_include_pad = _bool(count_include_pad, "count_include_pad")
        self._size = _simple(self.size)
        self._kw = {
            "mode": self.mode,
            "padding": _simple(self.padding),
            "dilation": _simple(self.dilation),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "layout": "tensor",
        }
        self._stride = _simple(self.stride)

    def attributes(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "padding": _jsonable_padding(self.padding),
            "dilation": list(self.dilation),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def output_shape(self, shape: Shape) -> Shape:
        h, w = _spatial(shape, self.type)
        pads = resolve_padding(self.padding, (h, w), self.size, self.stride, self.dilation)
        oh = output_size(
            h,
            self.size[0],
            self.stride[0],
            self.dilation[0],
            pads[0],
            pads[1],
            ceil_mode=self.ceil_mode,
        )
        ow = output_size(
            w,
            self.size[1],
            self.stride[1],
            self.dilation[1],
            pads[2],
            pads[3],
            ceil_mode=self.ceil_mode,
        )
        if oh < 1 or ow < 1:
            raise LayerError(
                f"the {self.size[0]}x{self.size[1]} window does not fit the {h}x{w} input"
            )
        return (shape[0], shape[1], oh, ow)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from imgkernel.core.pool import pool2d

        return pool2d(x, self._size, self._stride, **self._kw)


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
    mode: ClassVar[str] = "avg"

    def output_shape(self, shape: Shape) -> Shape:
        _spatial(shape, self.type)
        return (shape[0], shape[1], 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from imgkernel.core.pool import global_pool

        return global_pool(x, self.mode, layout="tensor")


class GlobalAvgPool(_GlobalPool):
    """Mean of each channel, keeping dims: (N, C, 1, 1) (ONNX ``GlobalAveragePool``)."""

    type = "global_avgpool"
    mode = "avg"


class GlobalMaxPool(_GlobalPool):
    """Maximum of each channel, keeping dims: (N, C, 1, 1) (ONNX ``GlobalMaxPool``)."""

    type = "global_maxpool"
    mode = "max"


class ReLU(Layer):
    type = "relu"
    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, np.float32(0))

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, np.float32(0), out=x)


class LeakyReLU(Layer):
    type = "leaky_relu"
    ATTRS = {"alpha": 0.01}

    def configure(self, alpha: Any) -> None:
        self.alpha = _float(alpha, "alpha")
        self._a = np.float32(self.alpha)

    def attributes(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.where(x < 0, x * self._a, x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.multiply(x, self._a, out=x, where=x < 0)


class Sigmoid(Layer):
    type = "sigmoid"

    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(x, out=x)


class Tanh(Layer):
    type = "tanh"

    INPLACE = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def inplace(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x, out=x)


class Clip(Layer):
    type = "clip"
    ATTRS = {"min": None, "max": None}

    def configure(self, min: Any, max: Any) -> None:  # noqa: A002
        self.min = None if min is None else _float(min, "min")
        self.max = None if max is None else _float(max, "max")
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

    INPLACE = True

    def inplace(self, x: np.ndarray) -> np.ndarray:
        if self.min is not None:
            np.maximum(x, np.float32(self.min), out=x)
        if self.max is not None:
            np.minimum(x, np.float32(self.max), out=x)
        return x


class Softmax(Layer):
    """Softmax along one axis (ONNX opset-13 ``Softmax``; default the last)."""

    type = "softmax"
    ATTRS = {"axis": -1}

    def configure(self, axis: Any) -> None:
        self.axis = _int(axis, "axis")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, shape: Shape) -> Shape:
        _axis(self.axis, len(shape))
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
        e /= np.sum(e, axis=self.axis, keepdims=True)
        return e


class Flatten(Layer):
    """To 2-D: (prod(shape[:axis]), prod(shape[axis:])) as ONNX ``Flatten``."""

    type = "flatten"
    ATTRS = {"axis": 1}

    def configure(self, axis: Any) -> None:
        self.axis = _int(axis, "axis")

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, shape: Shape) -> Shape:
        a = _axis(self.axis, len(shape), inclusive=True)
        return (_prod(shape[:a]), _prod(shape[a:]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a = self.axis + x.ndim if self.axis < 0 else self.axis
        return x.reshape(math.prod(x.shape[:a]), -1)


class Reshape(Layer):
    """To 2-D with ONNX ``Reshape`` rules: 0 copies the input dim, -1 is inferred."""

    type = "reshape"
    ATTRS = {"shape": None}

    def configure(self, shape: Any) -> None:
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise LayerError(f"shape must be a list of 2 integers, got {shape!r}")
        self.shape = (_int(shape[0], "shape[0]", -1), _int(shape[1], "shape[1]", -1))
        if self.shape.count(-1) > 1:
            raise LayerError("shape may hold at most one -1")

    def attributes(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def _target(self, shape: Shape) -> Shape:
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
        total = _prod(d for d in shape if d is not None)
        known = _prod(d for d in dims if d is not None and d != -1)
        assert total is not None and known is not None
        if -1 in dims:
            idx = dims.index(-1)
            if in_none > out_none:
                dims[idx] = None
            else:
                if known == 0 or total % known or in_none != out_none:
                    raise LayerError(f"cannot reshape {_fmt_shape(shape)} to {list(self.shape)}")
                dims[idx] = total // known
        elif in_none != out_none or (in_none == 0 and known != total):
            raise LayerError(f"cannot reshape {_fmt_shape(shape)} to {list(self.shape)}")
        elif known != total:
            raise LayerError(f"cannot reshape {_fmt_shape(shape)} to {list(self.shape)}")
        return tuple(dims)

    def output_shape(self, shape: Shape) -> Shape:
        return self._target(shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)]
        return x.reshape(dims)


class Dense(Layer):
    """Fully connected: ``y = x @ weight.T + bias`` on the last axis (PyTorch ``Linear``).

    ``transpose_input`` (from ONNX ``Gemm`` with ``transA=1``) uses ``x.T`` for
    a 2-D input instead.
    """

    type = "dense"
    ATTRS = {"transpose_input": False}
    ARRAYS = ("weight", "bias")
    OPTIONAL = ("bias",)

    def configure(self, transpose_input: Any) -> None:
        w = self.arrays["weight"]
        if w.ndim != 2 or min(w.shape) < 1:
            raise LayerError(f"weight must be 2-D (out, in), got shape {w.shape}")
        b = self.arrays.get("bias")
        if b is not None and b.shape != (w.shape[0],):
            raise LayerError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
        self.transpose_input = _bool(transpose_input, "transpose_input")
        self.weight, self.bias = w, b
        self._wt = np.ascontiguousarray(w.T)

    def attributes(self) -> dict[str, Any]:
        return {"transpose_input": self.transpose_input} if self.transpose_input else {}

    def output_shape(self, shape: Shape) -> Shape:
        n_in = self.weight.shape[1]
        if self.transpose_input:
            if len(shape) != 2:
                raise LayerError(f"transpose_input needs a 2-D input, got {_fmt_shape(shape)}")
            shape = (shape[1], shape[0])
        if len(shape) < 1 or shape[-1] != n_in:
            got = (
                "an unknown number of"
                if shape and shape[-1] is None
                else (shape[-1] if shape else "no")
            )
            raise LayerError(
                f"weight expects {n_in} input features, got {got} ({_fmt_shape(shape)})"
            )
        return (*shape[:-1], self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.transpose_input:
            x = x.T
        y = x @ self._wt
        if self.bias is not None:
            y += self.bias
        return y


class BatchNorm(Layer):
    """Inference batch normalisation over axis 1 (ONNX ``BatchNormalization``)."""

    type = "batchnorm"
    ATTRS = {"epsilon": 1e-5}
    ARRAYS = ("scale", "bias", "mean", "var")

    def configure(self, epsilon: Any) -> None:
        self.epsilon = _float(epsilon, "epsilon")
        shapes = {k: a.shape for k, a in self.arrays.items()}
        if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
            raise LayerError(f"scale, bias, mean and var must be 1-D of one length, got {shapes}")
        var = self.arrays["var"].astype(np.float64)
        if np.any(var + self.epsilon <= 0):
            raise LayerError("var + epsilon must be positive")
        mul = self.arrays["scale"] / np.sqrt(var + self.epsilon)
        self.multiplier = mul.astype(np.float32)
        self.shift = (self.arrays["bias"] - self.arrays["mean"] * mul).astype(np.float32)

    def attributes(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def output_shape(self, shape: Shape) -> Shape:
        c = self.multiplier.shape[0]
        if len(shape) < 2 or shape[1] != c:
            raise LayerError(f"expects {c} channels on axis 1, got {_fmt_shape(shape)}")
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        extra = (1,) * (x.ndim - 2)
        c = self.multiplier.shape[0]
        return x * self.multiplier.reshape(c, *extra) + self.shift.reshape(c, *extra)


class Dropout(Layer):
    """Identity at inference."""

    type = "dropout"
    ATTRS = {"rate": 0.5}

    def configure(self, rate: Any) -> None:
        self.rate = _float(rate, "rate")
        if not 0 <= self.rate < 1:
            raise LayerError(f"dropout rate must be in [0, 1), got {self.rate!r}")

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (
        Conv2D,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        Clip,
        Softmax,
        MaxPool,
        AvgPool,
        MinPool,
        GlobalAvgPool,
        GlobalMaxPool,
        Flatten,
        Dense,
        BatchNorm,
        Dropout,
        Reshape,
    )
}


def make_layer(type: str, name: str, **kwargs: Any) -> Layer:  # noqa: A002
    """Build a layer from its type name, attributes and weight arrays."""
    cls = LAYER_TYPES.get(type)
    if cls is None:
        raise LayerError(f"unknown layer type {type!r}; known: {', '.join(LAYER_TYPES)}")
    return cls(name, **kwargs)


# ----------------------------------------------------------------------------
# input spec

RESIZE_MODES = ("stretch", "fit", "crop", "none")
#: Largest input height/width a model may declare (a sanity limit on file contents).
MAX_INPUT_SIDE = 16384


@dataclass
class InputSpec:
    """How an image becomes the network's input.

    ``value = (pixel_0_255 * scale - mean[c]) / std[c]`` after converting to
    ``color`` and resizing to ``height`` x ``width``.
    """

    channels: int = 3
    height: int = 224
    width: int = 224
    color: str | None = None
    resize: str = "stretch"
    scale: float = 1 / 255
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.channels = _int(self.channels, "input channels")
        if self.channels not in (1, 3):
            raise UsageError(f"input channels must be 1 or 3, got {self.channels}")
        expected = "L" if self.channels == 1 else "RGB"
        if self.color is None:
            self.color = expected
        if self.color != expected:
            raise UsageError(
                f"input color {self.color!r} does not match {self.channels} channel(s)"
                f" (expected {expected!r})"
            )
        self.height = _int(self.height, "input height", 1)
        self.width = _int(self.width, "input width", 1)
        for key in ("height", "width"):
            if getattr(self, key) > MAX_INPUT_SIDE:
                raise UsageError(
                    f"input {key} must be at most {MAX_INPUT_SIDE}, got {getattr(self, key)}"
                )
        if self.resize not in RESIZE_MODES:
            raise UsageError(
                f"input resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )
        self.scale = _float(self.scale, "input scale")
        for key, default in (("mean", 0.0), ("std", 1.0)):
            vals = getattr(self, key)
            if vals is None or (isinstance(vals, list) and not vals):
                vals = [default] * self.channels
            if isinstance(vals, (int, float)):
                vals = [vals] * self.channels
            if not isinstance(vals, (list, tuple)) or len(vals) != self.channels:
                raise UsageError(f"input {key} must list {self.channels} number(s), got {vals!r}")
            setattr(self, key, [_float(v, f"input {key}") for v in vals])
        if any(s == 0 for s in self.std):
            raise UsageError("input std must not be zero")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "color": self.color,
            "height": self.height,
            "width": self.width,
            "resize": self.resize,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_json(cls, data: Any) -> InputSpec:
        if not isinstance(data, dict):
            raise UsageError(f"model input spec must be an object, got {data!r}")
        unknown = set(data) - {
            "channels",
            "color",
            "height",
            "width",
            "resize",
            "scale",
            "mean",
            "std",
        }
        if unknown:
            raise UsageError(f"unknown input spec key(s): {', '.join(sorted(unknown))}")
        for key in ("channels", "height", "width"):
            if key not in data:
                raise UsageError(f"model input spec lacks {key!r}")
        return cls(**data)


# ----------------------------------------------------------------------------
# model


@dataclass
class SummaryRow:
    index: int
    name: str
    type: str
    output_shape: Shape
    params: int


@dataclass
class Summary:
    """Rows of (index, name, type, output shape, parameter count) and the total.

    ``str(summary)`` is a text table; shapes omit the batch axis when it is
    the leading (any-size) axis.
    """

    input_shape: tuple[int, int, int]
    rows: list[SummaryRow]
    total_params: int

    def __str__(self) -> str:
        def shape_text(s: Shape) -> str:
            return _fmt_shape(s[1:] if s and s[0] is None else s)

        table = [("#", "name", "type", "output shape", "params")]
        for r in self.rows:
            table.append(
                (str(r.index), r.name, r.type, shape_text(r.output_shape), f"{r.params:,}")
            )
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines = []
        for row in table:
            cells = [
                row[0].rjust(widths[0]),
                row[1].ljust(widths[1]),
                row[2].ljust(widths[2]),
                row[3].ljust(widths[3]),
                row[4].rjust(widths[4]),
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append(f"total parameters: {self.total_params:,}")
        return "\n".join(lines)


class Model:
    """A sequential CNN: layers, class labels and an input spec.

    Build with :meth:`from_layers` (validates shapes) or :func:`load_model`.
    Call ``model(x)`` or ``model.forward(x, until=...)`` on (N, C, H, W) input.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> None:
        self.layers = list(layers)
        self.labels = [str(s) for s in (labels or [])]
        self.input_spec = input_spec or InputSpec()
        self.description = str(description)
        self.shapes = self._validate()

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[Layer],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> Model:
        return cls(layers, labels, input_spec, description)

    # -- validation -----------------------------------------------------
    def _validate(self) -> list[Shape]:
        shapes: list[Shape] = []
        shape: Shape = (None, *self.input_spec.shape)
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise UsageError(f"layer {i} is not a Layer: {layer!r}")
            if layer.name in seen:
                raise UsageError(f"layer {i} ({layer.name!r}): duplicate layer name")
            seen.add(layer.name)
            try:
                shape = layer.output_shape(shape)
            except UsageError as exc:
                raise UsageError(f"layer {i} ({layer.name!r}, {layer.type}): {exc}") from None
            shapes.append(shape)
        if self.labels:
            out = shapes[-1] if shapes else (None, *self.input_spec.shape)
            if len(out) != 2 or out[1] != len(self.labels):
                raise UsageError(
                    f"the model has {len(self.labels)} labels but its output is "
                    f"{_fmt_shape(out)}; expected N x {len(self.labels)}"
                )
        return shapes

    # -- queries --------------------------------------------------------
    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1] if self.shapes else (None, *self.input_spec.shape)

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def layer_index(self, key: int | str) -> int:
        """Index of a layer given by index (negative counts from the end) or name."""
        n = len(self.layers)
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            for i, layer in enumerate(self.layers):
                if layer.name == key:
                    return i
            names = ", ".join(layer.name for layer in self.layers)
            raise UsageError(f"no layer named {key!r}; layers: {names}")
        idx = int(key)
        if not -n <= idx < n:
            raise UsageError(
                f"layer index {idx} out of range: the model has {n} layers (0-{n - 1})"
            )
        return idx % n

    def layer(self, key: int | str) -> Layer:
        return self.layers[self.layer_index(key)]

    def summary(self) -> Summary:
        rows = [
            SummaryRow(i, layer.name, layer.type, shape, layer.param_count)
            for i, (layer, shape) in enumerate(zip(self.layers, self.shapes, strict=True))
        ]
        return Summary(self.input_spec.shape, rows, self.param_count)

    # -- inference ----------------------------------------------------------
    def forward(self, x: np.ndarray, until: int | str | None = None) -> np.ndarray:
        """Run the layers on ``x`` (N, C, H, W); stop after layer ``until`` if given.

        An empty batch (N = 0) gives an empty float32 result of the inferred shape.
        """
        x = np.asarray(x)
        expect = self.input_spec.shape
        if x.ndim != 4 or x.shape[1:] != expect:
            raise UsageError(
                f"model input must be N x {_fmt_shape(expect)}, got {_fmt_shape(x.shape)}"
            )
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        stop = len(self.layers) if until is None else self.layer_index(until) + 1
        if x.shape[0] == 0:
            # an empty batch: every unknown dim of the inferred shape is a
            # multiple of the batch size, so 0
            shape = self.shapes[stop - 1] if stop else (None, *expect)
            return np.zeros(tuple(0 if d is None else d for d in shape), np.float32)
        given = x
        for layer in self.layers[:stop]:
            # elementwise layers overwrite intermediate results, never the caller's array
            if (
                layer.INPLACE
                and x.dtype == np.float32
                and x.flags.writeable
                and not np.may_share_memory(x, given)
            ):
                x = layer.inplace(x)  # type: ignore[attr-defined]
            else:
                x = layer(x)
        return x

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"Model({len(self.layers)} layers, {self.param_count:,} params, "
            f"input {_fmt_shape(self.input_spec.shape)}, {len(self.labels)} labels)"
        )

    # -- serialisation ------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "input": self.input_spec.to_json(),
            "labels": list(self.labels),
            "layers": [layer.spec() for layer in self.layers],
        }
        if self.description:
            out["description"] = self.description
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            f"{layer.name}.{key}": arr for layer in self.layers for key, arr in layer.arrays.items()
        }


# ----------------------------------------------------------------------------
# load / save


def save_model(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` as an imgkernel ``.npz`` file, atomically.

    Written by :func:`imgkernel.images.io.deliver`: a temporary file beside the target
    then ``os.replace``; a new file gets the umask's permissions, a replaced
    one keeps its own. A missing directory is a :class:`UsageError` naming
    ``path``; ``"-"`` writes to standard output (not to a terminal).
    """
    from imgkernel.images import deliver

    target = os.fspath(path)
    header = np.array(json.dumps(model.to_json(), indent=1))
    entries = {MODEL_KEY: header, **model.arrays()}

    def encode(fh: IO[bytes]) -> None:
        np.savez_compressed(fh, **entries)  # type: ignore[arg-type]

    deliver(target, encode)


def _bundled_dir():
    from importlib.resources import files

    return files("imgkernel.nn").joinpath("models")


def list_bundled_models() -> list[str]:
    """Names of the models shipped in the package (``imgkernel/models/*.npz``)."""
    try:
        entries = list(_bundled_dir().iterdir())
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    return sorted(e.name[:-4] for e in entries if e.name.endswith(".npz"))


def _decode_header(raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype.kind == "U" and raw.ndim in (0, 1):
        text = "".join(raw.reshape(-1).tolist())
    elif raw.dtype == np.uint8 and raw.ndim == 1:
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("the model header is not valid UTF-8") from None
    elif raw.dtype.kind == "S" and raw.ndim in (0, 1):
        text = b"".join(raw.reshape(-1).tolist()).decode("utf-8", "replace")
    else:
        raise UsageError(
            f"the {MODEL_KEY} entry must be a unicode string or uint8 bytes, got "
            f"{raw.dtype} of shape {raw.shape}"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; so is a number over Python's digit
        # limit, and deep nesting exhausts the recursion limit
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"the model header is not valid JSON: {detail}") from None
    if not isinstance(data, dict):
        raise UsageError("the model header must be a JSON object")
    return data


def model_from_json(header: dict[str, Any], arrays: dict[str, np.ndarray] | Any) -> Model:
    """Build and validate a model from its header and a mapping of npz entries."""
    if header.get("format") != FORMAT:
        raise UsageError(
            f"not an imgkernel model (format is {header.get('format')!r}, expected {FORMAT!r})"
        )
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"bad model format version {version!r}")
    if version > VERSION:
        raise UsageError(
            f"the model uses format version {version}; this imgkernel reads version {VERSION} "
            "(upgrade imgkernel)"
        )
    unknown = set(header) - {"format", "version", "input", "labels", "layers", "description"}
    if unknown:
        raise UsageError(f"unknown model header key(s): {', '.join(sorted(unknown))}")
    if "input" not in header:
        raise UsageError("the model header lacks the 'input' spec")
    spec = InputSpec.from_json(header["input"])
    labels = header.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise UsageError("model labels must be a list of strings")
    entries = header.get("layers")
    if not isinstance(entries, list):
        raise UsageError("the model header must hold a list of layers")
    available = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays)
    layers: list[Layer] = []
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"layer {i} ({name!r})"
        if not isinstance(entry, dict):
            raise UsageError(f"layer {i}: must be an object, got {entry!r}")
        kind = entry.get("type")
        if kind not in LAYER_TYPES:
            raise UsageError(
                f"{where}: unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}"
            )
        cls = LAYER_TYPES[kind]
        where = f"layer {i} ({name!r}, {kind})"
        kwargs: dict[str, Any] = {}
        for key, value in entry.items():
            if key in ("type", "name"):
                continue
            if key in cls.ARRAYS:
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise UsageError(f"{where}: {key} must name an array entry, got {value!r}")
                if value not in available:
                    raise UsageError(f"{where}: missing array {value!r} ({key})")
                try:
                    kwargs[key] = arrays[value]
                except ValueError as exc:
                    raise UsageError(
                        f"{where}: array {value!r} cannot be read without pickle ({exc})"
                    ) from None
            else:
                kwargs[key] = value
        try:
            layers.append(cls(name, **kwargs))  # type: ignore[arg-type]
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return Model(layers, labels, spec, header.get("description", "") or "")


def load_model(path_or_name: str | os.PathLike[str]) -> Model:
    """Load and validate a model file, or a bundled model by name."""
    source = os.fspath(path_or_name)
    if not os.path.exists(source):
        stem = source[:-4] if source.endswith(".npz") else source
        if os.sep not in source and "/" not in source and stem in list_bundled_models():
            data = _bundled_dir().joinpath(stem + ".npz").read_bytes()
            return _load(_io.BytesIO(data), f"bundled model {stem!r}")
        bundled = ", ".join(list_bundled_models()) or "none"
        raise UsageError(f"no model file or bundled model {source!r} (bundled: {bundled})")
    if os.path.isdir(source):
        raise UsageError(f"{source!r} is a directory, not a model file")
    return _load(source, source)


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip entry; an empty zip
_NPY_MAGIC = b"\x93NUMPY"


def _not_npz_reason(source: Any) -> str | None:
    """Why ``source`` is not a zip archive, from its first bytes (None: it is one).

    ``np.load(allow_pickle=False)`` says "contains pickled (object) data" for
    any file that is neither zip nor .npy, so the reason is found here instead.
    """
    if hasattr(source, "read"):
        pos = source.tell()
        head = source.read(8)
        source.seek(pos)
    else:
        with open(source, "rb") as fh:
            head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle; imgkernel never unpickles model files"
    return "not a zip archive"


def _load(source: Any, label: str) -> Model:
    try:
        reason = _not_npz_reason(source)
    except OSError as exc:
        raise UsageError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if reason is not None:
        raise UsageError(f"{label}: not an npz model file ({reason})")
    try:
        archive = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{label}: not an npz model file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"{label}: not an npz model file (a single .npy array)")
    with archive:
        if MODEL_KEY not in archive.files:
            raise UsageError(f"{label}: not an imgkernel model (no {MODEL_KEY} entry)")
        try:
            raw = archive[MODEL_KEY]
        except ValueError:
            raise UsageError(
                f"{label}: the {MODEL_KEY} entry is a pickled object array; "
                "store the JSON as a string, not an object"
            ) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{label}: corrupt model file ({exc})") from None
        try:
            header = _decode_header(raw)
            return model_from_json(header, archive)
        except UsageError as exc:
            raise UsageError(f"{label}: {exc}") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{label}: corrupt model file ({exc})") from None


# ----------------------------------------------------------------------------
# images in, classes out


def _to_float_image(image: Any) -> np.ndarray:
    """(H, W, C) float32 in 0..255 from an array or an imgkernel.images.io Image."""
    max_value = None
    if hasattr(image, "pixels"):
        max_value = getattr(image, "max_value", None)
        image = image.pixels
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(f"an image must be (H, W) or (H, W, 1-4), got shape {arr.shape}")
    if max_value is None:
        if arr.dtype == np.uint8 or arr.dtype == np.bool_:
            max_value = 255 if arr.dtype == np.uint8 else 1
        elif arr.dtype == np.uint16:
            max_value = 65535
        elif np.issubdtype(arr.dtype, np.floating):
            max_value = 1.0
        elif np.issubdtype(arr.dtype, np.integer):
            max_value = 255
        else:
            raise UsageError(f"unsupported image dtype {arr.dtype}")
    out = arr.astype(np.float32)
    if float(max_value) != 255.0:
        out *= np.float32(255.0 / float(max_value))
    # drop alpha: channels 2 (LA) and 4 (RGBA)
    if out.shape[2] == 2:
        out = out[:, :, :1]
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return out


def _resize(img: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if mode == "none":
        raise UsageError(
            f"the image is {w}x{h} but the model takes {width}x{height} (resize is 'none')"
        )

    def resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
        planes = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(a[:, :, c]), mode="F").resize(
                    size_wh, Image.Resampling.BILINEAR
                )
            )
            for c in range(a.shape[2])
        ]
        return np.stack(planes, axis=2)

    if mode == "stretch":
        return resize(img, (width, height))
    if mode == "fit":
        s = min(height / h, width / w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        small = resize(img, (nw, nh))
        out = np.zeros((height, width, img.shape[2]), np.float32)
        top, left = (height - nh) // 2, (width - nw) // 2
        out[top : top + nh, left : left + nw] = small
        return out
    # crop: cover then cut the centre
    s = max(height / h, width / w)
    nh, nw = max(height, round(h * s)), max(width, round(w * s))
    big = resize(img, (nw, nh))
    top, left = (nh - height) // 2, (nw - width) // 2
    return big[top : top + height, left : left + width]


def prepare_image(model: Model | InputSpec, image: Any) -> np.ndarray:
    """One image -> (C, H, W) float32 network input (see :func:`prepare_images`)."""
    spec = model.input_spec if isinstance(model, Model) else model
    img = _to_float_image(image)
    if spec.channels == 1 and img.shape[2] == 3:
        # ITU-R 601-2 luma, as Pillow's convert("L")
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    elif spec.channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    img = _resize(img, spec.height, spec.width, spec.resize)
    chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    chw *= np.float32(spec.scale)
    mean = np.asarray(spec.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(-1, 1, 1)
    if np.any(mean) or np.any(std != 1):
        chw = (chw - mean) / std
    return chw


def prepare_images(model: Model | InputSpec, images: Iterable[Any]) -> np.ndarray:
    """Images -> one (N, C, H, W) float32 batch following the model's input spec.

    Each image is an ``(H, W)``/``(H, W, C)`` array (uint8 0-255, uint16
    0-65535 or float 0-1) or an :class:`imgkernel.images.io.Image`. Alpha is dropped,
    grey/colour converted to the spec's ``color`` (ITU-R 601 luma for L),
    resized with Pillow's bilinear filter per ``resize``, then
    ``(v * scale - mean) / std`` per channel, with ``v`` on a 0-255 scale.
    """
    batch = [prepare_image(model, im) for im in images]
    if not batch:
        spec = model.input_spec if isinstance(model, Model) else model
        return np.zeros((0, *spec.shape), np.float32)
    return np.stack(batch)


def _softmax_last(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def predict_proba(model: Model, batch: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, K) for a prepared batch.

    If the last (non-dropout) layer is not a softmax, the outputs are taken as
    logits and a softmax is applied.
    """
    n = batch.shape[0]
    if len(model.output_shape) != 2:
        raise UsageError(
            f"the model's output is {_fmt_shape(model.output_shape)}, not N x classes; "
            "it cannot classify"
        )
    tail = [layer for layer in model.layers if layer.type != "dropout"]
    has_softmax = bool(tail) and tail[-1].type == "softmax"
    outs = []
    for b0 in range(0, max(n, 1), batch_size):
        out = model.forward(batch[b0 : b0 + batch_size])
        outs.append(out if has_softmax else _softmax_last(out))
    return np.concatenate(outs) if outs else np.zeros((0, model.output_shape[1] or 0), np.float32)


def classify(
    model: Model, images: Iterable[Any] | np.ndarray, top: int = 5, *, batch_size: int = 64
) -> list[list[tuple[str, float]]]:
    """Top-``top`` (label, probability) pairs for every image, best first.

    ``images`` is a list of images (see :func:`prepare_images`) or an already
    prepared (N, C, H, W) array. Images are run in batches of ``batch_size``.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = images
    else:
        batch = prepare_images(model, images)
    probs = predict_proba(model, batch, batch_size=batch_size)
    k = probs.shape[1]
    labels = model.labels or [str(i) for i in range(k)]
    top = max(1, min(int(top), k))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(labels[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]


# ----------------------------------------------------------------------------
# feature maps


def feature_maps(model: Model, image: Any, layer: int | str) -> np.ndarray:
    """The (C, H, W) output of ``layer`` for one image (array or prepared (C,H,W))."""
    x = np.asarray(image) if isinstance(image, np.ndarray) else None
    if (
        x is not None
        and x.ndim == 3
        and x.shape == model.input_spec.shape
        and x.dtype == np.float32
    ):
        batch = x[None]
    else:
        batch = prepare_images(model, [image])
    out = model.forward(batch, until=layer)[0]
    if out.ndim == 1:
        out = out[:, None, None]
    elif out.ndim == 2:
        out = out[None]
    return out


def conv_filters(model: Model, layer: int | str | None = None) -> np.ndarray:
    """Weights (K, C/groups, kh, kw) of a conv layer (default: the first one)."""
    if layer is None:
        for candidate in model.layers:
            if isinstance(candidate, Conv2D):
                return candidate.weight
        raise UsageError("the model has no conv2d layer")
    chosen = model.layer(layer)
    if not isinstance(chosen, Conv2D):
        raise UsageError(f"layer {chosen.name!r} is a {chosen.type} layer, not conv2d")
    return chosen.weight


def _normalise_tiles(tiles: np.ndarray, per_tile: bool) -> np.ndarray:
    axes = tuple(range(1, tiles.ndim)) if per_tile else None
    lo = tiles.min(axis=axes, keepdims=True) if per_tile else tiles.min()
    hi = tiles.max(axis=axes, keepdims=True) if per_tile else tiles.max()
    span = np.where(hi - lo > 0, hi - lo, 1)
    return np.clip((tiles - lo) / span * 255 + 0.5, 0, 255).astype(np.uint8)


def feature_grid(
    maps: np.ndarray,
    *,
    columns: int | None = None,
    cell: int = 64,
    gap: int = 4,
    labels: bool | Sequence[str] = True,
    normalize: str = "each",
    limit: int | None = 256,
) -> np.ndarray:
    """A labelled grid image of feature maps or conv filters.

    ``maps`` is (C, H, W): one grey tile per channel; or conv weights
    (K, C, kh, kw): one RGB tile per filter if C == 3 (as the classic picture
    of AlexNet's first layer), else one grey tile per (filter, channel).
    Each tile is scaled by an integer factor (nearest neighbour) to about
    ``cell`` pixels, contrast-stretched (``normalize`` "each" tile or "all"
    together) and captioned with its index (``labels=False`` for none, or a
    list of captions). At most ``limit`` tiles are drawn.

    Returns uint8 (H, W) for grey tiles, (H, W, 3) for RGB filter tiles.
    """
    from PIL import Image, ImageDraw

    arr = np.asarray(maps, dtype=np.float32)
    captions: list[str]
    if arr.ndim == 4:
        k, c = arr.shape[:2]
        if c == 3:
            tiles = arr.transpose(0, 2, 3, 1)
            captions = [str(i) for i in range(k)]
        else:
            tiles = arr.reshape(k * c, *arr.shape[2:])
            captions = [f"{i}" if c == 1 else f"{i}.{j}" for i in range(k) for j in range(c)]
    elif arr.ndim == 3:
        tiles = arr
        captions = [str(i) for i in range(arr.shape[0])]
    elif arr.ndim == 2:
        tiles = arr[None]
        captions = ["0"]
    else:
        raise UsageError(
            f"feature maps must be (C, H, W) or filters (K, C, kh, kw), got {arr.shape}"
        )
    if tiles.shape[0] == 0:
        raise UsageError("there are no feature maps to draw")
    if not isinstance(labels, bool):
        captions = [str(s) for s in labels]
    if limit is not None:
        tiles = tiles[:limit]
    if normalize not in ("each", "all"):
        raise UsageError(f"normalize must be 'each' or 'all', got {normalize!r}")
    img = _normalise_tiles(tiles, normalize == "each")
    n, th, tw = img.shape[:3]
    factor = max(1, cell // max(th, tw))
    img = np.repeat(np.repeat(img, factor, axis=1), factor, axis=2)
    th, tw = th * factor, tw * factor
    cols = min(columns, n) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    label_h = 12 if labels is not False else 0
    rgb = img.ndim == 4
    H = rows * (th + label_h + gap) + gap
    W = cols * (tw + gap) + gap
    canvas = np.full((H, W, 3) if rgb else (H, W), 32, np.uint8)
    for i in range(n):
        r, c_ = divmod(i, cols)
        y = gap + r * (th + label_h + gap) + label_h
        x = gap + c_ * (tw + gap)
        canvas[y : y + th, x : x + tw] = img[i]
    if label_h:
        pil = Image.fromarray(canvas)
        draw = ImageDraw.Draw(pil)
        fill = (255, 255, 255) if rgb else 255
        for i in range(n):
            r, c_ = divmod(i, cols)
            y = gap + r * (th + label_h + gap)
            x = gap + c_ * (tw + gap)
            if i < len(captions):
                draw.text((x, y), captions[i], fill=fill)
        canvas = np.asarray(pil)
    return canvas


_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def clean_name(name: str, fallback: str) -> str:
    """A layer name safe as an npz entry prefix."""
    cleaned = _NAME_RE.sub("_", name).strip("_./")
    return cleaned or fallback


def stripes_model() -> Model:
    """A hand-built demo: tells vertical from horizontal stripes (bundled as "stripes").

    Two Sobel filters (vertical edges, horizontal edges) -> relu -> global max
    pool -> flatten -> dense (difference of the two responses) -> softmax.
    Input: grey 32x32, pixel values scaled to 0-1. No padding, so the image
    border is not taken for an edge.

    >>> m = stripes_model()
    >>> vertical = np.tile(np.repeat([0, 255], 4), (32, 4)).astype(np.uint8)
    >>> classify(m, [vertical, vertical.T], top=1)  # doctest: +ELLIPSIS
    [[('vertical', 0.99...)], [('horizontal', 0.99...)]]
    """
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    weight = np.stack([sobel_x, sobel_x.T])[:, None]  # (2, 1, 3, 3)
    layers: list[Layer] = [
        Conv2D("edges", weight, np.zeros(2, np.float32), padding="valid"),
        ReLU("relu"),
        GlobalMaxPool("pool"),
        Flatten("flatten"),
        Dense("fc", np.array([[2.0, -2.0], [-2.0, 2.0]], np.float32), np.zeros(2, np.float32)),
        Softmax("softmax"),
    ]
    spec = InputSpec(channels=1, height=32, width=32, resize="stretch", scale=1 / 255)
    return Model(
        layers,
        ["vertical", "horizontal"],
        spec,
        "Sobel edge filters telling vertical from horizontal stripes (hand-built demo)",
    )
