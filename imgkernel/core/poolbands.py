"""Pooling an image in bands of output rows, each computed from only the rows it needs.

The bands, stacked, equal :func:`imgkernel.core.pool2d` on the whole image
(padding, ``ceil_mode``, dilation and ``count_include_pad`` included), but
no full-size accumulator or padded copy is ever made: each band pools a
slice of the input with the part of the padding that falls inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from imgkernel.core.geometry import pool_geometry
from imgkernel.core.pool import pool2d

#: Bytes of float32 results a band holds (as for the filter's bands).
BAND_BYTES = 2 << 20


def iter_pool_bands(
    x: np.ndarray,
    size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    *,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    band_rows: int | None = None,
    ready: Callable[[int], None] | None = None,
    **options: Any,
) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`~imgkernel.core.pool2d` of an ``(H, W[, C])`` image as ``(rows, result)`` bands.

    ``options`` are pool2d's ``mode`` and ``count_include_pad``. ``ready(n)``,
    when given, is called before a band reads the first ``n`` rows of ``x``
    (rows still being decoded: it returns once they are there).

    >>> image = np.arange(49.0).reshape(7, 7)
    >>> whole = pool2d(image, 3, 2, padding=1, ceil_mode=True, mode="avg")
    >>> parts = [b for _, b in iter_pool_bands(image, 3, 2, padding=1, ceil_mode=True,
    ...                                          mode="avg", band_rows=1)]
    >>> bool(np.array_equal(np.concatenate(parts), whole))
    True
    """
    height, width = x.shape[:2]
    geometry = pool_geometry((height, width), size, stride, padding, dilation, ceil_mode=ceil_mode)
    step, span = geometry.stride[0], geometry.dilation[0] * (geometry.size[0] - 1) + 1
    top, bottom, left, right = geometry.pads
    out_h, out_w = geometry.out_hw
    if band_rows is None:
        channels = x.size // max(height * width, 1)
        band_rows = BAND_BYTES // max(4 * out_w * channels, 1)
    band_rows = max(1, int(band_rows))
    for o0 in range(0, out_h, band_rows):
        o1 = min(out_h, o0 + band_rows)
        first = o0 * step - top  # input row of the band's first window (may be < 0)
        last_band = o1 == out_h
        # The last band takes every remaining row and the real bottom padding, so
        # ceil_mode's partial windows come out as on the whole image; the others
        # hold exactly their windows' rows, where ceil_mode changes no row count
        # (and it must stay on for the columns).
        stop = height if last_band else min((o1 - 1) * step - top + span, height)
        lo = max(first, 0)
        pad_bottom = bottom if last_band else (o1 - 1) * step - top + span - stop
        pads = (lo - first, pad_bottom, left, right)
        if ready is not None:
            ready(stop)
        result = pool2d(
            x[lo:stop],
            size,
            stride,  # as given: the geometry's may be shortened for the whole image
            padding=pads,
            dilation=geometry.dilation,
            ceil_mode=ceil_mode,
            **options,
        )
        yield slice(o0, o1), result
    if ready is not None:  # the whole file checked before the caller finishes its output
        ready(height)
