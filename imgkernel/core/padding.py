"""Filling the border: padding arrays (or row bands of them) by a :class:`Border` rule.

Each padded cell is a copy of one input cell (or a constant), found by
applying ``numpy.pad``'s rule to the indices once; the data is then gathered
tile by tile on all cores (:func:`imgkernel.core.parallel.run_tiles`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgkernel.core.parallel import run_tiles, thread_buffer
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


def rows_read(
    h: int, pads: tuple[int, int, int, int], border: Border, first: int, stop: int
) -> int:
    """How many leading input rows ``pad_rows(x, pads, border, first, stop)`` reads
    (``x`` has ``h`` rows): what a reader must wait for while ``x`` is still arriving.

    >>> rows_read(10, (2, 2, 0, 0), parse_border("reflect"), 0, 5)  # rows 2, 1 | 0, 1, 2
    3
    >>> rows_read(10, (2, 2, 0, 0), parse_border("wrap"), 0, 5)  # rows 8, 9 | 0, 1, 2
    10
    """
    top, bottom = pads[0], pads[1]
    if border.numpy_mode == "constant":
        return max(0, min(h, stop - top))
    if first >= top and stop <= top + h:
        return stop - top
    return int(_source_index(h, top, bottom, border.numpy_mode)[first:stop].max()) + 1


class PaddedPlanes:
    """``pad(x)`` as float32 planes ``(P, Hp, Wp)``, padded band by band when read.

    ``x`` is ``(P, H, W)`` planes or, with ``channels_last``, one ``(H, W)``
    or ``(H, W, C)`` image whose padded rows are read as single planes of
    ``Wp*C`` interleaved values (``P = 1``). :meth:`band` converts and pads
    only the rows asked for, into a buffer owned by the calling thread, so no
    padded full-size copy is made (a 12 Mpx RGB image would need 144 MB of
    fresh, page-faulting memory for one); :meth:`array` makes that copy for
    callers that want it.

    >>> x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> src = PaddedPlanes(x, (1, 2, 2, 1), parse_border("reflect"), channels_last=True)
    >>> src.shape
    (1, 6, 7)
    >>> bool(np.array_equal(src.band(0, 1, 5), pad(x, (1, 2, 2, 1), parse_border("reflect"))[1:5]))
    True
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(
        self,
        x: np.ndarray,
        pads: tuple[int, int, int, int],
        border: Border,
        *,
        channels_last: bool = False,
    ) -> None:
        if channels_last:
            x4 = x[None, :, :, None] if x.ndim == 2 else x[None]
        else:
            x4 = x[..., None]
        p, h, w, c = x4.shape
        top, bottom, left, right = pads
        if border.numpy_mode != "constant" and (h == 0 or w == 0):
            raise UsageError(f"cannot pad an empty image with border {border.mode!r}")
        self.x, self.pads, self.border = x4, pads, border
        self.shape = (p, h + top + bottom, (w + left + right) * c)
        self.size = p * self.shape[1] * self.shape[2]
        self._wp = w + left + right
        if border.numpy_mode == "constant":
            self._rows = self._cols = None
        else:
            self._rows = _source_index(h, top, bottom, border.numpy_mode)
            self._cols = _source_index(w, left, right, border.numpy_mode) + left

    def band(
        self, q: int, r0: int, r1: int, name: str = "pad.band", dtype: type = np.float32
    ) -> np.ndarray:
        """Rows ``r0:r1`` of padded plane ``q`` (float32, or ``dtype``; C-contiguous),
        in a thread buffer."""
        out = thread_buffer(name, (r1 - r0, self.shape[2]), dtype)
        dst = out.reshape(r1 - r0, self._wp, self.x.shape[3])
        src = self.x[q]
        top, _, left, right = self.pads
        h, w = src.shape[0], src.shape[1]
        inner = dst[:, left : left + w]
        a, b = min(max(r0, top), r1), max(min(r1, top + h), r0)  # interior rows
        if b > a:
            inner[a - r0 : b - r0] = src[a - top : b - top]
        for lo, hi in ((r0, a), (b, r1)):  # rows in the top or bottom padding
            if hi <= lo:
                continue
            if self._rows is None:
                inner[lo - r0 : hi - r0] = self.border.value
            else:
                inner[lo - r0 : hi - r0] = src[self._rows[lo:hi]]
        if self._cols is None:
            dst[:, :left] = self.border.value
            dst[:, left + w :] = self.border.value
        else:
            if left:
                dst[:, :left] = dst[:, self._cols[:left]]
            if right:
                dst[:, left + w :] = dst[:, self._cols[left + w :]]
        return out

    def int16_scale(self, kernel: np.ndarray) -> int:
        """A power of two ``s`` with which correlating these planes is exact in int16, or 0.

        For uint8 data, weights that become integers times ``s`` (at most 256:
        ``--divisor 16``, quarters, eighths) and a border value that keep every
        partial sum within int16. Such sums are exact in float32 too, and so is
        the final division by ``s``: the int16 tap loop gives the float32 one's
        values, at half the bytes a pass.

        >>> x = np.zeros((4, 4), np.uint8)
        >>> src = PaddedPlanes(x, (1, 1, 1, 1), parse_border("reflect"), channels_last=True)
        >>> src.int16_scale(np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]))
        1
        >>> src.int16_scale(np.array([[0.25, 0.5], [0.125, 0.0]]))
        8
        >>> src.int16_scale(np.array([[0.1, 1.0]])), src.int16_scale(np.full((13, 13), 1))
        (0, 0)
        """
        if self.x.dtype != np.uint8:
            return 0
        reach = 255.0
        if self._rows is None:  # a constant border adds its value
            value = float(self.border.value)
            if value != round(value):
                return 0
            reach = max(reach, abs(value))
        scale = 1
        while scale <= 256:
            scaled = kernel * scale
            if np.array_equal(scaled, np.round(scaled)):
                ok = float(np.abs(scaled).sum()) * reach <= np.iinfo(np.int16).max
                return scale if ok else 0
            scale *= 2
        return 0

    def array(self) -> np.ndarray:
        """The whole padded ``(P, Hp, Wp)`` float32 array (one full-size copy)."""
        p, hp, wpc = self.shape
        full = pad(self.x, self.pads, self.border, axes=(1, 2))
        return full.reshape(p, hp, wpc)


def band_reader(xp: np.ndarray | PaddedPlanes) -> Callable[[int, int, int], np.ndarray]:
    """``read(q, r0, r1)``: rows ``r0:r1`` of padded plane ``q`` of an array or a source.

    A :class:`PaddedPlanes` band lives in a buffer of the calling thread that
    the next read from that thread overwrites.
    """
    if isinstance(xp, PaddedPlanes):
        return xp.band
    return lambda q, r0, r1: xp[q, r0:r1]
