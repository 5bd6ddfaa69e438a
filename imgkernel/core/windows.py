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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgkernel.core.parallel import run_tiles
from imgkernel.errors import UsageError

#: Canonical border names (numpy.pad's) and the aliases other libraries use.
#: scipy's "reflect" is deliberately absent: it means numpy's "symmetric",
#: and accepting it silently would give scipy users the other mirror.
BORDER_ALIASES: dict[str, str] = {
    "zero": "zero",
    "zeros": "zero",
    "black": "zero",
    "constant": "constant",
    "cval": "constant",
    "background": "constant",
    "reflect": "reflect",
    "mirror": "reflect",
    "reflect101": "reflect",
    "reflect_101": "reflect",
    "reflect-101": "reflect",
    "border_reflect_101": "reflect",
    "default": "reflect",
    "symmetric": "symmetric",
    "half-sample-symmetric": "symmetric",
    "border_reflect": "symmetric",
    "edge": "edge",
    "replicate": "edge",
    "nearest": "edge",
    "border_replicate": "edge",
    "clamp": "edge",
    "wrap": "wrap",
    "circular": "wrap",
    "tile": "wrap",
    "grid-wrap": "wrap",
    "periodic": "wrap",
    "border_wrap": "wrap",
}

BORDERS = ("zero", "constant", "reflect", "symmetric", "edge", "wrap")


@dataclass(frozen=True)
class Border:
    """What fills the padding: a canonical mode and, for ``constant``, a value."""

    mode: str
    value: float = 0.0

    @property
    def numpy_mode(self) -> str:
        return "constant" if self.mode in ("zero", "constant") else self.mode


def parse_border(border: str | Border | tuple[str, float], cval: float = 0.0) -> Border:
    """Resolve a border name, alias, ``"constant:VALUE"`` or ``(name, value)``.

    >>> parse_border("replicate")
    Border(mode='edge', value=0.0)
    >>> parse_border("constant:128")
    Border(mode='constant', value=128.0)
    """
    if isinstance(border, Border):
        return border
    explicit = False  # a value written with the name, not a default cval
    if isinstance(border, tuple):
        name, cval = border[0], float(border[1])
        explicit = True
    else:
        name = str(border)
        if ":" in name:
            explicit = True
            name, _, raw = name.partition(":")
            try:
                cval = float(raw)
            except ValueError:
                raise UsageError(f"border value {raw!r} is not a number") from None
    key = name.strip().lower()
    if key not in BORDER_ALIASES:
        if key == "scipy-reflect":
            key = "symmetric"
        else:
            raise UsageError(
                f"unknown border {name!r}; choose one of {', '.join(BORDERS)} "
                "(aliases: replicate, nearest, mirror, reflect101, circular, tile, ...)"
            )
    mode = BORDER_ALIASES[key]
    if mode == "zero" and explicit and float(cval) != 0.0:
        raise UsageError(f"border {name!r} is always 0; use constant:{cval:g}")
    value = float(cval) if mode == "constant" else 0.0
    if mode not in ("constant", "zero") and explicit:
        raise UsageError(f"border {name!r} takes no value (only constant:VALUE does)")
    if not np.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
        raise UsageError(f"border value {cval!r} is not a finite float32 number")
    return Border(mode, value)


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
    return (values[0], values[1], values[2], values[3])


@dataclass(frozen=True)
class PoolGeometry:
    """Where the windows of a pooling fall (ONNX MaxPool/AveragePool rules).

    ``pads`` are the explicit ``(top, bottom, left, right)`` pads;
    ``overhang`` the cells a ``ceil_mode`` window hangs beyond the bottom and
    right padding (they never count, see :meth:`counts`).
    """

    in_hw: tuple[int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]

    @property
    def overhang(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            max(0, (o - 1) * s + d * (k - 1) + 1 - (n + before + after))
            for o, s, d, k, n, before, after in zip(
                self.out_hw,
                self.stride,
                self.dilation,
                self.size,
                self.in_hw,
                self.pads[0::2],
                self.pads[1::2],
                strict=True,
            )
        )

    @property
    def all_pads(self) -> tuple[int, int, int, int]:
        """Explicit pads plus the ``ceil_mode`` overhang: what the source is padded by."""
        top, bottom, left, right = self.pads
        extra_h, extra_w = self.overhang
        return (top, bottom + extra_h, left, right + extra_w)

    def counts(self, include_pad: bool) -> tuple[np.ndarray, np.ndarray]:
        """Cells each window counts along H and along W (an average's divisor factors).

        Real input cells, plus the explicit pads when ``include_pad``; cells
        of the ``ceil_mode`` overhang never count (as the ONNX reference
        evaluator and PyTorch do).

        >>> g = pool_geometry((5, 5), (2, 2), ceil_mode=True)
        >>> g.out_hw, g.all_pads, g.counts(False)[0]
        ((3, 3), (0, 1, 0, 1), array([2, 2, 1]))
        """
        axes = []
        for axis in (0, 1):
            n, k, s, d = self.in_hw[axis], self.size[axis], self.stride[axis], self.dilation[axis]
            before, after = self.pads[2 * axis], self.pads[2 * axis + 1]
            taps = np.arange(self.out_hw[axis])[:, None] * s - before + np.arange(k) * d
            lo, hi = (-before, n + after) if include_pad else (0, n)
            axes.append(((taps >= lo) & (taps < hi)).sum(axis=1))
        return axes[0], axes[1]


def pool_geometry(
    in_hw: tuple[int, int],
    size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    *,
    ceil_mode: bool = False,
) -> PoolGeometry:
    """Check a pooling's parameters against an ``(H, W)`` input and place its windows.

    The stride defaults to the window size. Each pad must be smaller than the
    window on its axis (ONNX Runtime's rule), and at least one window must fit.

    >>> pool_geometry((6, 6), 3, 2, padding=1).out_hw
    (3, 3)
    >>> pool_geometry((2, 2), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: the 3x3 pooling window ... the padded input is only 2x2
    """
    k2 = as_pair(size, "size")
    s2 = k2 if stride is None else as_pair(stride, "stride")
    d2 = as_pair(dilation, "dilation")
    pads = resolve_padding(padding, in_hw, k2, s2, d2)
    top, bottom, left, right = pads
    if max(top, bottom) >= k2[0] or max(left, right) >= k2[1]:
        raise UsageError(
            f"padding {padding!r} must be smaller than the window {k2[0]}x{k2[1]} "
            f"on each axis (resolved to top, bottom, left, right = {pads})"
        )
    h, w = in_hw
    oh = output_size(h, k2[0], s2[0], d2[0], top, bottom, ceil_mode=ceil_mode)
    ow = output_size(w, k2[1], s2[1], d2[1], left, right, ceil_mode=ceil_mode)
    if oh <= 0 or ow <= 0:
        span_h, span_w = (d * (k - 1) + 1 for d, k in zip(d2, k2, strict=True))
        raise UsageError(
            f"the {k2[0]}x{k2[1]} pooling window (dilation {d2[0]},{d2[1]}) spans "
            f"{span_h}x{span_w} cells but the padded input is only "
            f"{h + top + bottom}x{w + left + right}"
        )
    return PoolGeometry((h, w), k2, s2, d2, pads, (oh, ow))


def _source_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    # numpy.pad applied to the indices tells, for every padded cell, which
    # input cell it copies; that includes pads wider than the input.
    if mode == "reflect" and n == 1:
        mode = "edge"  # numpy's reflect of a single cell is the cell itself
    return np.pad(np.arange(n), (before, after), mode=mode)  # type: ignore[call-overload]


def pad(
    x: np.ndarray,
    pads: tuple[int, int, int, int],
    border: Border,
    *,
    axes: tuple[int, int] = (-2, -1),
    dtype: np.dtype | type = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pad two axes of ``x`` and convert to ``dtype`` in a single copy.

    Unlike ``numpy.pad`` followed by ``astype`` this allocates the result once,
    which matters for 12-megapixel images.

    >>> pad(np.array([[1, 2, 3]]), (0, 0, 2, 2), parse_border("reflect"))
    array([[3., 2., 1., 2., 3., 2., 1.]], dtype=float32)
    >>> pad(np.array([[1, 2, 3]]), (1, 0, 1, 1), parse_border("symmetric"))
    array([[1., 1., 2., 3., 3.],
           [1., 1., 2., 3., 3.]], dtype=float32)
    """
    top, bottom, left, right = pads
    ax_h, ax_w = (a % x.ndim for a in axes)
    h, w = x.shape[ax_h], x.shape[ax_w]
    shape = list(x.shape)
    shape[ax_h] += top + bottom
    shape[ax_w] += left + right
    if border.mode in ("reflect", "symmetric", "edge", "wrap") and (h == 0 or w == 0):
        raise UsageError(f"cannot pad an empty image with border {border.mode!r}")

    def index(axis: int, sl: slice | np.ndarray) -> tuple:
        idx: list = [slice(None)] * x.ndim
        idx[axis] = sl
        return tuple(idx)

    if out is None:
        out = np.empty(shape, dtype=dtype)
    inner_w = slice(left, left + w)
    constant = border.numpy_mode == "constant"
    cols = None if constant else _source_index(w, left, right, border.numpy_mode) + left

    def fill_rows(a: int, b: int) -> None:
        # Input rows a..b: convert into the interior, then fill their left
        # and right border cells (the bulk of the work, so it runs in tiles).
        rows = out[index(ax_h, slice(top + a, top + b))]
        rows[index(ax_w, inner_w)] = x[index(ax_h, slice(a, b))]
        if constant:
            if left:
                rows[index(ax_w, slice(0, left))] = border.value
            if right:
                rows[index(ax_w, slice(left + w, None))] = border.value
        elif cols is not None:
            if left:
                rows[index(ax_w, slice(0, left))] = rows[index(ax_w, cols[:left])]
            if right:
                rows[index(ax_w, slice(left + w, None))] = rows[index(ax_w, cols[left + w :])]

    row_cells = max(1, x.size // max(h, 1))
    run_tiles(h, fill_rows, max(1, (1 << 20) // row_cells))
    if constant:
        if top:
            out[index(ax_h, slice(0, top))] = border.value
        if bottom:
            out[index(ax_h, slice(top + h, None))] = border.value
        return out
    if top or bottom:
        rows = _source_index(h, top, bottom, border.numpy_mode) + top
        if top:
            out[index(ax_h, slice(0, top))] = out[index(ax_h, rows[:top])]
        if bottom:
            out[index(ax_h, slice(top + h, None))] = out[index(ax_h, rows[top + h :])]
    return out


def pad_rows(
    x: np.ndarray,
    pads: tuple[int, int, int, int],
    border: Border,
    first: int,
    stop: int,
    *,
    dtype: np.dtype | type = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ``first:stop`` of ``pad(x, pads, border)`` without padding all of ``x``.

    ``x`` is ``(H, W)`` or ``(H, W, C)``; row indices are in padded
    coordinates. Only the input rows the band needs are read and converted,
    so a band of a large image costs a band's worth of memory.

    >>> x = np.arange(12).reshape(4, 3)
    >>> brd = parse_border("wrap")
    >>> bool(np.array_equal(pad_rows(x, (2, 1, 1, 1), brd, 1, 5), pad(x, (2, 1, 1, 1), brd)[1:5]))
    True
    """
    top, bottom, left, right = pads
    h = x.shape[0]
    if border.numpy_mode == "constant":
        s0, s1 = max(0, first - top), min(h, stop - top)
        if s1 <= s0:  # the band lies wholly in the padding
            shape = (stop - first, x.shape[1] + left + right, *x.shape[2:])
            if out is None:
                return np.full(shape, border.value, dtype=dtype)
            out[...] = border.value
            return out
        band_pads = (s0 - (first - top), (stop - top) - s1, left, right)
        return pad(x[s0:s1], band_pads, border, axes=(0, 1), dtype=dtype, out=out)
    if first >= top and stop <= top + h:
        rows = x[first - top : stop - top]  # a plain slice: no gather
    else:
        rows = x[_source_index(h, top, bottom, border.numpy_mode)[first:stop]]
    return pad(rows, (0, 0, left, right), border, axes=(0, 1), dtype=dtype, out=out)


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
