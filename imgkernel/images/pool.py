"""Pooling image files: alpha pooled like a colour channel, pixel types kept, stats as text.

The arithmetic is :func:`imgkernel.core.pool2d` / :func:`~imgkernel.core.global_pool`;
this module fits it to image files: the alpha plane joins the channels, an
8/16-bit image gives an 8/16-bit image (averages rounded half up), float
data goes to 8-bit images on full scale 1.0, ``.npy`` output holds max/min
results in the input's type and averages as floats on full scale 1.0 (the
unit rule of :mod:`imgkernel.images.image`), and ``--global`` results go out
as a line of text or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from imgkernel.core import global_pool, pool2d
from imgkernel.core.geometry import pool_geometry
from imgkernel.core.poolbands import iter_pool_bands
from imgkernel.errors import UsageError
from imgkernel.images.batch import OutputOptions, Result, run_images
from imgkernel.images.display import to_display
from imgkernel.images.formats import is_text_output
from imgkernel.images.image import Image, attach_alpha, to_pixel_type
from imgkernel.images.many import BatchOptions
from imgkernel.images.stream import STREAMED_FORMATS, Bands

POOL_MODES = ("max", "avg", "mean", "min")


def pool_files(
    inputs: Sequence[str],
    options: OutputOptions,
    *,
    batch: BatchOptions | None = None,
    **pooling: Any,
) -> None:
    """Pool each input with :func:`pool_image` (``pooling`` are its keywords) and write it.

    The window is checked before any input is read. ``batch`` says how many
    inputs run (:mod:`imgkernel.images.many`); TIFF to TIFF over 67 Mpx,
    Zarr in or out, and TIFF to TIFF with ``batch.tile_size`` are pooled
    tile by tile (:func:`~imgkernel.images.tiled.pool_large`; not ``--global``).
    """
    from imgkernel.images.route import LargeRoute
    from imgkernel.images.tiled import pool_large

    batch = batch or BatchOptions()
    global_ = pooling.get("global_", False)
    _check_window(pooling.get("size"), pooling.get("stride"), global_)
    if global_ and batch.tile_size is not None:
        raise UsageError("--global pools the whole image; drop --tile-size")
    large = None
    if not global_:
        tiled = {k: v for k, v in pooling.items() if k != "global_"}
        level = options.save.get("compress_level")
        large = LargeRoute(partial(pool_large, level=level, **tiled), tile_size=batch.tile_size)
    run_images(inputs, PoolTransform(**pooling), options, large=large, batch=batch)


class PoolTransform:
    """:func:`pool_image` with its keywords, streaming, as a picklable transform."""

    #: It reads its input band by band, so a PNG may still be decoding (Image.wait_rows).
    progressive_input = True

    def __init__(self, **pooling: Any):
        self.pooling = pooling

    def __call__(self, image: Image, out_format: str) -> Result:
        return pool_image(image, out_format, stream=True, **self.pooling)


def pool_image(
    image: Image,
    out_format: str,
    *,
    size: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    mode: str = "max",
    global_: bool = False,
    stream: bool = False,
    **window: Any,
) -> Result:
    """Pool one image for ``out_format``: ``(pixels, alpha)``, or a text line for txt/json.

    ``global_`` pools the whole image to one value per channel; otherwise
    ``size`` is required. ``mode`` is max, avg (or mean) or min; ``window``:
    ``padding``, ``dilation``, ``ceil_mode``, ``count_include_pad`` as
    :func:`imgkernel.core.pool2d` takes them. With ``stream`` and a format
    written row by row (PNG), the result comes as :class:`Bands`, each pooled
    from only the input rows it needs.

    >>> image = Image(np.arange(16, dtype=np.uint8).reshape(4, 4), None, "PNG", "a.png")
    >>> pool_image(image, "PNG", size=(2, 2), mode="avg")[0]  # 2.5 -> 3, half up
    array([[ 3,  5],
           [11, 13]], dtype=uint8)
    >>> pool_image(image, "JSON", mode="max", global_=True)
    '{"source": "a.png", "mode": "max", "gray": 15.0}'
    """
    size = _check_window(size, stride, global_)
    mode = "avg" if mode == "mean" else mode
    pixels = attach_alpha(image.pixels, image.alpha)
    if stream and size is not None and out_format.upper() in STREAMED_FORMATS:
        height = pool_geometry(pixels.shape[:2], size, stride, **_geometry(window)).out_hw[0]
        ready = image.wait_rows if image.arriving is not None else None
        parts = iter_pool_bands(pixels, size, stride, mode=mode, ready=ready, **window)
        return Bands(
            height, (_split(image, _stored(band, image.pixels.dtype)) for _, band in parts)
        )
    image.wait_rows()  # a PNG still decoding: the whole image is read below
    if size is None:
        pooled = global_pool(pixels, mode)
    else:
        pooled = pool2d(pixels, size, stride, mode=mode, **window)
    if is_text_output(out_format):
        if not global_:
            raise UsageError("txt/json output needs --global (one value per channel)")
        return _summary(image, pooled, mode, json_line=out_format.upper() == "JSON")
    if out_format.upper() == "NPY":
        if pooled.dtype.kind == "f" and image.pixels.dtype.kind in "ui":
            pooled = pooled / np.float32(image.max_value)  # the unit rule: floats on 0..1
        return pooled, None
    return _split(image, _stored(pooled, image.pixels.dtype))


def _split(image: Image, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The pooled alpha channel split off again (it was pooled like a colour)."""
    if image.alpha is None:
        return pooled, None
    alpha = pooled[:, :, -1]
    colour = pooled[:, :, :-1]
    if colour.shape[2] == 1 and image.pixels.ndim == 2:
        colour = colour[:, :, 0]
    return colour, alpha


def _geometry(window: dict[str, Any]) -> dict[str, Any]:
    """The keywords of ``window`` that place the windows (not how they are reduced)."""
    return {k: window[k] for k in ("padding", "dilation", "ceil_mode") if k in window}


def _check_window(
    size: tuple[int, int] | None, stride: tuple[int, int] | None, global_: bool
) -> tuple[int, int] | None:
    """The window size, None for global pooling; one of the two must be asked for."""
    if global_ and (size or stride):
        raise UsageError("--global pools the whole image; drop --size/--stride")
    if not global_ and size is None:
        raise UsageError("give --size K (or --global)")
    return size


def _stored(pooled: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """What an image file stores: integer input stays integer (averages rounded half up,
    as Pillow's ``reduce``); float input (full scale 1.0) becomes 8-bit."""
    if pooled.dtype == dtype and dtype.kind in "ui":
        return pooled
    if dtype.kind in "ui":
        return to_pixel_type(pooled, dtype)
    return to_display(pooled, mode="clip", dtype=np.uint8, max_value=1.0)


def _summary(image: Image, pooled: np.ndarray, mode: str, *, json_line: bool) -> str:
    values = [float(v) for v in np.asarray(pooled, dtype=np.float64).reshape(-1)]
    names = channel_names(len(values), image.alpha is not None)
    if json_line:
        return json.dumps(
            {"source": image.source, "mode": mode, **dict(zip(names, values, strict=True))}
        )
    return "\t".join(f"{n}={v:.6g}" for n, v in zip(names, values, strict=True))


def channel_names(count: int, has_alpha: bool) -> list[str]:
    """Names for ``count`` pooled values: gray, red/green/blue, or c0, c1...; alpha last.

    >>> channel_names(4, True), channel_names(2, False)
    (['red', 'green', 'blue', 'alpha'], ['c0', 'c1'])
    """
    colour = {1: ["gray"], 3: ["red", "green", "blue"]}
    base = count - 1 if has_alpha else count
    names = colour.get(base, [f"c{i}" for i in range(base)])
    return names + (["alpha"] if has_alpha else [])
