"""The decoded-image record and the pixel types it holds.

Arrays follow one convention throughout imgkernel: ``(H, W)`` for grayscale,
``(H, W, C)`` channels-last otherwise, with dtype ``uint8``, ``uint16`` or
``float32``. Full scale is 255, 65535 or 1.0 (:func:`max_value_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgkernel.errors import UsageError


def max_value_for(dtype: Any) -> float:
    """Full-scale value of a dtype: 255 for uint8, 65535 for uint16, 1.0 for floats.

    >>> max_value_for(np.uint8), max_value_for(np.uint16), max_value_for(np.float32)
    (255.0, 65535.0, 1.0)
    """
    dt = np.dtype(dtype)
    if dt.kind in "fb":
        return 1.0
    if dt.kind in "ui":
        return float(np.iinfo(dt).max)
    raise UsageError(f"unsupported pixel type {dt}")


@dataclass
class Image:
    """A decoded image.

    ``pixels`` is ``(H, W)`` or ``(H, W, C)`` (uint8, uint16 or float32);
    ``alpha`` is the ``(H, W)`` alpha plane (same dtype) when it was split off,
    else None; ``format`` is the sniffed format name ("PNG", "NPY", ...);
    ``source`` is the path as given, or ``"-"`` for standard input.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    source: str

    @property
    def max_value(self) -> float:
        """255 for uint8, 65535 for uint16, 1.0 for float data."""
        return max_value_for(self.pixels.dtype)

    @property
    def channels(self) -> int:
        """Number of colour channels in ``pixels`` (1 for ``(H, W)``)."""
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def display_name(self) -> str:
        """The source for messages: the path, or "standard input"."""
        return "standard input" if self.source == "-" else self.source


def attach_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Append ``alpha`` as the last channel of ``pixels`` (no-op when None).

    The alpha plane is converted to the dtype of ``pixels`` (rescaled between
    full scales if the dtypes differ).

    >>> attach_alpha(np.zeros((2, 3), np.uint8), np.full((2, 3), 255, np.uint8)).shape
    (2, 3, 2)
    """
    if alpha is None:
        return pixels
    alpha = np.asarray(alpha)
    if alpha.shape != pixels.shape[:2]:
        raise UsageError(
            f"alpha plane has shape {alpha.shape}, expected {pixels.shape[:2]} to match the image"
        )
    alpha = convert_plane(alpha, pixels.dtype)
    base = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    return np.concatenate([base, alpha[:, :, np.newaxis]], axis=2)


def convert_plane(plane: np.ndarray, dtype: Any) -> np.ndarray:
    """Convert an array between pixel dtypes, rescaling full scale to full scale.

    >>> convert_plane(np.array([0, 257, 65535], np.uint16), np.uint8)
    array([  0,   1, 255], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    if plane.dtype == dtype:
        return plane
    src_max = max_value_for(plane.dtype)
    dst_max = max_value_for(dtype)
    out = plane.astype(np.float32) * np.float32(dst_max / src_max)
    if dtype.kind in "ui":
        np.clip(out, 0, dst_max, out=out)
        np.rint(out, out=out)
    return out.astype(dtype)
