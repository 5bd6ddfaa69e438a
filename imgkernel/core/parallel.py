"""Spreading row tiles over threads.

numpy releases the GIL inside its loops, so plain threads run tiles of one
array operation on all cores. Every compute path (padding, correlation,
pooling) uses :func:`run_tiles`; ``IMGKERNEL_THREADS`` overrides the count.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported with the pool: a small job never starts it
    from concurrent.futures import ThreadPoolExecutor

#: Bytes of one output tile (measured: 1 MiB beats 256 KiB by ~20% on 12 Mpx RGB).
TILE_BYTES = 1 << 20


def workers() -> int:
    """Threads to spread tiles over: ``IMGKERNEL_THREADS`` or the CPU count."""
    env = os.environ.get("IMGKERNEL_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    # One long-lived pool: creating threads per call costs more than a small
    # CNN layer does.
    from concurrent.futures import ThreadPoolExecutor

    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:  # noqa: SLF001
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="imgkernel")
        return _POOL


#: Output values of an image below which :func:`serial` is worth asking for:
#: a 17-tap separable Gaussian took 2.6 ms on one thread on 512x512 RGB and
#: 3.9 on two, 8.5 against 8.9 at 1024x1024, 100 against 76 at 4000x3000.
#: (A band of a large image is no small job: 60 rows of 4000 RGB took 1.8 ms
#: on one thread and 1.5 on two.)
SERIAL_WORK = 1 << 21

_SERIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("imgkernel_serial", default=False)


@contextlib.contextmanager
def serial(wanted: bool = True) -> Iterator[None]:
    """Run every :func:`run_tiles` inside on the calling thread (``wanted``: else as usual).

    >>> with serial():
    ...     run_tiles(4, lambda a, b: print(a, b), 1)
    0 4
    """
    token = _SERIAL.set(wanted or _SERIAL.get())
    try:
        yield
    finally:
        _SERIAL.reset(token)


def run_tiles(count: int, task: Callable[[int, int], None], rows_per_tile: int) -> None:
    """Call ``task(start, stop)`` over ``range(count)`` in tiles, in parallel.

    >>> seen = []
    >>> run_tiles(5, lambda a, b: seen.append((a, b)), 2)
    >>> sorted(seen)
    [(0, 2), (2, 4), (4, 5)]
    """
    if count <= rows_per_tile or _SERIAL.get():
        task(0, count)
        return
    spans = [(a, min(a + rows_per_tile, count)) for a in range(0, count, rows_per_tile)]
    n = min(workers(), len(spans))
    if n <= 1 or threading.current_thread().name.startswith("imgkernel"):
        # Serial, also when already inside a pool thread: waiting on the pool
        # from one of its own threads could deadlock.
        for a, b in spans:
            task(a, b)
        return
    # Each tile runs in a copy of the caller's context, so numpy's errstate
    # (a context variable) holds in the pool's threads as it does here: a
    # caller that silenced overflow warnings gets none from the workers.
    futures = [_pool(n).submit(contextvars.copy_context().run, task, a, b) for a, b in spans]
    for future in futures:
        future.result()


_LOCAL = threading.local()


def thread_buffer(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A work array owned by this thread, reused across tiles and calls.

    A fresh megabyte per tile is a fresh mmap whose page faults cost as much
    as several kernel taps; each thread keeps one buffer per ``name``.
    """
    buffers = getattr(_LOCAL, "buffers", None)
    if buffers is None:
        buffers = _LOCAL.buffers = {}
    size = 1
    for n in shape:
        size *= int(n)
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != np.dtype(dtype):
        buf = buffers[name] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


#: OpenBLAS runs a GEMM with ``M*N*K`` up to this on the calling thread
#: only (interface/gemm.c: 65536 * GEMM_MULTITHREAD_THRESHOLD 4); larger
#: ones start its own threads, which fight ours when threadpoolctl is absent.
BLAS_SERIAL_MNK = 1 << 18


def gemm_columns(mk: int, width: int, least: int = 1024) -> int:
    """Columns per GEMM of an ``(M x K) @ (K x columns)`` product that stay
    under :data:`BLAS_SERIAL_MNK` (at least ``least``, at most ``width``);
    also a cache-friendly chunk (17-tap vertical pass: 0.61 ns per output
    in 3000-column chunks against 0.70 over 12000).

    >>> gemm_columns(4 * 20, 12000), gemm_columns(32 * 112, 12000)
    (3276, 1024)
    """
    return max(1, min(width, max(least, BLAS_SERIAL_MNK // max(mk, 1))))


@functools.cache
def blas_limitable() -> bool:
    """Whether :func:`blas_single_thread` can limit BLAS (threadpoolctl is installed).

    Looked up, not imported: importing it costs a small image's whole filtering.
    """
    import importlib.util

    return importlib.util.find_spec("threadpoolctl") is not None


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER: Any = None


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Limit BLAS to one thread while our own threads each run GEMMs.

    Many small GEMMs called from two Python threads beat one multi-threaded
    BLAS here (OpenBLAS's threads spin and fight for the cores). Uses
    threadpoolctl when it is installed, else does nothing. The limit is
    process-wide, so overlapping calls (from several user threads) share one
    limit, counted under a lock: the last one out restores the original.
    """
    global _BLAS_USERS, _BLAS_LIMITER
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            _BLAS_LIMITER = threadpool_limits(1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMITER is not None:
                _BLAS_LIMITER.restore_original_limits()
                _BLAS_LIMITER = None


#: glibc's malloc: blocks up to this size come from its heaps, not fresh mmaps...
MMAP_THRESHOLD = 32 << 20
#: ...and freed heap memory up to this much is kept for the next block.
TRIM_THRESHOLD = 256 << 20


@functools.cache
def tune_allocator() -> bool:
    """Let glibc reuse the memory of freed tiles and bands instead of returning it.

    Left to itself, glibc returns a freed heap top larger than twice the
    last freed mmap to the system, and the next tile's arrays (megabytes
    each: outputs, gradients, mapped pixels) fault their pages in afresh:
    the tiled sobel of a 4096x4096 TIFF spent a quarter of one thread's time
    there (0.66-0.77 s against 0.52-0.56 with these settings; two threads
    0.49-0.52 against 0.42-0.47). Arrays over :data:`MMAP_THRESHOLD` (whole
    images) are still mapped and unmapped. A process-wide setting, so only
    processes that are imgkernel's own ask for it, and only for tiled runs:
    the command line when an input goes tiled, and the workers of a
    ``local:N`` cluster (not a library caller, nor a user's Dask worker).
    The whole-image emboss of a 12 Mpx PNG gained nothing measurable and
    kept 8 MB more at its peak (107 MB against 99). Linux with glibc only,
    once per process, and not when the user set ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or glibc's malloc tunables. Whether it took
    effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # absent from musl and other libcs
    except (OSError, AttributeError, ImportError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )
