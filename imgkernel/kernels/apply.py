"""Apply kernel records (:class:`imgkernel.kernels.record.Kernel`) to images.

This joins the kernel library to the convolution core: a record's dilation,
offset and ``magnitude`` combination, and what happens to an alpha channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from imgkernel.core.conv import conv_geometry, filter2d
from imgkernel.core.geometry import WindowGeometry
from imgkernel.core.padding import rows_read
from imgkernel.core.parallel import SERIAL_WORK, run_tiles, serial, thread_buffer, workers
from imgkernel.core.windows import pad, pad_rows, parse_border
from imgkernel.errors import UsageError, check_choice
from imgkernel.images import to_pixel_type
from imgkernel.kernels.record import Kernel

__all__ = ["ALPHA_MODES", "apply_kernel", "band_rows_for", "iter_kernel_bands", "output_height"]

ALPHA_MODES = ("keep", "filter", "premultiply")

#: Bytes of float32 results per band of :func:`iter_kernel_bands`. Measured on a
#: 12 MP RGB photo, whole process: 256-row bands (12 MB) peaked at 172 MB, 4 MiB
#: bands at 112 MB, 2 MiB at 100 MB (1 MiB no lower), no slower.
BAND_BYTES = 2 << 20


def apply_kernel(
    pixels: np.ndarray,
    kernel: Kernel,
    *,
    alpha: np.ndarray | None = None,
    alpha_mode: str = "keep",
    bias: float = 0.0,
    stride: Any = 1,
    padding: Any = "same",
    dilation: Any = 1,
    border: Any = "reflect",
    convolve: bool = False,
    method: str = "auto",
    max_value: float = 255.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Filter ``pixels`` (H,W[,C]) with a kernel record; return (values, alpha).

    ``values`` is float32 in the input's units: the record's ``offset`` (a
    fraction of full scale) is added as ``offset * max_value``. A
    ``magnitude`` record returns ``sqrt(sum of squared component responses)``.
    A record's own dilation multiplies the requested one.

    ``alpha_mode``: ``keep`` carries the alpha plane through unfiltered (only
    resampled to the output grid when stride or padding change the size),
    ``filter`` filters it like a colour channel, ``premultiply`` filters
    colour weighted by alpha and divides by the filtered alpha, which avoids
    dark halos from colour hidden under transparent pixels.

    Examples
    --------
    >>> from imgkernel.kernels import kernel_from_matrix
    >>> apply_kernel(np.eye(3, dtype=np.uint8) * 10, kernel_from_matrix([[1, 1]], scale=1),
    ...              padding="valid")[0]
    array([[10.,  0.],
           [10., 10.],
           [ 0., 10.]], dtype=float32)
    """
    alpha_mode = check_choice(alpha_mode, "alpha mode", ALPHA_MODES)
    rate = kernel.spacing(dilation)
    options: dict[str, Any] = dict(
        stride=stride,
        padding=padding,
        dilation=rate,
        border=border,
        convolve=convolve,
        method=method,
    )
    image = pixels
    if alpha is not None and alpha_mode == "premultiply":
        image = _premultiplied(pixels, alpha, kernel, max_value)
    offset = kernel.offset * max_value
    if _pillow_applies(image, kernel, method):
        # Pillow adds its offset in whole 8/16-bit levels (128 for mid-grey).
        values = _pillow_response(image, kernel, options, np.floor(offset + 0.5))
        offset = 0.0
    else:
        values = _response(image, kernel, options)
    out_alpha = None
    if alpha is not None:
        out_alpha = _alpha_out(values, alpha, alpha_mode, kernel, options, max_value)
    extra = np.float32(bias + offset)
    if extra:
        values += extra
    return values, out_alpha


def _response(image: np.ndarray, kernel: Kernel, options: dict[str, Any]) -> np.ndarray:
    """The record's response: one component's, or the root of the summed squared ones."""
    components = kernel.components
    if len(components) == 1:
        return filter2d(image, components[0], **options)
    total = None
    for weights in components:
        response = filter2d(image, weights, **options)
        np.square(response, out=response)
        total = response if total is None else np.add(total, response, out=total)
    assert total is not None
    return np.sqrt(total, out=total)


def _pillow_applies(image: np.ndarray, kernel: Kernel, method: str) -> bool:
    """Pillow's arithmetic for its own kernels on 8/16-bit data (what it filters)."""
    return (
        kernel.arithmetic == "pillow"
        and kernel.combine == "single"
        and image.dtype.kind in "ui"
        and method == "auto"
    )


def _pillow_response(
    image: np.ndarray, kernel: Kernel, options: dict[str, Any], offset: float
) -> np.ndarray:
    """The response as ``PIL.ImageFilter`` computes it, offset included, in float32.

    Pillow (``libImaging/Filter.c``) starts each sum at ``offset + 0.5``,
    adds the kernel rows bottom to top, each row's taps summed left to right
    with float32 weights ``w / scale``, and truncates. Summing in that order
    reproduces its float32 rounding, so where the exact value is a tie
    (``x.5``) the 8-bit result rounds as Pillow's does. The returned value is
    that sum minus the 0.5 (exact in float32), which the display's half-up
    rounding turns back into Pillow's pixel.
    """
    weights = kernel.weights[::-1, ::-1] if options["convolve"] else kernel.weights
    w32 = weights.astype(np.float32)
    kh, kw = w32.shape
    geometry = _geometry(image, (kh, kw), options)
    step, rate = geometry.stride, geometry.dilation
    padded = pad(
        image, geometry.pads, parse_border(options["border"]), axes=(0, 1), dtype=np.float32
    )
    out_h, out_w = geometry.out_hw
    start = np.float32(offset) + np.float32(0.5)
    total = np.full((out_h, out_w) + image.shape[2:], start, dtype=np.float32)
    # Zero taps are left out: the pixels are integers, so each would add an exact 0.
    rows_of_taps = [
        (i, [(j, w32[i, j]) for j in range(kw) if w32[i, j] != 0]) for i in reversed(range(kh))
    ]

    def tile(a: int, b: int) -> None:
        shape = (b - a, *total.shape[1:])
        row_sum, term = (thread_buffer(f"pillow.{n}", shape) for n in ("row", "term"))
        for i, taps in filter(lambda row: row[1], rows_of_taps):
            top = i * rate[0] + a * step[0]
            rows = slice(top, top + step[0] * (b - a - 1) + 1, step[0])
            for n, (j, w) in enumerate(taps):
                cols = slice(j * rate[1], j * rate[1] + step[1] * (out_w - 1) + 1, step[1])
                np.multiply(padded[rows, cols], w, out=row_sum if n == 0 else term)
                if n:
                    row_sum += term
            total[a:b] += row_sum

    run_tiles(out_h, tile, max(1, -(-out_h // (2 * workers()))))
    total -= np.float32(0.5)
    return total


def _premultiplied(
    pixels: np.ndarray, alpha: np.ndarray, kernel: Kernel, max_value: float
) -> np.ndarray:
    """Colour weighted by alpha (float32); only a kernel with a positive sum can undo it."""
    if kernel.combine != "single" or kernel.weights.sum() <= 0:
        raise UsageError(
            f"--alpha premultiply needs a kernel with a positive sum; {kernel.name!r} "
            "is not one (use --alpha keep or filter)"
        )
    weight = alpha.astype(np.float32) / np.float32(max_value)
    return pixels.astype(np.float32) * (weight[:, :, None] if pixels.ndim == 3 else weight)


def _alpha_out(
    values: np.ndarray,
    alpha: np.ndarray,
    alpha_mode: str,
    kernel: Kernel,
    options: dict[str, Any],
    max_value: float,
) -> np.ndarray:
    """The output alpha plane; for ``premultiply`` also divides ``values`` by it, in place."""
    if alpha_mode == "keep":
        return _resample_like(alpha, kernel, options)
    filtered = _response(alpha, kernel, options)
    if alpha_mode == "premultiply":
        safe = np.maximum(filtered, np.float32(1e-3)) / np.float32(max_value)
        values /= safe[:, :, None] if values.ndim == 3 else safe
    return _round_to(filtered, alpha.dtype)


def iter_kernel_bands(
    pixels: np.ndarray,
    kernel: Kernel,
    *,
    band_rows: int | None = None,
    alpha: np.ndarray | None = None,
    padding: Any = "same",
    stride: Any = 1,
    dilation: Any = 1,
    border: Any = "reflect",
    ready: Callable[[int], None] | None = None,
    **options: Any,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
    """:func:`apply_kernel` in bands of output rows: ``(rows, values, alpha)``.

    Each band reads only the input rows its windows need (border rows are
    gathered exactly as whole-image padding would make them), so a caller
    that maps every band to 8-bit right away never holds the whole float32
    result: peak memory stays near the size of the input and output images.
    The bands put together equal ``apply_kernel`` on the whole image.
    ``ready(n)``, when given, is called before a band reads the first ``n``
    rows of ``pixels`` and ``alpha`` (rows still being decoded: it returns
    once they are there), and for every row after the last band, so that
    damage found late in a file stops the caller before its output is done.

    >>> from imgkernel.kernels import kernel_from_matrix
    >>> image = np.arange(30, dtype=np.uint8).reshape(6, 5)
    >>> k = kernel_from_matrix([[1, 2], [3, 4], [5, 6]], scale=1)
    >>> whole, _ = apply_kernel(image, k, border="wrap", stride=2)
    >>> parts = [v for _, v, _ in iter_kernel_bands(image, k, band_rows=1, border="wrap", stride=2)]
    >>> bool(np.array_equal(np.concatenate(parts), whole))
    True
    """
    rate = kernel.spacing(dilation)
    # The whole image's geometry, checked (and its size reported) before any band.
    geometry = _geometry(pixels, kernel.shape, dict(stride=stride, dilation=rate, padding=padding))
    step, pads, span = geometry.stride, geometry.pads, geometry.span[0]
    out_h = geometry.out_hw[0]
    brd = parse_border(border)
    constant = brd.numpy_mode == "constant"
    common = dict(stride=step, dilation=dilation, border=border, **options)
    fits = _holds(pixels.dtype, brd.value) and (alpha is None or _holds(alpha.dtype, brd.value))
    if out_h <= 0 or (constant and not fits):
        if ready is not None:
            ready(pixels.shape[0])
        values, out_alpha = apply_kernel(pixels, kernel, alpha=alpha, padding=pads, **common)
        yield slice(0, values.shape[0]), values, out_alpha
        return
    if band_rows is None:
        # About BAND_BYTES of float32 results a band: a band's temporaries stay in
        # cache-friendly sizes and peak memory does not grow with the image.
        band_rows = BAND_BYTES // max(4 * row_values(geometry.out_hw[1], pixels), 1)
    band_rows = max(1, int(band_rows))
    # A small image runs on this thread: waking threads costs more than it saves.
    small = out_h * row_values(geometry.out_hw[1], pixels) < SERIAL_WORK
    for o0 in range(0, out_h, band_rows):
        o1 = min(out_h, o0 + band_rows)
        first, stop = o0 * step[0], (o1 - 1) * step[0] + span  # padded coordinates
        if ready is not None:
            ready(rows_read(pixels.shape[0], pads, brd, first, stop))
        band = pad_rows(pixels, pads, brd, first, stop, dtype=pixels.dtype)
        band_alpha = None
        if alpha is not None:
            band_alpha = pad_rows(alpha, pads, brd, first, stop, dtype=alpha.dtype)
        with serial(small):  # set and reset around the band, not across the yield
            values, out_alpha = apply_kernel(
                band, kernel, alpha=band_alpha, padding=(0, 0, 0, 0), **common
            )
        yield slice(o0, o1), values, out_alpha
    if ready is not None:  # the whole file checked before the caller finishes its output
        ready(pixels.shape[0])


def row_values(out_width: int, pixels: np.ndarray) -> int:
    """Values in one output row of ``pixels`` (H, W) or (H, W, C) filtered to ``out_width``."""
    return out_width * (pixels.size // max(pixels.shape[0] * pixels.shape[1], 1))


def band_rows_for(out_width: int, channels: int) -> int:
    """Output rows of :func:`iter_kernel_bands`' bands: about :data:`BAND_BYTES` of float32.

    A band's temporaries stay in cache-friendly sizes and peak memory does not
    grow with the image. (The tiled engine uses the same bands, so that the
    paths whose rounding depends on where a band starts agree.)

    >>> band_rows_for(4000, 3)
    43
    """
    return max(1, BAND_BYTES // max(4 * out_width * channels, 1))


def output_height(
    height: int,
    width: int,
    kernel: Kernel,
    *,
    padding: Any = "same",
    stride: Any = 1,
    dilation: Any = 1,
    **_: Any,
) -> int:
    """Rows of :func:`apply_kernel`'s result for an image of ``height`` x ``width``.

    >>> from imgkernel.kernels import kernel_from_matrix
    >>> output_height(7, 5, kernel_from_matrix(np.ones((3, 3))), stride=2, padding="valid")
    3
    """
    rate = kernel.spacing(dilation)
    return conv_geometry((height, width), kernel.shape, stride, rate, padding).out_hw[0]


def _holds(dtype: np.dtype, value: float) -> bool:
    """Whether ``dtype`` stores ``value`` exactly (bands are padded in the input's dtype)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True


def _resample_like(alpha: np.ndarray, kernel: Kernel, options: dict) -> np.ndarray:
    """Put the alpha plane on the output grid: the alpha at each window's centre.

    The centre is cell ``(span-1)//2`` of the dilated window in padded
    coordinates, with the padding made by the same border as the colour, so
    ``same`` padding at stride 1 returns the alpha unchanged.
    """
    geometry = _geometry(alpha, kernel.shape, options)
    step, pads = geometry.stride, geometry.pads
    span_h, span_w = geometry.span
    ch, cw = (span_h - 1) // 2, (span_w - 1) // 2
    if (
        step == (1, 1)
        and (ch, cw) == (pads[0], pads[2])
        and (ch, cw)
        == (
            span_h - 1 - pads[1],
            span_w - 1 - pads[3],
        )
    ):
        return alpha
    out_h, out_w = geometry.out_hw
    padded = pad(alpha, pads, parse_border(options["border"]), dtype=np.float32)
    return _round_to(
        padded[
            ch : ch + (out_h - 1) * step[0] + 1 : step[0],
            cw : cw + (out_w - 1) * step[1] + 1 : step[1],
        ],
        alpha.dtype,
    )


def _geometry(image: np.ndarray, k_hw: tuple[int, int], options: dict[str, Any]) -> WindowGeometry:
    """The checked window geometry of ``options`` (stride, dilation, padding) on ``image``."""
    return conv_geometry(
        image.shape[:2],
        k_hw,
        options["stride"],
        options["dilation"],
        options["padding"],
        channels=image.shape[2] if image.ndim == 3 else 1,
    )


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return to_pixel_type(values, dtype)
