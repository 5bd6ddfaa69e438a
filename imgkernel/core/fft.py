"""Large kernels by overlap-save FFT tiles (``scipy.fft``, float32).

Same contract as :mod:`imgkernel.core.correlate`.
"""

from __future__ import annotations

import numpy as np

from imgkernel.core.padding import PaddedPlanes, band_reader
from imgkernel.core.parallel import (
    run_tiles,
    workers,
)
from imgkernel.core.windows import valid_shape

# ---------------------------------------------------------------------------
# fft

#: Rows of one overlap-save FFT tile (before next_fast_len) per kernel extent.
FFT_TILE_ROWS = 256
FFT_TILE_COLS = 512


def correlate_fft(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Overlap-save FFT correlation over tiles of a fast FFT size.

    The dilated kernel is a dense ``(eh, ew)`` kernel with zeros, so the
    channel-interleaved planes of filter2d cost nothing extra. Each band of
    tile rows goes through ``scipy.fft.rfft2``/``irfft2`` in float32; with a
    stride the stride-1 result is subsampled (auto only picks fft at stride 1).
    """
    from scipy import fft as sfft

    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    p, oh, ow = valid_shape(xp, (kh, kw), stride, dilation)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    hp, wp = xp.shape[1:]
    full_h, full_w = hp - eh + 1, wp - ew + 1  # stride-1 valid size
    tn = sfft.next_fast_len(max(FFT_TILE_ROWS, 2 * eh), real=True)
    tm = sfft.next_fast_len(max(FFT_TILE_COLS, 2 * ew), real=True)
    tn = min(tn, sfft.next_fast_len(hp, real=True))
    tm = min(tm, sfft.next_fast_len(wp, real=True))
    vh, vw = tn - eh + 1, tm - ew + 1  # valid outputs per tile
    dense = np.zeros((tn, tm), dtype=np.float32)
    dense[0:eh:dh, 0:ew:dw] = kernel
    spec = np.conj(sfft.rfft2(dense))
    nt = -(-full_w // vw)
    band_w = (nt - 1) * vw + tm
    out = np.empty((p, oh, ow), dtype=np.float32)
    bands = [(q, y0) for q in range(p) for y0 in range(0, full_h, vh)]
    read = band_reader(xp)

    def task(a: int, b: int) -> None:
        band = np.zeros((tn, band_w), dtype=np.float32)
        for q, y0 in bands[a:b]:
            rows = min(tn, hp - y0)
            band[:rows, : min(wp, band_w)] = read(q, y0, y0 + rows)[:, :band_w]
            if rows < tn:
                band[rows:] = 0
            s = band.strides
            tiles = np.lib.stride_tricks.as_strided(
                band, (nt, tn, tm), (vw * s[1], s[0], s[1]), writeable=False
            )
            f = sfft.rfft2(tiles, axes=(1, 2), workers=1)
            f *= spec
            res = sfft.irfft2(f, s=(tn, tm), axes=(1, 2), workers=1, overwrite_x=True)
            n = min(vh, full_h - y0)
            valid = res[:, :n, :vw].transpose(1, 0, 2).reshape(n, nt * vw)[:, :full_w]
            if sh == 1 and sw == 1:
                out[q, y0 : y0 + n] = valid
            else:
                first = -(-y0 // sh)
                ys = np.arange(first * sh, y0 + n, sh)
                ys = ys[ys // sh < oh]
                out[q, ys // sh] = valid[ys - y0, : (ow - 1) * sw + 1 : sw]

    run_tiles(len(bands), task, max(1, -(-len(bands) // (2 * workers()))))
    return out
