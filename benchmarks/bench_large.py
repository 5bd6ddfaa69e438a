"""Images larger than memory: the tiled sobel of a 16384x16384 RGB BigTIFF against ``vips sobel``.

Usage::

    python benchmarks/bench_large.py [--size 16384] [--input PATH] [--whole] [--dask N]
                                     [--check] [--repeat 1]

The input is a photo-like tiled (256x256), zlib-compressed BigTIFF made tile
by tile (:mod:`benchmarks.large_input`; kept at ``--input`` and reused).
Every case runs in its own process, timed with ``/usr/bin/time -f "%e %M"``
(wall seconds, peak RSS), side by side in one run (with ``--repeat N``,
round by round: every case once a round; medians shown):

* ``vips sobel in.tif out.tif[tile]`` (uncompressed, vips' default) and
  ``[tile,compression=deflate]``;
* ``filter_large(in, out, sobel)`` with uncompressed and with zlib output
  (gradient magnitude, as ``vips sobel``; 512-pixel tiles written as 512x512 TIFF tiles);
* ``imgkernel filter sobel in.tif -o out.tif``, the command a user types
  (zlib output; it takes the tiled path by itself above 67 Mpx), and the
  same with ``--compress-level 0`` (uncompressed output);
* with ``--dask N``: the same on a ``local:N`` Dask cluster;
* with ``--whole``: the whole-image path (``imgkernel filter sobel < in.tif
  -o out.tif``: standard input is decoded whole by Pillow, filtered, encoded
  by Pillow), the reference ``--check`` compares the tiled outputs with.

``--check`` compares the tiled output with the whole-image output (needs
``--whole``). Targets: peak RSS <= 600 MB, time <= 1.2x vips. Compare the
ratios, not the absolute times: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from large_input import write_photo_tiff  # noqa: E402

TILED = """
import sys
from imgkernel.kernels import load_library
from imgkernel.kernels.large import filter_large
from imgkernel.core.parallel import tune_allocator
tune_allocator()  # as the command line does for a tiled run
kernel = load_library(include_user=False).resolve("sobel")
options = dict(compression=sys.argv[3])
if sys.argv[4] != "-":
    options["scheduler"] = sys.argv[4]
if __name__ == "__main__":
    filter_large(sys.argv[1], sys.argv[2], kernel, **options)
"""


def timed(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, float]:
    """(median wall s, median CPU s (user + sys), largest peak RSS MB) of ``cmd``, ``repeat`` runs.

    CPU seconds are the steadier measure on a shared machine; a Dask run's
    worker processes are children of the timed process, so they count too.
    """
    walls, cpus, peaks = [], [], []
    for _ in range(repeat):
        # The previous case's output (768 MB) is still being written back to
        # disk: flush it first, so that no case pays for another's writes.
        os.sync()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M %U %S", *cmd], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed:\n{done.stderr[-2000:]}")
        wall, peak, user, system = done.stderr.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(user) + float(system))
        peaks.append(int(peak) / 1024)
    return statistics.median(walls), statistics.median(cpus), max(peaks)


def cases(args: argparse.Namespace, src: Path, out: Path) -> list[tuple[str, list[str]]]:
    python = [sys.executable, "-c", TILED, str(src)]
    runs = [
        ("vips sobel (uncompressed)", ["vips", "sobel", str(src), f"{out}/vips.tif[tile]"]),
        (
            "vips sobel (deflate)",
            ["vips", "sobel", str(src), f"{out}/vips-z.tif[tile,compression=deflate]"],
        ),
        ("imgkernel tiled (uncompressed)", [*python, f"{out}/ik.tif", "none", "-"]),
        ("imgkernel tiled (zlib)", [*python, f"{out}/ik-z.tif", "zlib", "-"]),
    ]
    command = [sys.executable, "-m", "imgkernel", "filter", "sobel", str(src)]
    # The command line: a TIFF this large goes tile by tile by itself (zlib out).
    runs.append(("imgkernel filter sobel (CLI, zlib)", [*command, "-o", f"{out}/cli.tif"]))
    # --compress-level 0: uncompressed tiles, what vips writes by default.
    raw = [*command, "-o", f"{out}/cli-raw.tif", "--compress-level", "0"]
    runs.append(("imgkernel filter sobel (CLI, uncompressed)", raw))
    if args.dask:
        runs.append(
            (
                f"imgkernel tiled, local:{args.dask} (zlib)",
                [*python, f"{out}/ik-dask.tif", "zlib", f"local:{args.dask}"],
            )
        )
    if args.whole:
        # Standard input never takes the tiled path: Pillow decodes the whole image.
        whole = f'exec "$0" -m imgkernel filter sobel --max-pixels 0 -o {out}/whole.tif < {src}'
        runs.append(("imgkernel whole image (Pillow)", ["sh", "-c", whole, sys.executable]))
    return runs


def check(out: Path) -> str:
    import numpy as np
    import tifffile

    whole = tifffile.imread(out / "whole.tif")
    names = ("ik-z.tif", "cli.tif", "cli-raw.tif")
    same = [np.array_equal(tifffile.imread(out / name), whole) for name in names]
    return "identical (library and CLI)" if all(same) else "DIFFERENT"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--whole", action="store_true")
    parser.add_argument("--dask", type=int, default=0)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    src = args.input or Path(tempfile.gettempdir(), f"imgkernel-photo-{args.size}.tif")
    if not src.exists():
        print(f"making {src} tile by tile ...", flush=True)
        write_photo_tiff(src, (args.size, args.size))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    size_mb = args.size * args.size * 3 / 2**20
    print(
        f"input {src}: {args.size}x{args.size} RGB, {size_mb:.0f} MB decoded, "
        f"{src.stat().st_size / 2**20:.0f} MB on disk"
    )
    out = Path(tempfile.mkdtemp(prefix="imgkernel-bench-large-"))
    try:
        runs = cases(args, src, out)
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in runs}
        # Round by round, every case once a round: a change of load hits all alike.
        for _ in range(args.repeat):
            for name, cmd in runs:
                samples[name].append(timed(cmd, env, 1))
        results = []
        for name, _ in runs:
            walls, cpus, peaks = zip(*samples[name], strict=True)
            wall, cpu, peak = statistics.median(walls), statistics.median(cpus), max(peaks)
            results.append((name, wall, cpu, peak))
            print(f"  {name:42s} {wall:7.2f} s  {cpu:7.2f} cpu-s  {peak:7.0f} MB", flush=True)
            if args.repeat > 1 and "uncompressed" in name:
                print(f"    walls: {', '.join(f'{w:.2f}' for w in walls)}", flush=True)
        base = {r[0]: r for r in results}
        print("\n| case | wall s | CPU s | peak RSS MB | wall / vips | CPU / vips |")
        print("|---|---|---|---|---|---|")
        for name, wall, cpu, peak in results:
            ref = base["vips sobel (deflate)" if "zlib" in name else "vips sobel (uncompressed)"]
            print(
                f"| {name} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {wall / ref[1]:.2f} | "
                f"{cpu / ref[2]:.2f} |"
            )
        if args.check and args.whole:
            print(f"\ntiled vs whole-image output: {check(out)}")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
