"""Start-up: ``imgkernel --help``, ``filter --help`` and a small filter job against their imports.

Usage::

    python benchmarks/bench_startup.py [--repeat 15]

The job is issue 10's case: ``imgkernel filter gaussian:sigma=2
sample_images/astronaut.png -o OUT.png`` (512x512 RGB, PNG in and out).
Each command runs as a fresh process, all interleaved round by round so
that a change of load hits them alike; medians are shown with the ratio to
``python -c "import numpy, PIL.Image"`` (the floor: every command needs both).
Also lists the heavy modules (scipy, onnx, dask, distributed, tifffile, zarr,
torch) that ``imgkernel filter --help`` imports: there should be none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("scipy", "onnx", "dask", "distributed", "tifffile", "zarr", "torch")
PROBE = "\n".join(
    [
        "import runpy, sys",
        "sys.argv = ['imgkernel', 'filter', '--help']",
        "try:",
        "    runpy.run_module('imgkernel', run_name='__main__')",
        "except SystemExit:",
        "    pass",
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))",
    ]
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the installed case: cached bytecode
    commands = {
        "python -c 'import numpy, PIL.Image'": [sys.executable, "-c", "import numpy, PIL.Image"],
        "imgkernel --help": [sys.executable, "-m", "imgkernel", "--help"],
        "imgkernel filter --help": [sys.executable, "-m", "imgkernel", "filter", "--help"],
        "imgkernel filter gaussian:sigma=2 astronaut.png -o out.png": [
            sys.executable,
            "-m",
            "imgkernel",
            "filter",
            "gaussian:sigma=2",
            str(ROOT / "sample_images" / "astronaut.png"),
            "-o",
            str(Path(tempfile.gettempdir()) / f"imgkernel-startup-{os.getpid()}.png"),
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=True)
            times[name].append(time.perf_counter() - start)
    floor = statistics.median(times["python -c 'import numpy, PIL.Image'"])
    print(f"# {args.repeat} rounds, load average {os.getloadavg()[0]:.1f}")
    print("| command | median ms | ratio to the imports |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median * 1000:.0f} | {median / floor:.2f} |")
    heavy = (
        subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"\nheavy modules imported by `imgkernel filter --help`: {heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
