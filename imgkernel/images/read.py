"""Reading images and arrays from files or standard input.

The format is sniffed from the first bytes of the data (PNG, JPEG, GIF, BMP,
TIFF, WebP, PPM/PGM/PBM and NumPy ``.npy``), never from the file name. Only
these decoders are ever used, so a file can not make Pillow run a plug-in
such as the Ghostscript-backed EPS reader. Pillow modes are normalised as
follows:

============================  ==========================================
Pillow mode                   pixels
============================  ==========================================
``L``                         ``(H, W)`` uint8
``1`` (bilevel)               ``(H, W)`` uint8, 0 or 255
``RGB``                       ``(H, W, 3)`` uint8
``LA`` / ``RGBA`` / ``PA``    alpha split off into ``Image.alpha`` (or kept
                              as the last channel with
                              ``split_alpha=False``)
``P`` (palette)               RGB, or RGBA when the palette has
                              transparency
``L``/``RGB`` + ``tRNS`` key  LA / RGBA (the colour key becomes alpha)
``I;16``, ``I;16B``, ``I``    ``(H, W)`` uint16 (``I`` must hold values in
                              0..65535)
``CMYK``, ``YCbCr``, ...      RGB
``F``                         ``(H, W)`` float32
============================  ==========================================

An EXIF orientation tag is applied (the pixels come out the way viewers show
the picture), because the tag is not written back. Multi-frame GIF, TIFF,
WebP and APNG files give their first frame, or every frame when asked.
Colour profiles are ignored. Pillow itself decodes 16-bit *colour* PNGs to
8 bits; only 16-bit grayscale keeps its depth.

``.npy`` files are loaded with ``allow_pickle=False``; the shape may be
``(H, W)``, ``(H, W, C)`` with any number of channels (``(C, H, W)`` with
``layout="chw"``) or ``(N, C, H, W)``; :class:`~imgkernel.images.image.ArrayLayout`
views it as ``(H, W, C)`` pixels and puts results back in the same layout.
uint8 and uint16 are kept (8/16-bit images, full scale 255/65535); every
other number type (other integers, bool, floats) becomes float32 with its
values unchanged, so full scale is 1.0: a binary ``[[1, 0], ...]`` array
saved by numpy as int64 filters to the numbers a hand calculation gives. The
channels of an ``.npy`` array are data, so no alpha is ever split off.

A file is opened once (through :func:`imgkernel.errors.open_user_file`, the
one place where an ``OSError`` becomes a message); standard input is read
whole, since it can be read only once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from io import BytesIO
from typing import IO, Any

import numpy as np

from imgkernel.errors import (
    ImgkernelError,
    UsageError,
    check_choice,
    check_int,
    open_user_file,
    os_error_message,
)
from imgkernel.images.formats import FORMATS, sniff_format
from imgkernel.images.image import LAYOUTS, ArrayLayout, Image
from imgkernel.images.jpegread import read_plain_jpeg
from imgkernel.images.pngread import read_plain_png, start_plain_png

NO_INPUT = "no input: give a file or pipe an image to standard input"

#: Bytes read to sniff a format.
_HEAD = 32

#: Pillow's decoders for each sniffed format (no other plug-in ever runs).
_PILLOW_FORMATS = {
    "PNG": ("PNG",),
    "JPEG": ("JPEG",),
    "GIF": ("GIF",),
    "TIFF": ("TIFF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP", "DIB"),
    "PPM": ("PPM",),
}


# ------------------------------------------------------------------------ sources


def _read_stdin() -> bytes:
    stdin = sys.stdin
    if stdin is None:
        raise UsageError(NO_INPUT)
    try:
        interactive = stdin.isatty()
    except (AttributeError, ValueError, OSError):  # closed or unusual stream
        interactive = False
    if interactive:
        raise UsageError(NO_INPUT)
    buf = getattr(stdin, "buffer", stdin)
    try:
        data = buf.read()
    except OSError as exc:
        raise UsageError(f"cannot read standard input: {exc.strerror or exc}") from None
    if isinstance(data, str):  # a text stream without .buffer
        raise UsageError("standard input is a text stream; pipe binary image data")
    if not data:
        raise UsageError("standard input is empty (no image data was piped in)")
    return data


@contextlib.contextmanager
def open_source(source: str) -> Iterator[tuple[str, IO[bytes], bytes]]:
    """Open a file or ``"-"``: ``(name for messages, stream at its start, first bytes)``."""
    if source == "-":
        data = _read_stdin()
        yield "standard input", BytesIO(data), data[:_HEAD]
        return
    with open_user_file(source) as handle:
        try:
            head = handle.read(_HEAD)
            if not head:
                raise UsageError(f"{source}: file is empty")
            stream: IO[bytes] = handle
            if handle.seekable():
                handle.seek(0)
            else:  # a pipe named on the command line
                stream = BytesIO(head + handle.read())
        except OSError as exc:
            raise UsageError(os_error_message(exc, source)) from None
        yield source, stream, head


def check_stdin_once(sources: Iterable[str]) -> None:
    """Refuse ``-`` (standard input) named more than once: it can be read only once."""
    if sum(1 for source in sources if os.fspath(source) == "-") > 1:
        raise UsageError("standard input ('-') can be read only once")


def _image_format(name: str, head: bytes) -> str:
    fmt = sniff_format(head)
    if fmt is None:
        raise UsageError(f"{name}: not a recognised image file (supported: {', '.join(FORMATS)})")
    return fmt


def probe_image(source: str) -> str:
    """Check that ``source`` exists and starts like a supported image; return its format.

    Standard input (``"-"``) is not read here (it can be read only once).
    """
    source = os.fspath(source)
    if source == "-":
        return ""
    with open_source(source) as (name, _, head):
        return _image_format(name, head)


def read_image(
    source: str,
    *,
    split_alpha: bool = True,
    max_pixels: int | None = None,
    layout: str | None = None,
    frames: bool = False,
    progressive: bool = False,
) -> Image:
    """Read an image file (or standard input for ``"-"``) into an :class:`Image`.

    ``max_pixels`` replaces Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million pixels) for this call;
    0 means no limit.  Exceeding the limit is a :class:`UsageError`, as is
    any missing, unreadable, truncated or non-image input. ``layout``
    (``hwc``, the default, or ``chw``) says how a 3-D ``.npy`` array is read.
    An animated or multi-page file gives its first frame, with ``frames``
    holding the count; ``frames=True`` also decodes the others into
    ``more_frames``. With ``progressive``, a plain gray or RGB PNG is
    returned while its rows are still being decoded on another thread
    (``image.arriving`` set): the caller reads rows after
    :meth:`~imgkernel.images.Image.wait_rows`.
    """
    source = os.fspath(source)
    if max_pixels is not None:
        check_int(max_pixels, "max pixels", minimum=0)
    three_d = check_choice(layout or "hwc", "layout", LAYOUTS)
    with open_source(source) as (name, stream, head):
        fmt = _image_format(name, head)
        if fmt == "NPY":
            array = _read_npy(name, stream, max_pixels, three_d)
            arrangement = ArrayLayout.of(array, three_d)
            return Image(arrangement.pixels(array), None, "NPY", source, layout=arrangement)
        plain = None
        if fmt == "PNG" and progressive:
            whole = functools.partial(_whole_pixels, source, max_pixels)
            decoder = start_plain_png(stream, _effective_limit(max_pixels), whole)
            if decoder is not None:
                return Image(decoder.pixels, None, fmt, source, arriving=decoder)
        if fmt == "PNG":
            plain = read_plain_png(stream, _effective_limit(max_pixels))
        elif fmt == "JPEG":  # one frame: a multi-picture (MPO) file goes to Pillow
            plain = read_plain_jpeg(stream, _effective_limit(max_pixels))
        if plain is not None:
            return Image(*_split_alpha(plain, split_alpha), fmt, source)
        decoded = _read_pillow(
            name, stream, fmt, split_alpha=split_alpha, max_pixels=max_pixels, all_frames=frames
        )
    images = [
        Image(pixels, alpha, fmt, source, frames=info["frames"], info=info)
        for pixels, alpha, info in decoded
    ]
    images[0].more_frames = tuple(images[1:])
    return images[0]


def _whole_pixels(source: str, max_pixels: int | None) -> np.ndarray:
    """The pixels of ``source`` read whole: what a progressive read falls back on."""
    return read_image(source, max_pixels=max_pixels).pixels


def read_array(source: str) -> np.ndarray:
    """Load a numeric ``.npy`` array of any shape from a file or ``"-"`` (no pickles)."""
    with open_source(os.fspath(source)) as (name, stream, head):
        if sniff_format(head) != "NPY":
            raise UsageError(f"{name}: not a .npy array file")
        try:
            arr = np.load(stream, allow_pickle=False)
        except MemoryError:
            raise ImgkernelError(f"{name}: not enough memory to load the array") from None
        except Exception as exc:  # ValueError for pickled objects, EOFError when truncated
            raise UsageError(f"{name}: unreadable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "buif":
        raise UsageError(f"{name}: the array must hold numbers")
    return arr


# ------------------------------------------------------------------------ .npy


def _too_many_pixels(name: str, detail: str) -> UsageError:
    return UsageError(
        f"{name}: image too large ({detail}); if you trust this file, raise the limit with "
        "--max-pixels (0 = no limit)"
    )


def _read_npy(name: str, stream: IO[bytes], max_pixels: int | None, three_d: str) -> np.ndarray:
    from numpy.lib import format as npformat

    try:
        version = npformat.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(stream)
        else:
            shape, _, dtype = npformat.read_array_header_2_0(stream)
        _check_npy_header(name, shape, dtype, max_pixels, three_d)
        stream.seek(0)
        arr = np.load(stream, allow_pickle=False)
    except UsageError:
        raise
    except MemoryError:
        raise ImgkernelError(f"{name}: not enough memory to load the array") from None
    except OSError as exc:
        raise UsageError(os_error_message(exc, name)) from None
    except Exception as exc:  # ValueError, EOFError, ...: a damaged file
        raise UsageError(f"{name}: truncated or corrupt .npy file ({exc})") from None
    return _normalize_npy(arr)


def _check_npy_header(
    name: str, shape: tuple, dtype: np.dtype, max_pixels: int | None, three_d: str
) -> None:
    if len(shape) not in (2, 3, 4):
        raise UsageError(
            f"{name}: array shape {tuple(shape)} is not an image or feature map; expected "
            "(H, W), (H, W, C), (C, H, W) with --layout chw, or (N, C, H, W)"
        )
    if 0 in shape:
        raise UsageError(f"{name}: array shape {tuple(shape)} is empty")
    if dtype.kind not in "buif" or dtype.hasobject:
        raise UsageError(f"{name}: array dtype {dtype} is not supported (need bool, int or float)")
    spatial = 0 if len(shape) == 2 or (len(shape) == 3 and three_d == "hwc") else len(shape) - 2
    height, width = shape[spatial], shape[spatial + 1]
    limit = _effective_limit(max_pixels)
    if limit and height * width > limit:
        raise _too_many_pixels(name, f"{height}x{width} pixels, limit {limit}")


#: Pillow's default decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
PILLOW_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


def _effective_limit(max_pixels: int | None) -> int | None:
    if max_pixels is not None:
        return max_pixels or None
    pillow = sys.modules.get("PIL.Image")  # a caller may have changed Pillow's limit
    return getattr(pillow, "MAX_IMAGE_PIXELS", PILLOW_MAX_PIXELS)


def _split_alpha(array: np.ndarray, split: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Gray+alpha or RGBA pixels as ``(colour, alpha)`` (unchanged when not ``split``)."""
    if not split or array.ndim == 2 or array.shape[2] not in (2, 4):
        return array, None
    alpha = np.ascontiguousarray(array[:, :, -1])
    colour = array[:, :, 0] if array.shape[2] == 2 else array[:, :, :3]
    return np.ascontiguousarray(colour), alpha


def _normalize_npy(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):  # uint8 / uint16, any byte order
        return np.ascontiguousarray(arr, dtype=np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
    # Anything else is data, not an 8/16-bit picture: its values, as float32.
    return np.ascontiguousarray(arr, dtype=np.float32)


# ------------------------------------------------------------------------ Pillow


@contextlib.contextmanager
def _pixel_limit(max_pixels: int | None) -> Iterator[None]:
    from PIL import Image as PILImage

    old = PILImage.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        PILImage.MAX_IMAGE_PIXELS = max_pixels or None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            yield
    finally:
        PILImage.MAX_IMAGE_PIXELS = old


def _read_pillow(
    name: str,
    stream: IO[bytes],
    fmt: str,
    *,
    split_alpha: bool,
    max_pixels: int | None,
    all_frames: bool = False,
) -> list[tuple[np.ndarray, np.ndarray | None, dict[str, Any]]]:
    """``(pixels, alpha, info)`` of the first frame, or of every frame with ``all_frames``."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with _pixel_limit(max_pixels), PILImage.open(stream, formats=_PILLOW_FORMATS[fmt]) as img:
            count = getattr(img, "n_frames", 1) if all_frames else 1
            return [_decoded_frame(name, img, index, split_alpha) for index in range(count)]
    except UsageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        # Pillow quotes 2 x the limit when it raises instead of warning; give ours.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        limit = _effective_limit(max_pixels)
        detail = f"{found[1]} pixels, limit {limit}" if found else str(exc)
        raise _too_many_pixels(name, detail) from None
    except UnidentifiedImageError:
        raise UsageError(f"{name}: not a valid {fmt} image") from None
    except MemoryError:
        raise ImgkernelError(f"{name}: not enough memory to decode the image") from None
    except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error, zlib.error...
        detail = str(exc) or type(exc).__name__
        raise UsageError(f"{name}: truncated or corrupt image ({detail})") from None


def _decoded_frame(
    name: str, img: Any, index: int, split_alpha: bool
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Frame ``index`` of an open Pillow image, decoded, EXIF-rotated, as arrays."""
    from PIL import ImageOps

    if index:
        img.seek(index)
    img.load()  # force the full decode so truncation is reported here
    info = {"frames": getattr(img, "n_frames", 1), "duration": img.info.get("duration")}
    info["loop"] = img.info.get("loop")
    frame = img if index == 0 else img.copy()
    ImageOps.exif_transpose(frame, in_place=True)  # no copy without an EXIF rotation
    pixels, alpha = _pillow_to_arrays(name, frame, split_alpha=split_alpha)
    return pixels, alpha, info


def _pillow_to_arrays(
    name: str, img: Any, *, split_alpha: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert("LA" if mode == "L" else "RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA"):
        img = img.convert("RGBA" if img.has_transparency_data else "RGB")
    elif mode in ("La", "RGBa"):
        img = img.convert("LA" if mode == "La" else "RGBA")
    elif mode.startswith("I;16"):
        arr = np.asarray(img)
        return np.ascontiguousarray(arr, dtype=np.uint16), None
    elif mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise UsageError(
                f"{name}: 32-bit integer image with values outside 0..65535 is not supported; "
                "convert it to 16-bit or to .npy"
            )
        return arr.astype(np.uint16), None
    elif mode == "F":
        return np.asarray(img, dtype=np.float32).copy(), None
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        # CMYK, YCbCr, LAB, HSV, RGBX, I;16 variants Pillow may add, ...
        try:
            img = img.convert("RGBA" if img.has_transparency_data else "RGB")
        except ValueError:
            raise UsageError(f"{name}: unsupported image mode {mode}") from None
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    if img.mode in ("LA", "RGBA") and split_alpha:
        alpha = np.ascontiguousarray(arr[:, :, -1])
        pixels = arr[:, :, 0] if img.mode == "LA" else np.ascontiguousarray(arr[:, :, :3])
        return np.ascontiguousarray(pixels), alpha
    return arr, None
