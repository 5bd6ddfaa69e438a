"""Kernels the user writes out: matrices as text or arrays, scaled into records.

:func:`parse_matrix` reads the forms people type (``1,0,-1;2,0,-2``, rows on
lines, ``1/9``, ``[[1, 2], [3, 4]]``); :func:`kernel_from_matrix` turns a
matrix into a :class:`~imgkernel.kernels.record.Kernel` with the weights as
written (as scipy, OpenCV's ``filter2D``, PyTorch and ImageMagick use them),
divided only when a divisor is asked for: a number, or ``"sum"`` for the
absolute sum (GIMP's and Pillow's convention).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.kernels.checks import check_offset, check_scale, check_shape, quote
from imgkernel.kernels.record import Kernel

__all__ = ["apply_scale", "auto_scale", "divisor_of", "kernel_from_matrix", "parse_matrix"]

_FRACTION = re.compile(r"^([^/]+)/([^/]+)$")


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
        raise UsageError(f"matrix {quote(text)} is not text")
    what = f"matrix {quote(text)}"
    rows: list[list[float]] = []
    for raw in re.split(r"[;\n]", _strip_comments_and_brackets(text)):
        if not raw.strip():
            continue
        values = [_parse_number(token, what) for token in _row_tokens(raw.strip(), what)]
        if rows and len(values) != len(rows[0]):
            raise UsageError(
                f"{what}: row {len(rows) + 1} has {len(values)} value(s) "
                f"but row 1 has {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise UsageError(f"{what} is empty")
    m = np.array(rows, dtype=np.float64)
    check_shape(m.shape, what)
    return m


def _strip_comments_and_brackets(text: str) -> str:
    """The text without ``#`` comments; ``[[a, b], [c, d]]`` becomes ``a, b; c, d``."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines()).strip()
    if body.startswith("["):
        body = re.sub(r"\]\s*,?\s*\[", ";", body).replace("[", " ").replace("]", " ")
    return body


def _row_tokens(row: str, what: str) -> list[str]:
    """The values of one row, split at commas and/or whitespace."""
    parts = row.split(",")
    tokens: list[str] = []
    for part in parts:
        words = part.split()
        if not words and len(parts) > 1:
            raise UsageError(f"{what}: empty value in row {quote(row)}")
        tokens.extend(words)
    return tokens


def _parse_number(token: str, what: str) -> float:
    """A finite number or fraction ``a/b``."""
    try:
        m = _FRACTION.match(token)
        value = float(m.group(1)) / float(m.group(2)) if m else float(token)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{what}: {quote(token)} is not a finite number")
    return value


def auto_scale(weights: np.ndarray) -> float:
    """|sum| of the weights, or 1 for a zero-sum kernel (ImageMagick's ``!``).

    >>> auto_scale(np.array([[1.0, 2.0, 1.0]])), auto_scale(np.array([[-1.0, 0.0, 1.0]]))
    (4.0, 1.0)
    """
    total = float(weights.sum())
    if abs(total) <= 1e-12 * max(1.0, float(np.abs(weights).sum())):
        return 1.0
    return abs(total)


#: Divisor names that mean "the absolute sum of the weights" (:func:`auto_scale`).
SUM_DIVISORS = ("sum", "auto")


def divisor_of(weights: np.ndarray, divisor: Any, what: str) -> float:
    """The number to divide ``weights`` by: ``divisor``, or :func:`auto_scale` for ``"sum"``.

    >>> divisor_of(np.array([[1.0, 2.0, 1.0]]), "sum", "k"), divisor_of(np.ones((1, 2)), 3, "k")
    (4.0, 3.0)
    """
    if isinstance(divisor, str) and divisor.strip().lower() in SUM_DIVISORS:
        return auto_scale(weights)
    return check_scale(divisor, what)


def apply_scale(weights: np.ndarray, scale: Any, what: str) -> np.ndarray:
    """``weights`` divided by ``scale`` (a number, or ``"sum"``; None: as written)."""
    if scale is None:
        return weights
    return weights / divisor_of(weights, scale, what)


def _as_matrix(matrix: Any, what: str) -> np.ndarray:
    """An array-like as a float64 matrix (a 1-D sequence is one row)."""
    try:
        m = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: matrix is not rectangular and numeric") from None
    if m.ndim == 1:
        m = m[np.newaxis, :]
    if m.ndim != 2:
        raise UsageError(f"{what}: matrix must be 2-D, got shape {m.shape}")
    if m.size == 0:
        raise UsageError(f"{what}: matrix is empty")
    if not np.all(np.isfinite(m)):
        raise UsageError(f"{what}: matrix contains NaN or infinity")
    check_shape(m.shape, what)
    return m


def kernel_from_matrix(
    matrix: Any,
    *,
    name: str = "matrix",
    scale: float | str | None = None,
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
    scale : float or "sum", optional
        Divisor.  Default: none, the weights are used as written.  ``"sum"``
        divides by the absolute sum of the weights (1 if they sum to zero), so
        ``1 2 1 / 2 4 2 / 1 2 1`` blurs without brightening.
    offset : float
        Added after correlation, as a fraction of full scale in [-1, 1].

    Examples
    --------
    >>> kernel_from_matrix("1 0 1; 0 1 0; 1 0 1").weights
    array([[1., 0., 1.],
           [0., 1., 0.],
           [1., 0., 1.]])
    >>> kernel_from_matrix("1 2 1; 2 4 2; 1 2 1", scale="sum").weights * 16
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> kernel_from_matrix([[0, -1], [1, 0]]).weights
    array([[ 0., -1.],
           [ 1.,  0.]])
    """
    what = f"kernel {quote(name)}"
    m = parse_matrix(matrix) if isinstance(matrix, str) else _as_matrix(matrix, what)
    weights = apply_scale(m, scale, what)
    return Kernel(name, weights, check_offset(offset, what), description, display)
