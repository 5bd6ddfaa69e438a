"""The checks only kernels need, kept apart from the code that builds weights.

Plain numbers go through :mod:`imgkernel.errors` (``check_int``,
``check_float``, ``check_choice``); this module adds what is particular to
kernels: kernel names, the size limit, a matrix's ``scale`` and ``offset``,
and the parameter checks the generators declare (each takes the raw value
and what to call it, and returns the converted value).  Every message names
the bad value.

Examples
--------
>>> positive("2.5", "sigma")
2.5
>>> odd_taps(4, "size")
Traceback (most recent call last):
...
imgkernel.errors.UsageError: size must be odd (the kernel needs a centre tap), got 4
>>> kernel_name("Sobel_X", "base")
'sobel-x'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from imgkernel.errors import UsageError, check_float, check_int

__all__ = [
    "MAX_KERNEL_SIZE",
    "MIN_SIGMA",
    "Check",
    "check_offset",
    "check_scale",
    "check_shape",
    "format_value",
    "kernel_name",
    "normalize_name",
    "number",
    "odd_taps",
    "positive",
    "quote",
    "sigma",
    "taps",
]

#: Largest accepted kernel side, in taps (before dilation).
MAX_KERNEL_SIZE = 1001

#: Smallest accepted Gaussian sigma, in pixels: a narrower Gaussian is one tap
#: (its next tap is exp(-5000) = 0), and 1/sigma**2 must stay a finite number.
MIN_SIGMA = 0.01

#: A kernel name after :func:`normalize_name`: letters, digits, ``.``, ``+``, ``-``.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")

#: A parameter check: ``check(raw_value, what) -> value``, or a ``UsageError`` naming ``what``.
Check = Callable[[Any, str], Any]


def quote(value: object, limit: int = 60) -> str:
    """Quote a user value for a one-line message, shortened in the middle past ``limit``.

    >>> quote("1 2 1\\n2 4 2")
    "'1 2 1\\\\n2 4 2'"
    >>> quote("0123456789" * 8)
    "'0123456789012345678901234567...2345678901234567890123456789'"
    """
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    if limit and len(text) > limit:
        keep = (limit - 3) // 2
        text = text[:keep] + "..." + text[-keep:]
    return f"'{text}'"


def format_value(value: object) -> str:
    """Canonical text of a parameter value, as in a kernel's name (``2.0`` -> ``'2'``).

    >>> format_value(2.0), format_value(0.25), format_value("sobel-x")
    ('2', '0.25', 'sobel-x')
    """
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def normalize_name(name: str) -> str:
    """Kernel names ignore case and treat ``_`` as ``-`` (``EDGE_ENHANCE`` is ``edge-enhance``)."""
    return name.strip().lower().replace("_", "-")


def kernel_name(value: Any, what: str) -> str:
    """``value`` as a bare kernel name (no ``:parameters``), normalized."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must be a kernel name, got {value!r}")
    name = normalize_name(value)
    if not NAME_PATTERN.match(name):
        raise UsageError(f"{what} must be a bare kernel name (no parameters), got {value!r}")
    return name


def check_shape(shape: tuple[int, ...], what: str) -> None:
    """No side of a matrix may exceed :data:`MAX_KERNEL_SIZE`."""
    if max(shape) > MAX_KERNEL_SIZE:
        raise UsageError(
            f"{what}: {'x'.join(map(str, shape))} is larger than the "
            f"{MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE} limit"
        )


def check_scale(scale: Any, what: str) -> float:
    """A matrix's divisor: a finite number other than 0."""
    value = check_float(scale, f"{what}: scale")
    if value == 0:
        raise UsageError(f"{what}: scale must not be 0, got {scale!r}")
    return value


def check_offset(offset: Any, what: str) -> float:
    """An offset added after correlation: a fraction of full scale in [-1, 1].

    >>> check_offset(128, "kernel 'k'")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: kernel 'k': offset must be a fraction of full scale in [-1, 1], \
0.5 = mid-grey, got 128 (in 8-bit units that is 128/255 = 0.502)
    """
    value = check_float(offset, f"{what}: offset")
    if abs(value) > 1:
        raise UsageError(
            f"{what}: offset must be a fraction of full scale in [-1, 1], 0.5 = mid-grey, "
            f"got {offset!r} (in 8-bit units that is {value:g}/255 = {value / 255:.4g})"
        )
    return value


# -- the parameter checks generators declare (see imgkernel.kernels.generators)

#: Any finite number.
number: Check = check_float
#: A finite number > 0.
positive: Check = functools.partial(check_float, minimum=0, min_open=True)
#: A count of taps: an integer from 1 to :data:`MAX_KERNEL_SIZE`.
taps: Check = functools.partial(check_int, minimum=1, maximum=MAX_KERNEL_SIZE)


def sigma(value: Any, what: str) -> float:
    """A Gaussian's standard deviation: a finite number of at least :data:`MIN_SIGMA` pixels.

    >>> sigma("1e-300", "sigma")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: sigma must be at least 0.01 (the limit: a narrower Gaussian \
is a single tap), got '1e-300'
    """
    number = positive(value, what)
    if number < MIN_SIGMA:
        raise UsageError(
            f"{what} must be at least {MIN_SIGMA:g} (the limit: a narrower Gaussian is a "
            f"single tap), got {value!r}"
        )
    return number


def odd_taps(value: Any, what: str) -> int:
    """A count of taps that is odd, so the kernel has a centre tap."""
    count = taps(value, what)
    if count % 2 == 0:
        raise UsageError(f"{what} must be odd (the kernel needs a centre tap), got {value!r}")
    return int(count)
