"""Writing images too large for memory: TIFF and Zarr, one band of rows at a time.

The tiled engine (:mod:`imgkernel.images.tiled`) hands over full-width bands
of finished pixels ``(rows, W, C)`` from top to bottom; the writers here cut
them into the target's tiles (TIFF) or chunks (Zarr) and never hold more than
a band and one row of tiles. TIFF goes through ``tifffile.imwrite`` from an
iterator of tiles (tiled, zlib-compressed by default, BigTIFF once the
pixels pass 2 GiB); Zarr is written chunk row by chunk row, by region.
Both appear atomically: a hidden temporary file or directory beside the
target replaces it when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

import numpy as np

from imgkernel.core.parallel import workers
from imgkernel.errors import UsageError
from imgkernel.images.deliver import check_target, deliver
from imgkernel.images.regions import is_zarr_path, isal_zlib, require

__all__ = ["COMPRESSIONS", "OutputSpec", "rechunk_rows", "write_large", "write_tiff_tiles"]

#: Above this many bytes of pixels a TIFF is written as BigTIFF.
BIGTIFF_BYTES = 2**31
#: Compression names for ``compression``; others go to tifffile as given.
COMPRESSIONS = ("zlib", "none")
#: The zlib level when none is asked for: filtered photographs are noisy, and
#: level 1 compresses them nearly as well as 6, several times faster.
DEFLATE_LEVEL = 1


@dataclass(frozen=True)
class OutputSpec:
    """What the bands hold: ``shape`` ``(H, W, C)``, ``dtype``, and how to tag the channels.

    ``gray``: the colour is one channel; ``alpha``: the last channel is alpha.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype
    gray: bool
    alpha: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def rechunk_rows(bands: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """Regroup bands of any heights into bands of ``rows`` rows (the last may be shorter).

    >>> parts = [np.zeros((h, 2)) for h in (3, 1, 4, 2)]
    >>> [b.shape[0] for b in rechunk_rows(parts, 4)]
    [4, 4, 2]
    """
    pending: list[np.ndarray] = []
    held = 0
    for band in bands:
        start = 0
        while start < band.shape[0]:
            take = min(rows - held, band.shape[0] - start)
            pending.append(band[start : start + take])
            held += take
            start += take
            if held == rows:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, held = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def _tiff_tiles(bands: Iterable[np.ndarray], tile: tuple[int, int]) -> Iterator[np.ndarray]:
    """The TIFF tiles of the bands, row of tiles by row of tiles (edge tiles not padded)."""
    th, tw = tile
    for rows in rechunk_rows(bands, th):
        for c0 in range(0, rows.shape[1], tw):
            yield rows[:, c0 : c0 + tw]


def _tiff_options(spec: OutputSpec, compression: str | None) -> dict:
    name = (compression or "none").lower()
    options: dict[str, Any] = {}
    if name != "none":
        options["compression"] = name
    if spec.gray or spec.shape[2] not in (3, 4):
        options["photometric"] = "minisblack"
    else:
        options["photometric"] = "rgb"
    if spec.alpha:
        options["extrasamples"] = ("unassalpha",)
    return options


def zlib_encoder(level: int | None = None) -> Callable[[bytes], bytes]:
    """A zlib (TIFF deflate) compressor: ISA-L's when installed (``isal``, levels 0-3,
    several times faster than zlib's level 1 and smaller), else the standard library's.

    >>> import zlib
    >>> zlib.decompress(zlib_encoder()(b"abc" * 100)) == b"abc" * 100
    True
    """
    level = DEFLATE_LEVEL if level is None else int(level)
    fast = isal_zlib()
    if fast is not None and level <= 3:
        return partial(fast.compress, level=level)
    import zlib

    return partial(zlib.compress, level=level)


def _encoded(
    tiles: Iterable[np.ndarray], shape: tuple[int, ...], encode: Callable, threads: int
) -> Iterator[bytes]:
    """Each tile zero-padded to ``shape`` and encoded, on ``threads`` threads, in order."""

    def job(tile: np.ndarray) -> bytes:
        if tile.shape != shape:
            full = np.zeros(shape, dtype=tile.dtype)
            full[tuple(slice(0, n) for n in tile.shape)] = tile
            tile = full
        return encode(np.ascontiguousarray(tile))

    with ThreadPoolExecutor(threads, thread_name_prefix="imgkernel-encode") as pool:
        pending: deque = deque()
        for tile in tiles:
            if len(pending) >= 4 * threads:
                yield pending.popleft().result()
            pending.append(pool.submit(job, tile))
        while pending:
            yield pending.popleft().result()


def write_large(
    target: str,
    bands: Iterable[np.ndarray],
    spec: OutputSpec,
    *,
    tile: tuple[int, int] = (256, 256),
    compression: str | None = "zlib",
    level: int | None = None,
    threads: int | None = None,
) -> None:
    """Write full-width bands (top to bottom) to a TIFF file or, for ``*.zarr``, a Zarr array.

    ``tile`` is the TIFF tile or Zarr chunk ``(rows, cols)``; TIFF tiles
    must be multiples of 16. ``compression`` is ``zlib`` (default; level 1
    unless ``level`` says, see :func:`zlib_encoder`; level 0 writes the tiles
    uncompressed, as zlib's level 0 stores them), ``none`` or another
    name tifffile knows. ``threads`` compress tiles in parallel.
    """
    if is_zarr_path(target):
        _write_zarr(target, bands, spec, tile, compression)
        return
    write_tiff_tiles(
        target,
        _tiff_tiles(bands, tile),
        spec,
        tile=tile,
        compression=compression,
        level=level,
        threads=threads,
    )


def write_tiff_tiles(
    target: str,
    tiles: Iterable[np.ndarray],
    spec: OutputSpec,
    *,
    tile: tuple[int, int] = (256, 256),
    compression: str | None = "zlib",
    level: int | None = None,
    threads: int | None = None,
) -> None:
    """Write a TIFF from its ``tile``-sized tiles ``(h, w, C)`` in row-major order (edge
    tiles may be smaller); see :func:`write_large` for the options."""
    if tile[0] % 16 or tile[1] % 16:
        raise UsageError(f"TIFF tiles must be multiples of 16 pixels, got {tile[0]}x{tile[1]}")
    tifffile = require("tifffile", "tiff")
    h, w, c = spec.shape
    shape = (h, w) if c == 1 else (h, w, c)
    threads = threads or workers()
    written: Iterable[Any] = (t[:, :, 0] if c == 1 else t for t in tiles)
    options = _tiff_options(spec, compression)
    tile_bytes = tile[0] * tile[1] * c * np.dtype(spec.dtype).itemsize
    if options.get("compression") in ("zlib", "deflate", "adobe_deflate"):
        if level is not None and int(level) == 0:
            # zlib's level 0 only stores: the same bytes, without the deflate framing
            options = _tiff_options(spec, "none")
        else:
            encode_tile = zlib_encoder(level)
            written = _encoded(written, tile if c == 1 else (*tile, c), encode_tile, threads)
            options["compression"] = "zlib"
    elif level is not None and "compression" in options:  # lzma, zstd...: their own levels
        options["compressionargs"] = {"level": int(level)}

    def encode(f: IO[bytes]) -> None:
        tifffile.imwrite(
            f,
            written,
            shape=shape,
            dtype=spec.dtype,
            tile=tile,
            bigtiff=spec.nbytes > BIGTIFF_BYTES,
            maxworkers=threads,
            buffersize=max(4 * threads * tile_bytes, 1 << 20),
            **options,
        )

    deliver(target, encode)


def _write_zarr(
    target: str,
    bands: Iterable[np.ndarray],
    spec: OutputSpec,
    tile: tuple[int, int],
    compression: str | None,
) -> None:
    """Write a Zarr array into a temporary directory beside ``target``, then put it in place."""
    zarr = require("zarr", "zarr")
    dest = check_target(target.rstrip("/")) if not os.path.isdir(target) else target.rstrip("/")
    if os.path.isdir(dest) and not is_zarr_path(dest):
        raise UsageError(f"{target}: is a directory that is not a Zarr array")
    parent = os.path.dirname(os.path.abspath(dest))
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(dest) + ".", suffix=".tmp")
    try:
        h, w, c = spec.shape
        gray = c == 1 and spec.gray
        shape = (h, w) if gray else (h, w, c)
        chunks = tile if gray else (*tile, c)
        extra: dict[str, Any] = {}
        if (compression or "").lower() == "none":
            extra["compressors"] = None
        array = zarr.create_array(
            tmp, shape=shape, chunks=chunks, dtype=spec.dtype, overwrite=True, **extra
        )
        row = 0
        for rows in rechunk_rows(bands, tile[0]):
            array[row : row + rows.shape[0]] = rows[:, :, 0] if gray else rows
            row += rows.shape[0]
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp: str, dest: str) -> None:
    """Put directory ``tmp`` at ``dest``, replacing an existing Zarr array there."""
    if not os.path.exists(dest):
        os.replace(tmp, dest)
        return
    old = dest + ".old-" + os.path.basename(tmp)
    os.replace(dest, old)
    os.replace(tmp, dest)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
