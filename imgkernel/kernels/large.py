"""Filtering images larger than memory with a kernel record, tile by tile.

:func:`filter_large` reads a TIFF or Zarr image a tile (plus the halo its
windows need) at a time, filters each tile with
:func:`~imgkernel.kernels.apply_kernel` and maps it with the
:class:`~imgkernel.images.Display` policy exactly as
:func:`~imgkernel.kernels.filter_image.filter_image` does (so kernels,
magnitude, offsets, alpha handling, the display mapping and its rounding are
those of the whole-image path) and writes TIFF or Zarr tile by tile; see
:mod:`imgkernel.images.tiled` for the engine and the Dask scheduler.

Bit-identical to the whole image
--------------------------------
The output equals ``filter_image`` on the whole image for every kernel,
border, stride, dilation, padding and tile size. Where the arithmetic of the
compute path is the same for a pixel wherever its tile starts (Pillow's
order, ``direct``, ``box``, tap-loop ``separable``), tiles are any size
(``mode="tiles"``). The paths whose float32 rounding depends on where a block
starts (FFT tiles, sgemm Toeplitz blocks, and on float data the switch to
``direct`` in a band holding NaN) are computed in the very bands
``filter_image`` uses: ``band_rows`` output rows by the whole width
(``mode="bands"``). A constant border whose value the pixel type cannot
hold makes ``filter_image`` filter the whole image at once; with such a path
the tiled run does too (``mode="whole"``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from imgkernel.core.conv import conv_geometry
from imgkernel.core.correlate import choose_method
from imgkernel.core.padding import Border, parse_border
from imgkernel.core.separable import SEPARABLE_TAPS_MAX
from imgkernel.core.tiles import TilePlan, plan_filter
from imgkernel.core.windows import as_pair
from imgkernel.errors import UsageError
from imgkernel.images import Display, Image, max_value_for, to_display
from imgkernel.images.regions import RegionSource, open_region_source
from imgkernel.images.tiled import (
    LargeResult,
    check_target_format,
    run_large,
    source_row_bytes,
    tile_size_for,
)
from imgkernel.kernels.apply import apply_kernel, band_rows_for
from imgkernel.kernels.record import Kernel

__all__ = ["filter_large", "tile_mode"]

#: Compute paths whose result for a pixel does not depend on where its block starts.
POSITION_FREE = ("direct", "box")


def tile_mode(
    kernel: Kernel,
    dtype: Any,
    *,
    method: str = "auto",
    stride: Any = 1,
    dilation: Any = 1,
    alpha: bool = False,
    alpha_mode: str = "keep",
) -> str:
    """``"tiles"`` when every pixel is computed the same in any tile, else ``"bands"``.

    >>> from imgkernel.kernels import load_library
    >>> lib = load_library(include_user=False)
    >>> tile_mode(lib.resolve("sobel"), np.uint8), tile_mode(lib.resolve("blur"), np.uint8)
    ('tiles', 'tiles')
    >>> tile_mode(lib.resolve("gaussian:sigma=3"), np.uint8)
    'bands'
    """
    dtype = np.dtype(dtype)
    step = as_pair(stride, "stride")
    rate = kernel.spacing(dilation)
    core_free = all(
        _position_free(weights, dtype, method, step, rate) for weights in kernel.components
    )
    pillow = (
        kernel.arithmetic == "pillow"
        and kernel.combine == "single"
        and dtype.kind in "ui"
        and method == "auto"
        and alpha_mode != "premultiply"
    )
    if pillow and (not alpha or alpha_mode == "keep"):
        return "tiles"
    return "tiles" if core_free else "bands"


def _position_free(
    weights: np.ndarray,
    dtype: np.dtype,
    method: str,
    stride: tuple[int, int],
    rate: tuple[int, int],
) -> bool:
    if method == "auto":
        # The auto rule weighs costs by the plane's size: a path that small and
        # large planes both get is the one every band and tile gets.
        # filter2d runs a channels-last image as one plane: column stride 1 and a
        # column dilation times the channel count.
        geometries = [(stride, rate)] + [
            ((stride[0], 1), (rate[0], rate[1] * channels)) for channels in (1, 2, 3, 4)
        ]
        paths = {
            choose_method(weights, step, spacing, shape)
            for step, spacing in geometries
            for shape in ((2, 2), (1 << 14, 1 << 14))
        }
        if len(paths) > 1:
            return False
        path = paths.pop()
    else:
        path = method
    if path == "direct":
        return True
    if dtype.kind == "f" and method == "auto":
        return False  # a band holding NaN or inf switches to direct, a tile may not
    if path == "separable":
        return max(weights.shape) <= SEPARABLE_TAPS_MAX  # tap loops, no sgemm blocks
    return path in POSITION_FREE


def _holds(dtype: np.dtype, value: float) -> bool:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True


def _filter_tile(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    pads: tuple[int, int, int, int],
    *,
    kernel: Kernel,
    display: Display | None,
    options: dict[str, Any],
) -> tuple:
    """One tile filtered and mapped as :func:`filter_image` maps a whole TIFF image.

    The tile goes to :func:`apply_kernel` in one piece: in ``tiles`` mode any
    split gives the same pixels, and in ``bands`` mode the tile *is* one of
    ``filter_image``'s bands (``whole``: the whole image).
    """
    image = Image(pixels, alpha, "TIFF", "-")
    values, out_alpha = apply_kernel(
        pixels, kernel, alpha=alpha, padding=pads, max_value=image.max_value, **options
    )
    out = (display or Display()).pixels(values, image, "TIFF", kernel.display)
    if out_alpha is not None and out_alpha.dtype != out.dtype:
        top = max_value_for(out_alpha.dtype)
        out_alpha = to_display(out_alpha, mode="clip", dtype=out.dtype, max_value=top)
    return out, out_alpha


def _mode_and_gather(
    kernel: Kernel, src: RegionSource, brd: Border, **how: Any
) -> tuple[str, Border | None]:
    """How :func:`filter_large` tiles (:func:`tile_mode`) and the border each tile
    gathers from the image (None: a constant the pixels' type cannot hold, added
    as padding instead, which needs the whole image's bands)."""
    mode = tile_mode(kernel, src.dtype, alpha=src.alpha, **how)
    fits = brd.numpy_mode != "constant" or _holds(src.dtype, brd.value)
    if mode == "bands" and not fits:
        mode = "whole"
    return mode, brd if fits else None


def _filter_plan(
    src: Any, kernel: Kernel, mode: str, fits: bool, tile: Any, geometry: dict[str, Any]
) -> TilePlan:
    """The tiles of :func:`filter_large`: square ``tile``s, or full-width bands of rows
    (``mode`` ``"bands"``), or the whole image at once (``"whole"``)."""
    if mode == "tiles":
        return plan_filter(src.hw, kernel.shape, tile=tile, need_image=not fits, **geometry)
    stride, rate, padding = geometry["stride"], geometry["dilation"], geometry["padding"]
    out_w = conv_geometry(src.hw, kernel.shape, stride, rate, padding).out_hw[1]
    colour = src.shape[2] - (1 if src.alpha else 0)
    rows = band_rows_for(out_w, colour) if mode == "bands" else 1
    whole = (mode == "whole", True)
    return plan_filter(src.hw, kernel.shape, tile=(rows, 1), whole=whole, **geometry)


def filter_large(
    source: str,
    target: str,
    kernel: Kernel,
    display: Display | None = None,
    *,
    tile_size: int | None = None,
    scheduler: Any = None,
    stride: Any = 1,
    padding: Any = "same",
    dilation: Any = 1,
    border: Any = "reflect",
    method: str = "auto",
    alpha_mode: str = "keep",
    bias: float = 0.0,
    convolve: bool = False,
    **output: Any,
) -> LargeResult:
    """Filter the TIFF/Zarr image ``source`` with ``kernel`` into the TIFF/Zarr ``target``.

    The pixels written equal ``filter_image(read_image(source), kernel,
    "TIFF", display=display, ...)`` (8-bit, or 16-bit for 16-bit input);
    the filter options are those of :func:`~imgkernel.kernels.apply_kernel`.
    ``tile_size`` counts output pixels per tile side (default 1024, 512
    for very wide images: :func:`~imgkernel.images.tiled.tile_size_for`); ``scheduler`` is None
    (threads here), ``"local:N"``, ``"tcp://HOST:PORT"`` or a
    ``distributed.Client``; ``output``: ``out_tile`` (TIFF tile / Zarr
    chunk, default 512), ``compression`` (``zlib``, ``none``...),
    ``level``, ``threads``. ``normalize`` needs the whole result's range
    and is not available here.
    """
    check_target_format(target)
    if display is not None and display.mode_or(kernel.display) == "normalize":
        raise UsageError("--normalize needs the whole result at once; it is not done tile by tile")
    src = open_region_source(source)
    brd = parse_border(border)
    how = dict(method=method, stride=stride, dilation=dilation, alpha_mode=alpha_mode)
    mode, gather = _mode_and_gather(kernel, src, brd, **how)
    geometry = dict(stride=stride, dilation=kernel.spacing(dilation), padding=padding)
    tile = tile_size_for(tile_size, scheduler, source_row_bytes(src, stride))
    plan = _filter_plan(src, kernel, mode, gather is not None, tile, geometry)
    options = dict(
        stride=stride,
        dilation=dilation,
        border=brd,
        method=method,
        alpha_mode=alpha_mode,
        bias=bias,
        convolve=convolve,
    )
    compute = partial(_filter_tile, kernel=kernel, display=display, options=options)
    return run_large(
        source,
        target,
        plan,
        compute,
        border=gather,
        gray=src.gray,
        alpha=src.alpha,
        scheduler=scheduler,
        mode=mode,
        **output,
    )
