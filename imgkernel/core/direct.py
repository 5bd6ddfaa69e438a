"""Small kernels tap by tap, or a few kernel rows at once as banded GEMMs.

Same contract as :mod:`imgkernel.core.correlate`: padded float32 planes
``(P, Hp, Wp)`` (an array or a :class:`~imgkernel.core.padding.PaddedPlanes`
read band by band) in, the float32 valid cross-correlation out.

``direct``
    one multiply-accumulate per kernel tap over cache-sized row tiles, dense
    kernels as one ``einsum`` over all taps per tile (the same values):
    exact IEEE behaviour per window (a NaN or inf stays in its windows);
``gemm``
    each kernel column ``j`` is a banded (Toeplitz) matrix ``T_j`` of
    ``B x (B-1)*sh + (kh-1)*dh + 1`` that maps the input rows under ``B``
    output rows to those rows, so ``out[rows] = sum_j T_j @ band[:, j*dw:]``:
    ``kw`` sgemms per ``B`` output rows, each over the full width. With
    ``B = 4`` a 5x5 kernel does 2.4x the multiply-adds of the tap loop, but in
    registers: 3x faster here (1.8 vs 5.6 ns per output and core).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from imgkernel.core.padding import PaddedPlanes, band_reader
from imgkernel.core.parallel import (
    TILE_BYTES,
    gemm_columns,
    run_tiles,
    thread_buffer,
    workers,
)
from imgkernel.core.windows import valid_shape

#: Output rows per banded GEMM (measured on 4000x3000 RGB rows, 3x3 and 5x5:
#: B=4 0.94 / 1.78 ns per output, B=2 1.12 / 2.01, B=8 1.4 / 2.9; stacking
#: the kw shifted row blocks into one GEMM was slower than kw GEMMs).
GEMM_ROWS = 4


def _tile_rows(oh: int, row_bytes: int, rows: int = 1) -> int:
    """Rows per tile: about :data:`TILE_BYTES`, a multiple of ``rows``, and at
    least two tiles per thread so that both cores stay busy."""
    n = max(1, TILE_BYTES // max(row_bytes, 1))
    n = max(1, min(n, -(-oh // (2 * workers()))))
    return max(rows, n - n % rows)


#: A kernel with at least this share of non-zero taps is applied as one
#: ``einsum`` over all its taps (zeros included) per tile: numpy adds each
#: tap's products to a row of the output while it is in cache, one pass per
#: tap where the loop makes two (a multiply into a scratch, then an add).
#: 3x3 on 4000x3000 RGB float32: 52-57 ms against 76-88 for the loop.
DENSE_SHARE = 0.4


def is_dense(kernel: np.ndarray) -> bool:
    """Whether the tap loop applies ``kernel`` as one einsum over all its taps.

    >>> is_dense(np.ones((3, 3))), is_dense(np.eye(3))
    (True, False)
    """
    dense = np.count_nonzero(kernel) >= DENSE_SHARE * kernel.size
    return bool(dense) and _einsum_rounds_as_the_loop()


@functools.cache
def _einsum_rounds_as_the_loop() -> bool:
    """Whether this numpy's einsum rounds a product and a sum apart, as the tap
    loop does. A build whose einsum fuses them (FMA: aarch64, an x86 baseline
    with FMA3) would give tiles that fall back to the loop other last bits
    than their neighbours, so there every kernel takes the loop."""
    w = np.array([0.41163054], np.float32)
    x = np.array([[1.0425134, 1.0425134]], np.float32)
    c = np.array([[-0.12853466, -0.12853466]], np.float32)
    stacked = np.stack([c, x])  # taps (c, x), weights (1, w): c + w*x, fused or not
    summed = np.einsum("t,tyx->xy", np.array([1.0, w[0]], np.float32), stacked, order="F")
    return bool(np.array_equal(summed.T, c + x * w[0]))


def _int16_passes(weights: np.ndarray) -> int:
    """Passes over a tile of the int16 tap loop: one per tap of +-1, two per other
    non-zero tap (measured: sobel's 8 take 17 ms where its einsum of 9 taps
    takes 27; a 3x3 of 14 passes is level with its einsum)."""
    nonzero = weights[weights != 0]
    return int(2 * nonzero.size - np.count_nonzero(np.abs(nonzero) == 1))


def correlate_direct(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Multiply-accumulate one kernel tap at a time over cache-sized tiles.

    Taps are taken column by column (``j`` outer, ``i`` inner). Zero taps
    are skipped, taps of +-1 need no multiply; the first tap writes the tile
    instead of clearing it first. Dense kernels go through
    :func:`_einsum_tile`, which gives the same values. ``out`` (P, Ho, Wo)
    float32 may be given to write into.
    """
    kh, kw = kernel.shape
    sh, dh = stride[0], dilation[0]
    p, oh, ow = valid_shape(xp, (kh, kw), stride, dilation)
    if out is None:
        out = np.empty((p, oh, ow), dtype=np.float32)
    # 8-bit data with small integer (or eighths, ...) weights: the same sums,
    # exact, in int16 (half the bytes a pass; the einsum 0.81 ns an output
    # against 1.06), by the tap loop when it takes no more passes than the
    # einsum (counting the first tap's as two, as the others).
    scale = xp.int16_scale(kernel) if isinstance(xp, PaddedPlanes) else 0
    dense = is_dense(kernel) and not (scale and _int16_passes(kernel * scale) <= kernel.size)
    work = np.int16 if scale else np.float32
    weights = kernel * scale if scale else kernel
    taps = _taps_of(weights, work)
    factors = integer_factors(weights) if scale and not dense else None
    if factors is not None and _int16_passes(factors[0]) + _int16_passes(factors[1]) >= (
        _int16_passes(weights)
    ):
        factors = None  # the tap loop takes no more passes
    dense_weights = weights.astype(work)
    # Only a zero tap can make the einsum's values differ from the loop's (0 x inf).
    finite = (isinstance(xp, PaddedPlanes) and xp.x.dtype.kind in "uib") or bool(kernel.all())
    unscale = np.float32(1 / scale) if scale > 1 else None
    read = _reader(xp, work)
    tile = _tile_rows(oh, ow * 4)
    blocks = [(q, y0) for q in range(p) for y0 in range(0, oh, tile)]

    def task(a: int, b: int) -> None:
        for q, y0 in blocks[a:b]:
            n = min(tile, oh - y0)
            result = out[q, y0 : y0 + n]
            if not taps:
                result[...] = 0
                continue
            band = read(q, y0 * sh, y0 * sh + (n - 1) * sh + (kh - 1) * dh + 1)
            acc = result
            if work is not np.float32:
                acc = thread_buffer("correlate.acc", result.shape, work)
            if factors is not None:
                _factored_taps(band, factors, stride, dilation, acc)
            elif not (
                dense
                and result.size > 1
                and _einsum_tile(band, dense_weights, stride, dilation, acc, finite)
            ):
                _tap_loop(band, taps, stride, dilation, acc)
            if unscale is not None:
                np.multiply(acc, unscale, out=result)
            elif acc is not result:
                result[...] = acc

    run_tiles(len(blocks), task, 1)
    return out


def _tap_loop(
    band: np.ndarray,
    taps: Sequence[tuple[int, int, Any]],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    acc: np.ndarray,
) -> None:
    """``acc`` (n, ow) = the sum over ``taps`` (i, j, weight) of weight x window."""
    (sh, sw), (dh, dw) = stride, dilation
    n, ow = acc.shape
    scratch = thread_buffer("correlate.scratch", acc.shape, acc.dtype.type)
    for t, (i, j, w) in enumerate(taps):
        c = j * dw
        window = band[i * dh :: sh][:n, c : c + (ow - 1) * sw + 1 : sw]
        if t == 0:
            if w == 1:
                acc[...] = window
            else:
                np.multiply(window, w, out=acc)
        elif w == 1:
            np.add(acc, window, out=acc)
        elif w == -1:
            np.subtract(acc, window, out=acc)
        else:
            np.multiply(window, w, out=scratch)
            np.add(acc, scratch, out=acc)


def integer_factors(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(column (kh, 1), row (1, kw))`` of integers whose product is ``weights``
    (integers), or None when there are none (rank above 1, or fractions needed).

    >>> col, row = integer_factors(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    >>> col.ravel().tolist(), row.ravel().tolist()
    ([1, 2, 1], [-1, 0, 1])
    >>> integer_factors(np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])) is None
    True
    """
    nonzero = np.argwhere(weights)
    if len(nonzero) == 0:
        return None
    i0, j0 = nonzero[0]
    row = weights[i0].astype(np.int64)
    row //= np.gcd.reduce(row[row != 0])  # the smallest integer row: columns stay whole
    col = weights[:, j0] / row[j0]
    if not np.array_equal(col, np.round(col)) or not np.array_equal(np.outer(col, row), weights):
        return None
    return col.astype(np.int64).reshape(-1, 1), row.reshape(1, -1)


def _factored_taps(
    band: np.ndarray,
    factors: tuple[np.ndarray, np.ndarray],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    acc: np.ndarray,
) -> None:
    """``acc`` (n, ow) as :func:`_tap_loop` would give it for the kernel ``col @ row``
    (integers, exact in the type of ``acc``): the column's taps down the band's
    whole width, then the row's across: fewer passes (sobel: 6 against 8)."""
    col, row = factors
    (sh, sw), (dh, dw) = stride, dilation
    n = acc.shape[0]
    kept = thread_buffer("correlate.factored", (n, band.shape[1]), acc.dtype.type)
    work = acc.dtype.type
    _tap_loop(band, _taps_of(col, work, ones_first=True), (sh, 1), (dh, 1), kept)
    _tap_loop(kept, _taps_of(row, work, ones_first=True), (1, sw), (1, dw), acc)


def _taps_of(
    weights: np.ndarray, work: type, *, ones_first: bool = False
) -> list[tuple[int, int, Any]]:
    """The non-zero taps (i, j, weight) column by column, the einsum's order (float
    sums depend on it); ``ones_first`` (exact integer sums): a weight of 1 first,
    a copy instead of a multiply."""
    kh, kw = weights.shape
    taps = [(i, j, work(weights[i, j])) for j in range(kw) for i in range(kh) if weights[i, j]]
    return sorted(taps, key=lambda tap: tap[2] != 1) if ones_first else taps


def _einsum_tile(
    band: np.ndarray,
    weights: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    result: np.ndarray,
    finite: bool,
) -> bool:
    """``result`` (n, ow; float32, or int16 for exact 8-bit sums) as one einsum over
    every tap of ``weights`` (of the same type). False (the tile to be redone
    tap by tap) when, unless ``finite`` says the data or the kernel rule it
    out, a NaN or inf may have met a zero tap there.

    Iterating in Fortran order over the transposed output ``(x, y, i, j)``
    keeps ``x`` innermost and adds the products to each output column by
    column, as the tap loop does, whatever the strides (numpy's own order
    would sum along ``j`` innermost when a tap's step equals a pixel's).
    So the values are the tap loop's (a zero tap adds 0 x finite = 0; only
    the sign of a zero sum may differ). More than one output: a single one
    is summed in another order.
    """
    (sh, sw), (dh, dw) = stride, dilation
    kh, kw = weights.shape
    n, ow = result.shape
    rows, cols = band.strides
    windows = as_strided(
        band, (kh, kw, n, ow), (rows * dh, cols * dw, rows * sh, cols * sw), writeable=False
    )
    np.einsum("ij,ijyx->xy", weights, windows, out=result.T, order="F")
    if finite:
        return True
    # A NaN or inf anywhere in the tile makes its sum of squares non-finite
    # (so may an overflow: redoing that tile costs time, not correctness).
    # One BLAS dot reads the tile at memory speed, unlike a ufunc reduce.
    flat = result.reshape(-1)
    return bool(np.isfinite(np.dot(flat, flat)))


def _reader(xp: np.ndarray | PaddedPlanes, work: type) -> Callable[[int, int, int], np.ndarray]:
    if work is np.float32 or not isinstance(xp, PaddedPlanes):
        return band_reader(xp)
    return lambda q, r0, r1: xp.band(q, r0, r1, "pad.band16", work)


def toeplitz_columns(
    kernel: np.ndarray, rows: int, step: int = 1, rate: int = 1
) -> list[tuple[int, np.ndarray]]:
    """``(j, T_j)`` for every non-zero kernel column ``j``, float32 ``T_j`` of
    ``rows x (rows-1)*step + (kh-1)*rate + 1`` with ``T_j[b, b*step + i*rate] = kernel[i, j]``.

    >>> [(j, t.tolist()) for j, t in toeplitz_columns(np.array([[1.0, 0], [2, 0]]), 2)]
    [(0, [[1.0, 2.0, 0.0], [0.0, 1.0, 2.0]])]
    """
    kh, kw = kernel.shape
    span = (rows - 1) * step + (kh - 1) * rate + 1
    b = np.arange(rows)[:, None]
    idx = b * step + np.arange(kh)[None, :] * rate
    mats = []
    for j in range(kw):
        if not kernel[:, j].any():
            continue
        t = np.zeros((rows, span), dtype=np.float32)
        t[np.broadcast_to(b, idx.shape), idx] = kernel[:, j][None, :]
        mats.append((j, t))
    return mats


def correlate_gemm(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """``B`` output rows at a time as ``kw`` banded sgemms over whole rows.

    The GEMMs read the band of padded rows in place (a column offset
    ``j*dw`` is just a view); partial sums go through one ``B x Wo`` scratch
    per thread. A horizontal stride other than 1 takes the tap loop (the
    GEMMs would compute every column). BLAS runs single-threaded inside our
    two tile threads (:func:`~imgkernel.core.parallel.blas_single_thread`).
    """
    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    if sw != 1:
        return correlate_direct(xp, kernel, stride, dilation)
    p, oh, ow = valid_shape(xp, (kh, kw), stride, dilation)
    rows = max(1, min(GEMM_ROWS, oh))
    mats = toeplitz_columns(kernel, rows, sh, dh)
    out = np.empty((p, oh, ow), dtype=np.float32)
    if not mats:
        out[...] = 0
        return out
    read = band_reader(xp)
    tile = _tile_rows(oh, xp.shape[2] * 4 * sh, rows)
    # Column chunks that keep each sgemm on OpenBLAS's calling thread.
    cols = gemm_columns(mats[0][1].size, ow, least=4096)
    blocks = [(q, y0) for q in range(p) for y0 in range(0, oh, tile)]

    def task(a: int, b: int) -> None:
        tmp = thread_buffer("gemm.tmp", (rows, ow)) if len(mats) > 1 else None
        for q, y0 in blocks[a:b]:
            n = min(tile, oh - y0)
            band = read(q, y0 * sh, y0 * sh + (n - 1) * sh + (kh - 1) * dh + 1)
            for b0 in range(0, n, rows):
                m = min(rows, n - b0)
                span = (m - 1) * sh + (kh - 1) * dh + 1
                src = band[b0 * sh : b0 * sh + span]
                for c0 in range(0, ow, cols):
                    c1 = min(ow, c0 + cols)
                    dst = out[q, y0 + b0 : y0 + b0 + m, c0:c1]
                    for t, (j, mat) in enumerate(mats):
                        window = src[:, c0 + j * dw : c1 + j * dw]
                        if t == 0:
                            np.matmul(mat[:m, :span], window, out=dst)
                        else:
                            assert tmp is not None
                            part = tmp[:m, : c1 - c0]
                            np.matmul(mat[:m, :span], window, out=part)
                            np.add(dst, part, out=dst)

    # Every sgemm stays under OpenBLAS's serial size (gemm_columns), so BLAS
    # never starts threads of its own: no limiter needed (threadpoolctl's
    # first call alone costs 14 ms, a small image's whole filtering).
    run_tiles(len(blocks), task, 1)
    return out
