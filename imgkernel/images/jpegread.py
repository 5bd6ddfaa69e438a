"""Reading plain JPEGs straight into numpy with libjpeg-turbo (simplejpeg), Pillow for the rest.

Pillow decodes a 12 MP JPEG in 55 ms here, then takes another 50 ms to copy
its 4-bytes-a-pixel image out into numpy; simplejpeg decodes into the array
in 27 ms, with the same library, the same (accurate) DCT and upsampling and
the same pixels, bit for bit (tested against Pillow). Only the JPEGs whose
pixels cannot differ are taken this way: 8-bit, Huffman-coded (baseline,
extended or progressive), gray or three components in libjpeg's own colour
handling (no Adobe transform marker), no EXIF orientation other than 1 and
no XMP orientation (the reader rotates those), not a multi-picture (MPO) file, whole (ending in EOI)
and decoded without a single libjpeg warning. Anything else returns None and
Pillow reads (or reports) it as before.
"""

from __future__ import annotations

import struct
from typing import IO

import numpy as np

#: Start-of-frame markers of Huffman-coded 8/12-bit JPEGs: baseline, extended, progressive.
_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2}
#: Every other start of frame (lossless, differential, arithmetic): Pillow's business.
_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_ORIENTATION = 0x0112
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def plain_jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """``(height, width, components)`` if ``data`` is a JPEG for :func:`read_plain_jpeg`.

    Walks the marker segments up to the first scan.

    >>> plain_jpeg_size(b"not a jpeg") is None
    True
    """
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return None
        if marker == 0xDA:  # start of scan: the header is over
            return size
        if marker in _OTHER_FRAMES or not _plain_segment(marker, body):
            return None
        if marker in _HUFFMAN_FRAMES:
            if size is not None or len(body) < 6 or body[0] != 8 or body[5] not in (1, 3):
                return None
            height, width = struct.unpack(">HH", body[1:5])
            size = (height, width, body[5])
        pos += 2 + length
    return None


def _plain_segment(marker: int, body: bytes) -> bool:
    """False for a segment that makes Pillow's reading the right one."""
    if marker == 0xEE and body.startswith(b"Adobe"):  # its own colour transform
        return False
    if marker == 0xE2 and body.startswith(b"MPF\x00"):  # a multi-picture file
        return False
    if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
        return _exif_orientation(body[6:]) in (None, 1)
    if marker == 0xE1 and body.startswith(_XMP) and b"Orientation" in body:
        return False  # Pillow also rotates by XMP's tiff:Orientation
    return True


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag of EXIF's first IFD (None: absent), or 0 if it cannot be read.

    >>> ifd = b"\\x01\\x00" + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    >>> _exif_orientation(b"II*\\x00\\x08\\x00\\x00\\x00" + ifd)
    6
    """
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return 0
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
        for n in range(count):
            entry = tiff[offset + 2 + 12 * n : offset + 14 + 12 * n]
            tag, kind, _, value = struct.unpack(order + "HHIH", entry[:10])
            if tag == _ORIENTATION:
                return value if kind == 3 else 0
    except struct.error:
        return 0
    return None


def read_plain_jpeg(stream: IO[bytes], limit: int | None) -> np.ndarray | None:
    """The pixels of a plain JPEG (see the module notes), or None for Pillow to read it.

    Returns ``(H, W)`` (gray) or ``(H, W, 3)`` uint8. A JPEG of more than
    ``limit`` pixels is left to Pillow, which reports it. The stream is left
    at its start when None.
    """
    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - an optional speed-up
        return None
    data = stream.read()
    stream.seek(0)
    size = plain_jpeg_size(data)
    if size is None or (limit and size[0] * size[1] > limit):
        return None
    height, width, components = size
    try:  # strict: any libjpeg warning (damaged data) leaves the file to Pillow
        pixels = simplejpeg.decode_jpeg(
            data, "GRAY" if components == 1 else "RGB", fastdct=False, fastupsample=False
        )
    except Exception:
        return None
    if pixels.shape[:2] != (height, width):
        return None
    return pixels[:, :, 0] if components == 1 else pixels
