"""Images larger than memory: filter or pool a TIFF or Zarr image tile by tile.

The engine (:func:`run_large`) takes a :class:`~imgkernel.core.tiles.TilePlan`
and a per-tile ``compute``. Each task opens the input itself
(:func:`~imgkernel.images.regions.open_region_source`), reads its tile's
window, computes finished pixels and returns them; the results come back in
order, are put together into full-width bands and streamed to the writer
(:func:`~imgkernel.images.tiled_write.write_large`). Tasks run on threads of
this process or on a Dask cluster (:mod:`imgkernel.images.cluster`); memory
stays at a few tiles per worker plus one band of output.

A tile's window crosses the image edge only at the image's own edges
(``Tile.edges``). The border cells there are made in one of two ways:

* gathered (``border`` given, any non-constant rule): each border cell is
  the input cell the whole image's padding copies
  (:func:`~imgkernel.core.tiles.border_index`), so the tile arrives fully
  padded and ``compute`` pads nothing;
* left to ``compute`` (``border`` None): the tile arrives as the cells
  inside the image and ``compute`` is told the pads to add, which is exact
  for constant borders and for pooling (whose padding is no data at all).

:func:`pool_large` is pooling (:func:`~imgkernel.images.pool.pool_image`)
this way; the filter is :func:`imgkernel.kernels.large.filter_large`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from imgkernel.core.padding import Border
from imgkernel.core.tiles import Tile, TilePlan, border_index, index_runs, plan_pool
from imgkernel.errors import UsageError
from imgkernel.images.cluster import open_runner
from imgkernel.images.image import Image
from imgkernel.images.pool import POOL_MODES, pool_image
from imgkernel.images.regions import RegionSource, is_zarr_path, open_region_source
from imgkernel.images.route import LARGE_PIXELS, LargeRoute
from imgkernel.images.tiled_write import OutputSpec, write_large, write_tiff_tiles

__all__ = [
    "LARGE_PIXELS",
    "LargeResult",
    "LargeRoute",
    "TileTask",
    "fetch_tile",
    "pool_large",
    "run_large",
    "run_tile",
]

#: Output pixels per tile side when none is asked for: on local threads, and on
#: Dask, whose per-task costs (scheduling, moving the result) want larger tasks.
#: Locally, 1024 (each tile pays ~0.7 ms of setup: 16384x16384 RGB sobel,
#: uncompressed, 4.18-4.63 s against 4.50-5.22 for 512, peak 370 MB against
#: 210) unless a row of such tiles would read more than :data:`TILE_ROW_BYTES`
#: of the source (very wide images; memory holds about a row of tiles): 512.
TILE_SIZE = 1024
NARROW_TILE_SIZE = 512
TILE_ROW_BYTES = 64 << 20
DASK_TILE_SIZE = 1024
#: The TIFF tile / Zarr chunk of the output: a computed tile, so that each is
#: written as it comes, without a copy (16384x16384 RGB sobel, uncompressed:
#: 4.64-4.82 s against 4.90-5.04 for 256-cell tiles in two of three pairs).
OUT_TILE = 512

#: ``compute(pixels, alpha, pads) -> (pixels, alpha)``: finished pixels of one tile.
Compute = Callable[[np.ndarray, "np.ndarray | None", tuple[int, int, int, int]], tuple]


@dataclass(frozen=True)
class LargeResult:
    """What a tiled run wrote: the output ``shape`` ``(H, W[, C])``, ``dtype``, tile grid."""

    target: str
    shape: tuple[int, ...]
    dtype: str
    tiles: int
    grid: tuple[int, int]
    mode: str


@dataclass(frozen=True)
class TileTask:
    """One task: read ``tile`` of ``path`` (border cells gathered by ``border``, or
    left to ``compute`` when None) and return its finished pixels."""

    path: str
    tile: Tile
    border: Border | None
    compute: Compute


def fetch_tile(
    source: RegionSource, tile: Tile, border: Border | None, pads: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int, int, int]]:
    """``(pixels, alpha, pads still to add)`` of one tile; ``pads`` are the whole image's.

    With a ``border`` the window is gathered whole (pads still to add: none);
    without, the cells inside the image come with the tile's pads.
    """
    h, w = source.hw
    rows, cols = tile.rows, tile.cols
    rest = (0, 0, 0, 0)
    if border is None or not any(tile.edges):
        block = source.read(rows.read_start, rows.read_stop, cols.read_start, cols.read_stop)
        rest = tile.pads if border is None else rest
    elif border.numpy_mode == "constant":  # the value, in the pixels' type
        shape = (rows.stop - rows.start, cols.stop - cols.start, source.shape[2])
        block = np.full(shape, border.value, dtype=source.dtype)
        if rows.inside and cols.inside:
            inner = source.read(rows.read_start, rows.read_stop, cols.read_start, cols.read_stop)
            block[
                rows.before : rows.before + rows.inside, cols.before : cols.before + cols.inside
            ] = inner
    else:
        r_index = border_index(h, pads[0], pads[1], border)[rows.start : rows.stop]
        c_index = border_index(w, pads[2], pads[3], border)[cols.start : cols.stop]
        block = _gather(source, r_index, c_index)
    return (*_split(block, source), rest)


def _gather(source: RegionSource, r_index: np.ndarray, c_index: np.ndarray) -> np.ndarray:
    """Cells ``[r_index][:, c_index]`` of the image, reading a few rectangles only."""
    r_runs, c_runs = index_runs(r_index), index_runs(c_index)
    pieces = [[source.read(r0, r1, c0, c1) for c0, c1 in c_runs] for r0, r1 in r_runs]
    rows = [row[0] if len(row) == 1 else np.concatenate(row, axis=1) for row in pieces]
    compact = rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)
    block = _take(compact, _positions(r_index, r_runs), axis=0)
    return _take(block, _positions(c_index, c_runs), axis=1)


def _positions(index: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """Where each cell of ``index`` sits in the runs put end to end."""
    starts = np.array([a for a, _ in runs])
    offsets = np.cumsum([0] + [b - a for a, b in runs[:-1]])
    which = np.searchsorted(starts, index, side="right") - 1
    return offsets[which] + (index - starts[which])


def _take(array: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """``array.take(positions, axis)``, copying each run of consecutive cells as one slice.

    >>> _take(np.arange(6), np.array([1, 0, 1, 2, 3, 4, 5, 4]), 0)
    array([1, 0, 1, 2, 3, 4, 5, 4])
    """
    breaks = np.nonzero(np.diff(positions) != 1)[0] + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(positions)]])
    parts = []
    for a, b in zip(starts, stops, strict=True):
        cut = slice(int(positions[a]), int(positions[a]) + int(b - a))
        parts.append(array[cut] if axis == 0 else array[:, cut])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)


def _split(block: np.ndarray, source: RegionSource) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels as the whole-image reader gives them: alpha split off, gray as (H, W)."""
    alpha = None
    if source.alpha:
        alpha = np.ascontiguousarray(block[:, :, -1])
        block = block[:, :, :-1]
    pixels = block[:, :, 0] if source.gray else block
    return np.ascontiguousarray(pixels), alpha


def run_tile(task: TileTask, pads: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Compute one tile (in a worker): its finished pixels as ``(h, w, C)``, alpha last."""
    source = open_region_source(task.path)
    source.reserve(task.tile.rows.stop - task.tile.rows.start)
    pixels, alpha, rest = fetch_tile(source, task.tile, task.border, pads)
    out, out_alpha = task.compute(pixels, alpha, rest)
    block = out if out.ndim == 3 else out[:, :, None]
    if out_alpha is not None:
        block = np.concatenate([block, out_alpha.astype(block.dtype)[:, :, None]], axis=2)
    if block.shape[:2] != task.tile.out_shape:
        raise RuntimeError(f"tile {task.tile} gave {block.shape[:2]} pixels")
    return block


def _block_rows(blocks: Iterator[np.ndarray], plan: TilePlan) -> Iterator[list[np.ndarray]]:
    """The blocks (row-major) grouped by row of tiles."""
    across = plan.grid[1]
    for _ in plan.rows:
        yield [next(blocks) for _ in range(across)]


def _band(blocks: list[np.ndarray]) -> np.ndarray:
    """One row of blocks put together into a full-width band."""
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def _aligned(plan: TilePlan, out_tile: int) -> bool:
    """Whether every tile of ``plan`` starts on the output's grid of ``out_tile`` cells."""
    starts = [t.out_start for t in plan.rows] + [t.out_start for t in plan.cols]
    return all(start % out_tile == 0 for start in starts)


def _block_tiles(rows: Iterator[list[np.ndarray]], size: int) -> Iterator[np.ndarray]:
    """The ``size``-cell TIFF tiles of rows of blocks aligned on them, row-major.

    >>> blocks = [[np.arange(16).reshape(4, 4, 1), np.arange(8).reshape(4, 2, 1)]]
    >>> [t[:, :, 0].tolist() for t in _block_tiles(iter(blocks), 2)][:4]
    [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[0, 1], [2, 3]], [[8, 9], [12, 13]]]
    """
    for blocks in rows:
        for r0 in range(0, blocks[0].shape[0], size):
            for block in blocks:
                for c0 in range(0, block.shape[1], size):
                    yield block[r0 : r0 + size, c0 : c0 + size]


def run_large(
    source: str, target: str, plan: TilePlan, compute: Compute, **options: Any
) -> LargeResult:
    """Compute every tile of ``plan`` over ``source`` into ``target`` (see :func:`_run_large`).

    Errors name ``source`` as the user gave it (tasks use its absolute path:
    a worker's working folder is its own).
    """
    try:
        return _run_large(source, target, plan, compute, **options)
    except UsageError as exc:
        path = os.path.abspath(source)
        if path == source or path not in str(exc):
            raise
        raise UsageError(str(exc).replace(path, source)) from None


def _run_large(
    source: str,
    target: str,
    plan: TilePlan,
    compute: Compute,
    *,
    border: Border | None = None,
    gray: bool = False,
    alpha: bool = False,
    scheduler: Any = None,
    out_tile: int = OUT_TILE,
    compression: str | None = "zlib",
    level: int | None = None,
    threads: int | None = None,
    mode: str = "tiles",
) -> LargeResult:
    """Compute every tile of ``plan`` over ``source`` and write the result to ``target``.

    ``gray``/``alpha`` say how the output's channels are tagged (one colour
    channel; the last one alpha); ``scheduler``: see
    :func:`~imgkernel.images.cluster.open_runner`; ``out_tile``: the TIFF
    tile / Zarr chunk edge; ``compression``/``level``: the TIFF (or Zarr)
    compression; ``threads``: local threads for tiles and for compression.
    """
    if isinstance(out_tile, bool) or not isinstance(out_tile, int) or out_tile < 1:
        raise UsageError(f"the output tile must be a positive number of pixels, got {out_tile!r}")
    path = os.path.abspath(source)
    tasks = (TileTask(path, tile, border, compute) for tile in plan)
    work = partial(run_tile, pads=plan.pads)
    with open_runner(scheduler, threads=threads) as runner:
        ahead = plan.grid[1] + 2 * runner.slots
        rows = _block_rows(runner.map(work, tasks, ahead), plan)
        first = next(rows)
        h, w = plan.out_hw
        spec = OutputSpec((h, w, first[0].shape[2]), first[0].dtype, gray, alpha)

        def all_rows() -> Iterator[list[np.ndarray]]:
            yield first
            yield from rows

        write: dict[str, Any] = dict(
            tile=(out_tile, out_tile), compression=compression, level=level, threads=threads
        )
        if _aligned(plan, out_tile) and not is_zarr_path(target):
            # The TIFF's tiles cut straight from the blocks: no full-width band.
            tiles = _block_tiles(all_rows(), out_tile)
            write_tiff_tiles(target, tiles, spec, **write)
        else:
            bands = (_band(blocks) for blocks in all_rows())
            write_large(target, bands, spec, **write)
    shape = (h, w) if spec.shape[2] == 1 else spec.shape
    return LargeResult(target, shape, str(spec.dtype), len(plan), plan.grid, mode)


def source_row_bytes(source: RegionSource, stride: Any) -> int:
    """Bytes of the source rows behind one output row: a row's, times the vertical stride.

    >>> class Src: row_bytes = 300
    >>> source_row_bytes(Src(), 1), source_row_bytes(Src(), (2, 3)), source_row_bytes(Src(), "x")
    (300, 600, 300)
    """
    step = stride[0] if isinstance(stride, tuple | list) and stride else stride
    ok = isinstance(step, int) and not isinstance(step, bool) and step > 0
    return source.row_bytes * (step if ok else 1)  # a bad stride is reported by the planner


def tile_size_for(tile_size: int | None, scheduler: Any, row_bytes: int = 0) -> int:
    """``tile_size``, or the default for where the tiles run and for a source of
    ``row_bytes`` bytes behind each output row (:func:`source_row_bytes`).

    >>> tile_size_for(None, None), tile_size_for(None, "local:2"), tile_size_for(64, "local:2")
    (1024, 1024, 64)
    >>> tile_size_for(None, None, row_bytes=100_000 * 3)  # a row of 1024 tiles: 300 MB
    512
    """
    if tile_size is not None:
        return int(tile_size)
    local = scheduler is None or (isinstance(scheduler, str) and scheduler.startswith("threads"))
    if not local:
        return DASK_TILE_SIZE
    return TILE_SIZE if row_bytes * TILE_SIZE <= TILE_ROW_BYTES else NARROW_TILE_SIZE


def check_target_format(target: str) -> None:
    """Refuse a target the tiled writers cannot write (TIFF or Zarr only)."""
    if is_zarr_path(target):
        return
    if not target.lower().endswith((".tif", ".tiff")):
        raise UsageError(f"{target}: the tiled path writes .tif/.tiff files or .zarr arrays only")


def _pool_tile(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    pads: tuple[int, int, int, int],
    *,
    explicit: tuple[int, int, int, int],
    **pooling: Any,
) -> tuple:
    """Pool one tile as :func:`pool_image` pools a whole image (its pads are explicit ones;
    a ``ceil_mode`` overhang is left to ``ceil_mode``)."""
    top, bottom, left, right = pads
    padding = (top, min(bottom, explicit[1]), left, min(right, explicit[3]))
    image = Image(pixels, alpha, "TIFF", "-")
    result = pool_image(image, "TIFF", padding=padding, **pooling)
    assert isinstance(result, tuple)  # not text, not streamed bands
    return result


def pool_large(
    source: str,
    target: str,
    *,
    size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    mode: str = "max",
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    tile_size: int | None = None,
    scheduler: Any = None,
    **output: Any,
) -> LargeResult:
    """Pool a TIFF/Zarr image tile by tile into a TIFF/Zarr ``target``.

    The result equals :func:`~imgkernel.images.pool.pool_image` on the whole
    image written as TIFF (8/16-bit kept, averages rounded half up, float
    data as 8-bit). ``tile_size`` counts output pixels per tile side
    (default 1024, or 512 for very wide images; see :func:`tile_size_for`);
    ``output``: ``out_tile``, ``compression``, ``level``, ``threads`` as
    :func:`run_large` takes them.
    """
    check_target_format(target)
    if str(mode).lower() not in POOL_MODES:
        raise UsageError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOL_MODES)}")
    src = open_region_source(source)
    plan = plan_pool(
        src.hw,
        size,
        stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        tile=tile_size_for(tile_size, scheduler, source_row_bytes(src, stride or size)),
    )
    compute = partial(
        _pool_tile,
        explicit=plan.pads,
        size=size if isinstance(size, tuple) else (size, size),
        stride=stride,
        mode=mode,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    return run_large(
        source,
        target,
        plan,
        compute,
        gray=src.gray,
        alpha=src.alpha,
        scheduler=scheduler,
        **output,
    )
