"""Looking inside a model: a layer's feature maps, conv filters, and a grid image of either."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import Conv2D
from imgkernel.nn.model import Model
from imgkernel.nn.prepare import prepare_images


def feature_maps(model: Model, image: Any, layer: int | str) -> np.ndarray:
    """The (C, H, W) output of ``layer`` for one image (array or prepared (C,H,W))."""
    x = np.asarray(image) if isinstance(image, np.ndarray) else None
    if (
        x is not None
        and x.ndim == 3
        and model.input_spec is not None
        and x.shape == model.input_spec.shape
        and x.dtype == np.float32
    ):
        batch = x[None]
    else:
        batch = prepare_images(model, [image])
    out = model.forward(batch, until=layer)[0]
    if out.ndim == 1:
        out = out[:, None, None]
    elif out.ndim == 2:
        out = out[None]
    return out


def conv_filters(model: Model, layer: int | str | None = None) -> np.ndarray:
    """Weights (K, C/groups, kh, kw) of a conv layer (default: the first one)."""
    if layer is None:
        for candidate in model.layers:
            if isinstance(candidate, Conv2D):
                return candidate.weight
        raise UsageError("the model has no conv2d layer")
    chosen = model.layer(layer)
    if not isinstance(chosen, Conv2D):
        raise UsageError(f"layer {chosen.name!r} is a {chosen.type} layer, not conv2d")
    return chosen.weight


def _normalise_tiles(tiles: np.ndarray, per_tile: bool) -> np.ndarray:
    axes = tuple(range(1, tiles.ndim)) if per_tile else None
    lo = tiles.min(axis=axes, keepdims=True) if per_tile else tiles.min()
    hi = tiles.max(axis=axes, keepdims=True) if per_tile else tiles.max()
    span = np.where(hi - lo > 0, hi - lo, 1)
    return np.clip((tiles - lo) / span * 255 + 0.5, 0, 255).astype(np.uint8)


def _tiles(arr: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(tiles, captions): one tile per map, per RGB filter or per (filter, channel)."""
    if arr.ndim == 4:
        k, c = arr.shape[:2]
        if c == 3:
            return arr.transpose(0, 2, 3, 1), [str(i) for i in range(k)]
        captions = [f"{i}" if c == 1 else f"{i}.{j}" for i in range(k) for j in range(c)]
        return arr.reshape(k * c, *arr.shape[2:]), captions
    if arr.ndim == 3:
        return arr, [str(i) for i in range(arr.shape[0])]
    if arr.ndim == 2:
        return arr[None], ["0"]
    raise UsageError(f"feature maps must be (C, H, W) or filters (K, C, kh, kw), got {arr.shape}")


def _draw_captions(
    canvas: np.ndarray, captions: list[str], cols: int, cell_hw: tuple[int, int], gap: int
) -> np.ndarray:
    from PIL import Image, ImageDraw

    th, tw = cell_hw
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    fill = (255, 255, 255) if canvas.ndim == 3 else 255
    for i, caption in enumerate(captions):
        r, c_ = divmod(i, cols)
        draw.text((gap + c_ * (tw + gap), gap + r * (th + gap)), caption, fill=fill)
    return np.asarray(pil)


def feature_grid(
    maps: np.ndarray,
    *,
    columns: int | None = None,
    cell: int = 64,
    gap: int = 4,
    labels: bool | Sequence[str] = True,
    normalize: str = "each",
    limit: int | None = 256,
) -> np.ndarray:
    """A labelled grid image of feature maps or conv filters.

    ``maps`` is (C, H, W): one grey tile per channel; or conv weights
    (K, C, kh, kw): one RGB tile per filter if C == 3 (as the classic picture
    of AlexNet's first layer), else one grey tile per (filter, channel).
    Each tile is scaled by an integer factor (nearest neighbour) to about
    ``cell`` pixels, contrast-stretched (``normalize`` "each" tile or "all"
    together) and captioned with its index (``labels=False`` for none, or a
    list of captions). At most ``limit`` tiles are drawn.

    Returns uint8 (H, W) for grey tiles, (H, W, 3) for RGB filter tiles.
    """
    tiles, captions = _tiles(np.asarray(maps, dtype=np.float32))
    if tiles.shape[0] == 0:
        raise UsageError("there are no feature maps to draw")
    if not isinstance(labels, bool):
        captions = [str(s) for s in labels]
    if limit is not None:
        tiles = tiles[:limit]
    if normalize not in ("each", "all"):
        raise UsageError(f"normalize must be 'each' or 'all', got {normalize!r}")
    img = _normalise_tiles(tiles, normalize == "each")
    n, th, tw = img.shape[:3]
    factor = max(1, cell // max(th, tw))
    img = np.repeat(np.repeat(img, factor, axis=1), factor, axis=2)
    th, tw = th * factor, tw * factor
    cols = min(columns, n) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    label_h = 12 if labels is not False else 0
    height = rows * (th + label_h + gap) + gap
    width = cols * (tw + gap) + gap
    canvas = np.full((height, width, 3) if img.ndim == 4 else (height, width), 32, np.uint8)
    for i in range(n):
        r, c_ = divmod(i, cols)
        y = gap + r * (th + label_h + gap) + label_h
        x = gap + c_ * (tw + gap)
        canvas[y : y + th, x : x + tw] = img[i]
    if label_h:
        canvas = _draw_captions(canvas, captions[:n], cols, (th + label_h, tw), gap)
    return canvas
