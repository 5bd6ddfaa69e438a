"""libspng called directly: a plain PNG decoded from its file into a numpy array.

pyspng's ``load`` takes the whole file as ``bytes`` and copies it into a
``std::string`` before decoding, so a 15 MB PNG of a 12 MP photo costs the
file twice besides the 36 MB of pixels: 103 MB peak for ``filter emboss``
where the decoded image is 36 MB. Its extension module exports libspng's
own API, so this module calls that through ctypes instead: libspng reads the
file itself (a C ``FILE`` on a duplicate of the descriptor) and decodes into
the array, checking every chunk's CRC on the way (the whole file up to
IEND). Nothing of the file is held in Python memory.

Only the PNGs :mod:`imgkernel.images.pngread` calls plain are decoded here
(8-bit gray, RGB or RGBA, not interlaced), in their own layout, so libspng
converts nothing. Where the library or a symbol is missing, or libspng
refuses the file, :func:`decode_plain` returns None and the caller goes on
as before (pyspng's ``load``, or Pillow, which then reports what is wrong).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import IO, Any

import numpy as np

#: libspng's output formats for the PNG colour types read here (spng.h).
_FORMATS = {0: 64, 2: 4, 6: 1}  # SPNG_FMT_G8, SPNG_FMT_RGB8, SPNG_FMT_RGBA8
#: Largest chunk and chunk cache libspng may hold (pyspng's own limits).
_CHUNK_LIMIT = 64 << 20

_PTR, _SIZE, _INT = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "spng_ctx_new": (_PTR, [_INT]),
    "spng_ctx_free": (None, [_PTR]),
    "spng_set_png_file": (_INT, [_PTR, _PTR]),
    "spng_set_png_buffer": (_INT, [_PTR, _PTR, _SIZE]),
    "spng_set_image_limits": (_INT, [_PTR, ctypes.c_uint32, ctypes.c_uint32]),
    "spng_set_chunk_limits": (_INT, [_PTR, _SIZE, _SIZE]),
    "spng_decoded_image_size": (_INT, [_PTR, _INT, ctypes.POINTER(_SIZE)]),
    "spng_decode_image": (_INT, [_PTR, _PTR, _SIZE, _INT, _INT]),
    "spng_decode_chunks": (_INT, [_PTR]),
}


@functools.cache
def _libraries() -> tuple[Any, Any] | None:
    """``(libspng, libc)`` with their signatures set, or None where either is missing."""
    try:
        from pyspng import _pyspng_c

        spng = ctypes.CDLL(_pyspng_c.__file__)
        for name, (result, arguments) in _SIGNATURES.items():
            function = getattr(spng, name)
            function.restype, function.argtypes = result, arguments
        libc = None
        if sys.platform != "win32":
            libc = ctypes.CDLL(None)
            libc.fdopen.restype, libc.fdopen.argtypes = _PTR, [_INT, ctypes.c_char_p]
            libc.fclose.restype, libc.fclose.argtypes = _INT, [_PTR]
    except (ImportError, OSError, AttributeError):  # no pyspng, or a build without the symbols
        return None
    return spng, libc


def available() -> bool:
    """Whether libspng can be called directly here."""
    return _libraries() is not None


def decode_plain(stream: IO[bytes], height: int, width: int, colour: int) -> np.ndarray | None:
    """The pixels of the plain PNG in ``stream`` (``colour``: its IHDR colour type), or None.

    ``(H, W)`` for gray, ``(H, W, 3|4)`` for RGB and RGBA, uint8. None when
    libspng is not at hand or refuses the file (damaged, cut short, a CRC
    that does not match); the stream is then left at its start.
    """
    libraries = _libraries()
    if libraries is None or colour not in _FORMATS:
        return None
    spng, libc = libraries
    channels = {0: 1, 2: 3, 6: 4}[colour]
    out = np.empty((height, width) if channels == 1 else (height, width, channels), np.uint8)
    context = spng.spng_ctx_new(0)
    if not context:
        return None
    try:
        with _Source(stream, libc) as (kind, pointer, size):
            ok = (
                spng.spng_set_png_file(context, pointer) == 0
                if kind == "file"
                else spng.spng_set_png_buffer(context, pointer, size) == 0
            )
            ok = ok and _decode(spng, context, out, _FORMATS[colour])
    finally:
        spng.spng_ctx_free(context)
        stream.seek(0)
    return out if ok else None


def _decode(spng: Any, context: int, out: np.ndarray, fmt: int) -> bool:
    """Decode into ``out`` (exactly its size), then read the chunks after the image up to IEND."""
    size = _SIZE()
    return (
        spng.spng_set_image_limits(context, 0x7FFFFFFF, 0x7FFFFFFF) == 0
        and spng.spng_set_chunk_limits(context, _CHUNK_LIMIT, _CHUNK_LIMIT) == 0
        and spng.spng_decoded_image_size(context, fmt, ctypes.byref(size)) == 0
        and size.value == out.nbytes
        and spng.spng_decode_image(context, out.ctypes.data, out.nbytes, fmt, 0) == 0
        and spng.spng_decode_chunks(context) == 0
    )


class _Source:
    """The PNG for libspng: a C ``FILE`` on a duplicate of a real file's descriptor
    (read from its start), else the stream's bytes in memory."""

    def __init__(self, stream: IO[bytes], libc: Any):
        self.stream, self.libc = stream, libc
        self.file: int | None = None
        self.data: bytes | None = None

    def __enter__(self) -> tuple[str, int, int]:
        descriptor = self._descriptor()
        if descriptor is not None and self.libc is not None:
            duplicate = os.dup(descriptor)
            os.lseek(duplicate, 0, os.SEEK_SET)
            self.file = self.libc.fdopen(duplicate, b"rb")
            if self.file:
                return "file", self.file, 0
            os.close(duplicate)
        self.stream.seek(0)
        self.data = self.stream.read()
        return "buffer", ctypes.cast(ctypes.c_char_p(self.data), _PTR).value or 0, len(self.data)

    def __exit__(self, *_: object) -> None:
        if self.file:
            self.libc.fclose(self.file)  # closes the duplicate descriptor too

    def _descriptor(self) -> int | None:
        try:
            return self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # BytesIO (standard input), wrappers
            return None
