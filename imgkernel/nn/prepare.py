"""Images to network input: colour conversion, resizing and normalisation per the input spec."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.spec import InputSpec


def _spec_of(model: Any) -> InputSpec:
    """The input spec of a model, or the spec itself; a model of tensors has none."""
    if isinstance(model, InputSpec):
        return model
    if model.input_spec is None:
        dims = " x ".join("N" if d is None else str(d) for d in model.input_shape)
        raise UsageError(
            f"the model takes {dims} tensors, not images (it has no image input spec); "
            "run it on a .npy tensor with 'imgkernel run'"
        )
    return model.input_spec


def _to_float_image(image: Any) -> np.ndarray:
    """(H, W, C) float32 in 0..255 from an array or an imgkernel.images.Image."""
    max_value = None
    if hasattr(image, "pixels"):
        max_value = getattr(image, "max_value", None)
        image = image.pixels
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(f"an image must be (H, W) or (H, W, 1-4), got shape {arr.shape}")
    if max_value is None:
        if arr.dtype == np.uint8 or arr.dtype == np.bool_:
            max_value = 255 if arr.dtype == np.uint8 else 1
        elif arr.dtype == np.uint16:
            max_value = 65535
        elif np.issubdtype(arr.dtype, np.floating):
            max_value = 1.0
        elif np.issubdtype(arr.dtype, np.integer):
            max_value = 255
        else:
            raise UsageError(f"unsupported image dtype {arr.dtype}")
    out = arr.astype(np.float32)
    if float(max_value) != 255.0:
        out *= np.float32(255.0 / float(max_value))
    # drop alpha: channels 2 (LA) and 4 (RGBA)
    if out.shape[2] == 2:
        out = out[:, :, :1]
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return out


def _bilinear(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Each channel of (H, W, C) float32 ``a`` resized by Pillow's bilinear filter."""
    from PIL import Image

    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(a[:, :, c]), mode="F").resize(
                size_wh, Image.Resampling.BILINEAR
            )
        )
        for c in range(a.shape[2])
    ]
    return np.stack(planes, axis=2)


def resize_image(img: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """(H, W, C) to (height, width, C): "stretch", "fit" (letterbox), "crop" (cover) or "none"."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if mode == "none":
        raise UsageError(
            f"the image is {w}x{h} but the model takes {width}x{height} (resize is 'none')"
        )
    if mode == "stretch":
        return _bilinear(img, (width, height))
    if mode == "fit":
        s = min(height / h, width / w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        small = _bilinear(img, (nw, nh))
        out = np.zeros((height, width, img.shape[2]), np.float32)
        top, left = (height - nh) // 2, (width - nw) // 2
        out[top : top + nh, left : left + nw] = small
        return out
    # crop: cover then cut the centre
    s = max(height / h, width / w)
    nh, nw = max(height, round(h * s)), max(width, round(w * s))
    big = _bilinear(img, (nw, nh))
    top, left = (nh - height) // 2, (nw - width) // 2
    return big[top : top + height, left : left + width]


def prepare_image(model: Any, image: Any) -> np.ndarray:
    """One image -> (C, H, W) float32 network input (see :func:`prepare_images`).

    ``model`` is a :class:`imgkernel.nn.model.Model` or an :class:`InputSpec`.
    """
    spec = _spec_of(model)
    img = _to_float_image(image)
    if spec.channels == 1 and img.shape[2] == 3:
        # ITU-R 601-2 luma, as Pillow's convert("L")
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    elif spec.channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    img = resize_image(img, spec.height, spec.width, spec.resize)
    chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    chw *= np.float32(spec.scale)
    mean = np.asarray(spec.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(-1, 1, 1)
    if np.any(mean) or np.any(std != 1):
        chw = (chw - mean) / std
    return chw


def prepare_images(model: Any, images: Iterable[Any]) -> np.ndarray:
    """Images -> one (N, C, H, W) float32 batch following the model's input spec.

    Each image is an ``(H, W)``/``(H, W, C)`` array (uint8 0-255, uint16
    0-65535 or float 0-1) or an :class:`imgkernel.images.Image`. Alpha is dropped,
    grey/colour converted to the spec's ``color`` (ITU-R 601 luma for L),
    resized with Pillow's bilinear filter per ``resize``, then
    ``(v * scale - mean) / std`` per channel, with ``v`` on a 0-255 scale.
    """
    batch = [prepare_image(model, im) for im in images]
    if not batch:
        return np.zeros((0, *_spec_of(model).shape), np.float32)
    return np.stack(batch)
