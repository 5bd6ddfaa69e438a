"""imgkernel.core.parallel: tiles over threads, per-thread buffers, the allocator setting."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from imgkernel.core import parallel

PROBE = "from imgkernel.core.parallel import tune_allocator; print(tune_allocator())"


def _probe(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={**environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # not glibc (musl, macOS, Windows)
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_allocator_takes_effect_unless_the_user_set_malloc():
    assert _probe() == ("True" if _glibc() else "False")
    assert _probe(MALLOC_TRIM_THRESHOLD_="131072") == "False"  # the user's choice stands
    assert _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072") == "False"


def test_library_calls_leave_the_allocator_alone(tmp_path):
    # Only imgkernel's own processes change malloc: filtering, even a tiled
    # run called as a library function, does not.
    code = (
        "import numpy as np; from imgkernel import filter2d; "
        "from imgkernel.core import parallel; "
        "filter2d(np.ones((64, 64), np.uint8), [[1, 2], [3, 4]]); "
        "print(parallel.tune_allocator.cache_info().currsize)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_run_tiles_covers_every_row_once_on_threads():
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def task(a: int, b: int) -> None:
        with lock:
            seen.append((a, b, threading.current_thread().name))

    parallel.run_tiles(10, task, 3)
    rows = sorted(r for a, b, _ in seen for r in range(a, b))
    assert rows == list(range(10))
    if parallel.workers() > 1:
        assert all(name.startswith("imgkernel") for _, _, name in seen)


def test_thread_buffer_is_reused_per_thread_and_name():
    a = parallel.thread_buffer("test.a", (4, 5))
    b = parallel.thread_buffer("test.a", (2, 5))
    assert np.shares_memory(a, b)
    assert not np.shares_memory(a, parallel.thread_buffer("test.b", (4, 5)))
    assert parallel.thread_buffer("test.a", (4, 5), np.int16).dtype == np.int16
    other: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: other.append(parallel.thread_buffer("test.b", (4, 5))))
    thread.start()
    thread.join()
    assert not np.shares_memory(other[0], parallel.thread_buffer("test.b", (4, 5)))


def test_serial_keeps_tiles_on_the_calling_thread_and_resets():
    seen: list[str] = []

    def task(a: int, b: int) -> None:
        seen.extend([threading.current_thread().name] * (b - a))

    with parallel.serial():
        with parallel.serial(False):  # asking for less inside keeps it serial
            parallel.run_tiles(8, task, 1)
    assert set(seen) == {threading.current_thread().name} and len(seen) == 8
    assert not parallel._SERIAL.get()  # reset on the way out


def test_small_images_filter_without_threads_and_large_bands_with(monkeypatch):
    # A small image is filtered on the calling thread (threads cost more than
    # they save there); the bands of a large one still go to the pool.
    from imgkernel.images import Image
    from imgkernel.kernels import filter_image, load_library

    monkeypatch.setenv("IMGKERNEL_THREADS", "2")
    pools: list[int] = []
    original = parallel._pool
    monkeypatch.setattr(parallel, "_pool", lambda n: pools.append(n) or original(n))
    gaussian = load_library(include_user=False).resolve("gaussian:sigma=2")
    rng = np.random.default_rng(0)
    small = Image(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), None, "PNG", "-")
    got, _ = filter_image(small, gaussian, "PNG")
    assert not pools
    wide = Image(rng.integers(0, 256, (700, 1200, 3), dtype=np.uint8), None, "PNG", "-")
    whole, _ = filter_image(wide, gaussian, "PNG")
    assert pools  # 2.5 M values: bands on two threads
    with parallel.serial():  # the same pixels either way
        np.testing.assert_array_equal(filter_image(wide, gaussian, "PNG")[0], whole)
    assert got.shape == (300, 400, 3)
