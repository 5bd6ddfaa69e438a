"""libspng called directly: a plain PNG decoded from its file into a numpy array.

pyspng's ``load`` takes the whole file as ``bytes`` and copies it into a
``std::string`` before decoding, so a 15 MB PNG of a 12 MP photo costs the
file twice besides the 36 MB of pixels. Its extension module exports
libspng's own API, so this module calls that through ctypes instead: libspng
reads the file itself (a C ``FILE`` on a duplicate of the descriptor) and
decodes into the array, checking every chunk's CRC on the way (the whole
file up to IEND, ancillary chunks too). Nothing of the file is held in
Python memory. :class:`RowDecoder` does the same row by row on a thread of
its own, so that a filter can start on the first rows.

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
import threading
from collections.abc import Callable
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
    "spng_decode_row": (_INT, [_PTR, _PTR, _SIZE]),
    "spng_set_crc_action": (_INT, [_PTR, _INT, _INT]),
}
#: spng_decode_image's flag for row-by-row decoding, and spng_decode_row's
#: status after the last row (spng.h).
_DECODE_PROGRESSIVE = 256
_END_OF_IMAGE = 75
#: spng_set_crc_action's "stop with an error" (ancillary chunks default to being
#: dropped quietly; Pillow refuses a damaged one, so libspng must stop too).
_CRC_ERROR = 0


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
    decoding = _Decoding.open(stream, height, width, colour)
    if decoding is None:
        return None
    try:
        out = decoding.pixels
        ok = (
            decoding.spng.spng_decode_image(
                decoding.context, out.ctypes.data, out.nbytes, decoding.fmt, 0
            )
            == 0
            and decoding.finish()
        )
    finally:
        decoding.close()
        stream.seek(0)
    return out if ok else None


class RowDecoder:
    """A plain PNG decoded row by row on a thread of its own, into :attr:`pixels`.

    Filtering can start on the first rows while libspng decodes the rest
    (its calls release the GIL). Readers call :meth:`wait` with the number
    of rows they need before reading them. Should libspng stop on damage
    (a CRC that does not match, data cut short), ``fallback`` reads the
    whole file the ordinary way, as if it had never been read row by row:
    its rows (the same as libspng's up to the damage) replace those not
    yet read, or its error (Pillow's, naming the file) is what :meth:`wait`
    raises.
    """

    #: Rows decoded between two wake-ups of the readers.
    NOTIFY_ROWS = 16

    def __init__(self, decoding: _Decoding, fallback: Callable[[], np.ndarray]):
        self.pixels = decoding.pixels
        self._decoding, self._fallback = decoding, fallback
        self._rows = 0
        self._error: BaseException | None = None
        self._done = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="imgkernel-png", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            decoding.close()
            raise

    @classmethod
    def start(
        cls, stream: IO[bytes], fallback: Callable[[], np.ndarray], layout: tuple[int, int, int]
    ) -> RowDecoder | None:
        """Start decoding the file behind ``stream`` (``layout``: height, width, colour
        type), or None (the stream at its start) where libspng refuses its header or
        the stream is no real file (standard input, a pipe: ``fallback`` could not
        read it again)."""
        decoding = _Decoding.open(stream, *layout)
        if decoding is None:
            return None
        flags = _DECODE_PROGRESSIVE
        if not decoding.file or (
            decoding.spng.spng_decode_image(decoding.context, None, 0, decoding.fmt, flags) != 0
        ):
            decoding.close()
            stream.seek(0)
            return None
        return cls(decoding, fallback)

    def wait(self, rows: int | None = None) -> None:
        """Return once the first ``rows`` rows (default: all) are decoded."""
        need = len(self.pixels) if rows is None else min(int(rows), len(self.pixels))
        with self._done:
            self._done.wait_for(lambda: self._rows >= need or self._error is not None)
        if self._rows < need and self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Stop decoding at the next row (the rows not yet decoded stay as they are)."""
        self._stop = True

    def _run(self) -> None:
        decoding, out = self._decoding, self.pixels
        try:
            done = self._decode_rows(decoding, out) and decoding.finish()
        except BaseException:  # pragma: no cover - ctypes itself failing
            done = False
        finally:
            decoding.close()
        if done or self._stop:
            self._arrived(len(out) if done else self._rows, None)
            return
        try:  # damaged: read whole the ordinary way (which raises Pillow's error)
            whole = self._fallback()
            if whole.shape != out.shape or whole.dtype != out.dtype:
                raise ValueError(f"read as {whole.dtype} {whole.shape}")  # pragma: no cover
            out[self._rows :] = whole[self._rows :]
        except BaseException as exc:
            self._arrived(self._rows, exc)
            return
        self._arrived(len(out), None)

    def _decode_rows(self, decoding: _Decoding, out: np.ndarray) -> bool:
        """libspng's rows into ``out``; False on damage or :meth:`cancel`."""
        row_bytes = out.nbytes // max(len(out), 1)
        address, last = out.ctypes.data, len(out) - 1
        for y in range(len(out)):
            status = decoding.spng.spng_decode_row(
                decoding.context, address + y * row_bytes, row_bytes
            )
            # Each row but the last returns 0; the last, libspng's end-of-image status.
            if self._stop or status != (_END_OF_IMAGE if y == last else 0):
                return False
            if y % self.NOTIFY_ROWS == self.NOTIFY_ROWS - 1 and y < last:
                self._arrived(y + 1, None)
        return True

    def _arrived(self, rows: int, error: BaseException | None) -> None:
        with self._done:
            self._rows, self._error = rows, error
            self._done.notify_all()


class _Decoding:
    """A libspng context on one PNG: its source (a C ``FILE`` on a duplicate of a
    real file's descriptor, else the stream's bytes) and the array to fill."""

    def __init__(self, spng: Any, libc: Any, context: int, pixels: np.ndarray, fmt: int):
        self.spng, self.libc, self.context = spng, libc, context
        self.pixels, self.fmt = pixels, fmt
        self.file: int | None = None
        self.data: bytes | None = None

    @classmethod
    def open(cls, stream: IO[bytes], height: int, width: int, colour: int) -> _Decoding | None:
        """A context reading ``stream``, its CRCs all checked; None where libspng is not
        at hand, refuses the file, or the pixels do not fit in memory (Pillow reports it)."""
        libraries = _libraries()
        if libraries is None or colour not in _FORMATS:
            return None
        spng, libc = libraries
        channels = {0: 1, 2: 3, 6: 4}[colour]
        try:
            pixels = np.empty(
                (height, width) if channels == 1 else (height, width, channels), np.uint8
            )
        except (ValueError, MemoryError):
            return None
        context = spng.spng_ctx_new(0)
        if not context:
            return None
        decoding = cls(spng, libc, context, pixels, _FORMATS[colour])
        size = _SIZE()
        try:
            ok = (
                spng.spng_set_crc_action(context, _CRC_ERROR, _CRC_ERROR) == 0
                and decoding._attach(stream)
                and spng.spng_set_image_limits(context, 0x7FFFFFFF, 0x7FFFFFFF) == 0
                and spng.spng_set_chunk_limits(context, _CHUNK_LIMIT, _CHUNK_LIMIT) == 0
                and spng.spng_decoded_image_size(context, decoding.fmt, ctypes.byref(size)) == 0
                and size.value == pixels.nbytes
            )
        except OSError:  # no descriptor to spare
            ok = False
        if not ok:
            decoding.close()
            stream.seek(0)
            return None
        return decoding

    def _attach(self, stream: IO[bytes]) -> bool:
        try:
            descriptor: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # BytesIO (standard input), wrappers
            descriptor = None
        if descriptor is not None and self.libc is not None:
            duplicate = os.dup(descriptor)
            os.lseek(duplicate, 0, os.SEEK_SET)
            self.file = self.libc.fdopen(duplicate, b"rb")
            if self.file:
                return bool(self.spng.spng_set_png_file(self.context, self.file) == 0)
            os.close(duplicate)
        stream.seek(0)
        self.data = stream.read()
        pointer = ctypes.cast(ctypes.c_char_p(self.data), _PTR).value
        return bool(self.spng.spng_set_png_buffer(self.context, pointer, len(self.data)) == 0)

    def finish(self) -> bool:
        """Read the chunks after the image, up to IEND (their CRCs checked)."""
        return bool(self.spng.spng_decode_chunks(self.context) == 0)

    def close(self) -> None:
        if self.context:
            self.spng.spng_ctx_free(self.context)
            self.context = 0
        if self.file:
            self.libc.fclose(self.file)  # closes the duplicate descriptor too
            self.file = None
        self.data = None
