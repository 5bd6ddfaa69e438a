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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.images.deliver import check_target, deliver
from imgkernel.images.regions import is_zarr_path, require

__all__ = ["COMPRESSIONS", "OutputSpec", "rechunk_rows", "write_large"]

#: Above this many bytes of pixels a TIFF is written as BigTIFF.
BIGTIFF_BYTES = 2**31
#: Compression names for ``compression``; others go to tifffile as given.
COMPRESSIONS = ("zlib", "none")


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


def _tiff_options(spec: OutputSpec, compression: str | None, level: int | None) -> dict:
    name = (compression or "none").lower()
    options: dict[str, Any] = {}
    if name != "none":
        options["compression"] = name
        if level is not None:
            options["compressionargs"] = {"level": int(level)}
    channels = spec.shape[2]
    if spec.gray or channels not in (3, 4):
        options["photometric"] = "minisblack"
    else:
        options["photometric"] = "rgb"
    if spec.alpha:
        options["extrasamples"] = ("unassalpha",)
    return options


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
    must be multiples of 16. ``compression`` is ``zlib`` (default),
    ``none`` or another name tifffile knows; ``level`` its level.
    ``threads`` compress TIFF tiles in parallel.
    """
    if is_zarr_path(target):
        _write_zarr(target, bands, spec, tile, compression)
        return
    if tile[0] % 16 or tile[1] % 16:
        raise UsageError(f"TIFF tiles must be multiples of 16 pixels, got {tile[0]}x{tile[1]}")
    tifffile = require("tifffile", "tiff")
    h, w, c = spec.shape
    shape = (h, w) if c == 1 else (h, w, c)
    squeeze = c == 1

    def tiles() -> Iterator[np.ndarray]:
        for t in _tiff_tiles(bands, tile):
            yield t[:, :, 0] if squeeze else t

    def encode(f: IO[bytes]) -> None:
        tifffile.imwrite(
            f,
            tiles(),
            shape=shape,
            dtype=spec.dtype,
            tile=tile,
            bigtiff=spec.nbytes > BIGTIFF_BYTES,
            maxworkers=threads,
            **_tiff_options(spec, compression, level),
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
    zarr = require("zarr", "tiff")
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
