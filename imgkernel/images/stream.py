"""Results made band by band: rows go to the encoder as soon as they are computed.

A transform (``filter``, ``pool``) may return :class:`Bands` instead of one
array: the output's height and an iterator of ``(pixels, alpha)`` row bands,
top to bottom, already mapped to the stored type. :func:`write_bands` feeds
them to imgkernel's PNG writer one by one, which compresses each band on its
threads while the next band is computed, so neither the whole float result
nor the whole encoded picture's rows need exist at once. A format that
cannot be written incrementally gets the bands joined (:meth:`Bands.whole`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from imgkernel.images.deliver import deliver
from imgkernel.images.image import attach_alpha, convert_plane
from imgkernel.images.png import PngWriter
from imgkernel.images.write import check_channels

#: Formats whose encoder takes rows as they come.
STREAMED_FORMATS = ("PNG",)

Band = tuple[np.ndarray, np.ndarray | None]


@dataclass
class Bands:
    """An image result as row bands: ``height`` rows in all, each band ``(pixels, alpha)``.

    >>> parts = Bands(3, iter([(np.zeros((2, 4), np.uint8), None),
    ...                        (np.ones((1, 4), np.uint8), None)]))
    >>> parts.whole()[0].tolist()
    [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    """

    height: int
    bands: Iterator[Band]

    def whole(self, rgbx: bool = False) -> Band:
        """Every band joined: ``(pixels, alpha)`` of the whole result.

        Each band is copied into one array as it comes (no list of bands and
        a concatenated copy of them at once). With ``rgbx``, 8-bit RGB
        pixels are the first three bytes of four per pixel (a view of an
        ``(H, W, 4)`` array), the layout Pillow keeps RGB in, so an encoder
        can map them instead of copying (see :func:`imgkernel.images.write.rgbx_base`).

        >>> pixels, _ = Bands(1, iter([(np.ones((1, 2, 3), np.uint8), None)])).whole(rgbx=True)
        >>> pixels.shape, pixels.strides, pixels.base.shape
        ((1, 2, 3), (8, 4, 1), (1, 2, 4))
        """
        pixels: np.ndarray | None = None
        alpha: np.ndarray | None = None
        row = 0
        for colour, opacity in self.bands:
            if pixels is None:
                shape = (self.height, *colour.shape[1:])
                if rgbx and colour.dtype == np.uint8 and colour.shape[2:] == (3,):
                    pixels = np.empty((*shape[:2], 4), np.uint8)[:, :, :3]
                else:
                    pixels = np.empty(shape, colour.dtype)
                if opacity is not None:
                    alpha = np.empty((self.height, *opacity.shape[1:]), opacity.dtype)
            rows = pixels[row : row + len(colour)]
            if rows.strides[1:] == (4, 1):  # RGB into RGBX: one long strided copy a channel
                for c in range(3):  # (a (rows, W, 3) copy runs 3 bytes an inner loop: 5x slower)
                    rows[:, :, c] = colour[:, :, c]
            else:
                rows[...] = colour
            if alpha is not None and opacity is not None:
                alpha[row : row + len(opacity)] = opacity
            row += len(colour)
        if pixels is None or row != self.height:
            raise ValueError(f"bands hold {row} rows, expected {self.height}")
        return pixels, alpha


def write_bands(target: str, result: Bands, *, level: int) -> None:
    """Write ``result`` as a PNG, band by band, to ``target`` (atomically; ``-``: stdout).

    The PNG's colour type and bit depth come from the first band: gray, gray
    with alpha, RGB or RGBA, 8-bit, or 16-bit grayscale (16-bit colour is
    written as 8-bit, as the whole-image path does, since Pillow reads 16-bit
    colour PNGs as 8-bit).
    """
    first = next(result.bands, None)
    if first is None:
        raise ValueError("no rows to write")
    rows = _stored_rows(first)
    channels = check_channels(rows, "standard output" if target == "-" else target, "PNG")

    def encode(f: IO[bytes]) -> None:
        depth = 16 if rows.dtype == np.uint16 else 8
        with PngWriter(f, rows.shape[1], result.height, channels, depth, level) as writer:
            writer.write_rows(rows)
            for band in result.bands:
                writer.write_rows(_stored_rows(band))

    deliver(target, encode)


def _stored_rows(band: Band) -> np.ndarray:
    """A band as the PNG stores it: alpha appended; 16-bit colour brought to 8 bits."""
    pixels, alpha = band
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.dtype == np.uint16 and (pixels.ndim == 3 or alpha is not None):
        pixels = convert_plane(pixels, np.uint8)
    return attach_alpha(pixels, alpha)
