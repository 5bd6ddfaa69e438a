"""Sliding windows: borders, padding, output sizes and window views.

This is the one place where the geometry of a sliding window is computed.
Convolution (:mod:`imgkernel.core.conv`) and pooling (:mod:`imgkernel.core.pool`) both
ask it how much to pad, how large the output is and what fills the border.

Conventions
-----------
Spatial axes are always the last two axes of the arrays handled here, except
where a function takes an explicit ``axes`` argument (channels-last images).
Pads are ``(top, bottom, left, right)``; strides and dilations are ``(h, w)``.

The output size of a window of size ``k`` sliding with ``stride`` and
``dilation`` over ``n`` cells padded with ``before`` and ``after`` cells is::

    floor((n + before + after - dilation*(k-1) - 1) / stride) + 1

Examples
--------
>>> output_size(5, 3, stride=1)
3
>>> output_size(5, 3, stride=2, pad_before=1, pad_after=1)
3
>>> resolve_padding("same", (5, 6), (3, 4))
(1, 1, 1, 2)

:func:`imgkernel.core.geometry.window_geometry` is the one check of a window
against an input, for
convolution, pooling and model layers alike: besides the rules above it
refuses, before any work, a padded input or an output too large to ever be
allocated (options such as ``--dilation 99999999999`` ask for those) and a
window far larger than its input whose padding alone would be large, and it
tames strides and dilations that would overflow index arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgkernel.core.padding import (  # noqa: F401 - re-exported until callers move
    BORDER_ALIASES,
    BORDERS,
    Border,
    PaddedPlanes,
    pad,
    pad_rows,
    parse_border,
)
from imgkernel.errors import UsageError

#: Largest size, stride, dilation or pad accepted: numpy's largest index.
MAX_INDEX = int(np.iinfo(np.intp).max)


def as_pair(value: int | Sequence[int], what: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return ``(h, w)`` from an int or a pair, checking each is >= ``minimum``.

    >>> as_pair(2, "stride")
    (2, 2)
    >>> as_pair((1, 3), "dilation")
    (1, 3)
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            items = [int(v) for v in value]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise UsageError(
                f"{what} must be an integer or a pair of integers, got {value!r}"
            ) from None
        if len(items) != 2 or any(float(a) != float(b) for a, b in zip(items, value, strict=False)):  # type: ignore[arg-type]
            raise UsageError(f"{what} must be an integer or a pair of integers, got {value!r}")
        pair = (items[0], items[1])
    if min(pair) < minimum:
        raise UsageError(f"{what} must be at least {minimum}, got {value!r}")
    if max(pair) > MAX_INDEX:
        raise UsageError(f"{what} must be at most {MAX_INDEX}, got {value!r}")
    return pair


def output_size(
    n: int,
    k: int,
    stride: int = 1,
    dilation: int = 1,
    pad_before: int = 0,
    pad_after: int = 0,
    *,
    ceil_mode: bool = False,
) -> int:
    """Number of window positions along one axis (may be <= 0 if none fit).

    With ``ceil_mode`` the last, partial step counts too, but as in ONNX and
    PyTorch a window that would start beyond the input and its leading padding
    is dropped.

    >>> output_size(6, 3, stride=2, ceil_mode=False), output_size(6, 3, stride=2, ceil_mode=True)
    (2, 3)
    """
    span = dilation * (k - 1) + 1
    room = n + pad_before + pad_after - span
    if ceil_mode:
        # ONNX/PyTorch: ceil((n + pads - span) / stride) + 1, which keeps one
        # partial window even when the input is shorter than the window.
        out = max(-(-room // stride) + 1, 0)
        if out and (out - 1) * stride >= n + pad_before:
            out -= 1
        return out
    if room < 0:
        return 0
    return room // stride + 1


def valid_shape(
    xp: np.ndarray | PaddedPlanes,
    k_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int]:
    """``(P, Ho, Wo)`` of a valid correlation of padded planes ``xp`` ``(P, Hp, Wp)``.

    Raises a usage error when no window fits.
    """
    oh = output_size(xp.shape[1], k_hw[0], stride[0], dilation[0])
    ow = output_size(xp.shape[2], k_hw[1], stride[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise UsageError(
            f"kernel {k_hw[0]}x{k_hw[1]} (dilation {dilation[0]},{dilation[1]}) does not fit "
            f"the padded input {xp.shape[1]}x{xp.shape[2]}"
        )
    return xp.shape[0], oh, ow


def resolve_padding(
    padding: str | int | Sequence[int],
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int, int, int]:
    """Turn a padding spec into explicit ``(top, bottom, left, right)`` pads.

    ``"same"`` makes the output ``ceil(input / stride)`` long and puts an odd
    extra pad at the end (ONNX ``SAME_UPPER``), at any stride. ``"full"``
    pads ``dilation*(k-1)`` on both sides; ``"valid"`` pads nothing. An int,
    ``(ph, pw)`` or ``(top, bottom, left, right)`` are taken as given.

    >>> resolve_padding("same", (7, 7), (3, 3), stride=(2, 2))
    (1, 1, 1, 1)
    >>> resolve_padding("same", (6, 6), (3, 3), stride=(2, 2))
    (0, 1, 0, 1)
    >>> resolve_padding("full", (4, 4), (3, 2))
    (2, 2, 1, 1)
    """
    if isinstance(padding, str):
        name = padding.strip().lower()
        if name == "valid":
            return (0, 0, 0, 0)
        pads: list[int] = []
        for n, k, s, d in zip(in_hw, k_hw, stride, dilation, strict=True):
            span = d * (k - 1) + 1
            if name == "same":
                out = -(-n // s)
                total = max((out - 1) * s + span - n, 0)
                pads += [total // 2, total - total // 2]
            elif name == "full":
                pads += [span - 1, span - 1]
            else:
                raise UsageError(
                    f"unknown padding {padding!r}; use same, valid, full, N, H,W or T,B,L,R"
                )
        return (pads[0], pads[1], pads[2], pads[3])
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        values = [int(padding)] * 4
    else:
        try:
            raw = [int(v) for v in padding]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise UsageError(f"padding must be a name or integers, got {padding!r}") from None
        if len(raw) == 2:
            values = [raw[0], raw[0], raw[1], raw[1]]
        elif len(raw) == 4:
            values = raw
        else:
            raise UsageError(f"padding needs 1, 2 or 4 integers, got {padding!r}")
    if min(values) < 0:
        raise UsageError(f"padding must not be negative, got {padding!r}")
    if max(values) > MAX_INDEX:
        raise UsageError(f"padding must be at most {MAX_INDEX}, got {padding!r}")
    return (values[0], values[1], values[2], values[3])


def window_view(
    xp: np.ndarray,
    k_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    out_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read-only view ``(..., out_h, out_w, kh, kw)`` of the windows of ``xp``.

    ``xp`` is already padded; its last two axes are (H, W). No data is copied.

    >>> window_view(np.arange(16).reshape(4, 4), (2, 2), (2, 2))[1, 0]
    array([[ 8,  9],
           [12, 13]])
    """
    kh, kw = k_hw
    sh, sw = stride
    dh, dw = dilation
    if out_hw is None:
        out_hw = (
            output_size(xp.shape[-2], kh, sh, dh),
            output_size(xp.shape[-1], kw, sw, dw),
        )
    oh, ow = out_hw
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp,
        shape=(*xp.shape[:-2], oh, ow, kh, kw),
        strides=(*s[:-2], s[-2] * sh, s[-1] * sw, s[-2] * dh, s[-1] * dw),
        writeable=False,
    )
