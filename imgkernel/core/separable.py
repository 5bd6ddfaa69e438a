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

from imgkernel.core.padding import PaddedPlanes, band_reader
from imgkernel.core.parallel import (
    TILE_BYTES,
    blas_single_thread,
    run_tiles,
    workers,
)
from imgkernel.core.windows import valid_shape
from imgkernel.errors import UsageError


def rank1_factors(
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
#: Output rows per vertical Toeplitz block / output columns per horizontal one.
VBLOCK = 32
HBLOCK = 32


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


class _HorizontalGemm:
    """Horizontal 1-D correlation of row tiles as a few tall-skinny sgemms.

    Input columns are cut into blocks of ``B*sw``; output block q is
    ``sum_t X[q+t] @ T_t^T`` with ``T_t`` the slices of one banded Toeplitz
    matrix, so each term is ONE gemm over every (row, block) of the tile.
    """

    def __init__(self, taps: np.ndarray, sw: int, dw: int, ow: int, block: int = HBLOCK):
        self.b = b = max(1, min(block, ow))
        self.bs = bs = b * sw
        extent = (taps.size - 1) * dw
        self.m = m = -(-((b - 1) * sw + extent + 1) // bs)
        full = _toeplitz(taps, b, sw, dw, m * bs)
        self.parts = [np.ascontiguousarray(full[:, t * bs : (t + 1) * bs].T) for t in range(m)]
        self.nb = -(-ow // b)
        self.nbp = self.nb + m - 1
        self.width = self.nbp * bs
        self.ow = ow

    def __call__(self, buf: np.ndarray, dst: np.ndarray) -> None:
        """buf (R, width) float32 C-contiguous (zero tail), dst (R, ow)."""
        r = buf.shape[0]
        x2 = buf.reshape(r * self.nbp, self.bs)
        n = r * self.nbp - (self.m - 1)
        acc = np.empty((r * self.nbp, self.b), dtype=np.float32)
        np.matmul(x2[:n], self.parts[0], out=acc[:n])
        if self.m > 1:
            tmp = np.empty((n, self.b), dtype=np.float32)
            for t in range(1, self.m):
                np.matmul(x2[t : t + n], self.parts[t], out=tmp)
                acc[:n] += tmp
        res = acc.reshape(r, self.nbp, self.b)[:, : self.nb].reshape(r, self.nb * self.b)
        dst[...] = res[:, : self.ow]


def correlate_separable(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    factors: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Rank-1 kernels as a vertical then a horizontal 1-D pass per row tile.

    Short 1-D kernels use a tap loop; longer ones banded Toeplitz matrices
    applied with sgemm (vertical: ``T (B x span) @ rows (span x W)``;
    horizontal: see :class:`_HorizontalGemm`). Stride and dilation live in
    the matrices. Raises UsageError if the kernel is not rank 1.
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
    out = np.empty((p, oh, ow), dtype=np.float32)
    v_gemm = kh > SEPARABLE_TAPS_MAX
    h_gemm = kw > SEPARABLE_TAPS_MAX
    # A horizontal dilation d that divides the width (filter2d's interleaved
    # channels: d = C) is d independent phases at dilation 1: transpose each
    # tile to (rows, d, W/d) so the Toeplitz blocks are d times denser.
    phases = dw if (h_gemm and sw == 1 and dw > 1 and wp % dw == 0) else 1
    hg = _HorizontalGemm(row, sw, dw // phases, ow // phases) if h_gemm else None
    if v_gemm:
        tile = max(1, min(VBLOCK, oh))
        span = (tile - 1) * sh + (kh - 1) * dh + 1
        tv = _toeplitz(col, tile, sh, dh, span)
    else:
        tile = max(1, min(oh, TILE_BYTES // max(wp * 4, 1), -(-oh // (2 * workers()))))
    blocks = [(q, y0) for q in range(p) for y0 in range(0, oh, tile)]
    read = band_reader(xp)
    pw = wp // phases
    buf_w = hg.width if hg is not None else wp
    cw = min(pw, buf_w)

    def task(a: int, b: int) -> None:
        buf = np.zeros((tile * phases, buf_w), dtype=np.float32)
        vbuf = np.empty((tile, wp), dtype=np.float32) if phases > 1 else None
        hbuf = np.empty((tile * phases, ow // phases), dtype=np.float32) if phases > 1 else None
        for q, y0 in blocks[a:b]:
            n = min(tile, oh - y0)
            r0 = y0 * sh
            src = read(q, r0, r0 + (n - 1) * sh + (kh - 1) * dh + 1)
            if vbuf is not None:
                vert = vbuf[:n]
            else:
                src = src[:, :cw]
                vert = buf[:n, :cw]
            if v_gemm:
                np.matmul(tv[:n, : src.shape[0]], src, out=vert)
            else:
                _taps_along(src, col, sh, dh, n, vert, axis=0)
            if hg is None:
                _taps_along(vert, row, sw, dw, ow, out[q, y0 : y0 + n], axis=1)
            elif hbuf is None:
                hg(buf[:n], out[q, y0 : y0 + n])
            else:
                # (n, pw, d) -> (n, d, pw) rows of the buffer, and back after.
                inner = buf[: n * phases].reshape(n, phases, buf_w)
                inner[:, :, :cw] = vert.reshape(n, pw, phases).transpose(0, 2, 1)[:, :, :cw]
                hg(buf[: n * phases], hbuf[: n * phases])
                res = hbuf[: n * phases].reshape(n, phases, ow // phases).transpose(0, 2, 1)
                out[q, y0 : y0 + n] = res.reshape(n, ow)

    with blas_single_thread():
        run_tiles(len(blocks), task, max(1, -(-len(blocks) // (2 * workers()))))
    return out
