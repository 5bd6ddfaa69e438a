"""Reading and writing images, and mapping filter results back to pixel values.

Arrays follow one convention throughout imgkernel: ``(H, W)`` for grayscale,
``(H, W, C)`` channels-last otherwise, with dtype ``uint8``, ``uint16`` or
``float32``.

Reading (:func:`read_image`)
    The format is sniffed from the first bytes of the data (PNG, JPEG, GIF,
    BMP, TIFF, WebP, PPM/PGM/PBM and NumPy ``.npy``), never from the file
    name.  Only these decoders are ever used, so a file can not make Pillow
    run a plug-in such as the Ghostscript-backed EPS reader.  Pillow modes are
    normalised as follows:

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

    An EXIF orientation tag is applied (the pixels come out the way viewers
    show the picture), because the tag is not written back.  Multi-frame GIF
    and TIFF files give their first frame.  Colour profiles are ignored.
    Pillow itself decodes 16-bit *colour* PNGs to 8 bits; only 16-bit
    grayscale keeps its depth.

    ``.npy`` files are loaded with ``allow_pickle=False``; the shape must be
    ``(H, W)`` or ``(H, W, C)`` with C in 1..4 (C == 1 is squeezed to
    ``(H, W)``).  uint8 and uint16 are kept; other integer arrays become
    uint8 if their values fit in 0..255, uint16 if they fit in 0..65535 and
    float32 otherwise; floats become float32; bool becomes uint8 0/255.  The
    channels of an ``.npy`` array are data, so no alpha is ever split off.

Writing (:func:`write_image`)
    Writes are atomic: the data goes to a hidden temporary file next to the
    target, which then replaces the target with :func:`os.replace`.  If
    anything fails, the temporary file is removed and an existing target is
    left untouched.  (Not fsync'ed: atomic against failures of this process,
    not against power loss.)  An existing target that is not a regular file,
    such as ``/dev/null`` or a FIFO, is written directly instead.  A symlink
    target is followed; the new file keeps the old one's permissions.  What
    each format can hold:

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

import contextlib
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any

import numpy as np

from imgkernel.errors import ImgkernelError, UsageError

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_PNG_COMPRESS_LEVEL",
    "DISPLAY_MODES",
    "EXTENSIONS",
    "Image",
    "attach_alpha",
    "check_inputs",
    "expand_outputs",
    "format_from_name",
    "is_binary_format",
    "max_value_for",
    "read_image",
    "sniff_format",
    "to_display",
    "write_image",
]

# PNG encoding speed versus size, measured with Pillow 13.0 / zlib on one core
# of a shared machine (timings +-20 %; best of 2;
# ``python sample_images/make_samples.py --bench-png`` reproduces the first two
# columns).  "12 MP photo" is 4000x3000 RGB made from six real photos upscaled
# (Lanczos) into tiles plus sigma-2 noise standing in for sensor noise;
# "edges" is the gradient magnitude of it (gray, what an edge filter writes);
# "astronaut" is the real 512x512 photo.  Sizes are relative to level 1.
#
#   level  12 MP photo, RGB     astronaut 512      12 MP edges, gray
#   1      0.87 s  21.4 MB 100%  17 ms 0.47 MB 100%  0.33 s 6.85 MB 100%
#   2      0.93 s  21.3 MB  99%  18 ms 0.46 MB 100%  0.35 s 6.81 MB 100%
#   3      1.22 s  21.1 MB  99%  23 ms 0.46 MB  98%  0.44 s 6.70 MB  98%
#   4      1.75 s  18.6 MB  87%  31 ms 0.42 MB  91%  0.61 s 5.91 MB  86%
#   5      2.38 s  18.6 MB  87%  38 ms 0.42 MB  91%
#   6      2.79 s  18.7 MB  87%  51 ms 0.42 MB  91%  1.50 s 5.96 MB  87%
#   9      2.90 s  18.7 MB  87%  63 ms 0.42 MB  91%  1.75 s 5.96 MB  87%
#   9+optimize=True 3.56 s 18.4 MB 86%   67 ms 0.42 MB 91%
#
# zlib levels 1-3 use its fast (no lazy matching) deflate, 4-9 the lazy one,
# so sizes come in two plateaus.  Pillow's default (6, optimize=False) is
# 3-5x slower than level 1 for files about 13 % smaller (level 1 files are
# ~15 % bigger).  Level 4 gives level 6's size at about twice its speed.
# Default: 1, the fastest useful level, since the encoder otherwise dominates
# the run time; pass compress_level=4 when size matters, 9 only for archiving.
DEFAULT_PNG_COMPRESS_LEVEL = 1
DEFAULT_JPEG_QUALITY = 90
DEFAULT_WEBP_QUALITY = 90

#: Lower-case file extension -> format name.
EXTENSIONS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".gif": "GIF",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pbm": "PPM",
    ".pnm": "PPM",
    ".npy": "NPY",
}

#: Formats handled here, in the order they are listed in messages.
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "PPM", "NPY")

#: Preferred extension for each format (for generated output names).
FORMAT_EXTENSIONS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "WEBP": ".webp",
    "GIF": ".gif",
    "PPM": ".ppm",
    "NPY": ".npy",
}

_TEXT_FORMATS = frozenset({"TXT", "TEXT", "CSV", "TSV", "JSON"})

#: Text outputs (``pool --global`` numbers), recognised by name too.
_TEXT_EXTENSIONS = {".json": "JSON", ".txt": "TXT"}

DISPLAY_MODES = ("clip", "abs", "offset", "normalize")

_NO_INPUT = "no input: give a file or pipe an image to standard input"
_TTY_REFUSAL = "refusing to write binary image data to a terminal; use -o FILE or a pipe"


# --------------------------------------------------------------------------- types


def max_value_for(dtype: Any) -> float:
    """Full-scale value of a dtype: 255 for uint8, 65535 for uint16, 1.0 for floats.

    >>> max_value_for(np.uint8), max_value_for(np.uint16), max_value_for(np.float32)
    (255.0, 65535.0, 1.0)
    """
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return 1.0
    if dt.kind == "b":
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
    alpha = _convert_plane(alpha, pixels.dtype)
    base = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    return np.concatenate([base, alpha[:, :, np.newaxis]], axis=2)


def _convert_plane(plane: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert an array between pixel dtypes, rescaling full scale to full scale."""
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


# ------------------------------------------------------------------------ formats


def format_from_name(path: str) -> str | None:
    """Format name for a file name's extension, or None for ``-`` or no extension.

    >>> format_from_name("out/edges.PNG"), format_from_name("x.jpeg"), format_from_name("a.npy")
    ('PNG', 'JPEG', 'NPY')
    >>> format_from_name("-") is None, format_from_name("noext") is None
    (True, True)
    >>> format_from_name("x.xyz")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: x.xyz: unknown image file extension '.xyz' (known: .bmp, .gif, \
.jfif, .jpe, .jpeg, .jpg, .npy, .pbm, .pgm, .png, .pnm, .ppm, .tif, .tiff, .webp)
    """
    path = os.fspath(path)
    if path == "-":
        return None
    ext = os.path.splitext(os.path.basename(path))[1].lower()
    if not ext:
        return None
    if ext in _TEXT_EXTENSIONS:
        return _TEXT_EXTENSIONS[ext]
    try:
        return EXTENSIONS[ext]
    except KeyError:
        known = ", ".join(sorted(EXTENSIONS))
        raise UsageError(f"{path}: unknown image file extension {ext!r} (known: {known})") from None


def normalize_format(fmt: str) -> str:
    """Canonical format name for a user-given one ("jpg", ".png", "tif" -> ...)."""
    key = fmt.strip().lower()
    if not key.startswith("."):
        key = "." + key
    if key in EXTENSIONS:
        return EXTENSIONS[key]
    upper = fmt.strip().upper()
    if upper in FORMATS:
        return upper
    known = ", ".join(f.lower() for f in FORMATS)
    raise UsageError(f"unknown image format {fmt!r} (known: {known})")


def is_binary_format(fmt: str | None) -> bool:
    """True for image formats (everything except text formats such as TXT/CSV/JSON).

    >>> is_binary_format("PNG"), is_binary_format("npy"), is_binary_format("csv")
    (True, True, False)
    """
    if fmt is None:
        return True
    return fmt.strip().lstrip(".").upper() not in _TEXT_FORMATS


def sniff_format(head: bytes) -> str | None:
    """Format name from the first bytes of a file, or None if not recognised.

    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_format(b"\\x93NUMPY\\x01\\x00")
    ('PNG', 'NPY')
    >>> sniff_format(b"hello") is None
    True
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    if head.startswith(b"BM") and len(head) >= 18:
        # BITMAPFILEHEADER is followed by a DIB header whose size is 12..124.
        dib = int.from_bytes(head[14:18], "little")
        if dib in (12, 16, 40, 52, 56, 64, 108, 124):
            return "BMP"
    if len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "PPM"
    return None


# ------------------------------------------------------------------------ reading


def _read_source_bytes_or_path(source: str) -> tuple[str, bytes | None, bytes]:
    """Return (display name, whole data for stdin or None, first bytes)."""
    if source == "-":
        stdin = sys.stdin
        if stdin is None:
            raise UsageError(_NO_INPUT)
        try:
            interactive = stdin.isatty()
        except (AttributeError, ValueError, OSError):  # closed or unusual stream
            interactive = False
        if interactive:
            raise UsageError(_NO_INPUT)
        buf = getattr(stdin, "buffer", stdin)
        try:
            data = buf.read()
        except OSError as exc:
            raise UsageError(f"cannot read standard input: {exc.strerror or exc}") from None
        if isinstance(data, str):  # a text stream without .buffer
            raise UsageError("standard input is a text stream; pipe binary image data")
        if not data:
            raise UsageError("standard input is empty (no image data was piped in)")
        return "standard input", data, data[:32]
    try:
        with open(source, "rb") as f:
            head = f.read(32)
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a directory, not an image file") from None
    except PermissionError:
        raise UsageError(f"{source}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise UsageError(f"{source}: file is empty")
    return source, None, head


def probe_image(source: str) -> str:
    """Check that ``source`` exists and starts like a supported image; return its format.

    Standard input (``"-"``) is not read here (it can be read only once).
    """
    source = os.fspath(source)
    if source == "-":
        return ""
    name, _, head = _read_source_bytes_or_path(source)
    fmt = sniff_format(head)
    if fmt is None:
        known = ", ".join(FORMATS)
        raise UsageError(f"{name}: not a recognised image file (supported: {known})")
    return fmt


def read_image(source: str, *, split_alpha: bool = True, max_pixels: int | None = None) -> Image:
    """Read an image file (or standard input for ``"-"``) into an :class:`Image`.

    ``max_pixels`` replaces Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million pixels) for this call;
    0 means no limit.  Exceeding the limit is a :class:`UsageError`, as is
    any missing, unreadable, truncated or non-image input.
    """
    source = os.fspath(source)
    if max_pixels is not None and max_pixels < 0:
        raise UsageError(f"max pixels must be >= 0 (0 = no limit), got {max_pixels}")
    name, data, head = _read_source_bytes_or_path(source)
    fmt = sniff_format(head)
    if fmt is None:
        known = ", ".join(f for f in FORMATS)
        raise UsageError(f"{name}: not a recognised image file (supported: {known})")
    if fmt == "NPY":
        pixels = _read_npy(name, source if data is None else BytesIO(data), max_pixels)
        return Image(pixels=pixels, alpha=None, format="NPY", source=source)
    pixels, alpha = _read_pillow(
        name,
        source if data is None else BytesIO(data),
        fmt,
        split_alpha=split_alpha,
        max_pixels=max_pixels,
    )
    return Image(pixels=pixels, alpha=alpha, format=fmt, source=source)


def _too_many_pixels(name: str, detail: str) -> UsageError:
    return UsageError(
        f"{name}: image too large ({detail}); if you trust this file, raise the limit with "
        "--max-pixels (0 = no limit)"
    )


def _read_npy(name: str, src: str | IO[bytes], max_pixels: int | None) -> np.ndarray:
    from numpy.lib import format as npformat

    try:
        with contextlib.ExitStack() as stack:
            f: IO[bytes] = stack.enter_context(open(src, "rb")) if isinstance(src, str) else src
            version = npformat.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = npformat.read_array_header_2_0(f)
            _check_npy_header(name, shape, dtype, max_pixels)
            f.seek(0)
            arr = np.load(f, allow_pickle=False)
    except UsageError:
        raise
    except MemoryError:
        raise ImgkernelError(f"{name}: not enough memory to load the array") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # ValueError, EOFError, ...: a damaged file
        raise UsageError(f"{name}: truncated or corrupt .npy file ({exc})") from None
    return _normalize_npy(name, arr)


def _check_npy_header(name: str, shape: tuple, dtype: np.dtype, max_pixels: int | None) -> None:
    if not (len(shape) == 2 or (len(shape) == 3 and 1 <= shape[2] <= 4)):
        raise UsageError(
            f"{name}: array shape {tuple(shape)} is not an image; expected (H, W) or (H, W, C) "
            "with C = 1..4"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise UsageError(f"{name}: array shape {tuple(shape)} is empty")
    if dtype.kind not in "buif" or dtype.hasobject:
        raise UsageError(f"{name}: array dtype {dtype} is not supported (need bool, int or float)")
    limit = _effective_limit(max_pixels)
    if limit and shape[0] * shape[1] > limit:
        raise _too_many_pixels(name, f"{shape[0]}x{shape[1]} pixels, limit {limit}")


def _effective_limit(max_pixels: int | None) -> int | None:
    if max_pixels is not None:
        return max_pixels or None
    from PIL import Image as PILImage

    return PILImage.MAX_IMAGE_PIXELS


def _normalize_npy(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if kind == "f":
        return np.ascontiguousarray(arr, dtype=np.float32)
    if kind == "u" and arr.dtype.itemsize in (1, 2):  # uint8 / uint16, any byte order
        return np.ascontiguousarray(arr, dtype=np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
    # Other integer types: the smallest pixel type that holds the values.
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo >= 0 and hi <= 255:
        return arr.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return arr.astype(np.uint16)
    return arr.astype(np.float32)


_PILLOW_FORMATS = {
    "PNG": ("PNG",),
    "JPEG": ("JPEG",),
    "GIF": ("GIF",),
    "TIFF": ("TIFF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP", "DIB"),
    "PPM": ("PPM",),
}


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
    name: str, src: str | IO[bytes], fmt: str, *, split_alpha: bool, max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with _pixel_limit(max_pixels), PILImage.open(src, formats=_PILLOW_FORMATS[fmt]) as img:
            img.load()  # force the full decode so truncation is reported here
            ImageOps.exif_transpose(img, in_place=True)  # no copy without an EXIF rotation
            return _pillow_to_arrays(name, img, split_alpha=split_alpha)
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
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except PermissionError:
        raise UsageError(f"{name}: permission denied") from None
    except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error, zlib.error...
        detail = str(exc) or type(exc).__name__
        raise UsageError(f"{name}: truncated or corrupt image ({detail})") from None


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


# ------------------------------------------------------------------------ writing


def _validate_level(name: str, value: int | None, lo: int, hi: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise UsageError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")


def write_image(
    target: str,
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    format: str | None = None,
    compress_level: int | None = None,
    quality: int | None = None,
) -> None:
    """Write ``pixels`` (plus an optional alpha plane) to ``target`` atomically.

    ``target`` ``"-"`` writes to standard output (refused if it is a
    terminal).  The format comes from ``format`` if given, else from the
    target's extension (PNG for standard output).  ``compress_level`` (0-9,
    default :data:`DEFAULT_PNG_COMPRESS_LEVEL`) applies to PNG; ``quality``
    (1-100, default 90) to JPEG and WebP; each is ignored by other formats.
    See the module docstring for what each format can store.
    """
    target = os.fspath(target)
    _validate_level("compress level", compress_level, 0, 9)
    _validate_level("quality", quality, 1, 100)
    fmt: str
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
    shown = "standard output" if target == "-" else target
    if target != "-":
        _check_target(target)
    # Check and convert the data before creating any file.
    arr = _prepare(shown, pixels, alpha, fmt)
    deliver(
        target,
        lambda f: _encode(shown, f, arr, fmt, compress_level, quality),
        binary=is_binary_format(fmt),
    )


def _check_target(target: str) -> str:
    dest = os.path.realpath(target) if os.path.islink(target) else target
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise UsageError(f"{target}: directory {os.path.dirname(target) or '.'} does not exist")
    if os.path.isdir(dest):
        raise UsageError(f"{target}: is a directory")
    return dest


def deliver(target: str, encode: Callable[[IO[bytes]], None], *, binary: bool = True) -> None:
    """Run ``encode(file)`` into ``target`` atomically (``"-"``: standard output).

    The data goes to a hidden temporary file beside the target, which then
    replaces it; on any failure the temporary file is removed and an existing
    target is left untouched. Binary data is refused on a terminal.
    """
    if target == "-":
        stdout = sys.stdout
        if stdout is None:
            raise UsageError("no standard output to write to")
        isatty = getattr(stdout, "isatty", None)
        if binary and isatty is not None and isatty():
            raise UsageError(_TTY_REFUSAL)
        buf = BytesIO()
        encode(buf)
        out = getattr(stdout, "buffer", None)
        if out is None:
            raise UsageError("standard output is a text stream; cannot write binary data")
        out.write(buf.getvalue())
        out.flush()
        return
    dest = _check_target(target)
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        special = not stat.S_ISREG(os.stat(dest).st_mode)
    except OSError:
        special = False
    if special:
        # /dev/null, a FIFO, a terminal device...: write straight into it; replacing
        # it with a regular file would be wrong (and, as root, destructive).
        buf = BytesIO()
        encode(buf)
        try:
            with open(dest, "wb") as f:
                f.write(buf.getvalue())
        except OSError as exc:
            raise ImgkernelError(f"{target}: cannot write ({exc.strerror or exc})") from None
        return
    try:
        tmp = tempfile.NamedTemporaryFile(
            dir=directory, prefix="." + os.path.basename(dest) + ".", suffix=".tmp", delete=False
        )
    except PermissionError:
        raise UsageError(
            f"{target}: permission denied (cannot create files in {directory})"
        ) from None
    except OSError as exc:
        raise ImgkernelError(f"{target}: cannot write ({exc.strerror or exc})") from None
    try:
        with tmp:
            encode(tmp)
        _set_mode(tmp.name, dest)
        os.replace(tmp.name, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        if isinstance(exc, OSError) and not isinstance(exc, UsageError):
            raise ImgkernelError(f"{target}: cannot write ({exc.strerror or exc})") from None
        raise


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


def read_array(source: str) -> np.ndarray:
    """Load a numeric ``.npy`` array of any shape from a file or ``"-"`` (no pickles)."""
    name, data, head = _read_source_bytes_or_path(os.fspath(source))
    if sniff_format(head) != "NPY":
        raise UsageError(f"{name}: not a .npy array file")
    try:
        arr = np.load(BytesIO(data) if data is not None else source, allow_pickle=False)
    except MemoryError:
        raise ImgkernelError(f"{name}: not enough memory to load the array") from None
    except Exception as exc:  # ValueError for pickled objects, EOFError when truncated
        raise UsageError(f"{name}: unreadable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "buif":
        raise UsageError(f"{name}: the array must hold numbers")
    return arr


def _set_mode(tmp_path: str, dest: str) -> None:
    """Give the new file the old file's permissions, or the umask default (not 0600)."""
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp_path, mode)


def _layout(pixels: np.ndarray) -> int:
    if pixels.ndim == 2:
        return 1
    if pixels.ndim == 3 and 1 <= pixels.shape[2] <= 4:
        return int(pixels.shape[2])
    raise UsageError(f"cannot save an array of shape {pixels.shape} as an image")


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
    channels = _layout(pixels)
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
            pixels = _convert_plane(pixels, np.dtype(np.uint8))
    if fmt == "WEBP" and channels in (1, 2):
        # WebP has no grayscale: store gray as RGB (and gray+alpha as RGBA).
        gray = pixels if channels == 1 else pixels[:, :, 0]
        planes = [gray, gray, gray] + ([pixels[:, :, 1]] if channels == 2 else [])
        pixels = np.stack(planes, axis=2)
    return np.ascontiguousarray(pixels)


_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _encode(
    shown: str,
    f: IO[bytes],
    arr: np.ndarray,
    fmt: str,
    compress_level: int | None,
    quality: int | None,
) -> None:
    """Encode an array already converted by :func:`_prepare`."""
    if fmt == "NPY":
        np.save(f, arr, allow_pickle=False)
        return
    from PIL import Image as PILImage

    # Pillow picks the mode from the array: L, LA, RGB, RGBA (uint8), I;16, F.
    img = PILImage.fromarray(arr)
    expected = {np.dtype(np.float32): "F", np.dtype(np.uint16): "I;16"}.get(arr.dtype)
    if img.mode != (expected or _PIL_MODES[_layout(arr)]):  # pragma: no cover - sanity check
        raise AssertionError(f"unexpected Pillow mode {img.mode} for {arr.dtype} {arr.shape}")
    options: dict[str, Any] = {}
    if fmt == "PNG":
        options["compress_level"] = (
            DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else int(compress_level)
        )
    elif fmt == "JPEG":
        options["quality"] = DEFAULT_JPEG_QUALITY if quality is None else int(quality)
    elif fmt == "WEBP":
        options["quality"] = DEFAULT_WEBP_QUALITY if quality is None else int(quality)
    try:
        img.save(f, format=fmt, **options)
    except OSError as exc:
        if isinstance(exc, (PermissionError, FileNotFoundError)) or exc.errno is not None:
            raise
        raise ImgkernelError(f"{shown}: cannot encode this image as {fmt} ({exc})") from None


# ------------------------------------------------------------------------ display


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
    scale and, for integer dtypes, rounded half-to-even (``np.rint``) and
    cast.  NaN becomes 0 and ±inf clip to the ends (ignored by
    ``normalize``'s min/max).  Work is done in float32 on chunks of rows, so
    no full-size float64 temporaries are made.

    >>> v = np.array([[-300.0, -128.0, -1.0, 0.0, 100.4, 127.0, 300.0]], dtype=np.float32)
    >>> to_display(v, mode="clip", dtype=np.uint8, max_value=255)
    array([[  0,   0,   0,   0, 100, 127, 255]], dtype=uint8)
    >>> to_display(v, mode="abs", dtype=np.uint8, max_value=255)
    array([[255, 128,   1,   0, 100, 127, 255]], dtype=uint8)
    >>> to_display(v, mode="offset", dtype=np.uint8, max_value=255)
    array([[  0,   0, 127, 128, 228, 255, 255]], dtype=uint8)
    >>> to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    array([[  0,  73, 127, 128, 170, 181, 255]], dtype=uint8)
    """
    if mode not in DISPLAY_MODES:
        raise UsageError(f"unknown display mode {mode!r} (choose from {', '.join(DISPLAY_MODES)})")
    out_dtype = np.dtype(dtype)
    out_max = _display_max(out_dtype)
    max_value = float(max_value)
    if not max_value > 0 or not np.isfinite(max_value):
        raise UsageError(f"max value must be a positive number, got {max_value}")
    scale = float(scale)
    offset = float(offset)
    if not (np.isfinite(scale) and np.isfinite(offset)):
        raise UsageError(f"scale and offset must be finite numbers, got {scale} and {offset}")
    values = np.asarray(values)
    if values.dtype.kind not in "buif":
        raise UsageError(f"cannot display values of type {values.dtype}")
    if values.ndim == 0:
        values = values.reshape(1)
    add = offset * max_value
    if mode == "offset":
        int_units = float(max_value).is_integer() and max_value >= 2
        add += (max_value + 1) / 2 if int_units else max_value / 2

    h = values.shape[0]
    row_size = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1

    def transformed(rows: slice) -> np.ndarray:
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

    lo = hi = 0.0
    if mode == "normalize":
        lo, hi = np.inf, -np.inf
        for rows in _row_chunks(h, row_size):
            v = transformed(rows)
            finite = v[np.isfinite(v)]
            if finite.size:
                lo = min(lo, float(finite.min()))
                hi = max(hi, float(finite.max()))
        if not np.isfinite(lo):
            lo = hi = 0.0

    out = np.empty(values.shape, dtype=out_dtype)
    is_int = out_dtype.kind in "ui"
    for rows in _row_chunks(h, row_size):
        v = transformed(rows)
        np.nan_to_num(v, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)
        if mode == "normalize":
            if hi > lo:
                with np.errstate(invalid="ignore", over="ignore"):
                    v -= np.float32(lo)
                    v *= np.float32(out_max / (hi - lo))
            else:
                v[...] = 0.0
        elif out_max != max_value:
            with np.errstate(invalid="ignore", over="ignore"):
                v *= np.float32(out_max / max_value)
        np.clip(v, 0.0, out_max, out=v)
        if is_int:
            np.rint(v, out=v)
        out[rows] = v
    return out


# ------------------------------------------------------------------------ batches


def check_inputs(inputs: list[str]) -> None:
    """Reject an empty input list and ``-`` (standard input) given more than once."""
    if not inputs:
        raise UsageError(_NO_INPUT)
    if sum(1 for i in inputs if os.fspath(i) == "-") > 1:
        raise UsageError("'-' (standard input) can be given only once")


_TEMPLATE_FIELDS = ("stem", "name", "ext", "index", "dir")


def _fields(path: str, index: int, default_ext: str | None) -> dict[str, Any]:
    if path == "-":
        stem, ext, parent = "stdin", "", "."
    else:
        base = os.path.basename(path)
        stem, ext = os.path.splitext(base)
        parent = os.path.dirname(path) or "."
    if default_ext:
        ext = default_ext if default_ext.startswith(".") else "." + default_ext
    elif not ext:
        ext = ".png"
    return {"stem": stem, "name": stem + ext, "ext": ext[1:], "index": index, "dir": parent}


def _is_template(output: str) -> bool:
    return "{" in output


def _apply_template(template: str, fields: dict[str, Any]) -> str:
    import string

    known = ", ".join("{" + f + "}" for f in _TEMPLATE_FIELDS)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"output template {template!r} is malformed ({exc})") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in _TEMPLATE_FIELDS:
            # also refuses attribute and index access such as {stem.upper}
            raise UsageError(
                f"output template {template!r}: unknown field {{{field}}} (known: {known})"
            )
        if conversion or (spec and (len(spec) > 8 or any(c in spec for c in "{}"))):
            raise UsageError(f"output template {template!r}: unsupported format for {{{field}}}")
    try:
        result = template.format(**fields)
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        raise UsageError(f"output template {template!r} is malformed ({exc})") from None
    if len(result) > 4096:
        raise UsageError(f"output template {template!r} makes a name that is too long")
    return result


def expand_outputs(inputs: list[str], output: str | None, *, default_ext: str | None) -> list[str]:
    """Output path for each input.

    * One input: ``output`` None or ``"-"`` -> standard output (``"-"``).
    * ``output`` ending in ``/`` (or an existing directory) -> ``DIR/<name>``,
      where name is the input's file name with its extension replaced by
      ``default_ext`` when given (``stdin.png`` style for ``-``).
    * ``output`` containing ``{...}`` is a template with fields ``{stem}``
      (file name without extension), ``{name}`` (``stem`` + output extension),
      ``{ext}`` (that extension without the dot: ``default_ext`` if given, else
      the input's), ``{index}`` (1-based position, format specs allowed:
      ``{index:03d}``) and ``{dir}`` (the input's directory).
    * Otherwise, with one input, ``output`` is the file name itself.

    Several inputs need a directory or a template that gives distinct names;
    standard output is refused.  Output directories must already exist.

    >>> expand_outputs(["a.png"], None, default_ext=None)
    ['-']
    >>> expand_outputs(["x/a.png", "b.jpg"], "{stem}-edges.png", default_ext=None)
    ['a-edges.png', 'b-edges.png']
    >>> expand_outputs(["x/a.png", "b.jpg"], "{index:02d}.{ext}", default_ext=".npy")
    ['01.npy', '02.npy']
    """
    inputs = [os.fspath(i) for i in inputs]
    check_inputs(inputs)
    if output is not None:
        output = os.fspath(output)
    if output is None or output == "-":
        if len(inputs) > 1:
            raise UsageError(
                f"{len(inputs)} inputs cannot all go to standard output; use -o DIR/ or a "
                "template such as -o 'out/{stem}-edges.png'"
            )
        return ["-"]
    if _is_template(output):
        outs = [
            _apply_template(output, _fields(p, i, default_ext)) for i, p in enumerate(inputs, 1)
        ]
    elif output.endswith(("/", os.sep)) or os.path.isdir(output):
        outs = [
            os.path.join(output, _fields(p, i, default_ext)["name"])
            for i, p in enumerate(inputs, 1)
        ]
    elif len(inputs) == 1:
        outs = [output]
    else:
        raise UsageError(
            f"with {len(inputs)} inputs, -o must be a directory ending in '/' or a template "
            f"containing {{stem}}, {{name}}, {{ext}} or {{index}} (got {output!r})"
        )
    seen: dict[str, str] = {}
    for src, dst in zip(inputs, outs, strict=True):
        key = os.path.normpath(dst)
        if key in seen:
            raise UsageError(
                f"inputs {seen[key]} and {src} would both be written to {dst}; "
                "use a template with {index} or {dir}"
            )
        seen[key] = src
        if dst == "-" or not dst:
            raise UsageError(f"output template {output!r} gives an empty or '-' name for {src}")
        parent = os.path.dirname(dst)
        if parent and not os.path.isdir(parent):
            raise UsageError(f"{dst}: directory {parent} does not exist")
    return outs
