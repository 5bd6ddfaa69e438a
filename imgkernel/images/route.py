"""When a file-to-file command takes the tiled path: :class:`LargeRoute`.

Kept apart from :mod:`imgkernel.images.tiled` so that deciding costs no
start-up: the tiled engine (tifffile, the writers, the tile plans) is
imported only when an input goes that way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgkernel.errors import UsageError

if TYPE_CHECKING:
    from imgkernel.images.tiled import LargeResult

#: Inputs with more pixels than this take the tiled path unasked (Pillow warns of
#: decompression bombs from 89 Mpx; the whole-image filter needs about 10 bytes
#: per pixel and channel).
LARGE_PIXELS = 1 << 26


@dataclass(frozen=True)
class LargeRoute:
    """When a file-to-file command takes the tiled path, and how it runs it there.

    ``run(source, target, tile_size=..., scheduler=...)`` does one file, e.g.
    ``partial(filter_large, kernel=k, display=d, **filter_options)``.
    :meth:`applies` says whether a ``(source, target)`` pair goes the tiled
    way: always for Zarr input or output; for a TIFF to TIFF when a tile size
    or scheduler was asked for, or when the input has more than ``pixels``
    pixels; never for standard input/output or other formats (where asking
    for tiles is an error).
    """

    run: Callable[..., LargeResult]
    tile_size: int | None = None
    scheduler: Any = None
    pixels: int = LARGE_PIXELS

    @property
    def asked(self) -> bool:
        return self.tile_size is not None or self.scheduler is not None

    def applies(self, source: str, target: str) -> bool:
        from imgkernel.images.regions import is_zarr_path, open_region_source

        if is_zarr_path(source) or is_zarr_path(target):
            return True
        files = source != "-" and target != "-" and os.path.isfile(source)
        tiff_out = target.lower().endswith((".tif", ".tiff"))
        if not (files and tiff_out and _is_tiff(source)):
            if self.asked:
                raise UsageError(
                    "--tile-size and --scheduler work on TIFF files (or Zarr arrays) in and out"
                )
            return False
        try:
            src = open_region_source(source)
        except UsageError:
            if self.asked:
                raise
            return False  # a TIFF only the whole-image reader shows right
        frames, pixels = src.frames, src.hw[0] * src.hw[1]  # (sources are cached: left open)
        if frames > 1:  # the whole-image path keeps every page; tiles read the first
            if self.asked:
                raise UsageError(
                    f"{source}: a TIFF of {frames} pages: --tile-size and --scheduler read "
                    "single-page TIFFs (without them every page is filtered)"
                )
            return False
        return self.asked or pixels > self.pixels

    def __call__(self, source: str, target: str) -> LargeResult:
        from imgkernel.core.parallel import tune_allocator

        tune_allocator()  # the command's own process: tiles reuse freed memory
        return self.run(source, target, tile_size=self.tile_size, scheduler=self.scheduler)


def _is_tiff(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
