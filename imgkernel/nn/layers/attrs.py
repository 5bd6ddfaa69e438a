"""Checks and conversions of layer attributes, and shape helpers, for the layer classes.

Used qualified (``attrs.pair(stride, "stride")``); every check raises
:class:`LayerError`, which the model prefixes with the layer's index and name.
A :data:`Shape` is a tuple of dims where ``None`` stands for the batch size (or
any dim derived from it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from imgkernel.core.windows import as_pair, resolve_padding
from imgkernel.errors import UsageError, check_bool, check_float, check_int

Shape = tuple[int | None, ...]


class LayerError(UsageError):
    """A bad layer attribute or shape; the model adds the layer's index and name."""


def integer(value: Any, what: str, minimum: int | None = None) -> int:
    """An integer attribute (:func:`imgkernel.errors.check_int`)."""
    return check_int(value, what, minimum=minimum, error=LayerError)


def number(value: Any, what: str) -> float:
    """A finite number attribute (:func:`imgkernel.errors.check_float`)."""
    return check_float(value, what, error=LayerError)


def boolean(value: Any, what: str) -> bool:
    """A true/false attribute (:func:`imgkernel.errors.check_bool`)."""
    return check_bool(value, what, error=LayerError)


def pair(value: Any, what: str) -> tuple[int, int]:
    """``(h, w)`` from an integer or a pair (stride, dilation, size), each at least 1."""
    try:
        return as_pair(value, what)
    except UsageError as exc:
        raise LayerError(str(exc)) from None


def padding(value: Any) -> str | tuple[int, ...]:
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
    # Checked after the conversion to the compute type: 1e300 is finite in
    # float64 and infinite in float32, and a model that loads must also run.
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise LayerError(f"{what} contains NaN or infinite values (in float32)")
    return out


def ints(value: Any, what: str, minimum: int | None = None) -> tuple[int, ...]:
    """A list of integers (each at least ``minimum``): axes, perms, pads, shapes."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise LayerError(f"{what} must be a list of integers, got {value!r}")
    return tuple(integer(v, what, minimum) for v in value)


def tuple_of(value: Any, n: int, what: str, minimum: int = 1) -> tuple[int, ...]:
    """``n`` integers from one integer (repeated) or a list of ``n``: sizes, strides, dilations."""
    out = ints(value, what, minimum)
    if len(out) == 1 and n != 1:
        out = out * n
    if len(out) != n:
        raise LayerError(f"{what} must be an integer or a list of {n}, got {value!r}")
    return out


def broadcast(shapes: Iterable[Shape]) -> Shape:
    """The numpy broadcast of shapes whose dims may be None (any size)."""
    shapes = list(shapes)
    rank = max((len(s) for s in shapes), default=0)
    out: list[int | None] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            shown = " and ".join(fmt_shape(s) for s in shapes)
            raise LayerError(f"cannot broadcast {shown} together")
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def axes_of(value: Any, rank: int, what: str = "axes") -> tuple[int, ...]:
    """Axes (negative count from the end) as sorted non-negative indices, each once."""
    axes = tuple(axis_index(a, rank, what) for a in ints(value, what))
    if len(set(axes)) != len(axes):
        raise LayerError(f"{what} {list(value)} repeats an axis")
    return tuple(sorted(axes))
