"""The layer base class, the registry of layer types, and helpers for attributes and shapes.

A layer is a named step of a sequential CNN. Its class holds everything about
its kind: the attributes and weight arrays it takes (``ATTRS``, ``ARRAYS``),
their validation (:meth:`Layer.configure`), the output-shape inference, the
inference forward pass (``layer(x)``), and for training a forward pass that
keeps what the backward pass needs (:meth:`Layer.forward_train`) and that
backward pass (:meth:`Layer.backward`). Defining a subclass with a ``type``
registers it in :data:`LAYER_TYPES`, so the model file format, training and
architecture files know it at once.

Array conventions (all of ``imgkernel.nn``): CNN tensors are ``(N, C, H, W)``
float32 (float64 in gradient checks); conv weights ``(K, C/groups, kh, kw)``;
dense weights ``(out, in)``. A :data:`Shape` is a tuple of dims where
``None`` stands for the batch size (or any dim derived from it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from imgkernel.core.windows import as_pair, resolve_padding
from imgkernel.errors import UsageError, check_bool, check_float, check_int

Shape = tuple[int | None, ...]
#: A layer's weights by array key, as training holds them (``weight``, ``bias``, ...).
Params = dict[str, np.ndarray]
Rng = np.random.Generator | None
#: What :meth:`Layer.forward_train` returns: the output and a cache for the backward pass.
Forward = tuple[np.ndarray, Any]
#: What :meth:`Layer.backward` returns: the input gradient (None if not needed) and
#: the weight gradients by array key.
Backward = tuple[np.ndarray | None, Params]

#: Every layer class by its ``type`` string, in definition order.
LAYER_TYPES: dict[str, type[Layer]] = {}


class LayerError(UsageError):
    """A bad layer attribute or shape; the model adds the layer's index and name."""


# ----------------------------------------------------------------------------
# attribute and shape helpers


def int_attr(value: Any, what: str, minimum: int | None = None) -> int:
    return check_int(value, what, minimum=minimum, error=LayerError)


def float_attr(value: Any, what: str) -> float:
    return check_float(value, what, error=LayerError)


def bool_attr(value: Any, what: str) -> bool:
    return check_bool(value, what, error=LayerError)


def pair_attr(value: Any, what: str) -> tuple[int, int]:
    try:
        return as_pair(value, what)
    except UsageError as exc:
        raise LayerError(str(exc)) from None


def padding_attr(value: Any) -> str | tuple[int, ...]:
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


def simple(value: Any) -> Any:
    """The cheapest equivalent form of a pair/padding for the library calls."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return int(value[0])
    return value


def jsonable_padding(p: str | tuple[int, ...]) -> str | list[int]:
    return p if isinstance(p, str) else list(p)


def axis_index(axis: int, rank: int, what: str = "axis", *, inclusive: bool = False) -> int:
    hi = rank if inclusive else rank - 1
    if not -rank <= axis <= hi:
        raise LayerError(f"{what} {axis} is out of range for a rank-{rank} input")
    return axis + rank if axis < 0 else axis


def prod(dims: Iterable[int | None]) -> int | None:
    """Product of dims, None if any is None."""
    total = 1
    for d in dims:
        if d is None:
            return None
        total *= d
    return total


def fmt_shape(shape: Shape) -> str:
    """``N x 3 x 32 x 32``: the batch axis (None) shown as N."""
    return " x ".join("N" if d is None else str(d) for d in shape)


def spatial(shape: Shape, what: str) -> tuple[int, int]:
    """(H, W) of an (N, C, H, W) shape, or a LayerError."""
    if len(shape) != 4 or shape[2] is None or shape[3] is None:
        raise LayerError(f"{what} needs an (N, C, H, W) input, got {fmt_shape(shape)}")
    return int(shape[2]), int(shape[3])


def weight_array(value: Any, what: str, ndim: int | None = None) -> np.ndarray:
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
# building layers from an architecture file


class BuildContext:
    """What an architecture entry may need to create its layer's weights.

    ``init`` is "he" (normal, fan-in, gain sqrt 2) or "xavier" (uniform,
    fan-in + fan-out); ``last_dense`` tells the last dense layer, whose
    ``units`` default to the number of classes.
    """

    def __init__(
        self, rng: np.random.Generator, n_classes: int, init: str, last_dense: bool
    ) -> None:
        self.rng, self.n_classes, self.init, self.last_dense = rng, n_classes, init, last_dense

    def weight(self, shape: tuple[int, ...], groups: int = 1) -> np.ndarray:
        return init_weight(self.rng, shape, self.init, groups)


def init_weight(
    rng: np.random.Generator, shape: tuple[int, ...], method: str, groups: int = 1
) -> np.ndarray:
    """He (normal, fan-in, gain sqrt 2) or Xavier (uniform, fan-in + fan-out) weights.

    ``shape`` is (K, C/groups, kh, kw) for conv or (out, in) for dense.
    """
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive
    fan_out = shape[0] // groups * receptive
    if method == "he":
        std = math.sqrt(2.0 / fan_in)
        return (rng.standard_normal(shape) * std).astype(np.float32)
    if method == "xavier":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    raise UsageError(f"unknown init {method!r}; choose he or xavier")


def positive_int(value: Any, what: str, extra: str = "") -> int:
    """An architecture count (``filters``, ``units``): a positive int, not a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"'{what}' must be a positive integer{extra}, got {value!r}")
    return value


# ----------------------------------------------------------------------------
# the base class


class Layer:
    """Base class: a named step holding attributes and weight arrays.

    Subclasses define ``type`` (which registers them), ``ATTRS`` (attribute
    name -> default) and ``ARRAYS`` (weight names, in file order;
    ``OPTIONAL`` ones may be absent), and override what they need of
    :meth:`configure`, :meth:`attributes`, :meth:`output_shape`,
    ``__call__``, :meth:`forward_train`, :meth:`backward` and
    :meth:`from_arch`. ``ARCH_KEYS`` are the keys an architecture file may
    give (None: the layer cannot be built from one).
    """

    type: ClassVar[str] = ""
    ATTRS: ClassVar[dict[str, Any]] = {}
    ARRAYS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    #: Elementwise layers define ``inplace(x)``, which may overwrite ``x``.
    INPLACE: ClassVar[bool] = False
    ARCH_KEYS: ClassVar[frozenset[str] | None] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("type"):
            known = LAYER_TYPES.get(cls.type)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"layer type {cls.type!r} is already {known.__qualname__}")
            LAYER_TYPES[cls.type] = cls

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
            self.arrays[key] = weight_array(value, key)
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
        """The inference forward pass."""
        raise NotImplementedError

    def inplace(self, x: np.ndarray) -> np.ndarray:
        """``self(x)`` that may overwrite ``x`` (only where ``INPLACE``)."""
        raise NotImplementedError

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        """The forward pass with the weights ``p``: (output, cache for :meth:`backward`).

        ``training`` switches on what only training does (dropout, with ``rng``).
        """
        raise UsageError(f"training does not support {self.type} layers (layer {self.name!r})")

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        """(input gradient or None, weight gradients by array key) from the output gradient."""
        raise UsageError(f"training does not support {self.type} layers (layer {self.name!r})")

    @classmethod
    def trainable(cls) -> bool:
        """Whether the class has a backward pass."""
        return cls.backward is not Layer.backward

    def training_problem(self) -> str | None:
        """Why this very layer cannot be trained (None: it can)."""
        if not self.trainable():
            return f"training does not support {self.type} layers"
        return None

    @classmethod
    def from_arch(cls, name: str, spec: dict[str, Any], shape: Shape, ctx: BuildContext) -> Layer:
        """A new layer from an architecture entry (keys checked against ``ARCH_KEYS``)."""
        return cls(name, **spec)

    # -- common -------------------------------------------------------------
    def parameters(self) -> Params:
        """The weight arrays by key (``weight``, ``bias``, ...)."""
        return self.arrays

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


def make_layer(type: str, name: str, **kwargs: Any) -> Layer:  # noqa: A002
    """Build a layer from its type name, attributes and weight arrays."""
    cls = LAYER_TYPES.get(type)
    if cls is None:
        raise LayerError(f"unknown layer type {type!r}; known: {', '.join(LAYER_TYPES)}")
    return cls(name, **kwargs)


def trainable_types() -> list[str]:
    """The registered layer types that have a backward pass."""
    return [t for t, cls in LAYER_TYPES.items() if cls.trainable()]


def arch_types() -> list[str]:
    """The layer types an architecture file may use."""
    return [t for t, cls in LAYER_TYPES.items() if cls.trainable() and cls.ARCH_KEYS is not None]
