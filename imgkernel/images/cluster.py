"""Where the tiles of a large image are computed: local threads or a Dask cluster.

:func:`open_runner` turns a ``scheduler`` into a :class:`Runner` whose
:meth:`~Runner.map` runs a function over items and yields the results **in
order**, with a bounded number of items in flight (so memory stays a few
tiles per worker):

``None``
    threads of this process (``IMGKERNEL_THREADS`` or the CPU count); each
    thread computes whole tiles, serially inside (no nested thread pools);
``"local:N"``
    a Dask ``LocalCluster`` of N worker processes with one thread each,
    on 127.0.0.1, without a dashboard, closed again afterwards;
``"tcp://HOST:PORT"`` (or any ``scheme://`` address)
    the Dask scheduler at that address (``dask scheduler`` and
    ``dask worker`` started by hand; imgkernel must be importable by the
    scheduler, which unpickles the tasks, and by every worker);
a ``distributed.Client``
    used as it is.

``dask`` and ``distributed`` are optional dependencies (the ``dask``
extra), imported only for a Dask scheduler.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from imgkernel.core.parallel import workers
from imgkernel.errors import UsageError
from imgkernel.images.regions import require

if TYPE_CHECKING:  # concurrent.futures (with logging): 3 ms of a small job's start
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["Runner", "limit_threads", "open_runner"]

#: Threads of imgkernel's own tile loops in each Dask task (one core per worker thread).
TASK_THREADS = "1"
#: glibc's mallopt parameters.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def limit_threads() -> None:
    """In a Dask worker: imgkernel's own threads per task, unless ``IMGKERNEL_THREADS`` is set.

    Dask sets BLAS threads to 1 but knows nothing of imgkernel's tile threads.
    """
    os.environ.setdefault("IMGKERNEL_THREADS", TASK_THREADS)


@functools.cache
def tune_malloc() -> bool:
    """Let glibc keep tile-sized temporaries on its heap (once per process; Linux only).

    Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also
    freezes glibc's mmap threshold at 128 KiB: every temporary array of a
    tile is then mapped afresh and faulted in page by page. Measured on a
    4096x4096 RGB sobel: 1.6 s of CPU in a worker against 0.63 s with the
    mmap threshold at 32 MiB (and the trim threshold at 128 MiB, so the heap
    is not handed back after every tile). Returns whether it was done.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 128 << 20))


def in_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)`` as a Dask task: imgkernel's threads limited (:func:`limit_threads`) and,
    where Dask froze glibc's thresholds, :func:`tune_malloc` first."""
    limit_threads()
    if "MALLOC_TRIM_THRESHOLD_" in os.environ:
        tune_malloc()
    return fn(item)


class Runner:
    """Runs a function over items, results in order; ``slots`` items run at once."""

    slots: int = 1

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def result(handle: Any) -> Any:
        return handle.result()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], ahead: int) -> Iterator[Any]:
        """``fn(item)`` for each item, in order; at most ``max(ahead, slots)`` pending."""
        limit = max(1, ahead, self.slots)
        pending: deque[Any] = deque()
        try:
            for item in items:
                if len(pending) >= limit:
                    yield self.result(pending.popleft())
                pending.append(self.submit(fn, item))
            while pending:
                yield self.result(pending.popleft())
        finally:
            for handle in pending:
                handle.cancel()


class ThreadRunner(Runner):
    """Threads of this process, named so that imgkernel's core runs serially inside each."""

    def __init__(self, pool: ThreadPoolExecutor, threads: int):
        self._pool = pool
        self.slots = threads

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return self._pool.submit(fn, item)


class DaskRunner(Runner):
    """Tasks on a Dask cluster, one per item."""

    def __init__(self, client: Any):
        self._client = client
        info = client.scheduler_info()
        self.slots = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return self._client.submit(in_worker, fn, item, pure=False)


@contextlib.contextmanager
def open_runner(scheduler: Any = None, *, threads: int | None = None) -> Iterator[Runner]:
    """The :class:`Runner` for ``scheduler`` (see the module notes); closes what it started."""
    if scheduler is None or (isinstance(scheduler, str) and scheduler.startswith("threads")):
        from concurrent.futures import ThreadPoolExecutor

        count = threads or _threads_of(scheduler) or workers()
        with ThreadPoolExecutor(count, thread_name_prefix="imgkernel-tiles") as pool:
            yield ThreadRunner(pool, count)
        return
    if not isinstance(scheduler, str):
        yield DaskRunner(scheduler)  # a distributed.Client
        return
    distributed = require("distributed", "dask")
    if scheduler.startswith("local:"):
        count = _count(scheduler[len("local:") :], scheduler)
        with warnings.catch_warnings():
            # Without a dashboard the scheduler still serves /health over HTTP (on
            # 127.0.0.1), on port 8787 or, when that is taken, another: not news.
            warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
            cluster = distributed.LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                env={"IMGKERNEL_THREADS": TASK_THREADS},
            )
        with cluster, distributed.Client(cluster) as client:
            pids = [pid for pid in client.run(_arm_worker).values() if pid]
            LOCAL_WORKERS.extend(pids)
            try:
                yield DaskRunner(client)
            finally:
                for pid in pids:
                    LOCAL_WORKERS.remove(pid)
        return
    if "://" not in scheduler:
        raise UsageError(
            f"unknown scheduler {scheduler!r}; give tcp://HOST:PORT, local:N or threads:N"
        )
    _check_reachable(scheduler)
    try:
        client = distributed.Client(scheduler, timeout="20s")
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        yield DaskRunner(client)


def _threads_of(scheduler: str | None) -> int | None:
    if scheduler is None or scheduler == "threads":
        return None
    if not scheduler.startswith("threads:"):
        raise UsageError(f"unknown scheduler {scheduler!r}; give threads:N")
    return _count(scheduler[len("threads:") :], scheduler)


def _count(text: str, scheduler: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"scheduler {scheduler!r}: N must be a positive number")
    return int(text)


#: Worker processes of the local clusters running now (:func:`stop_local_workers`).
LOCAL_WORKERS: list[int] = []


def _arm_worker() -> int:
    """In a local cluster's worker: SIGTERM removes the file being written and exits
    (a task's thread cannot clean up after a plain kill). Its process id, or 0."""
    import signal

    from imgkernel.core.parallel import tune_allocator

    tune_allocator()  # a worker process of ours: its tiles reuse freed memory

    def stop(signum: int, _frame: Any) -> None:
        from imgkernel.images.deliver import remove_pending

        remove_pending()
        os._exit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the worker's main thread: leave it as it was
        return 0
    return os.getpid()


def stop_local_workers(wait: float = 5.0) -> None:
    """SIGTERM to the workers of this process's local clusters, then wait for them
    to be gone (the command's Ctrl-C and SIGTERM: nothing written after it ends)."""
    import signal
    import time

    for pid in LOCAL_WORKERS:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(pid) for pid in LOCAL_WORKERS):
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A worker that died but is not yet reaped by its nanny is a zombie: gone for us.
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().split(b") ", 1)[1][:1] != b"Z"
    return True


def _check_reachable(scheduler: str) -> None:
    """Fail within seconds when nothing listens at a ``tcp://HOST:PORT`` scheduler
    address (Dask's client would retry for its whole 20 s timeout first)."""
    import socket

    scheme, _, address = scheduler.partition("://")
    host, colon, port = address.strip("/").rpartition(":")
    if scheme != "tcp" or not colon or not port.isdigit():
        return
    import time

    deadline = time.monotonic() + 3  # a scheduler just started may not listen yet
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
                return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                reason = "connection refused"
                break
            time.sleep(0.1)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            break
    raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {reason}")
