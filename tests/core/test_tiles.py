"""imgkernel.core.tiles: tile plans cover the output once, read exactly their halo, and
tile-by-tile filtering and pooling equal the whole image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgkernel.core import filter2d, pool2d
from imgkernel.core.padding import BORDERS, pad, parse_border
from imgkernel.core.tiles import (
    border_index,
    index_runs,
    plan_axis,
    plan_filter,
    plan_pool,
)
from imgkernel.core.windows import output_size
from imgkernel.errors import UsageError

BORDER_SPECS = [b if b != "constant" else "constant:7" for b in BORDERS]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 6),
    dilation=st.integers(1, 3),
    stride=st.integers(1, 4),
    before=st.integers(0, 9),
    after=st.integers(0, 9),
    tile=st.integers(1, 12),
    need_image=st.booleans(),
)
def test_axis_tiles_cover_the_outputs_with_exact_windows(
    n, k, dilation, stride, before, after, tile, need_image
):
    span = dilation * (k - 1) + 1
    out_n = output_size(n, span, stride, 1, before, after)
    if out_n <= 0:
        with pytest.raises(UsageError):
            plan_axis(n, span, stride, before, after, tile)
        return
    tiles = plan_axis(n, span, stride, before, after, tile, need_image=need_image)
    assert tiles[0].out_start == 0 and tiles[-1].out_stop == out_n
    for a, b in zip(tiles, tiles[1:], strict=False):
        assert a.out_stop == b.out_start
    whole = len(tiles) == 1 and tiles[0].start == 0 and tiles[0].stop == n + before + after
    for t in tiles:
        assert t.before + t.inside + t.after == t.stop - t.start
        assert 0 <= t.read_start and t.read_start + t.inside <= n
        if whole:
            continue
        # origins at multiples of the stride, the window exactly the halo its outputs need
        assert t.start == t.out_start * stride
        assert t.stop == (t.out_stop - 1) * stride + span
        if not need_image:
            assert t.out_stop - t.out_start <= tile
        # cells before/after the image: only where the window crosses an image edge
        assert t.before == max(0, min(t.stop, before) - t.start)
        assert t.after == max(0, t.stop - max(t.start, before + n))
        if need_image:
            assert t.inside > 0


def test_need_image_without_any_window_on_the_image_is_one_whole_tile():
    # one input cell after a pad of 5; windows of 1 cell every 10 cells never reach it
    (tile,) = plan_axis(1, 1, 10, 5, 0, 1, need_image=True)
    assert (tile.start, tile.stop, tile.read_start, tile.read_stop) == (0, 6, 0, 1)
    assert (tile.before, tile.after, tile.out_stop) == (5, 0, 1)


def test_filter_plan_edges_and_same_padding_of_the_whole_image():
    plan = plan_filter((9, 9), (3, 3), stride=2, padding="same", tile=2)
    assert plan.pads == (1, 1, 1, 1)  # from the whole 9x9, not from any tile
    corners = [plan.tile(0, 0).edges, plan.tile(1, 1).edges, plan.tile(2, 2).edges]
    assert corners == [(True, False, True, False), (False,) * 4, (False, True, False, True)]
    with pytest.raises(UsageError, match="kernel spans"):
        plan_filter((2, 2), (5, 5), padding="valid")


@pytest.mark.parametrize("border", BORDER_SPECS)
@pytest.mark.parametrize("n, before, after", [(5, 2, 3), (1, 3, 2), (3, 7, 8), (6, 0, 0)])
def test_border_index_is_the_whole_image_padding(border, n, before, after):
    brd = parse_border(border)
    index = border_index(n, before, after, brd)
    cells = np.arange(n, dtype=np.float32)[None, :] + 100
    padded = pad(cells, (0, 0, before, after), brd)[0]
    copied = index >= 0
    np.testing.assert_array_equal(padded[copied], cells[0, index[copied]])
    np.testing.assert_array_equal(padded[~copied], brd.value)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=30), st.integers(0, 40))
def test_index_runs_hold_every_cell(cells, gap):
    runs = index_runs(np.array(cells), gap=gap)
    assert all(a < b for a, b in runs)
    assert all(b1 + gap < a2 for (_, b1), (a2, _) in zip(runs, runs[1:], strict=False))
    for c in cells:
        assert any(a <= c < b for a, b in runs)


def tile_filter(image, kernel, brd, plan, span, stride, dilation):
    """Tile by tile: gather each tile's window by the border rule, filter it unpadded."""
    h, w = image.shape
    rows_index = border_index(h, plan.pads[0], plan.pads[1], brd)
    cols_index = border_index(w, plan.pads[2], plan.pads[3], brd)
    padded_image = pad(image, plan.pads, brd)
    out = np.full(plan.out_hw, np.nan, dtype=np.float32)
    for tile in plan:
        r, c = tile.rows, tile.cols
        if brd.numpy_mode == "constant":
            window = padded_image[r.start : r.stop, c.start : c.stop]
        else:
            rows = rows_index[r.start : r.stop]
            cols = cols_index[c.start : c.stop]
            window = image[np.ix_(rows, cols)]
        part = filter2d(
            window, kernel, padding=0, stride=stride, dilation=dilation, method="direct"
        )
        out[tile.outputs] = part
    return out


@settings(max_examples=120, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 2)),
    padding=st.sampled_from(["same", "valid", "full", 2, (0, 3, 1, 0), (5, 1, 0, 6)]),
    border=st.sampled_from(BORDER_SPECS),
    tile=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_tiles_filter_equals_whole_image(
    h, w, kh, kw, stride, dilation, padding, border, tile, seed
):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w)).astype(np.float32)
    kernel = rng.integers(-3, 4, (kh, kw)).astype(np.float64)
    options = dict(stride=stride, dilation=dilation, padding=padding)
    try:
        whole = filter2d(image, kernel, border=border, method="direct", **options)
    except UsageError:
        with pytest.raises(UsageError):
            plan_filter((h, w), (kh, kw), tile=tile, **options)
        return
    plan = plan_filter((h, w), (kh, kw), tile=tile, **options)
    assert plan.out_hw == whole.shape
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    tiled = tile_filter(image, kernel, parse_border(border), plan, span, stride, dilation)
    np.testing.assert_array_equal(tiled, whole)


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    mode=st.sampled_from(["max", "avg", "min"]),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    tile=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
def test_tiles_pool_equals_whole_image(
    h, w, size, stride, dilation, pad, mode, ceil_mode, count_include_pad, tile, seed
):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 2)).astype(np.uint8)
    options = dict(
        stride=stride,
        padding=pad,
        dilation=dilation,
        ceil_mode=ceil_mode,
        mode=mode,
        count_include_pad=count_include_pad,
    )
    try:
        whole = pool2d(image, size, **options)
    except UsageError:
        return
    plan = plan_pool(
        (h, w), size, stride, padding=pad, dilation=dilation, ceil_mode=ceil_mode, tile=tile
    )
    assert plan.out_hw == whole.shape[:2]
    out = np.zeros_like(whole)
    for t in plan:
        r, c = t.rows, t.cols
        explicit = (r.before, min(r.after, plan.pads[1]), c.before, min(c.after, plan.pads[3]))
        part = pool2d(image[t.read], size, **{**options, "padding": explicit})
        out[t.outputs] = part
    np.testing.assert_array_equal(out, whole)
