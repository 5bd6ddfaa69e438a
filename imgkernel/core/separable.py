"""Rank-1 kernels: two 1-D passes instead of kh*kw taps.

Same contract as :mod:`imgkernel.core.correlate` (float32 ``(P, Hp, Wp)``
padded planes in, float32 valid cross-correlation out).

``separable``
    rank-1 kernels as a vertical then a horizontal 1-D pass, each either a
    tap loop (short kernels) or banded Toeplitz matrices applied with sgemm;
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from imgkernel.core.padding import PaddedPlanes, band_reader
from imgkernel.core.parallel import (
    blas_limitable,
    gemm_columns,
    run_tiles,
    thread_buffer,
    workers,
)
from imgkernel.core.windows import valid_shape
from imgkernel.errors import UsageError

#: rank1_factors results by kernel (bands and tiles ask again for the same kernel).
_FACTORS: dict[tuple[bytes, tuple[int, ...], float], tuple[np.ndarray, np.ndarray] | None] = {}


def rank1_factors(
    weights2d: np.ndarray, rtol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a separable 2-D kernel into a column and a row factor (cached).

    See :func:`_rank1_factors`; the SVD runs once per kernel, not once per
    band of an image.

    >>> col, row = rank1_factors(np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]))
    >>> bool(np.allclose(np.outer(col, row), [[1, 0, -1], [2, 0, -2], [1, 0, -1]]))
    True
    """
    w = np.asarray(weights2d, dtype=np.float64)
    key = (w.tobytes(), w.shape, float(rtol))
    if key not in _FACTORS:
        if len(_FACTORS) > 256:
            _FACTORS.clear()
        _FACTORS[key] = _rank1_factors(w, rtol)
    found = _FACTORS[key]
    return None if found is None else (found[0].copy(), found[1].copy())


def _rank1_factors(
    weights2d: np.ndarray, rtol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a separable 2-D kernel into a column and a row factor.

    Uses the SVD: the kernel is rank 1 when the second singular value is at
    most ``rtol`` times the first.  The factors have equal norms and the
    column's largest-magnitude entry is positive.

    Returns
    -------
    (col, row) with ``np.outer(col, row) ≈ weights2d``, shapes ``(kh,)`` and
    ``(kw,)``; or None if the kernel is not rank 1.

    Examples
    --------
    >>> w = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    >>> col, row = rank1_factors(w)
    >>> np.round(col / col[0], 12), np.allclose(np.outer(col, row), w)
    (array([1., 2., 1.]), True)
    >>> rank1_factors(np.eye(3)) is None
    True
    """
    w = np.asarray(weights2d, dtype=np.float64)
    if w.ndim != 2:
        raise UsageError(f"rank1_factors needs a 2-D kernel, got shape {w.shape}")
    if w.size == 0:
        return None
    scale = float(np.abs(w).max())
    if scale == 0.0:
        return np.zeros(w.shape[0]), np.zeros(w.shape[1])
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    if s.size > 1 and s[1] > rtol * s[0]:
        return None
    root = math.sqrt(float(s[0]))
    col = u[:, 0] * root
    row = vt[0] * root
    if col[int(np.argmax(np.abs(col)))] < 0:
        col, row = -col, -row
    if not np.allclose(np.outer(col, row), w, rtol=0.0, atol=max(rtol, 1e-12) * scale * 10):
        return None
    return col, row


# ---------------------------------------------------------------------------
# separable

#: 1-D kernels at most this long use a tap loop, longer ones Toeplitz GEMMs.
SEPARABLE_TAPS_MAX = 3
#: Output rows per vertical Toeplitz GEMM and output columns per block of the
#: horizontal one. Measured for 17 taps on 4000x3000 RGB: vertical 4 rows
#: 1.25 ns per output (32 rows: 2.4); horizontal blocks of 16 over 384 rows
#: 1.03 ns (8: 1.3, 32: 1.3; the earlier tall-skinny sgemms over 32-column
#: blocks: 3.8).
VBLOCK = 4
HBLOCK = 16
#: Kernels spanning at least this many rows use vertical GEMMs of
#: :data:`VBLOCK_LONG` rows (81 taps, 2000x1500 RGB: 32 rows 84 ms, 4 rows 138).
LONG_EXTENT = 32
VBLOCK_LONG = 32
#: Rows times channels of one tile: 32 rows of an RGB image. Alone on the
#: machine 128-row tiles were as fast, but with other jobs sharing the L3 the
#: smaller working set wins (sigma 2, CPU ms: 96 -> 127-130, 384 -> 152-172).
HROWS = 96


def _toeplitz(taps: np.ndarray, rows: int, step: int, dil: int, cols: int) -> np.ndarray:
    """``T[b, b*step + i*dil] = taps[i]`` as float32 ``(rows, cols)``."""
    t = np.zeros((rows, cols), dtype=np.float64)
    b = np.arange(rows)[:, None]
    idx = b * step + np.arange(taps.size)[None, :] * dil
    t[np.broadcast_to(b, idx.shape), idx] = taps[None, :]
    return t.astype(np.float32)


def _taps_along(
    src: np.ndarray, taps: np.ndarray, step: int, rate: int, count: int, dst: np.ndarray, axis: int
) -> None:
    """1-D correlation along ``axis`` (0 rows, 1 columns) by a tap loop:
    ``dst[.., y, ..] = sum_i taps[i] * src[.., i*rate + y*step, ..]`` for ``y < count``."""
    scratch = None
    for i, w in enumerate(taps):
        sl = slice(i * rate, i * rate + (count - 1) * step + 1, step)
        window = src[sl] if axis == 0 else src[:, sl]
        w32 = np.float32(w)
        if i == 0:
            np.multiply(window, w32, out=dst)
        else:
            if scratch is None:
                scratch = np.empty_like(dst)
            np.multiply(window, w32, out=scratch)
            np.add(dst, scratch, out=dst)


class _RowPass:
    """``dst[r, x] = sum_i taps[i] * src[r, x*step + i*rate]`` for ``x < count``.

    Long kernels cut the output columns into blocks of :data:`HBLOCK`; every
    block is ``src[:, block's span] @ T^T`` with one banded ``T``, and ONE
    batched matmul (a strided view of ``src``, no copy) does every block of
    every row; a last partial block is one more small matmul. Short kernels
    take a tap loop.
    """

    def __init__(self, taps: np.ndarray, step: int, rate: int, count: int) -> None:
        self.taps, self.step, self.rate, self.count = taps, step, rate, count
        self.gemm = taps.size > SEPARABLE_TAPS_MAX
        self.b = b = max(1, min(HBLOCK, count))
        self.span = (b - 1) * step + (taps.size - 1) * rate + 1
        self.tt = np.ascontiguousarray(_toeplitz(taps, b, step, rate, self.span).T)
        self.full, self.rest = divmod(count, b)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> None:
        if not self.gemm:
            _taps_along(src, self.taps, self.step, self.rate, self.count, dst, axis=1)
            return
        r, b = src.shape[0], self.b
        # All rows per batched matmul, or (without threadpoolctl) few enough
        # for OpenBLAS to stay on this thread.
        group = gemm_columns(self.span * b, r, least=16)
        for g0 in range(0, r if self.full else 0, group):
            part, into = src[g0 : g0 + group], dst[g0 : g0 + group]
            (s0, s1), (d0, d1) = part.strides, into.strides
            rows = part.shape[0]
            blocks = as_strided(part, (self.full, rows, self.span), (b * self.step * s1, s0, s1))
            outs = as_strided(into, (self.full, rows, b), (b * d1, d0, d1))
            np.matmul(blocks, self.tt, out=outs)
        if self.rest:
            x0 = self.full * b * self.step
            span = (self.rest - 1) * self.step + (self.taps.size - 1) * self.rate + 1
            np.matmul(src[:, x0 : x0 + span], self.tt[:span, : self.rest], out=dst[:, -self.rest :])


class _ColumnPass:
    """``dst[y] = sum_i taps[i] * src[y*step + i*rate]`` for every row of ``dst``:
    :data:`VBLOCK` (long kernels :data:`VBLOCK_LONG`) rows at a time as
    ``T @ src rows`` (one sgemm over the whole width), or a tap loop for
    short kernels."""

    def __init__(self, taps: np.ndarray, step: int, rate: int) -> None:
        self.taps, self.step, self.rate = taps, step, rate
        self.gemm = taps.size > SEPARABLE_TAPS_MAX
        extent = (taps.size - 1) * rate + 1
        long = extent >= LONG_EXTENT and blas_limitable()
        self.b = VBLOCK_LONG if long else VBLOCK
        self.t = _toeplitz(taps, self.b, step, rate, (self.b - 1) * step + extent)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> None:
        n = dst.shape[0]
        if not self.gemm:
            _taps_along(src, self.taps, self.step, self.rate, n, dst, axis=0)
            return
        width = dst.shape[1]
        least = 1024 if blas_limitable() else 256
        cols = gemm_columns(self.t.shape[0] * self.t.shape[1], width, least)
        for c0 in range(0, width, cols):  # column chunks outermost: rows stay in L2
            c1 = min(width, c0 + cols)
            for y0 in range(0, n, self.b):
                m = min(self.b, n - y0)
                span = (m - 1) * self.step + (self.taps.size - 1) * self.rate + 1
                r0 = y0 * self.step
                rows = src[r0 : r0 + span, c0:c1]
                np.matmul(self.t[:m, :span], rows, out=dst[y0 : y0 + m, c0:c1])


def _interleave(planar: np.ndarray, dst: np.ndarray, phases: int) -> None:
    """``dst (n, W*phases)`` interleaved from ``planar (n, phases*W)``: one
    strided copy per phase (a single transposing copy runs 3 values per inner
    loop here, 5x slower)."""
    n = dst.shape[0]
    inter, planes = dst.reshape(n, -1, phases), planar.reshape(n, phases, -1)
    for c in range(phases):
        inter[:, :, c] = planes[:, c]


def correlate_separable(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    factors: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Rank-1 kernels as a vertical then a horizontal 1-D pass per row tile.

    Long 1-D kernels use banded Toeplitz sgemms (:class:`_RowPass`,
    :class:`_ColumnPass`), short ones tap loops; stride and dilation live in
    the matrices. A horizontal dilation ``d`` that divides the width
    (filter2d's interleaved channels: ``d = C``) is ``d`` phases at dilation
    1: the vertical result is split into its phases (one strided copy per
    phase), so the horizontal blocks are dense, and the result is
    interleaved back the same way. (Horizontal first on planar bands was
    measured too: 5 % slower, it filters ``kh - 1`` extra rows per tile for
    the same number of copies.) Raises UsageError if the kernel is not rank 1.
    """
    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    p, oh, ow = valid_shape(xp, (kh, kw), stride, dilation)
    if factors is None:
        factors = rank1_factors(kernel)
        if factors is None:
            raise UsageError("the separable method needs a rank-1 (separable) kernel")
    col, row = (np.asarray(f, dtype=np.float64) for f in factors)
    wp = xp.shape[2]
    phases = dw if (sw == 1 and dw > 1 and wp % dw == 0 and kw > 1) else 1
    owp = ow // phases
    hpass = _RowPass(row, sw, dw // phases, owp)
    vpass = _ColumnPass(col, sh, dh)
    extent = (kh - 1) * dh + 1
    tile = max(1, min(HROWS // phases // sh, oh, -(-oh // workers())))
    blocks = [(q, y0) for q in range(p) for y0 in range(0, oh, tile)]
    read = band_reader(xp)

    def task(a: int, b: int) -> None:
        for q, y0 in blocks[a:b]:
            n = min(tile, oh - y0)
            dst = out[q, y0 : y0 + n]
            band = read(q, y0 * sh, y0 * sh + (n - 1) * sh + extent)
            vert = thread_buffer("sep.v", (n, wp))
            vpass(band, vert)
            if phases == 1:
                hpass(vert, dst)
                continue
            planar = thread_buffer("sep.planar", (n, phases, wp // phases))
            for c in range(phases):
                planar[:, c] = vert[:, c::phases]
            horiz = thread_buffer("sep.h", (n, phases * owp))
            hpass(planar.reshape(n * phases, -1), horiz.reshape(n * phases, owp))
            _interleave(horiz, dst, phases)

    out = np.empty((p, oh, ow), dtype=np.float32)
    run_tiles(len(blocks), task, 1)  # sgemms under OpenBLAS's serial size: no limiter
    return out
