"""Faults of the world, in real processes: full disks, /dev/full, closed pipes and streams,
read-only folders, signals, and several writers racing for one output.

Fewer cases than the in-process suites (each starts Python), the same promise:
one line or none, the documented status, old files intact, no temporary files.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fuzz.corpus import damaged, lying_tiff
from fuzz.harness import CASES, FUZZ, PIPE_STATUSES, Outcome, check, snapshot, workdir
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[2]

#: Commands whose output is an image file (``{o}``) or standard output (no ``{o}``).
WRITERS = [
    "filter sobel {i} -o {o}",
    "filter gaussian:sigma=2 {i} --format npy -o {o}",
    "pool --size 2 {i} -o {o}",
    "filter box {i} --format png",
    "pool --size 2 --mode avg {i} --format npy",
]


def spawn(
    argv: list[str],
    *,
    kind: str,
    setup: Callable[[], None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: object = subprocess.PIPE,
    **extra: object,
) -> Outcome:
    """Run ``python -m imgkernel argv`` to the end (``setup`` runs in the child first)."""
    CASES[kind] += 1
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGKERNEL_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "imgkernel", *argv],
        stdin=stdin,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        preexec_fn=setup,
        env=env,
        timeout=120,
        check=False,
        **extra,  # type: ignore[arg-type]
    )
    return Outcome(proc.returncode, proc.stdout or b"", proc.stderr.decode(errors="replace"))


def picture(folder: Path, side: int = 300) -> Path:
    path = folder / "in.png"
    rng = np.random.default_rng(side)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def argv_of(template: str, image: Path, target: Path) -> list[str]:
    return [a.format(i=image, o=target) for a in template.split()]


def _limit_file_size(size: int) -> Callable[[], None]:
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killing signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return setup


@settings(FUZZ, max_examples=8)
@given(
    template=st.sampled_from(WRITERS),
    limit=st.sampled_from([0, 1, 100, 4096, 50_000]),
    existing=st.booleans(),
)
def test_disk_full(template: str, limit: int, existing: bool) -> None:
    """RLIMIT_FSIZE: a write fails part-way; the old target stays, no temporary file stays."""
    with workdir() as folder:
        image = picture(folder)
        target = folder / "out.png"
        if existing:
            target.write_bytes(b"precious")
        argv = argv_of(template, image, target)
        stdout: object = subprocess.PIPE
        if "{o}" not in template:  # standard output is a file on the full disk
            stdout = open(folder / "stdout.bin", "wb")  # noqa: SIM115 - closed below
        before = snapshot(folder)
        try:
            outcome = spawn(
                argv, kind="process disk full", setup=_limit_file_size(limit), stdout=stdout
            )
        finally:
            if stdout is not subprocess.PIPE:
                stdout.close()  # type: ignore[attr-defined]
        if "{o}" not in template:
            before.pop("stdout.bin")  # the shell's redirection, written as far as it went
            (folder / "stdout.bin").unlink()
        check(outcome, folder, before, statuses={1}, may_write=False, what=(argv, limit))
        assert "too large" in outcome.stderr.lower() or "no space" in outcome.stderr.lower()


@pytest.mark.parametrize("template", [*WRITERS, "kernels", "kernels show box:size=99"])
def test_dev_full(template: str) -> None:
    """/dev/full as -o and as standard output: one line, status 1."""
    with workdir() as folder:
        image = picture(folder, 40)
        if "{o}" in template:
            argv = argv_of(template, image, Path("/dev/full"))
            outcome = spawn(argv, kind="process /dev/full")
        else:
            with open("/dev/full", "wb") as full:
                outcome = spawn(
                    argv_of(template, image, folder), kind="process /dev/full", stdout=full
                )
        check(outcome, folder, snapshot(folder), statuses={1}, may_write=False, what=template)
        line = outcome.stderr.strip()
        # The line names what could not be written (it once ended in an empty name).
        assert "/dev/full" in line or "standard output" in line, line
        assert "space left" in line.lower() and not line.endswith(":"), line


@settings(FUZZ, max_examples=6)
@given(
    template=st.sampled_from(
        [t for t in WRITERS if "{o}" not in t] + ["kernels show box:size=999"]
    ),
    keep=st.sampled_from([0, 1, 1000, 65536]),
)
def test_reader_leaves(template: str, keep: int) -> None:
    """``| head -c N``: quiet, status 1 (or 141), never a truncated success."""
    with workdir() as folder:
        image = picture(folder, 700)
        argv = argv_of(template, image, folder)
        CASES["process closed pipe"] += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgkernel", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout is not None and proc.stderr is not None
        got = proc.stdout.read(keep) if keep else b""
        proc.stdout.close()
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=120)
        outcome = Outcome(status, got, err)
        complete = status == 0
        check(outcome, folder, snapshot(folder), statuses={0, *PIPE_STATUSES}, what=(argv, keep))
        if complete:  # only possible if everything fit in the pipe before it closed
            assert template.startswith("kernels"), "a truncated image passed for a finished one"
        else:
            assert err == "", err


@pytest.mark.parametrize(
    ("closed", "template"),
    [
        (0, "filter sobel"),
        (0, "pool --size 2 --format npy"),
        (1, "filter sobel {i}"),
        (1, "kernels"),
    ],
)
def test_closed_standard_streams(closed: int, template: str) -> None:
    """A process started with stdin or stdout closed: one line, status 2 (or 1)."""
    with workdir() as folder:
        image = picture(folder, 20)

        def setup() -> None:
            os.close(closed)

        argv = argv_of(template, image, folder)
        outcome = spawn(
            argv,
            kind="process closed stream",
            setup=setup,
            stdin=None,
            stdout=None if closed == 1 else subprocess.PIPE,
        )
        check(
            outcome,
            folder,
            snapshot(folder),
            statuses={1, 2},
            may_write=False,
            what=(closed, template),
        )


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: mode 555, or for root (who ignores modes) immutable."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root ignores permissions and chattr is missing")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode:
        pytest.skip(f"root ignores permissions and chattr +i failed: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("template", WRITERS[:3] + ["filter sobel {i} -o {o}/{{stem}}-e.png"])
def test_read_only_folder(template: str) -> None:
    """A target folder nobody may write in: one line, status 2, nothing changed."""
    with workdir() as folder:
        image = picture(folder, 20)
        locked = folder / "locked"
        locked.mkdir()
        (locked / "out.png").write_bytes(b"precious")
        target = locked if "{{stem}}" in template else locked / "out.png"
        argv = argv_of(template, image, target)
        before = snapshot(folder)
        with read_only(locked):
            outcome = spawn(argv, kind="process read-only folder")
        check(outcome, folder, before, statuses={2}, may_write=False, what=argv)
        assert "permission denied" in outcome.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("existing", [False, True])
def test_signals_mid_write_leave_no_partial_files(sig: int, existing: bool) -> None:
    """Interrupted or terminated while the output is being written: the old target (or
    none) stays, or the new one is whole; no temporary file is left.

    The signal is sent once the temporary file beside the target appears. (Before
    its imports are done, ~0.2 s, Python itself reports Ctrl-C with a traceback.)
    """
    with workdir() as folder:
        image = picture(folder, 1200)
        target = folder / "out.png"
        if existing:
            target.write_bytes(b"precious")
        argv = argv_of("filter gaussian:sigma=3 {i} -o {o} --compress-level 9", image, target)
        before = snapshot(folder)
        CASES["process signal"] += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgkernel", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 100
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.endswith(".tmp") for p in folder.iterdir()):
                break
            time.sleep(0.002)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        status = proc.returncode
        text = "\n".join(line for line in err.decode().splitlines() if line)  # click's blank line
        outcome = Outcome(status if status >= 0 else 128 - status, out, text + "\n" if text else "")
        statuses = {0, 130, 143} if sig == signal.SIGINT else {0, 143}
        if outcome.status == 0:
            check(outcome, folder, before, what=(sig, existing))
            with Image.open(target) as written:
                written.load()
        else:
            check(outcome, folder, before, statuses=statuses, may_write=False, what=(sig, existing))


def test_concurrent_writers_one_target() -> None:
    """Four processes write one path at once: it ends as one whole output, no temp file."""
    with workdir() as folder:
        image = picture(folder, 400)
        target = folder / "out.png"
        kernels = ["sobel", "box", "gaussian:sigma=2"]
        singles = []
        for k in kernels:
            alone = folder / "alone.png"
            spawn(["filter", k, str(image), "-o", str(alone)], kind="process concurrent writers")
            singles.append(alone.read_bytes())
            alone.unlink()
        for round_ in range(2):
            CASES["process concurrent writers"] += len(kernels)
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "imgkernel", "filter", k, str(image), "-o", str(target)],
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                for k in kernels
            ]
            for proc in procs:
                assert proc.wait(timeout=120) == 0
                assert proc.stderr is not None and proc.stderr.read() == b""
            assert sorted(p.name for p in folder.iterdir()) == ["in.png", "out.png"], round_
            assert target.read_bytes() in singles


@settings(FUZZ, max_examples=6)
@given(data=st.one_of(lying_tiff(), damaged()))
def test_damaged_files_in_a_real_process(data: bytes) -> None:
    """What C decoders print to file descriptor 2 counts too (in-process runs cannot see it)."""
    with workdir() as folder:
        bad = folder / "bad.tif"
        bad.write_bytes(data)
        before = snapshot(folder)
        outcome = spawn(
            ["filter", "sobel", str(bad), "-o", str(folder / "out.png")],
            kind="process damaged file",
        )
        check(outcome, folder, before, what=data[:40])
