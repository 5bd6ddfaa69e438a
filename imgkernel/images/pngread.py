"""Reading plain PNGs straight into numpy with libspng (pyspng), Pillow for the rest.

Pillow decodes a PNG into its own image (4 bytes a pixel for RGB) and numpy
copies it out, so a 12 MP RGB photo peaks at about 117 MB above the
interpreter; pyspng decodes into the array itself (about 64 MB, and 0.48 s
against Pillow's 0.81 s on one core here). Only the PNGs whose meaning
libspng's output cannot change are taken this way: gray, RGB or RGBA at 8
bits (pyspng 0.1.4 turns 16-bit gray and RGB into gray+alpha and RGBA and
refuses gray+alpha), not interlaced, with no palette, no transparency key,
no EXIF orientation and no animation. Anything else returns None and Pillow
reads it as before.

pyspng needs the whole file in memory twice (ours, and its own copy), which
for a large noisy PNG is more than the decoded image again. Files over
:data:`BIG_PNG_BYTES` are therefore decoded by Pillow's streaming decoder
(64 KiB of the file at a time) straight into a numpy array that Pillow's
image maps (:func:`read_big_png`): gray and RGBA land in place, RGB is
stored 4 bytes a pixel by Pillow and packed to 3 in place afterwards, the
spare quarter handed back to the system.
"""

from __future__ import annotations

import mmap
import struct
import warnings
import zlib
from typing import IO

import numpy as np

#: IHDR colour types pyspng hands back unchanged at 8 bits: gray, RGB, RGBA
#: (its gray+alpha output and every 16-bit one were wrong or refused when tried).
_CHANNELS = {0: 1, 2: 3, 6: 4}
#: Chunks (before the image data) that make Pillow's reading the right one.
_PILLOW_CHUNKS = {b"tRNS", b"eXIf", b"acTL", b"PLTE"}
#: Files larger than this skip pyspng (two copies of the file) for Pillow's
#: streaming decoder into the array (none): 64 MiB keeps the extra under 150 MB.
BIG_PNG_BYTES = 64 << 20
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plain_png_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` if ``data`` is a whole, intact PNG for :func:`read_plain_png`.

    Every chunk's CRC-32 is checked here and the file must end in IEND:
    pyspng asks libspng to skip the CRCs, and then decodes damaged data to
    garbage without a word, where Pillow reports it.

    >>> plain_png_size(b"not a png") is None
    True
    """
    if data[:8] != _SIGNATURE or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if colour not in _CHANNELS or depth != 8 or interlace:
        return None
    view = memoryview(data)
    pos, seen_data = 8, False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data) or kind in _PILLOW_CHUNKS and not seen_data:
            return None
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(view[pos + 4 : end]) != crc:
            return None
        if kind == b"IEND":
            return (height, width) if seen_data else None
        seen_data = seen_data or kind == b"IDAT"
        pos = end + 4
    return None


def read_plain_png(stream: IO[bytes], limit: int | None) -> np.ndarray | None:
    """The pixels of a plain PNG (see the module notes), or None for Pillow to read it.

    Returns ``(H, W)`` or ``(H, W, C)`` uint8 or uint16 (native byte order),
    alpha as the last channel. A PNG of more than ``limit`` pixels is left to
    Pillow, which reports it. The stream is left at its start when None.
    """
    try:
        import pyspng
    except ImportError:  # pragma: no cover - an optional speed-up
        return None
    length = stream.seek(0, 2)
    stream.seek(0)
    if length > BIG_PNG_BYTES:
        return read_big_png(stream, limit)
    data = stream.read()
    stream.seek(0)
    size = plain_png_size(data)
    if size is None or (limit and size[0] * size[1] > limit):
        return None
    try:
        return pyspng.load(data)
    except Exception:  # libspng refuses damaged data: let Pillow report it
        return None


def read_big_png(stream: IO[bytes], limit: int | None) -> np.ndarray | None:
    """A large plain 8-bit PNG decoded by Pillow into a numpy array, or None.

    Same pixels and conditions as :func:`read_plain_png`; the peak memory is
    the decoded image plus Pillow's read buffer (RGB: a third more until it
    is packed). Anything unusual, damaged or refused returns None (stream at
    its start) for the ordinary Pillow reader to read or report.
    """
    from PIL import Image as PILImage

    head = stream.read(33)
    stream.seek(0)
    if head[:8] != _SIGNATURE or len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if colour not in _CHANNELS or depth != 8 or interlace or (limit and width * height > limit):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            old, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
            try:
                pil = PILImage.open(stream, formats=["PNG"])
            finally:
                PILImage.MAX_IMAGE_PIXELS = old
            if (
                pil.mode != {1: "L", 3: "RGB", 4: "RGBA"}[_CHANNELS[colour]]
                or pil.size != (width, height)
                or {"transparency", "exif"} & set(pil.info)
                or getattr(pil, "is_animated", False)
            ):
                raise ValueError("not a plain PNG")
            store = _anonymous((height, width) if colour == 0 else (height, width, 4))
            pil.im = PILImage.core.map_buffer(store, pil.size, "raw", 0, (pil.mode, 0, 1))
            pil.load()
    except Exception:  # damaged, refused or unusual: the ordinary reader says why
        stream.seek(0)
        return None
    return _pack_rgb(store) if colour == 2 else store


def _anonymous(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed uint8 array in its own anonymous mapping (pages can be handed back)."""
    size = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(size, 1)), np.uint8, size).reshape(shape)


def _pack_rgb(rgbx: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` from Pillow's 4-byte RGB pixels, packed in place row by row.

    Row ``y`` moves from byte ``4Wy`` to ``3Wy``, never over a row not yet
    moved (numpy buffers the first rows, where a row overlaps itself). The
    freed tail of the mapping goes back to the system.
    """
    height, width, _ = rgbx.shape
    flat = rgbx.reshape(-1)
    row = 3 * width
    for y in range(height):
        flat[y * row : (y + 1) * row].reshape(width, 3)[...] = rgbx[y, :, :3]
    buffer = rgbx.base
    while buffer is not None and not isinstance(buffer, mmap.mmap):
        buffer = getattr(buffer, "base", None) or getattr(buffer, "obj", None)
    used = -(-height * row // mmap.PAGESIZE) * mmap.PAGESIZE
    if isinstance(buffer, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") and used < len(buffer):
        buffer.madvise(mmap.MADV_DONTNEED, used, len(buffer) - used)
    return flat[: height * row].reshape(height, width, 3)
