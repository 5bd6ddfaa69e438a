"""The layer base class and the registry of layer types.

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
``None`` stands for the batch size (or any dim derived from it). Attribute
checks and shape helpers: :mod:`imgkernel.nn.layers.attrs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers.attrs import LayerError, Shape, weight_array
from imgkernel.nn.layers.build import BuildContext

__all__ = [
    "LAYER_TYPES",
    "Backward",
    "BuildContext",
    "Forward",
    "Layer",
    "LayerError",
    "Params",
    "Rng",
    "Shape",
    "arch_types",
    "make_layer",
    "trainable_types",
]

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
    #: Whether each sample (index on axis 0) of the output depends only on the same
    #: sample of the inputs, so a batch may be split (see :meth:`per_sample`).
    PER_SAMPLE: ClassVar[bool] = False
    #: The number of input tensors the layer takes: (least, most; None: any number).
    #: Layers of more than one input define ``__call__(*xs)`` and ``output_shape(*shapes)``.
    ARITY: ClassVar[tuple[int, int | None]] = (1, 1)

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

    def n_outputs(self) -> int:
        """How many output tensors the layer makes (``__call__`` returns a tuple if not 1)."""
        return 1

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
    def check_arity(self, n: int) -> None:
        """Raise a LayerError unless the layer takes ``n`` input tensors."""
        least, most = self.ARITY
        if n < least or (most is not None and n > most):
            want = str(least) if least == most else f"{least} to {most if most else 'any'}"
            raise LayerError(f"takes {want} input(s), got {n}")

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        """Whether, for inputs of ``shapes``, the batch (axis 0) may be split and run in parts."""
        return self.PER_SAMPLE

    def infer(self, shapes: Sequence[Shape]) -> list[Shape]:
        """The shapes of all outputs for inputs of ``shapes`` (graph shape inference)."""
        self.check_arity(len(shapes))
        out = self.output_shape(*shapes)
        return [out] if self.n_outputs() == 1 else list(out)  # type: ignore[arg-type]

    def run(self, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """All outputs for the input tensors ``xs`` (the graph's inference step)."""
        out = self(*xs)
        return [out] if self.n_outputs() == 1 else list(out)

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
