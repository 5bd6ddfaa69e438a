"""PaddedPlanes bands against numpy-rule padding of the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.core.padding import PaddedPlanes, band_reader, pad, parse_border

BORDERS = ["zero", "constant:7", "reflect", "symmetric", "edge", "wrap"]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (1, 1, 3), (2, 3)])
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 2, 3, 4), (6, 7, 9, 8)])
def test_channels_last_bands_match_pad(border, shape, pads):
    brd = parse_border(border)
    x = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    x3 = x if x.ndim == 3 else x[:, :, None]
    full = pad(x3, pads, brd, axes=(0, 1)).reshape(shape[0] + pads[0] + pads[1], -1)
    src = PaddedPlanes(x, pads, brd, channels_last=True)
    assert src.shape == (1, *full.shape)
    for r0 in range(full.shape[0]):
        for r1 in range(r0 + 1, full.shape[0] + 1):
            band = src.band(0, r0, r1)
            assert band.dtype == np.float32
            np.testing.assert_array_equal(band, full[r0:r1])
    np.testing.assert_array_equal(src.array()[0], full)


@pytest.mark.parametrize("border", BORDERS)
def test_plane_bands_match_pad(border):
    brd = parse_border(border)
    xp = np.random.default_rng(1).random((3, 4, 5)).astype(np.float64)
    src = PaddedPlanes(xp, (2, 1, 1, 3), brd)
    full = pad(xp, (2, 1, 1, 3), brd)
    read = band_reader(src)
    for q in range(3):
        np.testing.assert_array_equal(read(q, 0, full.shape[1]), full[q])
        np.testing.assert_array_equal(read(q, 1, 3), full[q, 1:3])
    arr = band_reader(full)
    np.testing.assert_array_equal(arr(2, 1, 4), full[2, 1:4])


def test_empty_image_with_a_copying_border_is_refused():
    from imgkernel.errors import UsageError

    with pytest.raises(UsageError):
        PaddedPlanes(
            np.zeros((0, 4), np.uint8), (1, 1, 1, 1), parse_border("reflect"), channels_last=True
        )
    with pytest.raises(UsageError):
        PaddedPlanes(np.zeros((2, 3, 0)), (1, 1, 1, 1), parse_border("edge"))
    assert PaddedPlanes(np.zeros((1, 0, 2)), (1, 1, 0, 0), parse_border("zero")).shape == (1, 2, 2)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 2, 0, 0), (6, 7, 1, 1), (3, 0, 0, 2)])
@pytest.mark.parametrize("h", [1, 2, 5, 9])
def test_rows_read_is_the_rows_pad_rows_reads(border, pads, h):
    # Rows still arriving are waited for up to rows_read: every row pad_rows
    # touches must be below it, and (outside a constant border) the last one it
    # needs is exactly the one before it.
    from imgkernel.core.padding import pad_rows, rows_read

    brd = parse_border(border)
    x = np.arange(h, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    hp = h + pads[0] + pads[1]
    for first in range(hp):
        for stop in range(first + 1, hp + 1):
            need = rows_read(h, pads, brd, first, stop)
            hidden = x.copy()
            hidden[need:] = np.nan  # rows not yet decoded
            band = pad_rows(hidden, pads, brd, first, stop)
            assert not np.isnan(band).any(), (first, stop, need)
            np.testing.assert_array_equal(band, pad_rows(x, pads, brd, first, stop))
            if brd.numpy_mode != "constant" and need > 0:
                hidden = x.copy()
                hidden[need - 1 :] = np.nan
                assert np.isnan(pad_rows(hidden, pads, brd, first, stop)).any()
