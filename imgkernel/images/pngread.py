"""Reading plain PNGs straight into numpy with libspng, Pillow for the rest.

Pillow decodes a PNG into its own image (4 bytes a pixel for RGB) and numpy
copies it out, so a 12 MP RGB photo peaks at about 117 MB above the
interpreter. libspng (in pyspng's extension module) decodes into the array
itself, 0.48 s against Pillow's 0.81 s on one core here. It is called
directly (:mod:`imgkernel.images.spng`): it reads the file from its
descriptor, so the peak is the decoded image, where ``pyspng.load`` holds
the whole file twice besides (a whole ``filter emboss`` of a 12 MP photo
with a 15 MB file peaked at 100 MB that way, at 93 now). ``filter`` and
``pool`` read gray and RGB PNGs row by row (:func:`start_plain_png`),
starting on the first rows while the rest decode.

Only the PNGs whose meaning libspng's output cannot change are taken this
way: gray, RGB or RGBA at 8 bits, not interlaced, with no palette, no
transparency key, no EXIF orientation and no animation
(:func:`plain_png_layout` reads the chunk headers). Anything else returns
None and Pillow reads it as before.

Where libspng cannot be called directly, ``pyspng.load`` reads the file
(pyspng 0.1.4 turns 16-bit gray and RGB into gray+alpha and RGBA and
refuses gray+alpha: hence the 8-bit rule). It needs the whole file in
memory twice, so files over :data:`BIG_PNG_BYTES` are then decoded by
Pillow's streaming decoder (64 KiB of the file at a time) straight into a
numpy array that Pillow's image maps (:func:`read_big_png`): gray and RGBA
land in place; RGB, which Pillow stores 4 bytes a pixel, is packed to 3 in
place as the rows arrive (:class:`RGBPacker`), the pages left behind handed
back to the system. 20000x20000 gray noise (381 MB decoded, 400 MB file)
peaks at 445 MB through ``filter box:size=3`` against 1178 MB read whole;
10000x12000 RGB noise (343 MB) at 409 MB against 1063 MB.
"""

from __future__ import annotations

import io  # noqa: F401 - the doctests' streams
import mmap
import struct
import warnings
import zlib
from collections.abc import Callable
from typing import IO, Any

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


def plain_png_layout(stream: IO[bytes]) -> tuple[int, int, int] | None:
    """``(height, width, colour type)`` if ``stream`` holds a plain PNG, else None.

    Only the chunk headers are read (the stream seeks over the data), up to
    an IEND that must end the chunks: nothing of a large file is loaded. The
    CRCs are left to libspng, which checks every chunk it reads. The stream
    is left at its start.

    >>> plain_png_layout(io.BytesIO(b"not a png")) is None
    True
    """
    try:
        length = stream.seek(0, 2)
        stream.seek(0)
        head = stream.read(33)
        if head[:8] != _SIGNATURE or len(head) < 33 or head[12:16] != b"IHDR":
            return None
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
        if colour not in _CHANNELS or depth != 8 or interlace:
            return None
        pos, seen_data = 33, False
        while pos + 12 <= length:
            stream.seek(pos)
            size, kind = struct.unpack(">I4s", stream.read(8))
            if pos + 12 + size > length or kind in _PILLOW_CHUNKS and not seen_data:
                return None
            if kind == b"IEND":
                return (height, width, colour) if seen_data else None
            seen_data = seen_data or kind == b"IDAT"
            pos += 12 + size
        return None
    finally:
        stream.seek(0)


def read_plain_png(stream: IO[bytes], limit: int | None) -> np.ndarray | None:
    """The pixels of a plain PNG (see the module notes), or None for Pillow to read it.

    Returns ``(H, W)`` or ``(H, W, C)`` uint8, alpha as the last channel,
    decoded by libspng straight from the file (:mod:`imgkernel.images.spng`)
    or, where that cannot be called, through pyspng. A PNG of more than
    ``limit`` pixels is left to Pillow, which reports it. The stream is left
    at its start when None.
    """
    from imgkernel.images import spng

    layout = plain_png_layout(stream)
    if layout is None or (limit and layout[0] * layout[1] > limit):
        return None
    if spng.available():
        return spng.decode_plain(stream, *layout)
    return _read_with_pyspng(stream, limit)


def start_plain_png(
    stream: IO[bytes], limit: int | None, fallback: Callable[[], np.ndarray]
) -> Any | None:
    """A :class:`~imgkernel.images.spng.RowDecoder` already decoding the plain gray or
    RGB PNG file behind ``stream`` row by row, or None (the stream at its start)
    for :func:`read_plain_png` to read it whole (RGBA too: its alpha is split
    off into a copy). ``fallback`` reads the file whole should libspng find
    it damaged on the way."""
    from imgkernel.images import spng

    layout = plain_png_layout(stream)
    if layout is None or layout[2] not in (0, 2) or (limit and layout[0] * layout[1] > limit):
        return None
    return spng.RowDecoder.start(stream, fallback, layout)


def _read_with_pyspng(stream: IO[bytes], limit: int | None) -> np.ndarray | None:
    """:func:`read_plain_png` through ``pyspng.load`` (the file in memory twice)."""
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
    the decoded image plus Pillow's read buffer and a few rows. Anything
    unusual, damaged or refused returns None (stream at its start) for the
    ordinary Pillow reader to read or report.
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
            memory = mmap.mmap(-1, height * width * (1 if colour == 0 else 4))
            store = np.frombuffer(memory, np.uint8)
            store = store.reshape((height, width) if colour == 0 else (height, width, 4))
            pil.im = PILImage.core.map_buffer(store, pil.size, "raw", 0, (pil.mode, 0, 1))
            packer = RGBPacker(store, memory) if colour == 2 else None
            if packer is not None:
                # Pillow reads through load_read before each piece it decodes:
                # the rows decoded so far are packed meanwhile.
                read = pil.load_read  # type: ignore[attr-defined]  # PngImageFile's
                pil.load_read = packer.reading(read)  # type: ignore[attr-defined]
            pil.load()
    except Exception:  # damaged, refused or unusual: the ordinary reader says why
        stream.seek(0)
        return None
    return packer.finish() if packer is not None else store


class RGBPacker:
    """Pillow's RGB pixels (4 bytes, the 4th 255) packed to ``(H, W, 3)`` in place.

    Row ``y`` moves from byte ``4Wy`` to ``3Wy``: never over a row not yet
    moved (numpy buffers the first rows, where a row overlaps itself). A row
    is decoded once its last pixel's 4th byte is 255 (the mapping starts as
    zeros). The pages between the packed rows and the first unpacked one are
    handed back as packing goes, so the peak stays near the packed size.
    """

    def __init__(self, rgbx: np.ndarray, memory: mmap.mmap):
        self.rgbx, self.memory = rgbx, memory
        self.height, self.width, _ = rgbx.shape
        self.flat = rgbx.reshape(-1)
        self.packed = 0

    def reading(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """``read``, packing the rows decoded so far before each call."""

        def read_and_pack(size: int) -> bytes:
            self.pack_ready()
            return read(size)

        return read_and_pack

    def pack_ready(self) -> None:
        """Pack every row decoded so far (a few at least) and free the pages behind."""
        done = self.packed
        while done < self.height:
            ready = self.rgbx[done : done + 256, -1, 3] == 255
            done += int(ready.argmin()) if not ready.all() else len(ready)
            if not ready.all():
                break
        if done - self.packed >= 16 or done == self.height:
            self._pack(done)

    def finish(self) -> np.ndarray:
        self._pack(self.height)
        return self.flat[: self.height * 3 * self.width].reshape(self.height, self.width, 3)

    def _pack(self, stop: int) -> None:
        row = 3 * self.width
        for y in range(self.packed, stop):
            self.flat[y * row : (y + 1) * row].reshape(self.width, 3)[...] = self.rgbx[y, :, :3]
        self.packed = stop
        page = mmap.PAGESIZE
        start = -(-stop * row // page) * page
        end = len(self.memory) if stop == self.height else (stop * 4 * self.width) // page * page
        if end > start and hasattr(mmap, "MADV_DONTNEED"):
            self.memory.madvise(mmap.MADV_DONTNEED, start, end - start)
