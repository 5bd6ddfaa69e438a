"""Pooling image files: alpha pooled like a colour channel, pixel types kept, stats as text.

The arithmetic is :func:`imgkernel.core.pool2d` / :func:`~imgkernel.core.global_pool`;
this module fits it to image files: the alpha plane joins the channels, an
8/16-bit image gives an 8/16-bit image (averages rounded), ``.npy`` keeps the
floats, and ``--global`` results go out as a line of text or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from imgkernel.core import global_pool, pool2d
from imgkernel.errors import UsageError
from imgkernel.images.batch import OutputOptions, Result, run_images
from imgkernel.images.formats import is_text_output
from imgkernel.images.image import Image, attach_alpha

POOL_MODES = ("max", "avg", "mean", "min")


def pool_files(inputs: Sequence[str], options: OutputOptions, **pooling: Any) -> None:
    """Pool each input with :func:`pool_image` (``pooling`` are its keywords) and write it.

    The window is checked before any input is read.
    """
    _check_window(pooling.get("size"), pooling.get("stride"), pooling.get("global_", False))
    run_images(inputs, partial(pool_image, **pooling), options)


def pool_image(
    image: Image,
    out_format: str,
    *,
    size: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    mode: str = "max",
    global_: bool = False,
    **window: Any,
) -> Result:
    """Pool one image for ``out_format``: ``(pixels, alpha)``, or a text line for txt/json.

    ``global_`` pools the whole image to one value per channel; otherwise
    ``size`` is required. ``mode`` is max, avg (or mean) or min; ``window``:
    ``padding``, ``dilation``, ``ceil_mode``, ``count_include_pad`` as
    :func:`imgkernel.core.pool2d` takes them.

    >>> image = Image(np.arange(16, dtype=np.uint8).reshape(4, 4), None, "PNG", "a.png")
    >>> pool_image(image, "PNG", size=(2, 2), mode="avg")[0]
    array([[ 2,  4],
           [10, 12]], dtype=uint8)
    >>> pool_image(image, "JSON", mode="max", global_=True)
    '{"source": "a.png", "mode": "max", "gray": 15.0}'
    """
    size = _check_window(size, stride, global_)
    mode = "avg" if mode == "mean" else mode
    has_alpha = image.alpha is not None
    pixels = attach_alpha(image.pixels, image.alpha)
    layout = "tensor" if pixels.ndim == 4 else "image"  # (N, C, H, W) feature maps
    if size is None:
        pooled = global_pool(pixels, mode, layout=layout)
    else:
        pooled = pool2d(pixels, size, stride, mode=mode, layout=layout, **window)
    if is_text_output(out_format):
        if not global_:
            raise UsageError("txt/json output needs --global (one value per channel)")
        return _summary(image, pooled, mode, json_line=out_format.upper() == "JSON")
    if out_format.upper() == "NPY":
        return pooled, None
    pooled = _round_to(pooled, image.pixels.dtype)
    if not has_alpha:
        return pooled, None
    alpha = pooled[:, :, -1]
    pooled = pooled[:, :, :-1]
    if pooled.shape[2] == 1 and image.pixels.ndim == 2:
        pooled = pooled[:, :, 0]
    return pooled, alpha


def _check_window(
    size: tuple[int, int] | None, stride: tuple[int, int] | None, global_: bool
) -> tuple[int, int] | None:
    """The window size, None for global pooling; one of the two must be asked for."""
    if global_ and (size or stride):
        raise UsageError("--global pools the whole image; drop --size/--stride")
    if not global_ and size is None:
        raise UsageError("give --size K (or --global)")
    return size


def _round_to(pooled: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Integer input gives integer output: averages rounded, clipped to the type's range."""
    if pooled.dtype == dtype or dtype.kind not in "ui":
        return pooled
    info = np.iinfo(dtype)
    return np.clip(np.rint(pooled), info.min, info.max).astype(dtype)


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
