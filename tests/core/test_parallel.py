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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_allocator_takes_effect_unless_the_user_set_malloc():
    glibc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    assert _probe() == ("True" if glibc else "False")
    assert _probe(MALLOC_TRIM_THRESHOLD_="131072") == "False"  # the user's choice stands


def test_run_tiles_covers_every_row_once_on_threads():
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def task(a: int, b: int) -> None:
        with lock:
            seen.append((a, b, threading.current_thread().name))

    parallel.run_tiles(10, task, 3)
    rows = sorted(r for a, b, _ in seen for r in range(a, b))
    assert rows == list(range(10))


def test_thread_buffer_is_reused_per_thread_and_name():
    a = parallel.thread_buffer("test.a", (4, 5))
    b = parallel.thread_buffer("test.a", (2, 5))
    assert np.shares_memory(a, b)
    assert not np.shares_memory(a, parallel.thread_buffer("test.b", (4, 5)))
    assert parallel.thread_buffer("test.a", (4, 5), np.int16).dtype == np.int16
