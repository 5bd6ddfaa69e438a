"""Many small files: ``imgkernel filter`` over 1,000 PNGs with --jobs 2, --jobs 1, and a shell loop.

Usage::

    python benchmarks/bench_batch.py [--files 1000] [--size 256] [--loop-files N]
                                     [--repeat 1] [--folder PATH]

The inputs are ``--files`` random RGB PNGs of ``--size`` x ``--size`` (made
once, kept in ``--folder``). Each case runs ``imgkernel filter
gaussian:sigma=2`` over them into an empty folder:

* ``--jobs 2`` and ``--jobs 1`` (one process; its own threads as usual),
  ``--repeat`` times each, interleaved, medians reported;
* a shell loop calling ``imgkernel`` once per file (``--loop-files`` of
  them, default all; its times are scaled to all files when fewer; run
  once whatever ``--repeat`` says).

Wall seconds, CPU seconds and peak memory are sampled with psutil every
10 ms over the whole process tree (worker processes are children of the
fork server, not of the command, so ``/usr/bin/time`` would miss their CPU):
CPU is the sum over every process of its last sample; memory is the largest
sum of the tree's RSS (shared pages count in each process) and the largest
single process. Compare ratios within one run: the 2-core machine is shared.
The outputs of ``--jobs 2`` and ``--jobs 1`` are checked to be identical.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "gaussian:sigma=2"


def make_inputs(folder: Path, files: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(files):
        path = folder / f"in{i:05d}.png"
        if not path.exists():
            # photo-like: smooth gradients plus noise, so PNG compresses as photos do
            y, x = np.mgrid[0:size, 0:size]
            base = (x * (i % 7 + 1) + y * (i % 5 + 1)) % 256
            noise = rng.integers(0, 24, (size, size, 3))
            Image.fromarray((base[:, :, None] + noise).clip(0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def measure(command: list[str] | str, env: dict[str, str]) -> tuple[float, float, float, float]:
    """(wall s, CPU s, peak summed RSS MB, peak single RSS MB) of one run of ``command``."""
    start = time.perf_counter()
    process = psutil.Popen(command, env=env, shell=isinstance(command, str))
    cpu: dict[int, float] = {}
    tree_peak = single_peak = 0.0
    while process.poll() is None:
        total = 0.0
        try:
            members = [process, *process.children(recursive=True)]
        except psutil.Error:
            members = [process]
        for member in members:
            try:
                times = member.cpu_times()
                rss = member.memory_info().rss
            except psutil.Error:
                continue
            cpu[member.pid] = times.user + times.system
            total += rss
            single_peak = max(single_peak, rss)
        tree_peak = max(tree_peak, total)
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{command!r} failed with status {process.returncode}")
    return wall, sum(cpu.values()), tree_peak / 2**20, single_peak / 2**20


def run_cases(cases: list[tuple[str, list[str] | str, Path]], env: dict, repeat: int) -> list:
    """Each case ``repeat`` times, the cases interleaved (so the machine's load falls on
    them alike): ``(name, median wall, median CPU, peak tree RSS, peak single RSS)``."""
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _, _ in cases}
    for _ in range(repeat):
        for name, command, out in cases:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            runs[name].append(measure(command, env))
    return [
        (
            name,
            statistics.median(r[0] for r in found),
            statistics.median(r[1] for r in found),
            max(r[2] for r in found),
            max(r[3] for r in found),
        )
        for name, found in runs.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--loop-files", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "bench-batch")
    args = parser.parse_args()
    inputs = make_inputs(args.folder / f"in-{args.size}", args.files, args.size)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    exe = [sys.executable, "-m", "imgkernel"]
    pattern = str(inputs[0].parent / "in*.png")
    work = args.folder / "out"
    cases: list[tuple[str, list[str] | str, Path]] = []
    for jobs in (2, 1):
        out = Path(f"{work}-{jobs}")
        command = [*exe, "filter", KERNEL, pattern, "-o", f"{out}/", "-j", str(jobs)]
        cases.append((f"--jobs {jobs}", command, out))
    rows = run_cases(cases, env, args.repeat)
    same = filecmp.dircmp(f"{work}-1", f"{work}-2")
    if same.left_only or same.right_only or same.diff_files:
        raise SystemExit("--jobs 2 and --jobs 1 wrote different files")
    count = min(args.loop_files or args.files, args.files)
    listed = " ".join(f"'{p}'" for p in inputs[:count])
    loop = f'for f in {listed}; do {" ".join(exe)} filter {KERNEL} "$f" -o {work}-loop/; done'
    [(name, wall, cpu, tree, single)] = run_cases(
        [("shell loop", loop, Path(f"{work}-loop"))], env, 1
    )
    scale = args.files / count
    rows.append((name + ("" if scale == 1 else f" ({count} files, scaled)"), wall * scale,
                 cpu * scale, tree, single))  # fmt: skip
    print(f"{args.files} PNGs {args.size}x{args.size} RGB, filter {KERNEL}, {os.cpu_count()} cores")
    print("| case | wall s | CPU s | cores used | files/s | peak RSS tree / one process (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, wall, cpu, tree, single in rows:
        rate, used = args.files / wall, cpu / wall
        memory = f"{tree:.0f} / {single:.0f}"
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {used:.2f} | {rate:.0f} | {memory} |")
    base = rows[1][1]
    print(f"--jobs 2 speed-up over --jobs 1: {base / rows[0][1]:.2f}x wall")
    print(f"--jobs 2 speed-up over the shell loop: {rows[2][1] / rows[0][1]:.1f}x wall")


if __name__ == "__main__":
    main()
