"""The decoded-image record, the pixel types it holds, and the one unit rule.

Arrays follow one convention throughout imgkernel: ``(H, W)`` for grayscale,
``(H, W, C)`` channels-last otherwise, with dtype ``uint8``, ``uint16`` or
``float32``. ``.npy`` arrays in other layouts (``(C, H, W)``,
``(N, C, H, W)``) are viewed as ``(H, W, C)`` pixels by an
:class:`ArrayLayout` and put back into their layout on output.

The unit rule (scikit-image's): full scale is 255 for uint8, 65535 for
uint16 and 1.0 for floats (:func:`max_value_for`). 8- and 16-bit data are
divided by 255 or 65535 on their way to float output, float data is
multiplied on its way to 8/16-bit output, and numbers a user gives (a bias,
an offset) are in the input file's units. Results stored as integers are
rounded half up (:func:`to_pixel_type`), as Pillow does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


#: How a 3-D ``.npy`` array's axes can be read (``--layout``).
LAYOUTS = ("hwc", "chw")


@dataclass(frozen=True)
class ArrayLayout:
    """How an ``.npy`` array's axes map onto ``(H, W[, C])`` pixels, and back.

    ``name`` is ``hw`` (2-D), ``hwc`` (3-D, channels last), ``chw`` (3-D,
    channels first, asked for with ``--layout chw``) or ``nchw`` (every 4-D
    array: a CNN batch, whose ``N * C`` planes become the channels). ``lead``
    holds the leading sizes ``(C,)`` or ``(N, C)``.

    >>> maps = np.zeros((2, 8, 5, 6), np.float32)
    >>> layout = ArrayLayout.of(maps)
    >>> layout, layout.pixels(maps).shape
    (ArrayLayout(name='nchw', lead=(2, 8)), (5, 6, 16))
    >>> layout.restore(np.zeros((3, 3, 16), np.float32)).shape
    (2, 8, 3, 3)
    >>> ArrayLayout.of(np.zeros((3, 4, 1))).restore(np.zeros((2, 2))).shape
    (2, 2, 1)
    """

    name: str
    lead: tuple[int, ...] = ()

    @classmethod
    def of(cls, array: np.ndarray, three_d: str = "hwc") -> ArrayLayout:
        """The layout of ``array``; ``three_d`` says how to read a 3-D one."""
        if array.ndim == 2:
            return cls("hw")
        if array.ndim == 4:
            return cls("nchw", tuple(array.shape[:2]))
        if array.ndim == 3 and three_d == "chw":
            return cls("chw", (array.shape[0],))
        if array.ndim == 3:
            return cls("hwc")
        raise UsageError(
            f"array shape {array.shape} is not an image or feature map; expected (H, W), "
            "(H, W, C), (C, H, W) with --layout chw, or (N, C, H, W)"
        )

    def pixels(self, array: np.ndarray) -> np.ndarray:
        """``array`` as ``(H, W)`` or ``(H, W, C)`` pixels."""
        if self.name == "chw":
            return np.ascontiguousarray(np.moveaxis(array, 0, -1))
        if self.name == "nchw":
            n, c, h, w = array.shape
            return np.ascontiguousarray(array.transpose(2, 3, 0, 1)).reshape(h, w, n * c)
        return array

    def restore(self, pixels: np.ndarray) -> np.ndarray:
        """A result computed on :meth:`pixels` back in this layout (and rank)."""
        if self.name == "hw":
            return pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
        planes = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
        if self.name == "chw":
            return np.ascontiguousarray(np.moveaxis(planes, -1, 0))
        if self.name == "nchw":
            h, w = planes.shape[:2]
            return np.ascontiguousarray(planes.reshape(h, w, *self.lead).transpose(2, 3, 0, 1))
        return planes


@dataclass
class Image:
    """A decoded image.

    ``pixels`` is ``(H, W)`` or ``(H, W, C)`` (uint8, uint16 or float32);
    ``alpha`` is the ``(H, W)`` alpha plane (same dtype) when it was split off,
    else None; ``format`` is the sniffed format name ("PNG", "NPY", ...);
    ``source`` is the path as given, or ``"-"`` for standard input;
    ``layout`` says how an ``.npy`` array's axes became ``pixels`` (None for
    image files); ``frames`` counts the frames of an animated or multi-page
    file (``pixels`` holds the first; ``more_frames`` the others when they
    were read), and ``info`` keeps what a re-encoding needs (frame duration,
    loop count). ``arriving`` is set while rows are still being decoded
    (``read_image(..., progressive=True)``): read rows only after
    :meth:`wait_rows`.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    source: str
    layout: ArrayLayout | None = None
    frames: int = 1
    more_frames: tuple[Image, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    arriving: Any = None

    def wait_rows(self, rows: int | None = None) -> None:
        """Return once the first ``rows`` rows (default: all) of the pixels are decoded.

        >>> Image(np.zeros((2, 2), np.uint8), None, "PNG", "-").wait_rows()  # decoded already
        """
        if self.arriving is not None:
            self.arriving.wait(rows)

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
    return to_pixel_type(out, dtype)


def to_pixel_type(values: np.ndarray, dtype: Any) -> np.ndarray:
    """``values`` stored as ``dtype``: integers clipped to the type's range and rounded half up.

    Half up (``floor(v + 0.5)``), as Pillow rounds, not numpy's half to even:

    >>> to_pixel_type(np.array([0.5, 1.5, 2.5, -3.0, 300.0]), np.uint8)
    array([  1,   2,   3,   0, 255], dtype=uint8)
    >>> to_pixel_type(np.array([0.25]), np.float32)
    array([0.25], dtype=float32)
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        return np.asarray(values).astype(dtype)
    info = np.iinfo(dtype)
    out = np.clip(values, info.min, info.max)
    return np.floor(out + 0.5, out=out if out.dtype.kind == "f" else None).astype(dtype)
