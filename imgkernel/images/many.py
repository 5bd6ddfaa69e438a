"""Many files at once: batches of inputs on worker processes or a Dask cluster.

A command over many files hands :func:`run_many` a picklable ``job`` and its
items (``job(batch)`` returns one :class:`Outcome` per item, each made by
:func:`attempt`). Batches of items run

* in this process, one item after another: ``jobs=1``, fewer than
  :data:`MIN_PARALLEL` items, or standard input among them;
* on ``jobs`` worker processes of this machine (``concurrent.futures``,
  started with :data:`START_METHOD`), each limited to ``cores // jobs``
  threads of its own (``IMGKERNEL_THREADS`` and BLAS), so the processes do
  not oversubscribe the cores;
* on a Dask cluster (``scheduler``: ``local:N``, ``tcp://HOST:PORT``, see
  :func:`~imgkernel.images.cluster.open_runner`), one task per batch, paths
  made absolute there (a worker's working folder is its own; :class:`InFolder`)
  and named back as given.

A task is a batch of paths, never pixels: each worker reads and writes its
own files. Batches start small and grow to about :data:`TASK_SECONDS` of
work (at most :data:`MAX_BATCH` items, and no more than an even share of
what is left), so per-task costs stay small and the last tasks spread over
every worker. Results come back in input order, at most a few batches per
worker ahead, so lines printed for the items keep the input order.

The failure rule
----------------
One bad input among many does not stop the others: its error (one line,
``PATH: reason``) goes to :meth:`Reporter.failed` as soon as it is known,
the rest go on, and at the end :class:`~imgkernel.errors.BatchFailed`
reports ``N of M inputs failed`` (exit status 2 when every failure was a
usage error, else 1). The complete outputs of good inputs stay; an output is
written atomically, so no partial file is ever left, also when a Dask task
runs again on another worker. ``fail_fast`` stops at the first failure:
no further batch starts (those already running finish) and that input's
error is the one raised. Problems found before any work (options, output
names) are raised at once by the caller.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import numpy as np

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

from imgkernel.errors import BatchFailed, ImgkernelError, ImgkernelWarning, os_error_message
from imgkernel.images.cluster import Runner, open_runner, stop_local_workers

__all__ = ["BatchOptions", "Outcome", "Reporter", "attempt", "cores", "run_many"]

#: Fewer items than this run in this process: starting workers costs more than
#: a few images take (a worker process starts in about 0.3 s).
MIN_PARALLEL = 9
#: Items in each of the first batches, before any batch has been timed.
FIRST_BATCH = 4
#: Most items in one batch, and the seconds of work a batch grows to.
MAX_BATCH = 100
TASK_SECONDS = 1.0
#: How worker processes start: a fork server forks each worker from a clean,
#: single-threaded process that imported imgkernel once (``fork`` would copy
#: this process's threads' locks; ``spawn`` imports everything in every worker).
START_METHOD = "forkserver"


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Outcome(NamedTuple):
    """What one item gave: a ``value`` (e.g. a line to print), or an ``error`` line and
    its exit ``status``; ``warnings`` raised while it ran (imgkernel's own, as text)."""

    value: Any = None
    error: str | None = None
    status: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class InFolder:
    """``job`` on a cluster's worker, whose working folder is its own: the items' paths
    are made absolute against ``folder`` there, and what comes back names them as
    the user gave them."""

    job: Callable[[list[Any]], list[Outcome]]
    folder: str

    def __call__(self, items: list[Any]) -> list[Outcome]:
        absolute = [self._absolute(item) for item in items]
        outcomes = self.job(absolute)
        return [
            _renamed(outcome, _paths(full), _paths(item))
            for outcome, full, item in zip(outcomes, absolute, items, strict=True)
        ]

    def _absolute(self, item: Any) -> Any:
        if isinstance(item, tuple):
            return tuple(self._absolute(part) for part in item)
        return item if item == "-" else os.path.join(self.folder, item)


def _paths(item: Any) -> tuple[str, ...]:
    return item if isinstance(item, tuple) else (item,)


def _renamed(outcome: Outcome, full: tuple[str, ...], given: tuple[str, ...]) -> Outcome:
    """``outcome`` with each absolute path in its texts put back as given."""

    def text(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for long, short in zip(full, given, strict=True):
            value = value.replace(long, short) if long != short else value
        return value

    return Outcome(
        text(outcome.value),
        text(outcome.error),
        outcome.status,
        tuple(text(w) for w in outcome.warnings),
    )


def named(name: str, message: str) -> str:
    """``message`` about input ``name``, starting with the name.

    >>> named("a.png", "a.png: no such file"), named("b.png", "too large")
    ('a.png: no such file', 'b.png: too large')
    """
    shown = "standard input" if name == "-" else name
    return message if message.startswith((shown, name)) else f"{shown}: {message}"


def attempt(fn: Callable[[], Any], name: str) -> Outcome:
    """``fn()`` for the input ``name`` as an :class:`Outcome`: its value, or the error a
    user can act on (imgkernel's errors, OS errors, memory) with its status. Other
    exceptions are bugs and propagate; imgkernel's warnings are collected."""
    error, status, value = None, 0, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImgkernelWarning)
        try:
            value = fn()
        except ImgkernelError as exc:
            error, status = str(exc), exc.exit_code
        except MemoryError:
            error, status = "out of memory", 1
        except OSError as exc:
            error, status = os_error_message(exc, exc.filename or name), 1
    texts = tuple(str(w.message) for w in caught if issubclass(w.category, ImgkernelWarning))
    if error is not None:
        return Outcome(error=named(name, error), status=status, warnings=texts)
    return Outcome(value=value, warnings=texts)


class Reporter:
    """What a batch tells its user as it goes. This one says nothing (the failures come
    back in :class:`~imgkernel.errors.BatchFailed`) and shows warnings as warnings."""

    def start(self, total: int, skipped: int = 0) -> None:
        """``total`` items are to be done, ``skipped`` more were skipped."""

    def advance(self, count: int = 1) -> None:
        """``count`` more items are done (well or not)."""

    def failed(self, message: str) -> None:
        """One input failed: ``message`` is ``PATH: reason``."""

    def warn(self, message: str) -> None:
        """A warning raised while an item ran."""
        warnings.warn(message, ImgkernelWarning, stacklevel=2)

    def close(self) -> None:
        """The batch ended (or stopped)."""


@dataclass(frozen=True)
class BatchOptions:
    """How a command runs over many inputs.

    ``jobs``: worker processes (None: the number of cores); ``scheduler``: a
    Dask cluster instead (``local:N``, ``tcp://HOST:PORT`` or a ``Client``),
    also the one that computes the tiles of a single large image;
    ``files_from``: a file listing inputs, one a line (``-``: standard
    input); ``skip_existing``: skip inputs whose output exists; ``fail_fast``:
    stop at the first failure; ``tile_size``: the tiled engine's tile edge;
    ``reporter``: progress and failure lines.
    """

    jobs: int | None = None
    scheduler: Any = None
    files_from: str | None = None
    skip_existing: bool = False
    fail_fast: bool = False
    tile_size: int | None = None
    reporter: Reporter = field(default_factory=Reporter)


def run_many(
    job: Callable[[list[Any]], list[Outcome]],
    items: Sequence[Any],
    options: BatchOptions,
    *,
    emit: Callable[[Any, Any], None] | None = None,
    total: int | None = None,
    local: bool = False,
    local_batch: int = 1,
) -> None:
    """Run ``job`` over ``items`` in batches (see the module notes); ``emit(item, value)``
    for each item done, in input order. ``total`` counts the skipped items too (for the
    final ``N of M inputs failed``); ``local`` keeps the work in this process, where
    batches have ``local_batch`` items."""
    total = len(items) if total is None else total
    if options.scheduler is not None and not local:
        job = InFolder(job, os.getcwd())
    reporter = options.reporter
    failures: list[tuple[str, int]] = []
    reporter.start(len(items), skipped=total - len(items))
    try:
        with _runner(options, len(items), local) as runner:
            for item, outcome in _outcomes(runner, job, items, local_batch):
                _take(item, outcome, reporter, options.fail_fast, failures, emit)
    finally:
        reporter.close()
    if failures:
        status = 2 if all(code == 2 for _, code in failures) else 1
        raise BatchFailed(f"{len(failures)} of {total} inputs failed", status, failures)


def _outcomes(
    runner: Runner, job: Callable[[list[Any]], list[Outcome]], items: Sequence[Any], size: int
) -> Generator[tuple[Any, Outcome], None, None]:
    """``(item, outcome)`` in input order, at most two batches per worker in flight."""
    batches = Batches(items, runner.slots, size)
    tasks = ((job, batch) for batch in batches)
    with contextlib.closing(runner.map(run_batch, tasks, 2 * runner.slots)) as results:  # type: ignore[type-var]
        for (outcomes, seconds), batch in zip(_checked(results), batches.issued(), strict=False):
            batches.observe(len(batch), seconds)
            yield from zip(batch, outcomes, strict=True)


def _take(
    item: Any,
    outcome: Outcome,
    reporter: Reporter,
    fail_fast: bool,
    failures: list[tuple[str, int]],
    emit: Callable[[Any, Any], None] | None,
) -> None:
    for text in outcome.warnings:
        reporter.warn(text)
    if outcome.error is None:
        if emit is not None:
            emit(item, outcome.value)
    elif fail_fast:
        raise BatchFailed(outcome.error, outcome.status, [(outcome.error, outcome.status)])
    else:
        reporter.failed(outcome.error)
        failures.append((outcome.error, outcome.status))
    reporter.advance()


def _checked(results: Iterator[Any]) -> Iterator[Any]:
    """The results, a worker lost on the way said in one line."""
    from concurrent.futures import BrokenExecutor  # here: a single input never needs it

    try:
        yield from results
    except BrokenExecutor:
        _lost()
    except Exception as exc:
        if type(exc).__name__ != "KilledWorker":  # distributed's, imported only for Dask
            raise
        _lost()


def _lost() -> NoReturn:
    raise ImgkernelError(
        "a worker process died (killed, or out of memory?); the inputs not reported "
        "done were not written"
    ) from None


def run_batch(task: tuple[Callable[[list[Any]], list[Outcome]], list[Any]]) -> tuple[list, float]:
    """Run one batch (in a worker): ``(outcomes, seconds)``."""
    job, batch = task
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        outcomes = job(batch)
    return outcomes, time.perf_counter() - start


class Batches:
    """``items`` cut into batches as they are asked for, sized from the timings seen."""

    def __init__(self, items: Sequence[Any], slots: int, local_batch: int = 1) -> None:
        self.items = items
        self.slots = max(1, slots)
        self.local_batch = max(1, local_batch)
        self.cut: list[list[Any]] = []
        self.done = 0
        self.seconds = 0.0

    def __iter__(self) -> Iterator[list[Any]]:
        start = 0
        while start < len(self.items):
            stop = start + self.size(len(self.items) - start)
            batch = list(self.items[start:stop])
            self.cut.append(batch)
            yield batch
            start = stop

    def issued(self) -> Iterator[list[Any]]:
        """The batches in the order they were cut (each is cut before its result comes)."""
        index = 0
        while index < len(self.cut):
            yield self.cut[index]
            self.cut[index] = []  # done with: let its items go
            index += 1

    def observe(self, count: int, seconds: float) -> None:
        self.done += count
        self.seconds += seconds

    def size(self, remaining: int) -> int:
        """Items in the next batch: ``local_batch`` in this process; else about
        :data:`TASK_SECONDS` of work, at most an even share of what is left.

        >>> b = Batches(range(1000), 2)
        >>> b.size(1000), b.observe(4, 0.02), b.size(996), b.size(30)
        (4, None, 100, 15)
        """
        if self.slots == 1:
            return self.local_batch
        guess = FIRST_BATCH
        if self.done:
            guess = int(TASK_SECONDS * self.done / max(self.seconds, 1e-6))
        share = math.ceil(remaining / self.slots)
        return max(1, min(guess, MAX_BATCH, share))


class LocalRunner(Runner):
    """This process, one batch at a time, each computed only when its result is asked for."""

    slots = 1

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return _Later(fn, item)


class _Later:
    def __init__(self, fn: Callable[[Any], Any], item: Any) -> None:
        self.fn, self.item = fn, item

    def result(self) -> Any:
        return self.fn(self.item)

    def cancel(self) -> bool:
        return True


class ProcessRunner(Runner):
    """Worker processes of this machine."""

    def __init__(self, pool: ProcessPoolExecutor, slots: int) -> None:
        self._pool = pool
        self.slots = slots

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return self._pool.submit(fn, item)


@contextlib.contextmanager
def _runner(options: BatchOptions, count: int, local: bool) -> Iterator[Runner]:
    if local or (count < MIN_PARALLEL and options.scheduler is None):
        yield LocalRunner()
        return
    if options.scheduler is not None:
        with open_runner(options.scheduler) as runner:
            yield runner
        return
    jobs = min(options.jobs or cores(), math.ceil(count / FIRST_BATCH))
    if jobs <= 1:
        yield LocalRunner()
        return
    with process_runner(jobs) as runner:
        yield runner


@contextlib.contextmanager
def process_runner(jobs: int) -> Iterator[ProcessRunner]:
    """``jobs`` worker processes with ``cores() // jobs`` threads each (at least one).

    On any exception (a failure with ``fail_fast``, Ctrl-C, SIGTERM) the
    queued batches are cancelled and the workers stopped with SIGTERM, which
    each turns into an exit that removes the file it was writing.
    """
    import multiprocessing  # here: 10 ms of start-up that one-input runs never need
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, cores() // jobs)
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        context.set_forkserver_preload(["imgkernel.images.many", "imgkernel.kernels"])
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=start_worker, initargs=(threads, os.getcwd())
    )
    _POOLS.append(pool)
    try:
        yield ProcessRunner(pool, jobs)
    except BaseException:
        _stop(pool)
        raise
    finally:
        _POOLS.remove(pool)
    pool.shutdown(wait=True)


#: Worker pools running now, for :func:`stop_workers`.
_POOLS: list[ProcessPoolExecutor] = []


def stop_workers() -> None:
    """Stop every worker process now (the CLI's Ctrl-C and SIGTERM handler).

    The handler ends the process at once, without unwinding to :func:`_stop`;
    this sends the workers SIGTERM (each removes the file it was writing and
    exits) and waits for them, so nothing is written after the command ends.
    """
    # No pool.shutdown() here: the interrupted thread may hold the pool's locks.
    _terminate([process for pool in list(_POOLS) for process in _processes(pool)])
    stop_local_workers()


def _stop(pool: ProcessPoolExecutor) -> None:
    processes = _processes(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    _terminate(processes)


def _processes(pool: ProcessPoolExecutor) -> list[Any]:
    return list((getattr(pool, "_processes", None) or {}).values())


def _terminate(processes: list[Any]) -> None:
    """SIGTERM to each worker process, then wait for each (at most 10 s)."""
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.terminate()
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
            process.join(10)


_BLAS_LIMIT: Any = None


def start_worker(threads: int, folder: str) -> None:
    """Set up a worker process: the caller's folder, ``threads`` threads of imgkernel's
    own and of BLAS, SIGTERM as an exit (so a file being written is removed) and
    Ctrl-C left to the parent (which stops the workers)."""
    global _BLAS_LIMIT
    os.chdir(folder)
    os.environ["IMGKERNEL_THREADS"] = str(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(threads)
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminated(signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)
