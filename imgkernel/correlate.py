"""Valid cross-correlation of padded planes: the compute paths of the core.

Every path here has one contract: ``xp`` is a C-contiguous float32 array
``(P, Hp, Wp)`` of P independent planes, already padded; ``kernel`` is a
float64 ``(kh, kw)`` array; the result is the float32 ``(P, Ho, Wo)`` valid
cross-correlation (no flip) at the given stride and dilation::

    out[p, y, x] = sum_ij kernel[i, j] * xp[p, y*sh + i*dh, x*sw + j*dw]

:func:`correlate_planes` picks the fastest applicable path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.windows import output_size

#: Bytes of one output tile; a tile and its scratch copy stay in L2 cache.
TILE_BYTES = 1 << 18

METHODS = ("auto", "direct")


def workers() -> int:
    """Threads to spread tiles over (numpy releases the GIL in its loops)."""
    env = os.environ.get("IMGKERNEL_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def run_tiles(count: int, task: Callable[[int, int], None], rows_per_tile: int) -> None:
    """Call ``task(start, stop)`` over ``range(count)`` in tiles, in parallel."""
    spans = [(a, min(a + rows_per_tile, count)) for a in range(0, count, rows_per_tile)]
    n = min(workers(), len(spans))
    if n <= 1:
        for a, b in spans:
            task(a, b)
        return
    with ThreadPoolExecutor(max_workers=n) as pool:
        for future in [pool.submit(task, a, b) for a, b in spans]:
            future.result()


def out_shape(
    xp: np.ndarray, k_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int]:
    oh = output_size(xp.shape[1], k_hw[0], stride[0], dilation[0])
    ow = output_size(xp.shape[2], k_hw[1], stride[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise UsageError(
            f"kernel {k_hw[0]}x{k_hw[1]} (dilation {dilation[0]},{dilation[1]}) does not fit "
            f"the padded input {xp.shape[1]}x{xp.shape[2]}"
        )
    return xp.shape[0], oh, ow


def correlate_direct(
    xp: np.ndarray,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Multiply-accumulate one kernel tap at a time over cache-sized tiles."""
    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    p, oh, ow = out_shape(xp, (kh, kw), stride, dilation)
    out = np.empty((p, oh, ow), dtype=np.float32)
    taps = [(i, j, np.float32(kernel[i, j])) for i in range(kh) for j in range(kw) if kernel[i, j]]
    row_bytes = p * ow * 4
    rows_per_tile = max(1, TILE_BYTES // max(row_bytes, 1))

    def task(y0: int, y1: int) -> None:
        acc = out[:, y0:y1]
        acc[...] = 0
        scratch = np.empty_like(acc)
        n = y1 - y0
        for i, j, w in taps:
            r = y0 * sh + i * dh
            c = j * dw
            window = xp[:, r : r + (n - 1) * sh + 1 : sh, c : c + (ow - 1) * sw + 1 : sw]
            if w == 1:
                np.add(acc, window, out=acc)
            else:
                np.multiply(window, w, out=scratch)
                np.add(acc, scratch, out=acc)

    run_tiles(oh, task, rows_per_tile)
    return out


def correlate_planes(
    xp: np.ndarray,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    method: str = "auto",
) -> np.ndarray:
    """Valid cross-correlation of every plane of ``xp`` with ``kernel``.

    >>> xp = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    >>> correlate_planes(xp, np.array([[1.0, 0.0], [0.0, -1.0]]))
    array([[[-5., -5., -5.],
            [-5., -5., -5.]]], dtype=float32)
    """
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return correlate_direct(xp, kernel, stride, dilation)
