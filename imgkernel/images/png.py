"""Fast PNG writing for numpy arrays: row filters in numpy, deflate in parallel strips.

Pillow's PNG encoder runs zlib on one core and was two thirds of a typical
``imgkernel filter ... -o out.png``.  This writer filters rows with numpy,
compresses strips of rows on a thread pool (the deflate libraries release
the GIL) and joins the strips into one zlib stream the way pigz does: every
strip but the last is raw deflate ending in a sync flush (so it ends on a
byte boundary), the last one ends with a final block, one zlib header goes
in front and the Adler-32 of all filtered bytes, combined from the strips'
own checksums with :func:`adler32_combine`, goes at the end.

Images: ``(H, W)`` gray, ``(H, W, C)`` with C = 1 (gray), 2 (gray+alpha),
3 (RGB) or 4 (RGBA); ``uint8`` (8-bit) or ``uint16`` (16-bit, written
big-endian as PNG requires).  No palette, no ancillary chunks, no interlace.

Compress levels 0-9 go from fast to small; what each does, and the
measurements behind it, are in :mod:`imgkernel.images.pngdeflate`.  Row
filters are in :mod:`imgkernel.images.pngfilter`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import deque
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import numpy as np

from imgkernel.images.pngdeflate import (
    Deflater,
    Plan,
    adler32_combine,
    checksums,
    plan_for,
    zlib_header,
)
from imgkernel.images.pngfilter import FILTER_NAMES, filter_rows

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = [
    "DEFAULT_LEVEL",
    "FILTER_NAMES",
    "Deflater",
    "Plan",
    "PngWriter",
    "adler32_combine",
    "encode_png",
    "plan_for",
    "write_png",
]

DEFAULT_LEVEL = 1

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: channels -> PNG colour type (gray, gray+alpha, RGB, RGBA).
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
#: Raw bytes per strip compressed as one task: big enough that thread hand-off
#: is noise, small enough that a 12 MP image gives dozens of tasks to share.
STRIP_BYTES = 1 << 20
#: Rows sharing one filter choice (see :func:`~imgkernel.images.pngfilter.filter_rows`).
BAND_BYTES = 1 << 18
#: Largest IDAT payload written (decoders accept up to 2**31 - 1).
CHUNK_BYTES = 1 << 20


# ------------------------------------------------------------------ strips


def _as_bytes(rows: np.ndarray) -> np.ndarray:
    """``(n, W[, C])`` samples as ``(n, L)`` bytes, 16-bit samples big-endian."""
    dtype = np.uint8 if rows.dtype.itemsize == 1 else np.dtype(">u2")
    return np.ascontiguousarray(rows, dtype=dtype).view(np.uint8).reshape(len(rows), -1)


class _Setup(NamedTuple):
    """What every strip task needs to know, fixed for one image."""

    bpp: int
    band_rows: int
    plan: Plan
    checksums: Any  # module with adler32 and crc32


class _Strip(NamedTuple):
    data: bytes  # raw deflate, ending on a byte boundary
    adler: int  # Adler-32 of the filtered bytes
    size: int  # number of filtered bytes


def _encode_strip(rows: np.ndarray, above: np.ndarray, setup: _Setup, last: bool) -> _Strip:
    """Filter and compress one strip of rows (runs on a worker thread)."""
    plan = setup.plan
    filtered = filter_rows(_as_bytes(rows), above, setup.bpp, plan.filters, setup.band_rows)
    flat = filtered.reshape(-1)
    data = plan.compress(flat, last)
    return _Strip(data, setup.checksums.adler32(flat), flat.size)


def _default_threads() -> int:
    """Usable cores, at most 8 (beyond that the writes are the bottleneck)."""
    has_affinity = hasattr(os, "sched_getaffinity")
    return max(1, min(8, len(os.sched_getaffinity(0)) if has_affinity else os.cpu_count() or 1))


def _image_layout(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, int, int, int]:
    """(height, width, channels, bit depth) of an image array, or ValueError/TypeError."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
        raise ValueError(f"need an (H, W) or (H, W, C) image with C in 1..4, got shape {shape}")
    if dtype not in (np.uint8, np.uint16) and dtype != np.dtype(">u2"):
        raise TypeError(f"PNG samples must be uint8 or uint16, got {dtype}")
    channels = shape[2] if len(shape) == 3 else 1
    return shape[0], shape[1], channels, 8 * dtype.itemsize


# ------------------------------------------------------------------ writer


class PngWriter:
    """Write a PNG to a binary file as bands of rows arrive, compressing in parallel.

    Parameters
    ----------
    file
        A binary file object, written sequentially (never seeks: a pipe or
        standard output works).  The caller opens and closes it.
    width, height
        Image size in pixels, at least 1 each.
    channels
        1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    bit_depth
        8 (rows are uint8) or 16 (rows are uint16, any byte order).
    level
        Compress level 0-9, fast -> small; see :mod:`imgkernel.images.pngdeflate`.
    threads
        Worker threads (default: the usable cores, at most 8); 1 runs inline.
    filters
        Force the candidate filter types (0 None .. 4 Paeth) instead of the
        level's; a single one is used for every row.

    Rows go in with :meth:`write_rows` in order, any number at a time; they
    are copied, so the caller may reuse its buffer.  A strip of about
    :data:`STRIP_BYTES` is filtered and compressed on the pool while the
    caller computes the next; at most ``2 * threads`` strips are in flight,
    so memory stays a few MiB beyond the caller's own arrays.
    :meth:`close` writes the rest and IEND and fails if rows are missing.

    Examples
    --------
    >>> buf = io.BytesIO()
    >>> with PngWriter(buf, width=3, height=2, channels=1) as png:
    ...     png.write_rows(np.array([[0, 1, 2]], np.uint8))
    ...     png.write_rows(np.array([[3, 4, 5]], np.uint8))
    >>> buf.getvalue()[:8] == SIGNATURE, buf.getvalue()[-8:-4]
    (True, b'IEND')
    """

    def __init__(
        self,
        file: IO[bytes],
        width: int,
        height: int,
        channels: int = 3,
        bit_depth: int = 8,
        level: int = DEFAULT_LEVEL,
        *,
        threads: int | None = None,
        filters: tuple[int, ...] | None = None,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or not 1 <= value < 2**31:
                raise ValueError(f"{name} must be an integer from 1 to 2**31 - 1, got {value!r}")
        if channels not in COLOR_TYPES or bit_depth not in (8, 16):
            raise ValueError(
                f"need 1-4 channels and bit depth 8 or 16, got {channels}, {bit_depth}"
            )
        plan = plan_for(level, filters)
        self.width, self.height, self.channels = int(width), int(height), channels
        self.dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        row_bytes = self.width * channels * bit_depth // 8
        bpp = channels * bit_depth // 8
        band_rows = max(1, BAND_BYTES // row_bytes)
        self._setup = _Setup(bpp, band_rows, plan, checksums())
        self._header = zlib_header(int(level))
        self._strip_rows = max(1, STRIP_BYTES // row_bytes)
        workers = _default_threads() if threads is None else max(1, int(threads))
        many = self.height > self._strip_rows and workers > 1
        self._pool: ThreadPoolExecutor | None = None
        if many:  # one strip (a small image) is deflated here, without threads
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="png")
        self._limit = 2 * workers
        self._file = file
        self._queue: deque[Future[_Strip]] = deque()
        self._above = np.zeros(row_bytes, np.uint8)  # the row before the next strip
        self._buffer: np.ndarray | None = None  # rows gathered for the next strip
        self._filled = 0
        self._received = self._submitted = self._emitted = 0
        self._adler = 1
        self._closed = False
        ihdr = struct.pack(
            ">IIBBBBB", self.width, self.height, bit_depth, COLOR_TYPES[channels], 0, 0, 0
        )
        file.write(SIGNATURE)
        self._chunk(b"IHDR", ihdr)

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def write_rows(self, rows: np.ndarray) -> None:
        """Add the next ``rows`` (``(n, W)`` or ``(n, W, C)``, n >= 0) of the image."""
        self._feed(self._check_rows(rows), copy=True)

    def close(self) -> None:
        """Compress what is left, write the Adler-32 and IEND; the file stays open."""
        if self._closed:
            return
        if self._received != self.height:
            self.abort()
            raise ValueError(f"PNG closed after {self._received} of {self.height} rows")
        self._drain(0)
        self._closed = True
        self._chunk(b"IEND", b"")
        if self._pool is not None:
            self._pool.shutdown()

    def abort(self) -> None:
        """Stop without finishing the file (left truncated; the caller discards it)."""
        self._closed = True
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _check_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        if self._closed:
            raise ValueError("PNG writer is closed")
        if rows.ndim == 3 and self.channels == 1 and rows.shape[2] == 1:
            rows = rows[:, :, 0]
        want = (self.width,) if self.channels == 1 else (self.width, self.channels)
        if rows.ndim != 1 + len(want) or rows.shape[1:] != want:
            raise ValueError(
                f"rows must have shape (n, {', '.join(map(str, want))}), got {rows.shape}"
            )
        if rows.dtype.kind != "u" or rows.dtype.itemsize != self.dtype.itemsize:
            raise TypeError(f"rows must be {self.dtype} for this PNG, got {rows.dtype}")
        if self._received + len(rows) > self.height:
            raise ValueError(f"too many rows: {self._received} + {len(rows)} > {self.height}")
        return rows

    def _feed(self, rows: np.ndarray, copy: bool) -> None:
        """Cut ``rows`` into strips: whole strips straight from ``rows``, the rest buffered."""
        self._received += len(rows)
        start = 0
        while start < len(rows):
            size = min(self._strip_rows, self.height - self._submitted)
            if self._buffer is None and len(rows) - start >= size:
                strip = rows[start : start + size]
                self._submit(strip.copy() if copy else strip)
                start += size
                continue
            if self._buffer is None:
                self._buffer = np.empty((size, *rows.shape[1:]), rows.dtype)
            take = min(len(rows) - start, size - self._filled)
            self._buffer[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == size:
                strip, self._buffer, self._filled = self._buffer, None, 0
                self._submit(strip)

    def _submit(self, strip: np.ndarray) -> None:
        self._submitted += len(strip)
        args = (strip, self._above, self._setup, self._submitted == self.height)
        self._above = _as_bytes(strip[-1:])[0]
        if self._pool is None:  # strips come back in order: each is written at once
            self._emit(_encode_strip(*args))
            return
        self._queue.append(self._pool.submit(_encode_strip, *args))
        self._drain(self._limit)

    def _drain(self, limit: int) -> None:
        """Write finished strips in order; wait while more than ``limit`` are queued."""
        while self._queue and (len(self._queue) > limit or self._queue[0].done()):
            try:
                strip = self._queue.popleft().result()
            except BaseException:
                self.abort()
                raise
            self._emit(strip)

    def _emit(self, strip: _Strip) -> None:
        data = strip.data
        if self._emitted == 0:
            data = self._header + data
        self._emitted += 1
        self._adler = adler32_combine(self._adler, strip.adler, strip.size)
        if not self._queue and self._submitted == self.height:
            data += struct.pack(">I", self._adler)
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            self._chunk(b"IDAT", view[start : start + CHUNK_BYTES])

    def _chunk(self, kind: bytes, data: bytes | memoryview) -> None:
        crc = self._setup.checksums.crc32(data, zlib.crc32(kind))
        self._file.write(struct.pack(">I", len(data)) + kind)
        self._file.write(data)
        self._file.write(struct.pack(">I", crc & 0xFFFFFFFF))


def write_png(
    file: IO[bytes],
    array: np.ndarray,
    level: int = DEFAULT_LEVEL,
    *,
    threads: int | None = None,
    filters: tuple[int, ...] | None = None,
) -> None:
    """Write ``array`` (``(H, W)`` or ``(H, W, C)``, uint8 or uint16) as a PNG to ``file``."""
    array = np.asarray(array)
    height, width, channels, depth = _image_layout(array.shape, array.dtype)
    writer = PngWriter(
        file, width, height, channels, depth, level, threads=threads, filters=filters
    )
    try:
        # The array is not ours, but it stays unchanged until we return: no copy.
        writer._feed(writer._check_rows(array), copy=False)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def encode_png(
    array: np.ndarray,
    level: int = DEFAULT_LEVEL,
    *,
    threads: int | None = None,
    filters: tuple[int, ...] | None = None,
) -> bytes:
    """The PNG file of ``array`` as bytes.

    >>> png = encode_png(np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    >>> from PIL import Image
    >>> Image.open(io.BytesIO(png)).getpixel((1, 1))
    (9, 10, 11)
    """
    buf = io.BytesIO()
    write_png(buf, array, level, threads=threads, filters=filters)
    return buf.getvalue()
