"""Named kernels: the built-in library, user kernel files and inline matrices.

This module only produces kernel *data*; the convolution core applies it.  A
2-D kernel is a float64 array ``(kh, kw)`` applied by **cross-correlation**
(no flip): ``weights[0, 0]`` multiplies the pixel above-left of the output
pixel.  The built-in kernels live in ``kernels.toml`` (shipped inside the
package as ``imgkernel/kernels.toml``; read from the repository's top level in
a source checkout).  Its header comment documents the file format and the sign
conventions chosen where sources disagree.

Only numpy and the standard library are imported here, to keep start-up light.

Examples
--------
>>> lib = load_library(include_user=False)
>>> lib.resolve("sobel-x").weights
array([[-1.,  0.,  1.],
       [-2.,  0.,  2.],
       [-1.,  0.,  1.]])
>>> k = lib.resolve("gaussian:sigma=0.5")
>>> k.name, k.shape, round(k.total, 12)
('gaussian:sigma=0.5', (5, 5), 1.0)
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgkernel.core.correlate import rank1_factors
from imgkernel.errors import ImgkernelError, UsageError

__all__ = [
    "DISPLAY_MODES",
    "MAX_KERNEL_SIZE",
    "Kernel",
    "KernelDefinition",
    "KernelLibrary",
    "gaussian_1d",
    "kernel_from_matrix",
    "load_kernel_file",
    "load_library",
    "parse_matrix",
    "parse_spec",
    "rank1_factors",
    "user_kernels_path",
]

#: Largest accepted kernel side, in taps (before dilation).
MAX_KERNEL_SIZE = 1001
#: How a signed result is shown in an integer image by default.
DISPLAY_MODES = ("clip", "abs", "offset")
COMBINE_MODES = ("single", "magnitude")


def _q(value: object, limit: int = 60) -> str:
    """Quote a user value for a one-line error message."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    if limit and len(text) > limit:
        keep = (limit - 3) // 2
        text = text[:keep] + "..." + text[-keep:]
    return f"'{text}'"


def _fmt(value: object) -> str:
    """Canonical text of a parameter value (``2.0`` -> ``'2'``)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


# --------------------------------------------------------------------- Kernel


@dataclass(frozen=True, eq=False)
class Kernel:
    """A ready-to-apply kernel.

    Attributes
    ----------
    name : str
        Canonical spec, e.g. ``"gaussian:sigma=2.5"``, ``"sobel"``, or the
        file name / ``"matrix"`` for user matrices.
    weights : numpy.ndarray
        float64 ``(kh, kw)``, already divided by the scale; read-only.  For
        ``combine="magnitude"`` a stack ``(n, kh, kw)`` of components.
    offset : float
        Added after correlation, as a fraction of full scale (0.5 = mid-grey:
        128 in 8-bit, 32768 in 16-bit, 0.5 in float images).
    description : str
        One line for listings.
    display : {"clip", "abs", "offset"}
        How a signed result is shown in an 8/16-bit image by default.
    dilation : tuple of int
        ``(dy, dx)`` spacing between taps; the core applies it, see
        :meth:`expanded` for the equivalent dense matrix.
    combine : {"single", "magnitude"}
        ``"magnitude"``: the output is ``sqrt(sum_i (image ⋆ weights[i])**2)``.

    Examples
    --------
    >>> k = Kernel("ones", np.ones((3, 3)), dilation=(2, 2))
    >>> k.shape, k.extent
    ((3, 3), (5, 5))
    >>> k.expanded()
    array([[1., 0., 1., 0., 1.],
           [0., 0., 0., 0., 0.],
           [1., 0., 1., 0., 1.],
           [0., 0., 0., 0., 0.],
           [1., 0., 1., 0., 1.]])
    """

    name: str
    weights: np.ndarray
    offset: float = 0.0
    description: str = ""
    display: str = "clip"
    dilation: tuple[int, int] = (1, 1)
    combine: str = "single"

    def __post_init__(self) -> None:
        try:
            w = np.array(self.weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"kernel {_q(self.name)}: weights are not numeric ({exc})") from None
        if self.combine not in COMBINE_MODES:
            raise UsageError(
                f"kernel {_q(self.name)}: combine {_q(self.combine)} is not one of "
                f"{', '.join(COMBINE_MODES)}"
            )
        want = 2 if self.combine == "single" else 3
        if w.ndim != want:
            raise UsageError(
                f"kernel {_q(self.name)}: weights must be {want}-D for combine="
                f"{self.combine!r}, got shape {w.shape}"
            )
        if w.size == 0:
            raise UsageError(f"kernel {_q(self.name)}: weights are empty")
        if not np.all(np.isfinite(w)):
            raise UsageError(f"kernel {_q(self.name)}: weights contain NaN or infinity")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        if self.display not in DISPLAY_MODES:
            raise UsageError(
                f"kernel {_q(self.name)}: display {_q(self.display)} is not one of "
                f"{', '.join(DISPLAY_MODES)}"
            )
        try:
            off = float(self.offset)
        except (TypeError, ValueError):
            raise UsageError(
                f"kernel {_q(self.name)}: offset {_q(self.offset)} is not a number"
            ) from None
        if not math.isfinite(off):
            raise UsageError(f"kernel {_q(self.name)}: offset {_q(self.offset)} is not finite")
        object.__setattr__(self, "offset", off)
        try:
            dy, dx = (int(d) for d in self.dilation)
        except (TypeError, ValueError):
            raise UsageError(
                f"kernel {_q(self.name)}: dilation {_q(self.dilation)} is not a pair of integers"
            ) from None
        if dy < 1 or dx < 1:
            raise UsageError(f"kernel {_q(self.name)}: dilation {_q(self.dilation)} must be >= 1")
        object.__setattr__(self, "dilation", (dy, dx))

    # -- helpers ----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Spatial size ``(kh, kw)`` of the taps (also for magnitude stacks)."""
        kh, kw = self.weights.shape[-2:]
        return int(kh), int(kw)

    @property
    def extent(self) -> tuple[int, int]:
        """Footprint ``((kh-1)*dy+1, (kw-1)*dx+1)`` including the dilation holes."""
        (kh, kw), (dy, dx) = self.shape, self.dilation
        return (kh - 1) * dy + 1, (kw - 1) * dx + 1

    @property
    def components(self) -> tuple[np.ndarray, ...]:
        """The 2-D kernels: ``(weights,)`` or the magnitude's components."""
        if self.combine == "single":
            return (self.weights,)
        return tuple(self.weights)

    @property
    def total(self) -> float:
        """Sum of the weights (for a magnitude stack: of all components)."""
        return float(self.weights.sum())

    @property
    def is_zero_sum(self) -> bool:
        """True if every component sums to 0 (up to rounding).

        Examples
        --------
        >>> lib = load_library(include_user=False)
        >>> lib.resolve("sobel").is_zero_sum, lib.resolve("box").is_zero_sum
        (True, False)
        """
        return all(
            abs(float(c.sum())) <= 1e-9 * max(1.0, float(np.abs(c).sum())) for c in self.components
        )

    def expanded(self) -> np.ndarray:
        """Dense weights with the dilation holes filled with zeros.

        Shape ``extent`` (prefixed by ``n`` for a magnitude stack).  Applying
        it with dilation 1 gives the same result as ``weights`` at
        ``dilation``.
        """
        dy, dx = self.dilation
        out = np.zeros(self.weights.shape[:-2] + self.extent, dtype=np.float64)
        out[..., ::dy, ::dx] = self.weights
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return (
            self.name == other.name
            and self.offset == other.offset
            and self.description == other.description
            and self.display == other.display
            and self.dilation == other.dilation
            and self.combine == other.combine
            and self.weights.shape == other.weights.shape
            and bool(np.array_equal(self.weights, other.weights))
        )

    def __hash__(self) -> int:
        return hash((self.name, self.weights.shape, self.offset, self.dilation, self.combine))


# ------------------------------------------------------------ numeric helpers


def gaussian_1d(sigma: float, radius: int | None = None, truncate: float = 4.0) -> np.ndarray:
    """Normalized 1-D Gaussian taps, identical to scipy.ndimage's.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, > 0.
    radius : int, optional
        Half-width; default scipy's rule ``int(truncate * sigma + 0.5)``.
        The result has ``2 * radius + 1`` taps.
    truncate : float
        Multiple of sigma at which to cut the tails (scipy's default 4.0).

    Examples
    --------
    >>> gaussian_1d(1.0, radius=1)
    array([0.27406862, 0.45186276, 0.27406862])
    >>> gaussian_1d(1.0).size, gaussian_1d(2.0).size, gaussian_1d(3.0).size
    (9, 17, 25)
    """
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise UsageError(f"sigma {_q(_fmt(sigma))} must be a number > 0")
    truncate = float(truncate)
    if not (math.isfinite(truncate) and truncate > 0):
        raise UsageError(f"truncate {_q(_fmt(truncate))} must be a number > 0")
    if radius is None:
        radius = int(truncate * sigma + 0.5)
    radius = int(radius)
    if radius < 0:
        raise UsageError(f"radius {_q(radius)} must be >= 0")
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return phi / phi.sum()


_FRACTION = re.compile(r"^([^/]+)/([^/]+)$")


def _parse_number(token: str) -> float:
    m = _FRACTION.match(token)
    if m:
        num, den = float(m.group(1)), float(m.group(2))
        if den == 0:
            raise ValueError("division by zero")
        value = num / den
    else:
        value = float(token)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def parse_matrix(text: str) -> np.ndarray:
    """Parse a matrix written as text.

    Rows are separated by ``;`` or newlines, values by commas and/or spaces.
    Also accepted: blank lines, ``#`` comments, fractions such as ``1/9``,
    and bracketed nesting like ``[[1,2],[3,4]]``.

    Raises
    ------
    UsageError
        For empty text, ragged rows, non-numeric or non-finite values, or a
        side longer than ``MAX_KERNEL_SIZE``; the message quotes the value.

    Examples
    --------
    >>> parse_matrix("1,0,1;0,1,0;1,0,1")
    array([[1., 0., 1.],
           [0., 1., 0.],
           [1., 0., 1.]])
    >>> parse_matrix('''
    ... 1 2 1   # a comment
    ... 2 4 2
    ... ''')
    array([[1., 2., 1.],
           [2., 4., 2.]])
    >>> parse_matrix("[[1, 1/2], [0, -1]]")
    array([[ 1. ,  0.5],
           [ 0. , -1. ]])
    """
    if not isinstance(text, str):
        raise UsageError(f"matrix {_q(text)} is not text")
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    body = "\n".join(lines).strip()
    if body.startswith("["):
        body = re.sub(r"\]\s*,?\s*\[", ";", body).replace("[", " ").replace("]", " ")
    rows: list[list[float]] = []
    for raw in re.split(r"[;\n]", body):
        raw = raw.strip()
        if not raw:
            continue
        parts = raw.split(",")
        tokens: list[str] = []
        for part in parts:
            words = part.split()
            if not words and len(parts) > 1:
                raise UsageError(f"matrix {_q(text)}: empty value in row {_q(raw)}")
            tokens.extend(words)
        values = []
        for tok in tokens:
            try:
                values.append(_parse_number(tok))
            except ValueError:
                raise UsageError(f"matrix {_q(text)}: {_q(tok)} is not a finite number") from None
        if rows and len(values) != len(rows[0]):
            raise UsageError(
                f"matrix {_q(text)}: row {len(rows) + 1} has {len(values)} value(s) "
                f"but row 1 has {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise UsageError(f"matrix {_q(text)} is empty")
    m = np.array(rows, dtype=np.float64)
    _check_size(m.shape, f"matrix {_q(text)}")
    return m


def _check_size(shape: tuple[int, ...], what: str) -> None:
    if max(shape) > MAX_KERNEL_SIZE:
        raise UsageError(
            f"{what}: {'x'.join(map(str, shape))} is larger than the "
            f"{MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE} limit"
        )


def _auto_scale(w: np.ndarray) -> float:
    """|sum| of the weights, or 1 for a zero-sum kernel (ImageMagick's ``!``)."""
    total = float(w.sum())
    if abs(total) <= 1e-12 * max(1.0, float(np.abs(w).sum())):
        return 1.0
    return abs(total)


def _check_offset(offset: object, what: str) -> float:
    if isinstance(offset, bool):
        raise UsageError(f"{what}: offset {_q(offset)} is not a number")
    try:
        off = float(offset)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{what}: offset {_q(offset)} is not a number") from None
    if not math.isfinite(off) or abs(off) > 1.0:
        hint = f" (in 8-bit units that is {off:g}/255 = {off / 255:.4g})" if abs(off) > 1 else ""
        raise UsageError(
            f"{what}: offset {_q(_fmt(off))} must be a fraction of full scale in "
            f"[-1, 1], 0.5 = mid-grey{hint}"
        )
    return off


def _check_scale(scale: object, what: str) -> float:
    if isinstance(scale, bool):
        raise UsageError(f"{what}: scale {_q(scale)} is not a number")
    try:
        s = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{what}: scale {_q(scale)} is not a number or 'auto'") from None
    if not math.isfinite(s) or s == 0:
        raise UsageError(f"{what}: scale {_q(_fmt(s))} must be a finite non-zero number")
    return s


def kernel_from_matrix(
    matrix: Any,
    *,
    name: str = "matrix",
    scale: float | None = None,
    offset: float = 0.0,
    display: str = "clip",
    description: str = "",
) -> Kernel:
    """Make a :class:`Kernel` from a user matrix (array-like or text).

    Parameters
    ----------
    matrix : array-like or str
        2-D numbers (a 1-D sequence is one row); text goes through
        :func:`parse_matrix`.
    scale : float, optional
        Divisor.  Default: the absolute sum of the weights, or 1 if they sum
        to zero (so ``1 2 1 / 2 4 2 / 1 2 1`` blurs without brightening and
        edge kernels stay as written).  Pass ``scale=1`` to use the numbers
        as they are.
    offset : float
        Added after correlation, as a fraction of full scale in [-1, 1].

    Examples
    --------
    >>> kernel_from_matrix("1 2 1; 2 4 2; 1 2 1").weights * 16
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> kernel_from_matrix([[0, -1], [1, 0]]).weights
    array([[ 0., -1.],
           [ 1.,  0.]])
    """
    if isinstance(matrix, str):
        m = parse_matrix(matrix)
    else:
        try:
            m = np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"kernel {_q(name)}: matrix is not rectangular and numeric") from None
        if m.ndim == 1:
            m = m[np.newaxis, :]
        if m.ndim != 2:
            raise UsageError(f"kernel {_q(name)}: matrix must be 2-D, got shape {m.shape}")
        if m.size == 0:
            raise UsageError(f"kernel {_q(name)}: matrix is empty")
        if not np.all(np.isfinite(m)):
            raise UsageError(f"kernel {_q(name)}: matrix contains NaN or infinity")
        _check_size(m.shape, f"kernel {_q(name)}")
    s = _auto_scale(m) if scale is None else _check_scale(scale, f"kernel {_q(name)}")
    off = _check_offset(offset, f"kernel {_q(name)}")
    return Kernel(name, m / s, off, description, display)


# ------------------------------------------------------- parameter schema


def _as_float(key: str, value: object) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{key}={_q(value)} is not a number")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{key}={_q(value)} is not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"{key}={_q(value)} is not a finite number")
    return v


def _as_int(key: str, value: object) -> int:
    if isinstance(value, bool):
        raise UsageError(f"{key}={_q(value)} is not an integer")
    if isinstance(value, int):
        return value
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{key}={_q(value)} is not an integer") from None
    if not (math.isfinite(v) and v.is_integer()):
        raise UsageError(f"{key}={_q(value)} is not an integer")
    return int(v)


def _positive_float(key: str, value: object) -> float:
    v = _as_float(key, value)
    if v <= 0:
        raise UsageError(f"{key}={_q(value)} must be > 0")
    return v


def _any_float(key: str, value: object) -> float:
    return _as_float(key, value)


def _size(key: str, value: object) -> int:
    v = _as_int(key, value)
    if v < 1:
        raise UsageError(f"{key}={_q(value)} must be >= 1")
    if v > MAX_KERNEL_SIZE:
        raise UsageError(f"{key}={_q(value)} is larger than the limit {MAX_KERNEL_SIZE}")
    return v


def _odd_size(key: str, value: object) -> int:
    v = _size(key, value)
    if v % 2 == 0:
        raise UsageError(f"{key}={_q(value)} must be odd (the kernel needs a centre tap)")
    return v


def _kernel_name(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{key}={_q(value)} is not a kernel name")
    name = _normalize_name(value)
    if not _NAME_RE.match(name):
        raise UsageError(f"{key}={_q(value)} must be a bare kernel name (no parameters)")
    return name


Converter = Callable[[str, object], Any]

_GAUSS: dict[str, Converter] = {
    "sigma": _positive_float,
    "size": _odd_size,
    "truncate": _positive_float,
}
#: generator name -> {parameter: converter}; defaults come from kernels.toml.
GENERATORS: dict[str, dict[str, Converter]] = {
    "gaussian": dict(_GAUSS),
    "box": {"size": _size},
    "log": dict(_GAUSS),
    "unsharp": {"amount": _any_float, **_GAUSS},
    "dilated": {"base": _kernel_name, "rate": _size},
    "motion": {"length": _size, "angle": _any_float},
    "binomial": {"size": _odd_size},
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def _gauss_radius(p: dict[str, Any]) -> int:
    sigma, truncate = p["sigma"], p.get("truncate", 4.0)
    if "size" in p:
        return p["size"] // 2
    radius = int(truncate * sigma + 0.5)
    if 2 * radius + 1 > MAX_KERNEL_SIZE:
        raise UsageError(
            f"sigma={_q(_fmt(sigma))} needs a {2 * radius + 1}-tap kernel, larger than the "
            f"limit {MAX_KERNEL_SIZE}; pass a smaller sigma or size="
        )
    return radius


def _gen_gaussian(p: dict[str, Any]) -> np.ndarray:
    g = gaussian_1d(p["sigma"], _gauss_radius(p), p.get("truncate", 4.0))
    return np.outer(g, g)


def _gen_box(p: dict[str, Any]) -> np.ndarray:
    n = p["size"]
    return np.full((n, n), 1.0 / (n * n))


def _gen_log(p: dict[str, Any]) -> np.ndarray:
    sigma = p["sigma"]
    r = _gauss_radius(p)
    g = gaussian_1d(sigma, r, p.get("truncate", 4.0))
    x = np.arange(-r, r + 1, dtype=np.float64)
    rr = x[:, None] ** 2 + x[None, :] ** 2
    h = np.outer(g, g) * (rr - 2.0 * sigma * sigma) / sigma**4  # del^2 G
    h -= h.mean()  # exactly zero-sum (MATLAB fspecial's construction)
    return -h  # positive centre, like "laplacian"


def _gen_unsharp(p: dict[str, Any]) -> np.ndarray:
    amount = p["amount"]
    blur = _gen_gaussian(p)
    delta = np.zeros_like(blur)
    c = blur.shape[0] // 2
    delta[c, c] = 1.0
    return (1.0 + amount) * delta - amount * blur


def _gen_binomial(p: dict[str, Any]) -> np.ndarray:
    n = p["size"]
    row = np.array([math.comb(n - 1, k) for k in range(n)], dtype=np.float64)
    row /= row.sum()
    return np.outer(row, row)


def _gen_motion(p: dict[str, Any]) -> np.ndarray:
    length, angle = p["length"], math.radians(p["angle"])
    # Sample the segment [-L/2, L/2] densely at midpoints and give each sample
    # to its nearest pixel; rint is odd-symmetric, so the kernel is centred.
    n = 16 * length
    t = -length / 2 + (np.arange(n) + 0.5) * (length / n)
    ix = np.rint(t * math.cos(angle)).astype(int)
    iy = np.rint(-t * math.sin(angle)).astype(int)  # +angle = counter-clockwise, y up
    r = int(max(np.abs(ix).max(), np.abs(iy).max()))
    w = np.zeros((2 * r + 1, 2 * r + 1))
    np.add.at(w, (iy + r, ix + r), 1.0)
    return w / w.sum()


_BUILDERS: dict[str, Callable[[dict[str, Any]], np.ndarray]] = {
    "gaussian": _gen_gaussian,
    "box": _gen_box,
    "log": _gen_log,
    "unsharp": _gen_unsharp,
    "binomial": _gen_binomial,
    "motion": _gen_motion,
}


# ---------------------------------------------------------------- spec parsing


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:key=value,key=value"`` into the name and raw parameters.

    Examples
    --------
    >>> parse_spec("gaussian:sigma=2.5,size=7")
    ('gaussian', {'sigma': '2.5', 'size': '7'})
    >>> parse_spec("sobel")
    ('sobel', {})
    """
    if not isinstance(spec, str):
        raise UsageError(f"kernel spec {_q(spec)} is not text")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"kernel spec {_q(spec)} has no kernel name")
    params: dict[str, str] = {}
    if sep:
        if not rest.strip():
            raise UsageError(f"kernel spec {_q(spec)} has ':' but no parameters")
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or not key or not value:
                raise UsageError(
                    f"kernel spec {_q(spec)}: parameter {_q(item.strip())} is not key=value"
                )
            if key in params:
                raise UsageError(f"kernel spec {_q(spec)}: parameter {_q(key)} given twice")
            params[key] = value
    return name, params


# ------------------------------------------------------------ library


@dataclass(frozen=True)
class KernelDefinition:
    """One parsed table of a kernels TOML file (not yet built)."""

    name: str
    kind: str  # "rows" | "generator" | "magnitude" | "alias"
    description: str = ""
    display: str | None = None
    rows: np.ndarray | None = None  # already divided by scale
    offset: float = 0.0
    generator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    components: tuple[str, ...] = ()
    alias: str | None = None
    source: str = ""

    def references(self) -> tuple[str, ...]:
        """Names of other kernels this definition needs."""
        if self.kind == "alias" and self.alias:
            return (self.alias,)
        if self.kind == "magnitude":
            return self.components
        if self.generator == "dilated":
            return (self.params["base"],)
        return ()


_TABLE_KEYS = {
    "description",
    "display",
    "rows",
    "scale",
    "offset",
    "generator",
    "params",
    "combine",
    "components",
    "alias",
}


def _parse_definition(name: str, table: object, source: str) -> KernelDefinition:
    where = f"{source}: kernel {_q(name)}"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table of keys, got {_q(table)}")
    unknown = sorted(set(table) - _TABLE_KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {_q(unknown[0])} (valid: {', '.join(sorted(_TABLE_KEYS))})"
        )
    kinds = [k for k in ("rows", "generator", "combine", "alias") if k in table]
    if len(kinds) != 1:
        raise UsageError(
            f"{where}: needs exactly one of rows, generator, combine or alias "
            f"(got {', '.join(kinds) or 'none'})"
        )
    description = table.get("description", "")
    if not isinstance(description, str):
        raise UsageError(f"{where}: description {_q(description)} is not a string")
    description = " ".join(description.split())
    display = table.get("display")
    if display is not None and display not in DISPLAY_MODES:
        raise UsageError(f"{where}: display {_q(display)} is not one of {', '.join(DISPLAY_MODES)}")
    offset = _check_offset(table.get("offset", 0.0), where)
    kind = kinds[0]
    stray = {
        "rows": {"generator", "params", "components"},
        "generator": {"scale", "components"},
        "combine": {"scale", "params"},
        "alias": {"scale", "params", "components", "offset"},
    }[kind] & set(table)
    if stray:
        raise UsageError(f"{where}: key {_q(sorted(stray)[0])} does not go with {kind!r}")
    common: dict[str, Any] = dict(
        name=name, description=description, display=display, offset=offset, source=source
    )

    if kind == "rows":
        rows = table["rows"]
        if (
            not isinstance(rows, list)
            or not rows
            or not all(isinstance(r, list) and r for r in rows)
        ):
            raise UsageError(f"{where}: rows must be a non-empty list of non-empty lists")
        for i, r in enumerate(rows, 1):
            if len(r) != len(rows[0]):
                raise UsageError(
                    f"{where}: rows are ragged (row {i} has {len(r)} values, row 1 has "
                    f"{len(rows[0])})"
                )
            for v in r:
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise UsageError(f"{where}: row {i} value {_q(v)} is not a finite number")
        m = np.array(rows, dtype=np.float64)
        _check_size(m.shape, where)
        scale = table.get("scale", 1)
        s = _auto_scale(m) if scale == "auto" else _check_scale(scale, where)
        return KernelDefinition(kind="rows", rows=m / s, **common)

    if kind == "generator":
        gen = table["generator"]
        if gen not in GENERATORS:
            raise UsageError(
                f"{where}: unknown generator {_q(gen)} (valid: {', '.join(GENERATORS)})"
            )
        raw = table.get("params", {})
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: params {_q(raw)} is not a table")
        params = _convert_params(gen, raw, where)
        if gen == "dilated":
            params.setdefault("base", "laplacian")
            params.setdefault("rate", 2)
        return KernelDefinition(kind="generator", generator=gen, params=params, **common)

    if kind == "combine":
        if table["combine"] != "magnitude":
            raise UsageError(f"{where}: combine {_q(table['combine'])} is not 'magnitude'")
        comps = table.get("components")
        if not isinstance(comps, list) or len(comps) < 1:
            raise UsageError(f'{where}: combine needs components = ["a", "b"]')
        names = tuple(_kernel_name("components", c) for c in comps)
        return KernelDefinition(kind="magnitude", components=names, **common)

    target = _kernel_name("alias", table["alias"])
    return KernelDefinition(kind="alias", alias=target, **common)


def _convert_params(gen: str, raw: Mapping[str, object], where: str) -> dict[str, Any]:
    schema = GENERATORS[gen]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in schema:
            raise UsageError(f"{where}: unknown parameter {_q(key)} (valid: {', '.join(schema)})")
        try:
            out[key] = schema[key](key, value)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return out


def _kernel_tables(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The kernel tables of a parsed file: ``[kernels.NAME]``, or a single
    top-level kernel (named after the file), or top-level ``[NAME]`` tables."""
    if "kernels" in data:
        tables = data["kernels"]
        if not isinstance(tables, dict):
            raise UsageError(f"{source}: 'kernels' must be a table of [kernels.NAME] tables")
        return tables
    if any(k in data for k in ("rows", "generator", "combine", "alias")):
        return {Path(source).stem: data}
    return data


def _parse_toml_text(text: str, source: str) -> dict[str, KernelDefinition]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML ({exc})") from None
    defs: dict[str, KernelDefinition] = {}
    for raw_name, table in _kernel_tables(data, source).items():
        name = _normalize_name(raw_name)
        if not _NAME_RE.match(name):
            raise UsageError(
                f"{source}: kernel name {_q(raw_name)} must use letters, digits and '-'"
            )
        if name in defs:
            raise UsageError(f"{source}: kernel {_q(name)} is defined twice")
        defs[name] = _parse_definition(name, table, source)
    return defs


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"kernel file {_q(str(path), 0)} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"kernel file {_q(str(path), 0)} cannot be read ({exc})") from None


class KernelLibrary(Mapping[str, KernelDefinition]):
    """Named kernel definitions (a read-only mapping name -> definition).

    Names are case-insensitive and ``_`` equals ``-`` (``EDGE_ENHANCE`` finds
    ``edge-enhance``).  Build one with :func:`load_library`.
    """

    def __init__(self, definitions: Mapping[str, KernelDefinition]):
        self._defs = dict(definitions)

    # -- Mapping protocol -------------------------------------------------
    def __getitem__(self, name: str) -> KernelDefinition:
        return self._defs[_normalize_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalize_name(name) in self._defs

    # -- queries ----------------------------------------------------------
    def names(self) -> list[str]:
        """All kernel names, sorted."""
        return sorted(self._defs)

    def describe(self, name: str) -> str:
        """The one-line description of a kernel (see :meth:`details` for more).

        Examples
        --------
        >>> load_library(include_user=False).describe("blur")
        "Pillow's BLUR: 5x5 ring of ones (inner 3x3 zero), scale 16"
        """
        d = self._lookup(name)
        if not d.description and d.kind == "alias" and d.alias in self._defs:
            return self._defs[d.alias].description
        return d.description

    def details(self, name: str) -> str:
        """A multi-line description: kind, parameters or matrix, display, source."""
        d = self._lookup(name)
        lines = [f"{d.name}: {self.describe(name)}"]
        if d.kind == "rows":
            k = self.resolve(d.name)
            lines.append("weights (after scale):")
            lines.extend("  " + " ".join(f"{v:g}" for v in row) for row in k.weights)
        elif d.kind == "generator":
            schema = ", ".join(
                f"{key}={_fmt(d.params[key])}" if key in d.params else f"{key} (optional)"
                for key in GENERATORS[d.generator or ""]
            )
            lines.append(f"generator {d.generator}; parameters: {schema}")
        elif d.kind == "magnitude":
            lines.append(f"magnitude of: {', '.join(d.components)}")
        else:
            lines.append(f"alias of: {d.alias}")
        if d.kind != "alias":
            k = self.resolve(d.name)
            lines.append(f"display: {k.display}; offset: {_fmt(k.offset)}")
        lines.append(f"source: {d.source}")
        return "\n".join(lines)

    def _lookup(self, name: str) -> KernelDefinition:
        key = _normalize_name(name) if isinstance(name, str) else ""
        if key in self._defs:
            return self._defs[key]
        close = difflib.get_close_matches(key, self._defs, n=3, cutoff=0.6)
        if close:
            quoted = [f"'{c}'" for c in close]
            alternatives = quoted[0]
            if len(quoted) > 1:
                alternatives = ", ".join(quoted[:-1]) + " or " + quoted[-1]
            hint = f"did you mean {alternatives}?"
        else:
            hint = "known kernels: " + ", ".join(self.names())
        raise UsageError(f"unknown kernel {_q(name)}; {hint}")

    # -- building ---------------------------------------------------------
    def resolve(self, spec: str) -> Kernel:
        """Build the kernel for ``"name"`` or ``"name:key=value,..."``.

        Examples
        --------
        >>> lib = load_library(include_user=False)
        >>> lib.resolve("box:size=2").weights
        array([[0.25, 0.25],
               [0.25, 0.25]])
        >>> k = lib.resolve("dilated:rate=3")
        >>> k.name, k.shape, k.dilation, k.extent
        ('dilated:rate=3', (3, 3), (3, 3), (7, 7))
        >>> lib.resolve("gausian")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        imgkernel.errors.UsageError: unknown kernel 'gausian';
            did you mean 'gaussian', 'gaussian-5' or 'gaussian-3'?
        """
        name, raw = parse_spec(spec)
        return self._build(name, raw, ())

    def _build(self, name: str, raw: Mapping[str, object], stack: tuple[str, ...]) -> Kernel:
        d = self._lookup(name)
        if d.name in stack:
            chain = " -> ".join((*stack, d.name))
            raise UsageError(f"kernel {_q(d.name)} refers to itself ({chain})")
        stack = (*stack, d.name)

        if d.kind == "alias":
            k = self._build(d.alias or "", raw, stack)
            if d.display is not None:
                k = Kernel(
                    k.name, k.weights, k.offset, k.description, d.display, k.dilation, k.combine
                )
            return k

        where = f"kernel {_q(d.name)}"
        if d.kind != "generator" and raw:
            first = next(iter(raw))
            raise UsageError(f"{where} takes no parameters (got {_q(f'{first}={raw[first]}')})")
        description = d.description
        if d.kind == "rows":
            assert d.rows is not None
            return Kernel(d.name, d.rows, d.offset, description, d.display or "clip")

        if d.kind == "magnitude":
            parts = [self._build(c, {}, stack) for c in d.components]
            for p in parts:
                if p.combine != "single":
                    raise UsageError(f"{where}: component {_q(p.name)} is itself a magnitude")
                if p.shape != parts[0].shape or p.dilation != parts[0].dilation:
                    raise UsageError(
                        f"{where}: components {_q(parts[0].name)} {parts[0].shape} and "
                        f"{_q(p.name)} {p.shape} differ in shape or dilation"
                    )
            weights = np.stack([p.weights for p in parts])
            return Kernel(
                d.name,
                weights,
                d.offset,
                description,
                d.display or "abs",
                parts[0].dilation,
                "magnitude",
            )

        gen = d.generator or ""
        given = _convert_params(gen, raw, where)
        params = {**d.params, **given}
        order = list(GENERATORS[gen])
        canon = d.name
        if given:
            canon += ":" + ",".join(f"{k}={_fmt(given[k])}" for k in order if k in given)
        missing = [k for k in order if k not in params and k not in ("size", "truncate")]
        if missing:
            raise UsageError(f"{where}: parameter {_q(missing[0])} has no default; pass it")

        if gen == "dilated":
            base = self._build(params["base"], {}, stack)
            rate = params["rate"]
            dy, dx = base.dilation
            desc = f"{base.description} -- dilated at rate {rate}"
            return Kernel(
                canon,
                base.weights,
                d.offset or base.offset,
                desc,
                d.display or base.display,
                (dy * rate, dx * rate),
                base.combine,
            )

        try:
            weights = _BUILDERS[gen](params)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        return Kernel(canon, weights, d.offset, description, d.display or "clip")

    def _check_references(self) -> None:
        for d in self._defs.values():
            for ref in d.references():
                if ref not in self._defs:
                    close = difflib.get_close_matches(ref, self._defs, n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    raise UsageError(
                        f"{d.source}: kernel {_q(d.name)} refers to unknown kernel {_q(ref)}{hint}"
                    )


# ------------------------------------------------------------ loading


def user_kernels_path() -> Path:
    """``$XDG_CONFIG_HOME/imgkernel/kernels.toml`` (default ``~/.config/...``)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "imgkernel" / "kernels.toml"


@functools.lru_cache(maxsize=1)
def _builtin_definitions() -> dict[str, KernelDefinition]:
    try:
        res = importlib.resources.files("imgkernel") / "kernels.toml"
        if res.is_file():
            return _parse_toml_text(res.read_text(encoding="utf-8"), str(res))
    except (ModuleNotFoundError, OSError):
        pass
    path = Path(__file__).resolve().parent.parent.parent / "kernels.toml"
    if not path.is_file():
        raise ImgkernelError(
            f"built-in kernels.toml not found (looked inside the imgkernel package and at {path})"
        )
    return _parse_toml_text(path.read_text(encoding="utf-8"), str(path))


def load_library(
    extra_files: Sequence[str | Path] = (), *, include_user: bool = True
) -> KernelLibrary:
    """Load the built-in kernels, the user's file and ``extra_files``.

    Later sources override earlier ones by name: built-ins, then
    ``$XDG_CONFIG_HOME/imgkernel/kernels.toml`` (if ``include_user`` and the
    file exists), then each of ``extra_files`` in order.

    Raises
    ------
    UsageError
        For a missing extra file, bad TOML, bad rows, unknown generators or
        parameters, or references to unknown kernels; the message names the
        file and the kernel.
    """
    if isinstance(extra_files, str | Path):
        extra_files = [extra_files]
    defs = dict(_builtin_definitions())
    sources: list[Path] = []
    if include_user:
        user = user_kernels_path()
        if user.is_file():
            sources.append(user)
    sources.extend(Path(p) for p in extra_files)
    for path in sources:
        defs.update(_parse_toml_text(_read_text(path), str(path)))
    lib = KernelLibrary(defs)
    lib._check_references()
    return lib


def load_kernel_file(
    path: str | Path, *, scale: float | None = None, offset: float = 0.0
) -> Kernel:
    """Load one kernel from a file.

    * ``.toml``: a single kernel table (``rows = ...`` at top level), or a file
      of ``[kernels.NAME]`` tables, of which the first is used.  It may use
      generators and refer to built-in kernels.  ``scale``/``offset`` are
      ignored (the file has its own).
    * ``.npy``: a 2-D numeric array (loaded with ``allow_pickle=False``).
    * anything else: a text matrix for :func:`parse_matrix` (whitespace or
      CSV, one row per line).

    For ``.npy`` and text, ``scale`` defaults to the absolute sum of the
    weights (1 for zero-sum kernels) as in :func:`kernel_from_matrix`.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"kernel file {_q(str(path), 0)} not found")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        defs = _parse_toml_text(_read_text(p), str(p))
        if not defs:
            raise UsageError(f"kernel file {_q(str(path), 0)} defines no kernel")
        merged = {**_builtin_definitions(), **defs}
        lib = KernelLibrary(merged)
        lib._check_references()
        return lib.resolve(next(iter(defs)))
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"kernel file {_q(str(path), 0)} is not a readable .npy ({exc})"
            ) from None
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            raise UsageError(
                f"kernel file {_q(str(path), 0)}: expected a 2-D array, got shape "
                f"{getattr(arr, 'shape', '?')}"
            )
        if arr.dtype.kind not in "biuf":
            raise UsageError(f"kernel file {_q(str(path), 0)}: dtype {arr.dtype} is not numeric")
        return kernel_from_matrix(
            arr.astype(np.float64), name=str(path), scale=scale, offset=offset
        )
    text = _read_text(p)
    try:
        m = parse_matrix(text)
    except UsageError as exc:
        raise UsageError(f"kernel file {_q(str(path), 0)}: {exc}") from None
    return kernel_from_matrix(m, name=str(path), scale=scale, offset=offset)
