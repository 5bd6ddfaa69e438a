"""Side-by-side PNG encoding: imgkernel.images.png against Pillow, OpenCV, pyspng and libvips.

Usage::

    python benchmarks/bench_png.py [--size 4000x3000] [--repeat 3] [--quick]
        [--pyspng-python /path/to/venv/bin/python]

pyspng 0.1.x only decodes; its fork ``pyspng-seunglab`` (same module name)
encodes, so ``--pyspng-python`` runs the pyspng cases with an interpreter
that has it (e.g. a scratch venv with ``numpy pyspng-seunglab``).

Two images, made as bench_filter.py's ``photo_png`` makes its input: the
bundled astronaut upscaled (Lanczos) to the size, plus sigma-2 Gaussian noise
standing in for sensor noise (deflate sees photo-like entropy; a bare
upscale would be unrealistically smooth), and the gray edge map of it
(gradient magnitude, what an edge filter writes).

Every writer runs in a fresh child process, whose peak RSS mark is reset
(``/proc/self/clear_refs``) after loading the pixels and importing the
writer, so the peak (``VmHWM``) is the encoder's own; in brackets, how far
it rose above the resident set at that point (the pixels, imports, Python).  Times are the median of
``--repeat`` encodes to a file in a temporary directory (one warm-up
first), wall and CPU; CPU > wall means the writer used several cores.
``vips`` is timed as a whole process (``vips pngsave in.v out.png``, the
pixels pre-converted to vips' own uncompressed format), start-up included,
and its RSS is the whole process's.  Every output is decoded with Pillow
and compared with the pixels (the ``ok`` column).

On a shared 2-core machine the absolute times are noisy; compare ratios
within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (writer, level) cases, in table order; None level = the writer's only setting.
CASES = [
    ("imgkernel", 0),
    ("imgkernel", 1),
    ("imgkernel", 2),
    ("imgkernel", 6),
    ("imgkernel", 9),
    ("imgkernel 1 thread", 1),
    ("imgkernel 1 thread", 6),
    ("Pillow", 1),
    ("Pillow", 6),
    ("OpenCV", 1),
    ("pyspng", 1),
    ("pyspng", 6),
    ("vips", 1),
    ("vips", 6),
]


def make_images(size: tuple[int, int], out_dir: Path) -> dict[str, Path]:
    """Write the photo and the edge map as .npy (and .v for vips); return their paths."""
    from PIL import Image

    w, h = size
    with Image.open(ROOT / "sample_images" / "astronaut.png") as im:
        big = np.asarray(im.convert("RGB").resize((w, h), Image.LANCZOS), dtype=np.int16)
    noise = np.random.default_rng(0).normal(0, 2, big.shape).astype(np.int16)
    photo = np.clip(big + noise, 0, 255).astype(np.uint8)
    gy, gx = np.gradient(photo.astype(np.float32).mean(axis=2))
    edges = np.clip(np.hypot(gx, gy) * 4, 0, 255).astype(np.uint8)
    paths = {}
    for name, arr in (("photo", photo), ("edges", edges)):
        paths[name] = out_dir / f"{name}.npy"
        np.save(paths[name], arr)
        if shutil.which("vips"):
            tmp_png = out_dir / f"{name}-src.png"
            Image.fromarray(arr).save(tmp_png, compress_level=1)
            subprocess.run(["vips", "copy", str(tmp_png), str(out_dir / f"{name}.v")], check=True)
    return paths


def encoder(writer: str, level: int | None):
    """A function (array, path) -> None that writes the PNG, or a reason it cannot."""
    if writer.startswith("imgkernel"):
        from imgkernel.images.png import write_png

        threads = 1 if "1 thread" in writer else None

        def ours(arr: np.ndarray, path: Path) -> None:
            with open(path, "wb") as f:
                write_png(f, arr, level if level is not None else 1, threads=threads)

        return ours
    if writer == "Pillow":
        from PIL import Image

        return lambda arr, path: Image.fromarray(arr).save(path, compress_level=level)
    if writer == "OpenCV":
        try:
            import cv2
        except ImportError:
            return "OpenCV not installed"

        def opencv(arr: np.ndarray, path: Path) -> None:
            bgr = arr[:, :, ::-1] if arr.ndim == 3 else arr
            if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, level]):
                raise OSError("cv2.imwrite failed")

        return opencv
    if writer == "pyspng":
        try:
            import pyspng
        except ImportError:
            return "pyspng not installed"
        if not hasattr(pyspng, "encode"):
            return f"pyspng {getattr(pyspng, '__version__', '?')} can only decode"
        return lambda arr, path: path.write_bytes(pyspng.encode(arr, compress_level=level))
    raise ValueError(writer)


def child(writer: str, level: int | None, npy: Path, repeat: int) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    arr = np.load(npy)
    out = npy.with_name(f"out-{os.getpid()}.png")
    if writer == "vips":
        return vips_case(level or 6, npy.with_suffix(".v"), out, repeat)
    fn = encoder(writer, level)
    if isinstance(fn, str):
        return {"skip": fn}
    base = reset_peak_rss()
    fn(arr, out)  # warm-up: lazy imports, page faults of the output file
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(arr, out)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "size": out.stat().st_size,
        "rss": peak / 1024,
        "extra": (peak - base) / 1024,
        "out": str(out),
    }


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB (0 where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0


def reset_peak_rss() -> int:
    """Reset the peak-RSS mark (Linux >= 4.0) so it shows the encoder alone; return RSS now.

    Start-up and imports peak higher than the steady state, which would hide
    the encoder's own peak otherwise.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # pragma: no cover - not Linux: ru_maxrss includes start-up
        pass
    return status_kb("VmRSS")


def vips_case(level: int, src: Path, out: Path, repeat: int) -> dict:
    if not shutil.which("vips") or not src.exists():
        return {"skip": "vips not installed"}
    cmd = ["vips", "pngsave", str(src), str(out), "--compression", str(level)]
    subprocess.run(cmd, check=True)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "size": out.stat().st_size,
        "rss": rss,
        "out": str(out),
    }


def decodes_to(path: Path, arr: np.ndarray) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(path.read_bytes())) as im:
        return bool(np.array_equal(np.asarray(im), arr))


def run_case(writer: str, level: int | None, npy: Path, repeat: int, python: str) -> dict:
    """Run a case in a fresh ``python`` process; check its output decodes to the pixels."""
    cmd = [python, __file__, "--child", json.dumps([writer, level, str(npy), repeat])]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"skip": "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "out" in result:
        result["ok"] = decodes_to(Path(result.pop("out")), np.load(npy))
    return result


def report(rows: list[tuple[str, str, str, dict]], raw_mb: dict[str, float]) -> None:
    header = (
        "image | writer | level | wall s | CPU s | size MB | vs Pillow 6 | peak RSS MB (+rise) | ok"
    )
    print(f"| {header} |")
    print("|---|---|---|---|---|---|---|---|---|")
    pillow6 = {
        img: r["size"] for img, w, lv, r in rows if w == "Pillow" and lv == "6" and "size" in r
    }
    for image, writer, level, r in rows:
        if "skip" in r:
            print(f"| {image} | {writer} | {level} | - | - | - | - | - | {r['skip']} |")
            continue
        rel = f"{100 * r['size'] / pillow6[image]:.0f} %" if image in pillow6 else "-"
        extra = f"{r['extra']:+.0f}" if "extra" in r else "whole process"
        rss = f"{r['rss']:.0f} ({extra})"
        print(
            f"| {image} | {writer} | {level} | {r['wall']:.3f} | {r['cpu']:.3f} "
            f"| {r['size'] / 1e6:.2f} | {rel} | {rss} | {'yes' if r['ok'] else 'NO'} |"
        )
    print("\nraw pixels: " + ", ".join(f"{k} {v:.1f} MB" for k, v in raw_mb.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="4000x3000", help="WxH of the test images")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1000x750, 1 repeat")
    ap.add_argument(
        "--pyspng-python",
        default=sys.executable,
        help="interpreter for the pyspng cases: one with an encoding pyspng (pyspng-seunglab)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        writer, level, npy, repeat = json.loads(args.child)
        print(json.dumps(child(writer, level, Path(npy), repeat)))
        return 0
    size = (1000, 750) if args.quick else tuple(int(v) for v in args.size.split("x"))
    repeat = 1 if args.quick else args.repeat
    rows, raw_mb = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(size, Path(tmp))  # type: ignore[arg-type]
        for image, npy in images.items():
            raw_mb[image] = np.load(npy, mmap_mode="r").nbytes / 1e6
            for writer, level in CASES:
                python = args.pyspng_python if writer == "pyspng" else sys.executable
                result = run_case(writer, level, npy, repeat, python)
                rows.append((image, writer, "-" if level is None else str(level), result))
                print(f"  {image} {writer} {level}: {result}", file=sys.stderr, flush=True)
    print(f"\n{size[0]}x{size[1]}, median of {repeat}; {os.cpu_count()} cores\n")
    report(rows, raw_mb)
    return 1 if any(r.get("ok") is False for *_, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
