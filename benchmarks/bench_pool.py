"""Benchmark pool2d against torch and a reshape-based numpy baseline.

Cases: 2x2/2 and 3x3/2 max and average pooling of a 4000x3000x3 image (uint8
and float32, channels-last, ``layout="image"``) and of a 64x256x256 float32
feature map (``layout="tensor"``, N=1).

* torch (CPU, when installed): ``max_pool2d``/``avg_pool2d`` on an NCHW
  tensor. The image is converted to NCHW (and, for average pooling of uint8,
  to float32, since torch's ``avg_pool2d`` refuses integers) **outside** the
  timed region, so torch is timed on its preferred layout while pool2d is
  timed on the channels-last image as given.
* reshape: ``x.reshape(H/k, k, W/k, k, C).max(axis=(1, 3))`` (or ``.mean``),
  only for the non-overlapping 2x2/2 cases.

Medians of repeated runs, measured side by side. Goals: within 1.5x of torch;
never slower than reshape for the non-overlapping 2x2/2 case.

Usage: python benchmarks/bench_pool.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from imgkernel.core.pool import pool2d

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - optional peer
    torch = None


def median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reshape_baseline(x: np.ndarray, k: int, mode: str, layout: str) -> np.ndarray:
    if layout == "image":
        h, w = x.shape[0] // k * k, x.shape[1] // k * k
        v = x[:h, :w].reshape(h // k, k, w // k, k, -1)
        axes: tuple[int, int] = (1, 3)
    else:
        h, w = x.shape[-2] // k * k, x.shape[-1] // k * k
        v = x[..., :h, :w].reshape(*x.shape[:-2], h // k, k, w // k, k)
        axes = (-3, -1)
    if mode == "max":
        return v.max(axis=axes)
    return v.mean(axis=axes, dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    args = ap.parse_args()
    repeat = 3 if args.quick else 9
    rng = np.random.default_rng(0)
    img_u8 = rng.integers(0, 256, (4000, 3000, 3), dtype=np.uint8)
    inputs = {
        "img 4000x3000x3 u8": (img_u8, "image"),
        "img 4000x3000x3 f32": (img_u8.astype(np.float32), "image"),
        "fmap 1x64x256x256 f32": (
            rng.standard_normal((1, 64, 256, 256), dtype=np.float32),
            "tensor",
        ),
    }
    if torch is not None:
        torch.set_num_threads(2)
    rows = []
    verdicts = []
    for name, (x, layout) in inputs.items():
        if torch is not None:
            # conversion to NCHW (and float32 for avg of uint8): not timed
            t_nchw = (
                torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, 2, 0)[None]))
                if layout == "image"
                else torch.from_numpy(x)
            )
            t_nchw_f = t_nchw if t_nchw.dtype == torch.float32 else t_nchw.float()
        for k, s in ((2, 2), (3, 2)):
            for mode in ("max", "avg"):
                ours = median_time(lambda: pool2d(x, k, s, mode=mode, layout=layout), repeat)  # noqa: B023
                t_torch = None
                if torch is not None:
                    if mode == "max":
                        t_torch = median_time(lambda: F.max_pool2d(t_nchw, k, s), repeat)  # noqa: B023
                    else:
                        t_torch = median_time(lambda: F.avg_pool2d(t_nchw_f, k, s), repeat)  # noqa: B023
                t_resh = None
                if k == s:
                    t_resh = median_time(lambda: reshape_baseline(x, k, mode, layout), repeat)  # noqa: B023
                case = f"{name} {k}x{k}/{s} {mode}"
                rows.append((case, ours, t_torch, t_resh))
                if t_torch is not None:
                    ok = ours <= 1.5 * t_torch
                    verdicts.append((case, "within 1.5x of torch", ok, ours / t_torch))
                if t_resh is not None:
                    ok = ours <= t_resh
                    verdicts.append((case, "not slower than reshape", ok, ours / t_resh))

    def ms(t: float | None) -> str:
        return "-" if t is None else f"{t * 1e3:9.2f}"

    def ratio(a: float, b: float | None) -> str:
        return "-" if b is None else f"{a / b:6.2f}x"

    print(
        f"repeats per median: {repeat}; torch threads: "
        f"{torch.get_num_threads() if torch is not None else '-'}"
    )
    print(
        f"{'case':40s} {'pool2d ms':>10s} {'torch ms':>10s} {'reshape ms':>10s} "
        f"{'/torch':>8s} {'/reshape':>9s}"
    )
    for case, ours, t_torch, t_resh in rows:
        print(
            f"{case:40s} {ms(ours):>10s} {ms(t_torch):>10s} {ms(t_resh):>10s} "
            f"{ratio(ours, t_torch):>8s} {ratio(ours, t_resh):>9s}"
        )
    print("\nverdicts (ratio = pool2d / other):")
    for case, goal, ok, r in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {case:40s} {goal:26s} {r:5.2f}x")


if __name__ == "__main__":
    main()
