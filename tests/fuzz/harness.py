"""What every fuzz case asserts, and the count of cases run.

A case runs the CLI (in-process through click's ``CliRunner``, or as a real
process for pipes, signals and resource limits) in a fresh folder and checks
the promise of issue 13: no traceback and no Python exception names on
stderr, at most one line on stderr for a failure, a documented exit status,
pre-existing files untouched, and no temporary or partial file left behind.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from imgkernel.cli import cli

#: Hypothesis settings of every fuzz test (each adds its ``max_examples``).
FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run, locally and in CI
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Cases run in this session, by kind (printed at the end by conftest.py).
CASES: collections.Counter[str] = collections.Counter()

#: A Python exception or warning class named on stderr means one escaped.
PYTHON_CLASS = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")

#: Known failures in code this suite's branch does not own (imgkernel/nn), each allowed
#: only its one symptom and counted in the summary, so they stay visible until fixed.
KNOWN_ISSUES: dict[str, re.Pattern[str]] = {}

#: The last line of a batch in which some inputs failed (the others were done).
BATCH_SUMMARY = re.compile(r"^imgkernel: error: (\d+) of (\d+) inputs failed$")

#: Exit statuses the CLI documents: success, failure, usage error.
STATUSES = {0, 1, 2}

#: A departed stdout reader: click's status 1, or a shell's 128 + SIGPIPE.
PIPE_STATUSES = {1, 141}

#: Statuses that may end quietly, with nothing on stderr: a departed reader, SIGTERM.
QUIET_STATUSES = {*PIPE_STATUSES, 143}


@dataclass
class Outcome:
    """What one run left: status, output streams and, in-process, an escaped exception."""

    status: int
    stdout: bytes
    stderr: str
    escaped: str | None = None


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's digest, ``"dir"`` or ``"other"``."""
    entries: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            entries[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path) or not os.path.isfile(path):
                entries[rel] = "other"
                continue
            with open(path, "rb") as handle:
                entries[rel] = hashlib.sha1(handle.read()).hexdigest()
    return entries


@contextmanager
def workdir() -> Iterator[Path]:
    """A fresh folder for one case (hypothesis runs many examples per test function)."""
    folder = Path(tempfile.mkdtemp(prefix="imgkernel-fuzz-"))
    try:
        yield folder
    finally:
        for root, dirs, _ in os.walk(folder):
            for name in dirs:  # a case may have made a folder read-only
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(folder, ignore_errors=True)


def invoke(argv: Sequence[str], *, stdin: bytes = b"", kind: str = "cli") -> Outcome:
    """Run the CLI in this process, as the console script would (prog name ``imgkernel``)."""
    CASES[kind] += 1
    # As in a real process, the root logger has no handlers (pytest's capture would hide
    # library log records that Python's last-resort handler prints on stderr).
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, []
    try:
        result = CliRunner().invoke(cli, list(argv), input=stdin, prog_name="imgkernel")
    finally:
        root.handlers = handlers
    escaped = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        escaped = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
    return Outcome(result.exit_code, result.stdout_bytes, result.stderr, escaped)


def check(
    outcome: Outcome,
    folder: Path,
    before: dict[str, str],
    *,
    statuses: set[int] = STATUSES,
    may_write: bool = True,
    what: object = "",
    several: bool = False,
) -> None:
    """The promise: one clean line or success, and files as they were (or new outputs).

    Among ``several`` inputs (a batch), bad inputs do not stop the others: one line
    per bad input and a count (:data:`BATCH_SUMMARY`), or with ``--fail-fast`` the
    first bad input's line; the complete outputs of the good ones stay.
    """
    where = f"case {what!r}: status {outcome.status}, stderr {outcome.stderr!r}"
    assert outcome.escaped is None, f"{where}\n{outcome.escaped}"
    assert outcome.status in statuses, where
    assert "Traceback" not in outcome.stderr, where
    known = [name for name, pattern in KNOWN_ISSUES.items() if pattern.search(outcome.stderr)]
    for name in known:
        CASES[f"known issue ({name})"] += 1
    assert known or not PYTHON_CLASS.search(outcome.stderr), where
    lines = outcome.stderr.splitlines()
    errors = [line for line in lines if not line.startswith("imgkernel: warning: ")]
    batch = False
    if outcome.status == 0:
        assert not errors, where
    elif errors and BATCH_SUMMARY.match(errors[-1]):
        # Several inputs, some bad: one line per bad input, then the count; the others
        # were done (warnings about them may come first), their outputs complete.
        failed = int(BATCH_SUMMARY.match(errors[-1])[1])  # type: ignore[index]
        assert len(errors) == failed + 1, where
        assert all(line.startswith("imgkernel: error: ") for line in errors), where
        batch = True
    elif outcome.status not in QUIET_STATUSES or lines:
        # --fail-fast among several inputs: the earlier ones' warnings may come first.
        assert len(errors) == 1 and (len(lines) == 1 or several), where
        assert errors[0].startswith("imgkernel: "), where
        if outcome.status == 2:
            assert errors[0].startswith("imgkernel: error: "), where
        batch = several
    after = snapshot(folder)
    for name, digest in before.items():
        assert after.get(name) == digest, f"{where}: {name} changed or vanished"
    new = sorted(set(after) - set(before))
    leftovers = [n for n in new if os.path.basename(n).startswith(".") or n.endswith(".tmp")]
    assert not leftovers, f"{where}: temporary files left: {leftovers}"
    if (outcome.status != 0 and not batch) or not may_write:
        assert not new, f"{where}: files written by a failed run: {new}"
