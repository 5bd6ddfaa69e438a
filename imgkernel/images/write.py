"""Writing images, arrays and text; the one table of per-format save options.

Every write goes through :func:`imgkernel.images.deliver.deliver` (atomic,
``"-"`` for standard output, binary refused on a terminal). What each format
can hold:

======  ==============================  =================================
format  uint8                           uint16 / float32
======  ==============================  =================================
PNG     L, LA, RGB, RGBA                16-bit grayscale; float: error
TIFF    L, LA, RGB, RGBA                16-bit grayscale; float grayscale
JPEG    L, RGB (alpha dropped)          scaled to 8 bits; float: error
WEBP    RGB, RGBA (gray stored as RGB)  scaled to 8 bits; float: error
BMP     L, RGB (alpha dropped)          scaled to 8 bits; float: error
GIF     256 colours (Pillow quantises)  scaled to 8 bits; float: error
PPM     L (PGM), RGB (alpha dropped)    16-bit PGM; float: error
NPY     the array as it is, alpha appended as the last channel
======  ==============================  =================================

"Alpha dropped" means the colour channels are written unchanged and the
alpha plane is discarded (no compositing onto a background, no warning).
16-bit data that the format can not hold is scaled to 8 bits with
``round(v / 257)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import IO, Any, NamedTuple

import numpy as np

from imgkernel.errors import ImgkernelError, UsageError, check_int
from imgkernel.images.deliver import check_target, deliver
from imgkernel.images.formats import format_from_name, is_binary_format, normalize_format
from imgkernel.images.image import attach_alpha, convert_plane
from imgkernel.images.png import write_png

# PNG is written by imgkernel's own encoder (images/png.py: numpy row filters,
# 1 MiB strips deflated in parallel by python-isal / zlib-ng and joined into one
# zlib stream). On a 12 MP photo, one core: level 1 0.29 CPU-s for 14.9 MB,
# level 6 0.44 s for the same size, Pillow's zlib 1.03 s (level 1, 18.8 MB) and
# 6.0 s (level 6, 16.1 MB); see benchmarks/bench_png.py and png.py's level table.
# Default: 1, the fastest level that already filters every row.
DEFAULT_PNG_COMPRESS_LEVEL = 1
DEFAULT_JPEG_QUALITY = 90
DEFAULT_WEBP_QUALITY = 90


class SaveOption(NamedTuple):
    """An encoder setting: the formats it applies to (each with its default) and its range."""

    defaults: Mapping[str, int]
    minimum: int
    maximum: int

    def check(self, name: str, value: Any) -> int | None:
        """``value`` as an int in range (None: the format's default)."""
        if value is None:
            return None
        what = name.replace("_", " ")
        return check_int(value, what, minimum=self.minimum, maximum=self.maximum)


#: Per-format save options, by the keyword :func:`write_image` and Pillow's ``save`` take.
#: A new encoder setting is one entry here (and one in ``imgkernel.cli.params``).
SAVE_OPTIONS: dict[str, SaveOption] = {
    "compress_level": SaveOption({"PNG": DEFAULT_PNG_COMPRESS_LEVEL}, 0, 9),
    "quality": SaveOption({"JPEG": DEFAULT_JPEG_QUALITY, "WEBP": DEFAULT_WEBP_QUALITY}, 1, 100),
}

_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def check_save_options(options: Mapping[str, Any]) -> dict[str, int | None]:
    """Validate ``options`` against :data:`SAVE_OPTIONS` (unknown names are a TypeError).

    >>> check_save_options({"quality": 80, "compress_level": None})
    {'quality': 80, 'compress_level': None}
    >>> check_save_options({"quality": 0})
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: quality must be at least 1, got 0
    """
    unknown = sorted(set(options) - set(SAVE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown save option {unknown[0]!r} (known: {', '.join(SAVE_OPTIONS)})")
    return {name: SAVE_OPTIONS[name].check(name, value) for name, value in options.items()}


def pillow_options(fmt: str, options: Mapping[str, int | None]) -> dict[str, int]:
    """The ``save()`` keywords for ``fmt``: the options that apply to it, else their defaults.

    >>> pillow_options("PNG", {"quality": 50}), pillow_options("JPEG", {"quality": 50})
    ({'compress_level': 1}, {'quality': 50})
    """
    chosen: dict[str, int] = {}
    for name, option in SAVE_OPTIONS.items():
        if fmt in option.defaults:
            value = options.get(name)
            chosen[name] = option.defaults[fmt] if value is None else int(value)
    return chosen


def write_image(
    target: str,
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    format: str | None = None,
    **options: int | None,
) -> None:
    """Write ``pixels`` (plus an optional alpha plane) to ``target`` atomically.

    ``target`` ``"-"`` writes to standard output (refused if it is a
    terminal).  The format comes from ``format`` if given, else from the
    target's extension (PNG for standard output).  ``options`` are the
    :data:`SAVE_OPTIONS`: ``compress_level`` (0-9, default
    :data:`DEFAULT_PNG_COMPRESS_LEVEL`) applies to PNG, ``quality`` (1-100,
    default 90) to JPEG and WebP; each is ignored by other formats. See the
    module docstring for what each format can store.
    """
    target, fmt, shown = _resolve_target(target, format)
    save = check_save_options(options)
    # Check and convert the data before creating any file.
    arr = _prepare(shown, pixels, alpha, fmt)
    deliver(target, lambda f: _encode(shown, f, arr, fmt, save), binary=is_binary_format(fmt))


#: Formats that hold several frames (an animation or pages): Pillow's ``save_all``.
MULTI_FRAME_FORMATS = ("GIF", "TIFF", "WEBP", "PNG")


def write_frames(
    target: str,
    frames: Sequence[tuple[np.ndarray, np.ndarray | None]],
    *,
    format: str | None = None,
    duration: Any = None,
    loop: int | None = None,
    **options: int | None,
) -> None:
    """Write ``(pixels, alpha)`` frames as one animated or multi-page file, atomically.

    GIF, TIFF, WebP and PNG (APNG) hold several frames; ``duration`` (ms,
    one number or one per frame) and ``loop`` are kept for animations.
    """
    target, fmt, shown = _resolve_target(target, format)
    if fmt not in MULTI_FRAME_FORMATS:
        raise UsageError(f"{shown}: {fmt} cannot hold several frames")
    save = check_save_options(options)
    arrays = [_prepare(shown, pixels, alpha, fmt) for pixels, alpha in frames]
    extra: dict[str, Any] = {"save_all": True}
    if duration is not None and fmt != "TIFF":
        extra["duration"] = duration
    if loop is not None and fmt in ("GIF", "WEBP", "PNG"):
        extra["loop"] = loop

    def encode(f: IO[bytes]) -> None:
        from PIL import Image as PILImage

        first, *rest = (PILImage.fromarray(arr) for arr in arrays)
        options_for = {**pillow_options(fmt, save), **extra}
        first.save(f, format=fmt, append_images=rest, **options_for)

    deliver(target, encode, binary=True)


def _resolve_target(target: str, format: str | None) -> tuple[str, str, str]:
    """``(target, format, name for messages)``; the format from ``format`` or the name."""
    target = os.fspath(target)
    if format is not None:
        fmt = normalize_format(format)
    else:
        named = format_from_name(target)
        if named is None and target != "-":
            raise UsageError(
                f"{target}: cannot tell the image format from the name; add an extension "
                "such as .png or choose a format"
            )
        fmt = named or "PNG"
    if target != "-":
        check_target(target)
    return target, fmt, "standard output" if target == "-" else target


def write_text(target: str, text: str) -> None:
    """Write UTF-8 text to ``target`` atomically (``"-"``: standard output)."""

    def encode(f: IO[bytes]) -> None:
        f.write(text.encode("utf-8"))

    deliver(target, encode, binary=False)


def write_array(target: str, array: np.ndarray) -> None:
    """Save any numeric array as ``.npy`` to ``target`` atomically (``"-"``: stdout)."""
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise UsageError("cannot save an object array")
    deliver(target, lambda f: np.save(f, arr, allow_pickle=False))


def check_channels(pixels: np.ndarray, shown: str = "", fmt: str = "") -> int:
    """The channel count of ``(H, W[, C])`` pixels an image format can store (1-4)."""
    if pixels.ndim == 2:
        return 1
    if pixels.ndim == 3 and 1 <= pixels.shape[2] <= 4:
        return int(pixels.shape[2])
    where = f"{shown}: " if shown else ""
    if pixels.ndim == 3:
        raise UsageError(
            f"{where}{pixels.shape[2]} channels cannot be stored as {fmt or 'an image'} "
            "(at most 4); write .npy instead (--format npy)"
        )
    raise UsageError(f"{where}cannot save an array of shape {pixels.shape} as an image")


def _prepare(shown: str, pixels: np.ndarray, alpha: np.ndarray | None, fmt: str) -> np.ndarray:
    """Validate and convert to the array that will be encoded (channels incl. alpha)."""
    pixels = np.asarray(pixels)
    if pixels.dtype.kind == "b":
        pixels = pixels.astype(np.uint8) * np.uint8(255)
    elif pixels.dtype == np.float64 or pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    if pixels.dtype not in (np.uint8, np.uint16, np.float32):
        raise UsageError(
            f"{shown}: cannot save {pixels.dtype} pixels; need uint8, uint16 or float32"
        )
    if fmt == "NPY" and (alpha is None or pixels.ndim not in (2, 3)):
        return pixels  # any shape: feature maps keep their layout
    channels = check_channels(pixels, shown, fmt)
    if channels == 1 and pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    if alpha is not None:
        if channels in (2, 4):
            raise UsageError(f"{shown}: image already has {channels} channels; cannot add alpha")
        pixels = attach_alpha(pixels, alpha)
        channels += 1
    if fmt == "NPY":
        return pixels
    if pixels.dtype == np.float32:
        if fmt == "TIFF" and channels == 1:
            return pixels
        where = "grayscale .tif or .npy" if channels == 1 or fmt != "TIFF" else ".npy"
        raise UsageError(
            f"{shown}: {fmt} cannot store float32 {'' if channels == 1 else 'colour '}data; "
            f"save as {where}, or map the values to 8/16-bit first"
        )
    has_alpha = channels in (2, 4)
    if has_alpha and fmt in ("JPEG", "BMP", "PPM"):
        pixels = pixels[:, :, :-1]
        channels -= 1
        if channels == 1:
            pixels = pixels[:, :, 0]
    if pixels.dtype == np.uint16:
        keeps_16 = channels == 1 and fmt in ("PNG", "TIFF", "PPM")
        if not keeps_16:
            pixels = convert_plane(pixels, np.uint8)
    if fmt == "WEBP" and channels in (1, 2):
        # WebP has no grayscale: store gray as RGB (and gray+alpha as RGBA).
        gray = pixels if channels == 1 else pixels[:, :, 0]
        planes = [gray, gray, gray] + ([pixels[:, :, 1]] if channels == 2 else [])
        pixels = np.stack(planes, axis=2)
    if fmt == "JPEG" and rgbx_base(pixels) is not None:
        return pixels  # mapped by the encoder as it stands (see _pillow_image)
    return np.ascontiguousarray(pixels)


def rgbx_base(pixels: np.ndarray) -> np.ndarray | None:
    """The ``(H, W, 4)`` array whose first three bytes a pixel 8-bit RGB ``pixels`` are, or None.

    Pillow keeps RGB four bytes a pixel, so such pixels can be handed to it
    without the copy ``Image.fromarray`` makes (48 MB for 12 megapixels).

    >>> rgba = np.zeros((2, 3, 4), np.uint8)
    >>> rgbx_base(rgba[:, :, :3]) is rgba, rgbx_base(np.zeros((2, 3, 3), np.uint8))
    (True, None)
    """
    base = pixels.base
    if (
        pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 3
        or not isinstance(base, np.ndarray)
        or base.shape != (*pixels.shape[:2], 4)
        or base.dtype != np.uint8
        or not base.flags.c_contiguous
        or pixels.strides != base.strides
        or pixels.__array_interface__["data"][0] != base.__array_interface__["data"][0]
    ):
        return None
    return base


def _pillow_image(arr: np.ndarray) -> Any:
    """Pillow's image of an array converted by :func:`_prepare`: L, LA, RGB, RGBA, I;16, F.

    RGB pixels that already sit four bytes apart are mapped as Pillow's RGBX
    (only JPEG gets them: it stores the three colour bytes, as for RGB).
    """
    from PIL import Image as PILImage

    base = rgbx_base(arr)
    if base is not None:
        height, width = arr.shape[:2]
        return PILImage.frombuffer("RGBX", (width, height), base, "raw", "RGBX", 0, 1)
    img = PILImage.fromarray(arr)
    expected = {np.dtype(np.float32): "F", np.dtype(np.uint16): "I;16"}.get(arr.dtype)
    if img.mode != (expected or _PIL_MODES[check_channels(arr)]):  # pragma: no cover - sanity check
        raise AssertionError(f"unexpected Pillow mode {img.mode} for {arr.dtype} {arr.shape}")
    return img


def _encode(
    shown: str, f: IO[bytes], arr: np.ndarray, fmt: str, save: Mapping[str, int | None]
) -> None:
    """Encode an array already converted by :func:`_prepare`."""
    if fmt == "NPY":
        np.save(f, arr, allow_pickle=False)
        return
    if fmt == "PNG":
        # imgkernel's own PNG writer: numpy row filters and parallel deflate strips
        # (images/png.py), several times faster than Pillow's zlib encoder.
        level = save.get("compress_level")
        write_png(f, arr, DEFAULT_PNG_COMPRESS_LEVEL if level is None else int(level))
        return
    img = _pillow_image(arr)
    try:
        img.save(f, format=fmt, **pillow_options(fmt, save))
    except OSError as exc:
        if isinstance(exc, (PermissionError, FileNotFoundError)) or exc.errno is not None:
            raise
        raise ImgkernelError(f"{shown}: cannot encode this image as {fmt} ({exc})") from None
