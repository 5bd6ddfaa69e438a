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
"""

from __future__ import annotations

import struct
import zlib
from typing import IO

import numpy as np

#: IHDR colour types pyspng hands back unchanged at 8 bits: gray, RGB, RGBA
#: (its gray+alpha output and every 16-bit one were wrong or refused when tried).
_CHANNELS = {0: 1, 2: 3, 6: 4}
#: Chunks (before the image data) that make Pillow's reading the right one.
_PILLOW_CHUNKS = {b"tRNS", b"eXIf", b"acTL", b"PLTE"}


def plain_png_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` if ``data`` is a whole, intact PNG for :func:`read_plain_png`.

    Every chunk's CRC-32 is checked here and the file must end in IEND:
    pyspng asks libspng to skip the CRCs, and then decodes damaged data to
    garbage without a word, where Pillow reports it.

    >>> plain_png_size(b"not a png") is None
    True
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33 or data[12:16] != b"IHDR":
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
    data = stream.read()
    stream.seek(0)
    size = plain_png_size(data)
    if size is None or (limit and size[0] * size[1] > limit):
        return None
    try:
        return pyspng.load(data)
    except Exception:  # libspng refuses damaged data: let Pillow report it
        return None
