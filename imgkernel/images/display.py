"""The display mapping: float results (filter responses, feature maps) to stored pixels.

:func:`to_display` is the arithmetic; :class:`Display` is the policy, what a
command's ``--clip/--abs/--signed/--normalize``, ``--scale`` and ``--offset``
ask for, and what happens when they are not given (the kernel's own mapping;
for ``.npy`` output the float32 values themselves, on full scale 1.0 by the
unit rule of :mod:`imgkernel.images.image`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from imgkernel.errors import UsageError, check_choice, check_float
from imgkernel.images.image import Image

#: Every mapping of float results to pixels (see :func:`to_display`).
DISPLAY_MODES = ("clip", "abs", "offset", "normalize")
#: The mappings that treat each value on its own (``normalize`` needs the whole
#: result): what a kernel record may name as its default display.
POINTWISE_DISPLAY_MODES = DISPLAY_MODES[:3]


def _display_max(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype == np.float32:
        return 1.0
    raise UsageError(f"display dtype must be uint8, uint16 or float32, not {dtype}")


def _row_chunks(h: int, row_size: int, target: int = 1 << 20) -> Iterator[slice]:
    rows = max(1, target // max(1, row_size))
    for start in range(0, h, rows):
        yield slice(start, min(h, start + rows))


def to_display(
    values: np.ndarray,
    *,
    mode: str,
    dtype: Any,
    max_value: float,
    scale: float = 1.0,
    offset: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Map filter results to pixel values of ``dtype`` for saving.

    ``values`` are in the input's units, where ``max_value`` is full scale
    (255 for uint8 input, 65535 for uint16, 1.0 for float).  The result uses
    the full scale of ``dtype``: 255 (uint8), 65535 (uint16) or 1.0
    (float32), so e.g. a float feature map (max_value 1.0) can be mapped
    straight to uint8.

    First ``v = values * scale + offset * max_value`` (``offset`` is a
    fraction of full scale: 0.5 adds mid-grey).  Then, by ``mode``:

    ``"clip"``
        ``v`` clipped to ``[0, max_value]``.
    ``"abs"``
        ``|v|`` clipped to ``[0, max_value]`` (edge magnitude).
    ``"offset"``
        signed results shown around mid-grey: ``v + mid`` clipped to
        ``[0, max_value]``, where ``mid = (max_value + 1) / 2`` for integer
        units (128 for 0..255, 32768 for 0..65535) and ``max_value / 2`` for
        float units.  So 0 -> 128, -128 -> 0, +127 -> 255 for uint8; use
        ``scale`` to fit a wider range (e.g. 0.5 for results in -255..255).
    ``"normalize"``
        linear stretch of ``[min(v), max(v)]`` (over all channels together)
        onto ``[0, max_value]``; a constant image gives all zeros.

    Finally the result is scaled from ``max_value`` to ``dtype``'s full
    scale and, for integer dtypes, rounded half up (``floor(v + 0.5)``, as
    Pillow does) and cast.  NaN becomes 0 and ±inf clip to the ends (ignored by
    ``normalize``'s min/max).  Work is done in float32 on chunks of rows, so
    no full-size float64 temporaries are made. ``out``, an array of
    ``values``' shape and of ``dtype``, receives the result (default: a new one).

    >>> v = np.array([[-300.0, -128.0, -1.0, 0.0, 100.4, 127.0, 300.0]], dtype=np.float32)
    >>> to_display(v, mode="clip", dtype=np.uint8, max_value=255)
    array([[  0,   0,   0,   0, 100, 127, 255]], dtype=uint8)
    >>> to_display(np.array([0.5, 1.5, 2.5]), mode="clip", dtype=np.uint8, max_value=255)
    array([1, 2, 3], dtype=uint8)
    >>> to_display(v, mode="abs", dtype=np.uint8, max_value=255)
    array([[255, 128,   1,   0, 100, 127, 255]], dtype=uint8)
    >>> to_display(v, mode="offset", dtype=np.uint8, max_value=255)
    array([[  0,   0, 127, 128, 228, 255, 255]], dtype=uint8)
    >>> to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    array([[  0,  73, 127, 128, 170, 181, 255]], dtype=uint8)
    """
    mode = check_choice(mode, "display mode", DISPLAY_MODES)
    out_dtype = np.dtype(dtype)
    out_max = _display_max(out_dtype)
    max_value = check_float(max_value, "max value", minimum=0, min_open=True)
    scale = check_float(scale, "scale")
    offset = check_float(offset, "offset")
    values = np.asarray(values)
    if values.dtype.kind not in "buif":
        raise UsageError(f"cannot display values of type {values.dtype}")
    if values.ndim == 0:
        values = values.reshape(1)
    add = offset * max_value
    if mode == "offset":
        int_units = float(max_value).is_integer() and max_value >= 2
        add += (max_value + 1) / 2 if int_units else max_value / 2

    def transformed(rows: slice) -> np.ndarray:
        if fused:  # the chunk-sized copy takes the rounding offset: one pass less
            return np.add(values[rows], np.float32(rounding), dtype=np.float32)
        v = np.array(values[rows], dtype=np.float32)  # chunk-sized float32 copy
        # inf * 0 -> nan and float32 overflow -> inf are handled below; stay quiet.
        with np.errstate(invalid="ignore", over="ignore"):
            if scale != 1.0:
                v *= np.float32(scale)
            if add != 0.0:
                v += np.float32(add)
        if mode == "abs":
            np.abs(v, out=v)
        return v

    # Integer targets round half up: floor(clip(v) + 0.5), computed as the cast's
    # truncation of clip(v + 0.5, 0.5, top + 0.5), which is the same for every
    # float32 v (v + 0.5 is monotonic) and lets one np.clip pass do the clipping.
    rounding = 0.5 if out_dtype.kind in "ui" else 0.0
    fused = values.dtype == np.float32 and (scale, add, mode) == (1.0, 0.0, "clip")
    fused = fused and out_max == max_value
    chunks = list(_row_chunks(values.shape[0], _row_size(values)))
    lo = hi = 0.0
    if mode == "normalize":
        lo, hi = _finite_range(transformed(rows) for rows in chunks)
    if out is None:
        out = np.empty(values.shape, dtype=out_dtype)
    elif out.shape != values.shape or out.dtype != out_dtype:
        raise ValueError(f"out is {out.dtype} {out.shape}, expected {out_dtype} {values.shape}")
    for rows in chunks:
        v = transformed(rows)
        with np.errstate(invalid="ignore", over="ignore"):
            if mode == "normalize" and hi > lo:
                v -= np.float32(lo)
                v *= np.float32(out_max / (hi - lo))
            elif mode == "normalize":
                v[...] = 0.0
            elif out_max != max_value:
                v *= np.float32(out_max / max_value)
            if rounding and not fused:
                v += np.float32(rounding)
        if rounding:
            np.clip(v, np.float32(rounding), np.float32(out_max + rounding), out=v)
            if np.isnan(v).any():  # NaN shows as 0 (np.clip keeps it; the cast would not)
                np.copyto(v, np.float32(rounding), where=np.isnan(v))
        else:  # float targets: fmax turns NaN (and -0.0) into +0.0 as it clips from below
            np.fmax(v, np.float32(0.0), out=v)
            np.minimum(v, np.float32(out_max), out=v)
        np.copyto(out[rows], v, casting="unsafe")
    return out


def _row_size(values: np.ndarray) -> int:
    return int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1


def _finite_range(chunks: Iterator[np.ndarray]) -> tuple[float, float]:
    """Smallest and largest finite value over all chunks; (0, 0) when there is none."""
    lo, hi = np.inf, -np.inf
    for v in chunks:
        finite = v[np.isfinite(v)]
        if finite.size:
            lo = min(lo, float(finite.min()))
            hi = max(hi, float(finite.max()))
    if not np.isfinite(lo):
        return 0.0, 0.0
    return lo, hi


class Offset(NamedTuple):
    """A value added after scaling: in the input's units, or a fraction of full scale."""

    value: float
    fraction: bool = False

    def of_full_scale(self, max_value: float) -> float:
        """The offset as a fraction of full scale ``max_value``.

        >>> Offset(64.0).of_full_scale(256.0), Offset(0.5, fraction=True).of_full_scale(255.0)
        (0.25, 0.5)
        """
        return self.value if self.fraction else self.value / max_value


@dataclass(frozen=True)
class Display:
    """The display mapping a user asked for (None: not asked, use the default).

    ``mode`` is one of :data:`DISPLAY_MODES`; without it a default applies
    (a kernel's own). Any of the three counts as asking for a mapping, which
    matters for ``.npy`` output (unmapped values unless asked).
    """

    mode: str | None = None
    scale: float | None = None
    offset: Offset | None = None

    @property
    def asked(self) -> bool:
        """Whether any mapping option was given."""
        return self.mode is not None or self.scale is not None or self.offset is not None

    def mode_or(self, default: str) -> str:
        """The mapping asked for, else ``default`` (the kernel's own).

        >>> Display().mode_or("abs"), Display(mode="clip").mode_or("abs")
        ('abs', 'clip')
        """
        return self.mode or default

    def pixels(self, values: np.ndarray, image: Image, out_format: str, default: str) -> np.ndarray:
        """Map a float result of ``image`` (in its units) to what ``out_format`` stores.

        ``.npy`` gets float32 on full scale 1.0: the values divided by the
        input's full scale, or mapped (0..1) when a mapping was asked for.
        Integer formats store the input's bit depth (8-bit for float input).

        >>> flat = Image(np.zeros((1, 1), np.uint8), None, "PNG", "-")
        >>> Display().pixels(np.array([[51.0, -51.0]]), flat, "NPY", "abs")
        array([[ 0.2, -0.2]], dtype=float32)
        >>> Display(mode="abs").pixels(np.array([[51.0, -51.0]]), flat, "PNG", "clip")
        array([[51, 51]], dtype=uint8)
        """
        scale = 1.0 if self.scale is None else self.scale
        offset = 0.0 if self.offset is None else self.offset.of_full_scale(image.max_value)
        if out_format.upper() == "NPY":
            if not self.asked:
                return np.asarray(values, dtype=np.float32) / np.float32(image.max_value)
            return to_display(
                values,
                mode=self.mode_or(default),
                dtype=np.float32,
                max_value=image.max_value,
                scale=scale,
                offset=offset,
            )
        sixteen = image.pixels.dtype == np.uint16 and out_format.upper() in ("PNG", "TIFF")
        # to_display rescales from the input's full scale to the target's itself.
        return to_display(
            values,
            mode=self.mode_or(default),
            dtype=np.uint16 if sixteen else np.uint8,
            max_value=image.max_value,
            scale=scale,
            offset=offset,
        )
