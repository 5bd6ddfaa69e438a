"""Reading rectangles of images too large for memory: tiled or striped TIFF, and Zarr.

:func:`open_region_source` opens a TIFF (tiled or striped, classic or
BigTIFF; through ``tifffile``) or a Zarr array (through ``zarr``) and
returns a :class:`RegionSource`, whose :meth:`~RegionSource.read` decodes
only the TIFF tiles or strips (Zarr chunks) a rectangle touches. Decoded
TIFF segments are kept in a small least-recently-used cache, so the halos
that neighbouring tiles share are decoded once when tiles are read in order.

Pixels follow the rules of :mod:`imgkernel.images.read`: uint8, uint16 and
float32 TIFFs keep their type, and an unassociated alpha sample (TIFF
ExtraSamples 2) is the alpha plane; a Zarr array's channels are data, like
an ``.npy`` array's (no alpha), and numbers other than uint8/uint16 become
float32 with their values unchanged. Only the first page of a multi-page
TIFF is read.

``tifffile`` (extra ``tiff``, with ``isal`` for fast deflate) and ``zarr``
(extra ``zarr``) are optional dependencies, imported only when a source of
their kind is opened.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from imgkernel.errors import UsageError

__all__ = ["RegionSource", "is_zarr_path", "open_region_source", "require"]

#: Rows of TIFF segments (tiles or strips) whose decoded data a source keeps at least.
CACHED_SEGMENT_ROWS = 3

_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@functools.cache
def isal_zlib() -> Any:
    """ISA-L's zlib module (``isal``, optional: twice zlib's speed or more), or None."""
    try:
        from isal import isal_zlib as module
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return module


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or explain which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"this needs the optional package {module!r}: pip install 'imgkernel[{extra}]'"
        ) from None


def is_zarr_path(path: str) -> bool:
    """Whether ``path`` names a Zarr array: a directory with Zarr metadata, or ``*.zarr``.

    >>> is_zarr_path("out.zarr"), is_zarr_path("out.tif")
    (True, False)
    """
    if os.path.isdir(path):
        return any(os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zarray"))
    return path.rstrip("/").lower().endswith(".zarr")


def _pixel_dtype(dtype: np.dtype) -> np.dtype:
    """Stored numbers as pixels: uint8/uint16 kept, any other number float32."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "buif":
        raise UsageError(f"cannot read pixels of type {dtype}")
    if dtype.kind == "u" and dtype.itemsize in (1, 2):
        return dtype.newbyteorder("=")
    return np.dtype(np.float32)


class RegionSource:
    """An image read a rectangle at a time.

    ``shape`` is ``(H, W, C)`` (C counts the alpha sample); ``dtype`` the
    pixels' type; ``alpha`` whether the last channel is an alpha plane;
    ``gray`` whether the colour is one plane stored as ``(H, W)``;
    ``frames`` how many images (TIFF pages) the file holds (only the first is read).
    """

    path: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    alpha: bool = False
    gray: bool = False
    frames: int = 1

    @property
    def hw(self) -> tuple[int, int]:
        return (self.shape[0], self.shape[1])

    @property
    def row_bytes(self) -> int:
        """Bytes of one decoded row, all samples."""
        return self.shape[1] * self.shape[2] * np.dtype(self.dtype).itemsize

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows ``r0:r1`` and columns ``c0:c1`` as ``(h, w, C)`` pixels."""
        raise NotImplementedError

    def reserve(self, rows: int) -> None:
        """Keep enough decoded data for reads ``rows`` high across the whole width,
        so that tiles read row by row decode each segment once."""

    def close(self) -> None:
        """Release the file."""


class ZarrRegions(RegionSource):
    """A Zarr array ``(H, W)`` or ``(H, W, C)``, or a zarr-like array (a TIFF through aszarr)."""

    def __init__(self, path: str, array: Any = None, *, alpha: bool = False, axes: str = ""):
        if array is None:
            zarr = require("zarr", "zarr")
            try:
                array = zarr.open_array(path, mode="r")
            except Exception as exc:  # zarr raises several types for a bad store
                raise UsageError(f"{path}: not a readable Zarr array ({exc})") from None
        self.path = path
        self._array = array
        self._planar = axes.startswith("S")
        shape = tuple(int(s) for s in array.shape)
        if self._planar:
            shape = (*shape[1:], shape[0])
        if len(shape) not in (2, 3) or 0 in shape:
            raise UsageError(f"{path}: array shape {shape} is not an image (H, W) or (H, W, C)")
        self.gray = len(shape) == 2 or (shape[2] == 2 and alpha)
        self.shape = (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)
        self.dtype = _pixel_dtype(array.dtype)
        self.alpha = alpha

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self._planar:
            block = np.moveaxis(np.asarray(self._array[:, r0:r1, c0:c1]), 0, -1)
        else:
            block = np.asarray(self._array[r0:r1, c0:c1])
        block = block.reshape(r1 - r0, c1 - c0, self.shape[2])
        return block.astype(self.dtype, copy=False)


class TiffRegions(RegionSource):
    """The first page of a TIFF, decoded tile by tile (or strip by strip) on demand."""

    def __init__(self, path: str):
        tifffile = require("tifffile", "tiff")
        try:
            self._tif = tifffile.TiffFile(path)
            page = self._tif.pages.first
        except Exception as exc:  # tifffile raises several types for a bad file
            raise UsageError(f"{path}: not a readable TIFF ({exc})") from None
        self.path = path
        self._page = page
        _check_page(path, page)
        spp = int(page.samplesperpixel)
        self.alpha = spp in (2, 4) and tuple(page.extrasamples)[-1:] == (2,)
        self.gray = spp == 1 or (spp == 2 and self.alpha)
        self.shape = (int(page.imagelength), int(page.imagewidth), spp)
        self.frames = len(self._tif.pages)
        self.dtype = _pixel_dtype(page.dtype)
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        if page.planarconfig == 2 and spp > 1:  # separate planes: let tifffile's zarr store read
            zarr = require("zarr", "zarr")
            self._zarr: ZarrRegions | None = ZarrRegions(
                path, zarr.open(page.aszarr(), mode="r"), alpha=self.alpha, axes=page.axes
            )
            return
        self._zarr = None
        self._byteorder = self._tif.byteorder
        self._seg_hw = (int(page.chunks[0]), int(page.chunks[1]))
        self._across = -(-self.shape[1] // self._seg_hw[1])
        self._budget = CACHED_SEGMENT_ROWS * self._seg_hw[0] * self.row_bytes

    def reserve(self, rows: int) -> None:
        if self._zarr is None:
            want = (rows + 2 * self._seg_hw[0]) * self.row_bytes
            self._budget = max(self._budget, want)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        try:
            return self._read(r0, r1, c0, c1)
        except MemoryError:
            raise
        except Exception as exc:  # the codecs raise many types for damaged data
            raise UsageError(f"{self.path}: truncated or corrupt image ({exc})") from None

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self._zarr is not None:
            return self._zarr.read(r0, r1, c0, c1)
        out = np.empty((r1 - r0, c1 - c0, self.shape[2]), dtype=self.dtype)
        sh, sw = self._seg_hw
        for i in range(r0 // sh, -(-r1 // sh)):
            for j in range(c0 // sw, -(-c1 // sw)):
                seg = self._segment(i * self._across + j)
                y0, x0 = i * sh, j * sw
                a, b = max(r0, y0), min(r1, y0 + seg.shape[0])
                c, d = max(c0, x0), min(c1, x0 + seg.shape[1])
                out[a - r0 : b - r0, c - c0 : d - c0] = seg[a - y0 : b - y0, c - x0 : d - x0]
        return out

    def _segment(self, index: int) -> np.ndarray:
        """Decoded tile or strip ``index`` as ``(h, w, S)``, from the cache when it is there."""
        with self._lock:
            seg = self._cache.get(index)
            if seg is not None:
                self._cache.move_to_end(index)
                return seg
            page, fh = self._page, self._tif.filehandle
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            data = None
            if count:
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count)
        seg = self._inflate(data, index)
        if seg is None:
            decoded, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
            h, w, s = shape[1], shape[2], shape[3]
            if decoded is None:  # a sparse (never written) segment
                seg = np.zeros((h, w, s), dtype=self.dtype)
            else:
                seg = decoded.reshape(decoded.shape[-3:])[:h, :w]
        with self._lock:
            if index not in self._cache:
                self._cache[index] = seg
                self._cached += seg.nbytes
            while self._cached > self._budget and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return seg

    def _inflate(self, data: bytes | None, index: int) -> np.ndarray | None:
        """A deflate segment decoded by ISA-L (``isal``, about twice zlib's speed) when it
        is installed and the segment is plain (no predictor); else None."""
        page = self._page
        codec = isal_zlib()
        if codec is None or not data or page.compression not in (8, 32946) or page.predictor != 1:
            return None
        sh, sw = self._seg_hw
        y0, x0 = (index // self._across) * sh, (index % self._across) * sw
        rows, cols = min(sh, self.shape[0] - y0), min(sw, self.shape[1] - x0)
        stored = (sh, sw) if page.is_tiled else (rows, sw)
        size = stored[0] * stored[1] * self.shape[2]
        # The output buffer sized at once, not grown from 16 KB (3 % faster here).
        inflated = codec.decompress(data, bufsize=size * page.dtype.itemsize)
        raw = np.frombuffer(inflated, page.dtype.newbyteorder(self._byteorder))
        if raw.size < size:
            return None
        return raw[:size].reshape(*stored, self.shape[2])[:rows, :cols]

    def close(self) -> None:
        self._tif.close()


def _check_page(path: str, page: Any) -> None:
    """Refuse what the whole-image reader (Pillow) would show differently."""
    orientation = page.tags.get(274)
    if orientation is not None and orientation.value not in (1, None):
        raise UsageError(
            f"{path}: has an EXIF/TIFF orientation ({orientation.value}); the tiled "
            "reader does not rotate images: read it whole instead"
        )
    if int(page.photometric) not in (1, 2):  # MINISBLACK, RGB
        raise UsageError(
            f"{path}: photometric interpretation {page.photometric!r} is not read tile by "
            "tile (grayscale and RGB are); read it whole instead"
        )
    if tuple(page.extrasamples)[-1:] == (1,):
        raise UsageError(f"{path}: premultiplied (associated) alpha is not read tile by tile")
    if page.imagedepth > 1 or page.dtype is None or page.bitspersample not in (8, 16, 32):
        raise UsageError(f"{path}: {page.bitspersample}-bit or volume TIFFs are not read by tiles")
    if np.dtype(page.dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16), np.float32):
        raise UsageError(f"{path}: {page.dtype} TIFFs are not read tile by tile")


_OPEN: OrderedDict[tuple[str, int, int], RegionSource] = OrderedDict()
_OPEN_LOCK = threading.Lock()


def open_region_source(path: str) -> RegionSource:
    """A :class:`RegionSource` for a TIFF file or a Zarr array, shared within the process.

    Sources stay open (at most four, the last used) so that the tiles of one
    job, read by the tasks of one worker process, share a file handle and
    its decoded-segment cache. A changed file is opened anew.
    """
    path = os.path.abspath(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    key = (path, info.st_mtime_ns, info.st_size)
    with _OPEN_LOCK:
        source = _OPEN.get(key)
        if source is not None:
            _OPEN.move_to_end(key)
            return source
    source = _open(path)
    with _OPEN_LOCK:
        _OPEN[key] = source
        while len(_OPEN) > 4:
            _OPEN.popitem(last=False)[1].close()
    return source


def _open(path: str) -> RegionSource:
    if is_zarr_path(path):
        return ZarrRegions(path)
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a Zarr array")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _TIFF_MAGIC:
        raise UsageError(f"{path}: the tiled path reads TIFF files and Zarr arrays only")
    return TiffRegions(path)
