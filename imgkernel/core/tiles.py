"""Tiles of a sliding-window operation: which input cells each block of outputs needs.

An image too large for memory is filtered or pooled a tile of outputs at a
time. A tile reads only its *window*: the input rows and columns its sliding
windows cover, in **padded coordinates** (cell 0 is the first cell of the
whole image's leading pad). Tile origins are multiples of the tile size in
output cells, so window origins are multiples of the stride, and the pads
come from the **whole** image's geometry (``"same"`` padding is resolved
from the whole image's size, never from a tile's). A tile's window splits
into the cells inside the image (``read``) and the padded cells before and
after it; only tiles whose window crosses an image edge need border cells,
and they get them by the whole image's rule (:func:`border_index`).

The sizes along one axis: ``n`` input cells, ``before``/``after`` pads, a
window spanning ``span = dilation*(k-1) + 1`` cells, moved by ``stride``.
Output ``o`` reads padded cells ``o*stride .. o*stride + span - 1``.

>>> plan = plan_filter((10, 7), (3, 3), padding="same", tile=4)
>>> plan.grid, plan.out_hw
((3, 2), (10, 7))
>>> first = plan.tile(0, 0)
>>> first.rows
AxisTile(out_start=0, out_stop=4, start=0, stop=6, read_start=0, read_stop=5, before=1, after=0)
>>> first.pads, first.edges
((1, 0, 1, 0), (True, False, True, False))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from imgkernel.core.geometry import pool_geometry
from imgkernel.core.padding import Border, pad
from imgkernel.core.windows import as_pair, output_size, resolve_padding
from imgkernel.errors import UsageError

__all__ = [
    "AxisTile",
    "Tile",
    "TilePlan",
    "border_index",
    "index_runs",
    "plan_axis",
    "plan_filter",
    "plan_pool",
    "plan_tiles",
]


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis.

    Outputs ``out_start:out_stop`` read padded cells ``start:stop``: the
    input cells ``read_start:read_stop`` (image coordinates; empty when the
    window lies wholly in the padding) with ``before`` padded cells ahead of
    them and ``after`` behind. ``before + (read_stop - read_start) + after
    == stop - start``, and the first output's window starts at cell 0 of
    that strip.
    """

    out_start: int
    out_stop: int
    start: int
    stop: int
    read_start: int
    read_stop: int
    before: int
    after: int

    @property
    def outputs(self) -> slice:
        return slice(self.out_start, self.out_stop)

    @property
    def read(self) -> slice:
        return slice(self.read_start, max(self.read_start, self.read_stop))

    @property
    def inside(self) -> int:
        """Input cells the window holds."""
        return max(0, self.read_stop - self.read_start)


def _axis_tile(out_start: int, out_stop: int, start: int, stop: int, n: int, lead: int) -> AxisTile:
    """The tile whose window is padded cells ``start:stop``; the image is cells ``lead:lead+n``."""
    first, last = max(start, lead), min(stop, lead + n)
    before = max(0, min(stop, lead) - start)
    after = max(0, stop - max(start, lead + n))
    if last <= first:  # wholly in the padding: an empty read at the nearer image edge
        first = last = min(max(first, lead), lead + n)
    return AxisTile(out_start, out_stop, start, stop, first - lead, last - lead, before, after)


def plan_axis(
    n: int,
    span: int,
    stride: int,
    before: int,
    after: int,
    tile: int,
    *,
    out_n: int | None = None,
    need_image: bool = False,
    whole: bool = False,
) -> tuple[AxisTile, ...]:
    """Tiles of ``tile`` outputs along an axis of ``n`` cells padded ``before``/``after``.

    ``out_n`` defaults to the number of windows that fit (pass it for
    ``ceil_mode`` pooling, whose last window may hang beyond the padding:
    that tile's ``after`` then counts those cells too). ``need_image``
    merges tiles whose window holds no input cell into a neighbour (a caller
    that lets its operation pad the tile needs some input); when no window
    at all holds an input cell the axis becomes one ``whole`` tile. A
    ``whole`` tile reads all ``n`` cells with the full pads.

    >>> [(t.out_start, t.out_stop, t.start, t.stop) for t in plan_axis(9, 3, 2, 1, 1, 2)]
    [(0, 2, 0, 5), (2, 4, 4, 9), (4, 5, 8, 11)]
    >>> [(t.out_start, t.out_stop, t.inside) for t in plan_axis(2, 1, 1, 0, 3, 2)]
    [(0, 2, 2), (2, 4, 0), (4, 5, 0)]
    >>> [(t.out_start, t.out_stop, t.inside) for t in plan_axis(2, 1, 1, 0, 3, 2, need_image=True)]
    [(0, 5, 2)]
    """
    if out_n is None:
        out_n = output_size(n, span, stride, 1, before, after)
    if n <= 0 or out_n <= 0 or span <= 0 or stride <= 0:
        raise UsageError(f"no window of {span} cells fits {n} cells padded by {before}+{after}")
    if whole:
        return (AxisTile(0, out_n, 0, n + before + after, 0, n, before, after),)
    tile = max(1, int(tile))
    tiles = []
    for o0 in range(0, out_n, tile):
        o1 = min(out_n, o0 + tile)
        tiles.append(_axis_tile(o0, o1, o0 * stride, (o1 - 1) * stride + span, n, before))
    if need_image and any(t.inside == 0 for t in tiles):
        tiles = _merge_empty(tiles, n, before)
        if not tiles:
            return plan_axis(n, span, stride, before, after, tile, out_n=out_n, whole=True)
    return tuple(tiles)


def _merge_empty(tiles: list[AxisTile], n: int, lead: int) -> list[AxisTile]:
    """Join each tile holding no input cell to the nearest earlier one that does
    (leading empty tiles join the first that does); [] when none does."""
    merged: list[AxisTile] = []
    pending: AxisTile | None = None  # leading empty tiles not yet placed
    for t in tiles:
        if t.inside == 0 and merged:
            last = merged.pop()
            t = _axis_tile(last.out_start, t.out_stop, last.start, t.stop, n, lead)
        elif t.inside == 0:
            pending = t if pending is None else pending
            continue
        elif pending is not None:
            t = _axis_tile(pending.out_start, t.out_stop, pending.start, t.stop, n, lead)
            pending = None
        merged.append(t)
    return merged


@dataclass(frozen=True)
class Tile:
    """One tile: its :class:`AxisTile` along the rows and along the columns."""

    rows: AxisTile
    cols: AxisTile

    @property
    def outputs(self) -> tuple[slice, slice]:
        """Where the tile's outputs go in the whole result."""
        return self.rows.outputs, self.cols.outputs

    @property
    def read(self) -> tuple[slice, slice]:
        """The input cells inside the image that the tile reads."""
        return self.rows.read, self.cols.read

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """Padded cells the window holds beyond each image edge: (top, bottom, left, right)."""
        return (self.rows.before, self.rows.after, self.cols.before, self.cols.after)

    @property
    def edges(self) -> tuple[bool, bool, bool, bool]:
        """Which sides cross an image edge (top, bottom, left, right): only these need a border."""
        top, bottom, left, right = self.pads
        return (top > 0, bottom > 0, left > 0, right > 0)

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.rows.out_stop - self.rows.out_start, self.cols.out_stop - self.cols.out_start)


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one operation, row-major: ``rows[i] x cols[j]`` is tile ``(i, j)``.

    ``pads`` are the whole image's ``(top, bottom, left, right)``.
    """

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    pads: tuple[int, int, int, int]
    rows: tuple[AxisTile, ...]
    cols: tuple[AxisTile, ...]

    @property
    def grid(self) -> tuple[int, int]:
        return (len(self.rows), len(self.cols))

    def tile(self, i: int, j: int) -> Tile:
        return Tile(self.rows[i], self.cols[j])

    def __iter__(self) -> Iterator[Tile]:
        for r in self.rows:
            for c in self.cols:
                yield Tile(r, c)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)


def plan_tiles(
    in_hw: tuple[int, int],
    span: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    tile: int | Sequence[int],
    *,
    out_hw: tuple[int, int] | None = None,
    need_image: bool = False,
    whole: tuple[bool, bool] = (False, False),
) -> TilePlan:
    """Plan tiles of ``tile`` (an int or ``(rows, cols)``) outputs; see :func:`plan_axis`.

    >>> plan_tiles((6, 6), (3, 3), (2, 2), (0, 1, 0, 1), 2).grid
    (2, 2)
    """
    th, tw = as_pair(tile, "tile size")
    out = out_hw or (None, None)
    rows = plan_axis(
        in_hw[0],
        span[0],
        stride[0],
        pads[0],
        pads[1],
        th,
        out_n=out[0],
        need_image=need_image,
        whole=whole[0],
    )
    cols = plan_axis(
        in_hw[1],
        span[1],
        stride[1],
        pads[2],
        pads[3],
        tw,
        out_n=out[1],
        need_image=need_image,
        whole=whole[1],
    )
    out_hw = (rows[-1].out_stop, cols[-1].out_stop)
    return TilePlan((int(in_hw[0]), int(in_hw[1])), out_hw, tuple(pads), rows, cols)  # type: ignore[arg-type]


def plan_filter(
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    *,
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    padding: str | int | Sequence[int] = "same",
    tile: int | Sequence[int] = 512,
    need_image: bool = False,
    whole: tuple[bool, bool] = (False, False),
) -> TilePlan:
    """Tiles of a filter (:func:`imgkernel.core.filter2d` geometry) of an ``in_hw`` image.

    >>> plan = plan_filter((7, 7), (3, 3), stride=2, padding="same", tile=2)
    >>> plan.out_hw, plan.pads, [(r.start, r.stop) for r in plan.rows]
    ((4, 4), (1, 1, 1, 1), [(0, 5), (4, 9)])
    """
    step = as_pair(stride, "stride")
    rate = as_pair(dilation, "dilation")
    k2 = as_pair(k_hw, "kernel size")
    pads = resolve_padding(padding, in_hw, k2, step, rate)
    span = (rate[0] * (k2[0] - 1) + 1, rate[1] * (k2[1] - 1) + 1)
    if span[0] > in_hw[0] + pads[0] + pads[1] or span[1] > in_hw[1] + pads[2] + pads[3]:
        raise UsageError(
            f"kernel spans {span[0]}x{span[1]} pixels but the padded input is only "
            f"{in_hw[0] + pads[0] + pads[1]}x{in_hw[1] + pads[2] + pads[3]}"
        )
    return plan_tiles(in_hw, span, step, pads, tile, need_image=need_image, whole=whole)


def plan_pool(
    in_hw: tuple[int, int],
    size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    *,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    tile: int | Sequence[int] = 512,
) -> TilePlan:
    """Tiles of a pooling (:func:`imgkernel.core.pool2d` geometry, ``ceil_mode`` too).

    ``pads`` are the explicit pads; a ``ceil_mode`` window hanging beyond
    them is counted in its tile's ``after``, so a tile's explicit pad after
    the image is ``min(after, pads[...])``.

    >>> plan = plan_pool((5, 5), 2, ceil_mode=True, tile=2)
    >>> plan.out_hw, [(r.out_start, r.out_stop, r.after) for r in plan.rows]
    ((3, 3), [(0, 2, 0), (2, 3, 1)])
    """
    g = pool_geometry(in_hw, size, stride, padding, dilation, ceil_mode=ceil_mode)
    span = (g.dilation[0] * (g.size[0] - 1) + 1, g.dilation[1] * (g.size[1] - 1) + 1)
    return plan_tiles(in_hw, span, g.stride, g.pads, tile, out_hw=g.out_hw)


def border_index(n: int, before: int, after: int, border: Border) -> np.ndarray:
    """Which input cell each of the ``before + n + after`` padded cells copies.

    Made by :func:`imgkernel.core.padding.pad` itself on the cell numbers,
    so it is the whole image's border rule exactly (wide pads included).
    Constant borders copy no cell: their padded cells are -1.

    >>> from imgkernel.core.padding import parse_border
    >>> border_index(4, 2, 3, parse_border("reflect")).tolist()
    [2, 1, 0, 1, 2, 3, 2, 1, 0]
    >>> border_index(3, 1, 4, parse_border("wrap")).tolist()
    [2, 0, 1, 2, 0, 1, 2, 0]
    >>> border_index(2, 1, 1, parse_border("constant:5")).tolist()
    [-1, 0, 1, -1]
    """
    cells = np.arange(n, dtype=np.int64).reshape(1, n)
    rule = Border("constant", -1.0) if border.numpy_mode == "constant" else border
    return pad(cells, (0, 0, before, after), rule, dtype=np.int64)[0]


def index_runs(index: np.ndarray, gap: int = 32) -> list[tuple[int, int]]:
    """Contiguous ranges ``[start, stop)`` that hold every cell of ``index`` (>= 0).

    Ranges closer than ``gap`` cells are joined, so a tile reads a few
    rectangles, not one per cell; a wrapped border's far cells stay a range
    of their own instead of stretching the read across the image.

    >>> index_runs(np.array([2, 1, 0, 1, 2, 3]))
    [(0, 4)]
    >>> index_runs(np.array([98, 99, 0, 1, 2]), gap=8)
    [(0, 3), (98, 100)]
    """
    cells = np.unique(index[index >= 0])
    if cells.size == 0:
        return []
    breaks = np.nonzero(np.diff(cells) - 1 > gap)[0]
    starts = np.concatenate([[cells[0]], cells[breaks + 1]])
    stops = np.concatenate([cells[breaks], [cells[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
