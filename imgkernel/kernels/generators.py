"""Kernel generators: weights computed from a few parameters, kept in one registry.

Each generator is a small record (:class:`Generator`): its name, its
parameters (:class:`Param`: name, check, default) and a builder that turns
checked parameters into weights.  ``kernels.toml`` names a generator and
gives default parameter values; a spec such as ``gaussian:sigma=2`` overrides
them.  :func:`register_generator` adds one; the library then resolves it by
name with no other change (also when no table in ``kernels.toml`` uses it).

A parameter whose check is :func:`~imgkernel.kernels.checks.kernel_name`
names another kernel: the library builds that kernel first and passes the
builder the :class:`~imgkernel.kernels.record.Kernel` record (``dilated``
works this way).  A builder returns weights, or a whole record when it
derives one from such a base kernel.

Examples
--------
>>> GENERATORS["box"].build({"size": 2})
array([[0.25, 0.25],
       [0.25, 0.25]])
>>> [param.name for param in GENERATORS["gaussian"].params]
['sigma', 'size', 'truncate']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from imgkernel.errors import UsageError, check_choice, check_int
from imgkernel.kernels.checks import (
    MAX_KERNEL_SIZE,
    NAME_PATTERN,
    Check,
    format_value,
    kernel_name,
    normalize_name,
    number,
    odd_taps,
    positive,
    quote,
    taps,
)
from imgkernel.kernels.checks import (
    sigma as sigma_value,
)
from imgkernel.kernels.record import Kernel

__all__ = [
    "GENERATORS",
    "REQUIRED",
    "Generator",
    "Param",
    "find_generator",
    "gaussian_1d",
    "register_generator",
]


class _Required:
    """The default of a parameter that has none: the table or the spec must give it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

#: ``build(params) -> weights``, or a whole record derived from a base kernel.
Builder = Callable[[Mapping[str, Any]], np.ndarray | Kernel]


class Param(NamedTuple):
    """One parameter of a generator.

    Attributes
    ----------
    name : str
        The key in ``params = {...}`` and in ``name:key=value`` specs.
    check : callable
        ``check(raw_value, what)`` returns the converted value or raises a
        ``UsageError`` that names it (see :mod:`imgkernel.kernels.checks`).
    default : object
        The value used when neither the table nor the spec gives one;
        :data:`REQUIRED` if one of them must, ``None`` if the builder works
        the value out itself (a Gaussian's size from its sigma).
    """

    name: str
    check: Check
    default: Any = REQUIRED

    @property
    def names_kernel(self) -> bool:
        """True if the value is another kernel's name, built before the builder runs."""
        return self.check is kernel_name


class Generator(NamedTuple):
    """A named builder of kernel weights and the parameters it takes.

    Examples
    --------
    >>> ramp = Generator("ramp", (Param("size", taps, 3),), lambda p: np.arange(p["size"])[None])
    >>> ramp.build(ramp.convert({"size": "4"}, "kernel 'ramp'"))
    array([[0, 1, 2, 3]])
    >>> ramp.convert({"size": 0}, "kernel 'ramp'")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: kernel 'ramp': size must be at least 1, got 0
    """

    name: str
    params: tuple[Param, ...]
    build: Builder
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in the order canonical specs list them."""
        return tuple(param.name for param in self.params)

    def defaults(self) -> dict[str, Any]:
        """The parameters that have a default value, with it."""
        return {
            p.name: p.default
            for p in self.params
            if p.default is not None and p.default is not REQUIRED
        }

    def convert(self, raw: Mapping[str, object], where: str) -> dict[str, Any]:
        """Check raw parameter values (strings from a spec, or TOML values)."""
        known = {param.name: param for param in self.params}
        converted: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise UsageError(
                    f"{where}: unknown parameter {quote(key)} (valid: {', '.join(known)})"
                )
            converted[key] = known[key].check(value, f"{where}: {key}")
        return converted

    def spec(self, name: str, given: Mapping[str, Any]) -> str:
        """The canonical spec of kernel ``name`` with the ``given`` (checked) parameters.

        >>> GENERATORS["gaussian"].spec("gaussian", {"size": 7, "sigma": 2.0})
        'gaussian:sigma=2,size=7'
        """
        if not given:
            return name
        return (
            name + ":" + ",".join(f"{k}={format_value(given[k])}" for k in self.names if k in given)
        )

    def missing(self, params: Mapping[str, Any]) -> list[str]:
        """Required parameters not in ``params``."""
        return [p.name for p in self.params if p.default is REQUIRED and p.name not in params]


#: Every generator by name, in the order error messages list them.
GENERATORS: dict[str, Generator] = {}


def register_generator(generator: Generator) -> Generator:
    """Add ``generator`` to :data:`GENERATORS`; its name must be new and a valid kernel name."""
    name = normalize_name(generator.name)
    if name != generator.name or not NAME_PATTERN.match(name):
        raise ValueError(f"generator name {generator.name!r} is not a normalized kernel name")
    if name in GENERATORS:
        raise ValueError(f"a generator {name!r} is already registered")
    GENERATORS[name] = generator
    return generator


def find_generator(name: Any, what: str) -> Generator:
    """The registered generator called ``name``."""
    return GENERATORS[check_choice(name, what, GENERATORS)]


# ------------------------------------------------------------------ builders


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
    sigma = positive(sigma, "sigma")
    truncate = positive(truncate, "truncate")
    if radius is None:
        radius = _radius(sigma, truncate)
    radius = check_int(radius, "radius", minimum=0, maximum=MAX_KERNEL_SIZE // 2)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        if sigma * sigma > 1e-300:  # scipy's formula, to the last bit
            phi = np.exp(-0.5 / (sigma * sigma) * x * x)
        else:  # 1/sigma**2 would overflow: the same curve, with x/sigma first
            phi = np.exp(-0.5 * np.square(x / sigma))
    return phi / phi.sum()


def _radius(sigma: float, truncate: float) -> int:
    """scipy's half-width ``int(truncate * sigma + 0.5)``, refused past the size limit."""
    reach = truncate * sigma
    if not reach + 0.5 < MAX_KERNEL_SIZE // 2 + 1:
        size = f"a {2 * int(reach + 0.5) + 1}-tap" if reach < 1e15 else "an enormous"
        raise UsageError(
            f"sigma={quote(format_value(sigma))} with truncate={quote(format_value(truncate))} "
            f"needs {size} kernel, larger than the limit {MAX_KERNEL_SIZE}; pass a smaller "
            "sigma or size="
        )
    return int(reach + 0.5)


def _gauss_radius(p: Mapping[str, Any]) -> int:
    """Half-width of a Gaussian: from ``size`` if given, else scipy's rule (within the limit)."""
    if p.get("size") is not None:
        return int(p["size"]) // 2
    return _radius(p["sigma"], p["truncate"])


def _gaussian(p: Mapping[str, Any]) -> np.ndarray:
    g = gaussian_1d(p["sigma"], _gauss_radius(p), p["truncate"])
    return np.outer(g, g)


def _box(p: Mapping[str, Any]) -> np.ndarray:
    n = p["size"]
    return np.full((n, n), 1.0 / (n * n))


def _log(p: Mapping[str, Any]) -> np.ndarray:
    sigma, r = p["sigma"], _gauss_radius(p)
    x = np.arange(-r, r + 1, dtype=np.float64)
    rr = x[:, None] ** 2 + x[None, :] ** 2
    with np.errstate(over="ignore", under="ignore"):
        s2 = np.float64(sigma) * np.float64(sigma)
        h = _gaussian(p) * (rr - 2.0 * s2) / (s2 * s2)  # del^2 G
    h -= h.mean()  # exactly zero-sum (MATLAB fspecial's construction)
    if not np.isfinite(h).all() or not h.any():
        raise UsageError(
            f"sigma={quote(format_value(sigma))} on {2 * r + 1}x{2 * r + 1} taps leaves no "
            "usable weights (all zero or overflowing); use a sigma between "
            f"{0.125:g} and about {MAX_KERNEL_SIZE // 8}, or size= of at least 3"
        )
    return -h  # positive centre, like "laplacian"


def _unsharp(p: Mapping[str, Any]) -> np.ndarray:
    amount, blur = p["amount"], _gaussian(p)
    delta = np.zeros_like(blur)
    c = blur.shape[0] // 2
    delta[c, c] = 1.0
    return (1.0 + amount) * delta - amount * blur


def _binomial(p: Mapping[str, Any]) -> np.ndarray:
    n = p["size"]
    row = np.array([math.comb(n - 1, k) for k in range(n)], dtype=np.float64)
    row /= row.sum()
    return np.outer(row, row)


def _motion(p: Mapping[str, Any]) -> np.ndarray:
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


def _dilated(p: Mapping[str, Any]) -> Kernel:
    base, rate = p["base"], p["rate"]
    dy, dx = base.dilation
    return dataclasses.replace(
        base,
        description=f"{base.description} -- dilated at rate {rate}",
        dilation=(dy * rate, dx * rate),
    )


_GAUSSIAN_PARAMS = (
    Param("sigma", sigma_value),
    Param("size", odd_taps, None),
    Param("truncate", positive, 4.0),
)

for _generator in (
    Generator("gaussian", _GAUSSIAN_PARAMS, _gaussian, "Gaussian blur (sigma; size from sigma)"),
    Generator("box", (Param("size", taps),), _box, "Box / mean blur, size x size"),
    Generator("log", _GAUSSIAN_PARAMS, _log, "Laplacian of Gaussian, positive centre"),
    Generator("unsharp", (Param("amount", number), *_GAUSSIAN_PARAMS), _unsharp, "Unsharp mask"),
    Generator(
        "dilated",
        (Param("base", kernel_name, "laplacian"), Param("rate", taps, 2)),
        _dilated,
        "Another kernel with its taps spread apart",
    ),
    Generator("motion", (Param("length", taps), Param("angle", number)), _motion, "Motion blur"),
    Generator("binomial", (Param("size", odd_taps),), _binomial, "Binomial blur"),
):
    register_generator(_generator)
