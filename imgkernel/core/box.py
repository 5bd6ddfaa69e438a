"""Constant (box) kernels by running sums, at a cost independent of the kernel size.

Same contract as :mod:`imgkernel.core.correlate`. Each tile of output rows
is summed down its columns, then along its rows, and scaled by the weight:

* down the columns by a running sum: the first row of the tile is a plain
  sum of ``kh`` rows, every later row is the row above plus one difference
  row (all the differences of a tile are one vectorized subtraction), so the
  cost is about two passes whatever ``kh``; the sum restarts every tile,
  which bounds the float32 drift to :data:`BOX_ROWS` steps (none at all for
  integer-valued images, whose sums are exact);
* along the rows by doubling: sums of 2, 4, 8... cells, each one vectorized
  add of the previous one to itself shifted, combined by the signed binary
  digits of ``kw`` (31 = 32 - 1 takes 5 doublings and one subtraction
  instead of 4 doublings and 4 adds).

numpy's ``cumsum`` was measured first and dropped: 4-7 ns per element here
against 0.1 ns for a vectorized add, since it runs one element at a time.
"""

from __future__ import annotations

import numpy as np

from imgkernel.core.padding import PaddedPlanes, band_reader
from imgkernel.core.parallel import run_tiles, thread_buffer, workers
from imgkernel.core.windows import valid_shape
from imgkernel.errors import UsageError

#: Output rows per box tile (and steps of one running sum), and rows per
#: chunk of the horizontal doubling passes (about 400 KB of 4000x3 rows).
BOX_ROWS = 64
BOX_CHUNK = 16


def is_box(kernel: np.ndarray) -> bool:
    """True when every weight equals the first and is non-zero."""
    first = kernel.flat[0]
    return bool(first != 0 and np.all(kernel == first))


def sum_digits(k: int) -> list[int]:
    """Signed binary digits of ``k`` (lowest first) that build a ``k``-cell sum
    with the fewest doublings plus combinations: plain binary or the
    non-adjacent form, whichever is cheaper (binary on a tie).

    >>> sum_digits(31), sum_digits(7), sum_digits(6)
    ([-1, 0, 0, 0, 0, 1], [1, 1, 1], [0, 1, 1])
    """
    binary = [(k >> i) & 1 for i in range(k.bit_length())]
    naf: list[int] = []
    rest = k
    while rest:
        d = (2 - (rest & 3)) if rest & 1 else 0
        naf.append(d)
        rest = (rest - d) >> 1

    def cost(digits: list[int]) -> int:
        return len(digits) - 1 + sum(1 for d in digits if d) - 1

    return naf if cost(naf) < cost(binary) else binary


class RowSums:
    """Sums of ``k`` cells ``dil`` apart along the rows of 2-D arrays, ``n_out``
    per row, by doubling: a fixed list of numpy calls planned once.

    Inputs need :attr:`width` columns: ``n_out + (k - 1) * dil`` and, when
    :func:`sum_digits` subtracts (31 = 32 - 1), zero columns past that,
    which cancel exactly. Calling returns ``(s, negated)``, the sums being ``-s``
    when ``negated``; ``s`` may be a view of the input or of a thread buffer
    valid until the next call from this thread.

    >>> s, neg = RowSums(3, 1, 5)(np.arange(16.0, dtype=np.float32).reshape(2, 8))
    >>> (-s if neg else s).tolist()
    [[3.0, 6.0, 9.0, 12.0, 15.0], [27.0, 30.0, 33.0, 36.0, 39.0]]
    """

    def __init__(self, k: int, dil: int, n_out: int) -> None:
        digits = sum_digits(k)
        pos: dict[int, int] = {}  # first cell of each digit's block
        off = 0
        for i in reversed(range(len(digits))):
            if digits[i] > 0:
                pos[i] = off
                off += 1 << i
            elif digits[i] < 0:
                off -= 1 << i
                pos[i] = off
        reach = max(pos[i] + (1 << i) for i in pos)  # cells read past a window's start
        self.width = n_out + (reach - 1) * dil
        # Steps (ufunc, a, a_cols, b, b_cols, out, out_cols); array 0 is the
        # input, 1-3 thread buffers.
        self.steps: list[tuple] = []
        power, length = 0, self.width
        result, sign = -1, 0
        for i, d in enumerate(digits):
            if d:
                cols = slice(pos[i] * dil, pos[i] * dil + n_out)
                if result < 0:
                    result, res_cols, sign = power, cols, d
                else:
                    dst = result if result > 0 else next(b for b in (1, 2, 3) if b != power)
                    f = np.add if d == sign else np.subtract
                    dst_cols = res_cols if dst == result else slice(0, n_out)
                    self.steps.append((f, result, res_cols, power, cols, dst, dst_cols))
                    result, res_cols = dst, dst_cols
            if i + 1 < len(digits):
                nxt = next(b for b in (1, 2, 3) if b not in (power, result))
                length -= (1 << i) * dil
                a, b = slice(0, length), slice((1 << i) * dil, (1 << i) * dil + length)
                self.steps.append((np.add, power, a, power, b, nxt, slice(0, length)))
                power = nxt
        self.result, self.res_cols, self.negated = result, res_cols, sign < 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        rows = x.shape[0]
        arrays = [x] + [thread_buffer(f"box.sum{i}", (rows, self.width)) for i in (1, 2, 3)]
        for f, a, a_cols, b, b_cols, out, out_cols in self.steps:
            f(arrays[a][:, a_cols], arrays[b][:, b_cols], out=arrays[out][:, out_cols])
        return arrays[self.result][:, self.res_cols], self.negated


def _column_sums(src: np.ndarray, kh: int, dh: int, y0: int, y1: int, out: np.ndarray) -> None:
    """``out[y] = sum_i src[y + i*dh]`` for ``y0 <= y < y1``: a running sum down
    the rows (``out[y - dh]`` must be done), from scratch for the first ``dh``.

    The rows entering minus the rows leaving are one vectorized subtraction
    for the whole chunk, so each row then costs a single add.
    """
    reach = (kh - 1) * dh
    for y in range(y0, min(y1, dh)):  # row by row: add.reduce over axis 0 walks columns
        np.copyto(out[y], src[y])
        for i in range(1, kh):
            np.add(out[y], src[y + i * dh], out=out[y])
    first = max(y0, dh)
    if y1 <= first:
        return
    diff = thread_buffer("box.diff", (y1 - first, src.shape[1]))
    np.subtract(src[first + reach : y1 + reach], src[first - dh : y1 - dh], out=diff)
    for y in range(first, y1):
        np.add(out[y - dh], diff[y - first], out=out[y])


def correlate_box(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Constant kernels by running sums down the columns and doubling along the rows."""
    if not is_box(kernel):
        raise UsageError("the box method needs a kernel whose weights are all equal")
    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    p, oh, ow = valid_shape(xp, (kh, kw), stride, dilation)
    weight = np.float32(kernel.flat[0])
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    n_cols = (ow - 1) * sw + 1  # horizontal sums before the stride
    hsum = RowSums(kw, dw, n_cols)
    wide = max(need_w, hsum.width)
    out = np.empty((p, oh, ow), dtype=np.float32)
    tile = max(1, min(BOX_ROWS, oh, -(-oh // (2 * workers()))))
    blocks = [(q, y0) for q in range(p) for y0 in range(0, oh, tile)]
    read = band_reader(xp)

    def task(a: int, b: int) -> None:
        # Column sums at vertical stride 1; a stride picks every sh-th row.
        vert = thread_buffer("box.vert", ((tile - 1) * sh + 1, wide))
        vert[:, need_w:] = 0
        for q, y0 in blocks[a:b]:
            n = min(tile, oh - y0)
            r0 = y0 * sh
            src = read(q, r0, r0 + (n - 1) * sh + (kh - 1) * dh + 1)[:, :need_w]
            done = 0
            # Chunks of rows small enough for the doubling passes to stay in L2.
            for c0 in range(0, n, BOX_CHUNK):
                c1 = min(n, c0 + BOX_CHUNK)
                _column_sums(src, kh, dh, done, (c1 - 1) * sh + 1, vert[:, :need_w])
                done = (c1 - 1) * sh + 1
                v = vert[c0 * sh : done : sh]
                h, neg = hsum(v) if kw > 1 else (v[:, :need_w], False)
                dst = out[q, y0 + c0 : y0 + c1]
                np.multiply(h[:, :n_cols:sw], -weight if neg else weight, out=dst)

    run_tiles(len(blocks), task, 1)
    return out
