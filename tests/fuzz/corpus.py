"""Hypothesis strategies for bad files: truncated and damaged images, lying headers,
decompression bombs, ``.npy`` arrays of every dtype and rank (pickles included),
corrupt archives, random bytes and empty files.

Good encodings are made once (:func:`good_files`); the strategies damage them.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import struct
import tempfile
import zipfile
import zlib

import numpy as np
from hypothesis import strategies as st
from PIL import Image

#: Made by unpickling the booby-trapped ``.npy`` below; it must never exist.
PICKLE_SENTINEL = os.path.join(tempfile.gettempdir(), f"imgkernel-fuzz-pickle-ran-{os.getpid()}")


class _Trap:
    """Unpickling this makes :data:`PICKLE_SENTINEL` (a folder): proof that a pickle ran."""

    def __reduce__(self) -> tuple:
        return (os.mkdir, (PICKLE_SENTINEL,))


def _encode(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@functools.cache
def good_files() -> dict[str, bytes]:
    """Small valid files of every supported format (the raw material to damage)."""
    rng = np.random.default_rng(13)
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises the EXIF path
    return {
        "png": _encode(gray, "PNG"),
        "png-rgba": _encode(rgba, "PNG"),
        "png-16": _encode(rng.integers(0, 65536, (9, 11), dtype=np.uint16), "PNG"),
        "png-palette": _palette_png(rgb),
        "jpeg": _encode(rgb, "JPEG", exif=exif.tobytes()),
        "gif": gif.getvalue(),
        "tiff": _encode(rgb, "TIFF"),
        "tiff-float": _encode(rng.random((9, 11), dtype=np.float32), "TIFF"),
        "bmp": _encode(rgb, "BMP"),
        "webp": _encode(rgb, "WEBP", lossless=True),
        "ppm": _encode(rgb, "PPM"),
        "npy": _npy(rng.random((9, 11, 3), dtype=np.float32)),
        "npy-u8": _npy(gray),
    }


def _palette_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(
        buf, format="PNG", transparency=0
    )
    return buf.getvalue()


_PNG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def lying_png(width: int, height: int, depth: int, colour: int, body: bytes) -> bytes:
    """A PNG whose IHDR (with a correct CRC) claims any size, followed by a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(body)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def png_bomb(side: int) -> bytes:
    """A real decompression bomb: a ``side`` x ``side`` black PNG, a few hundred KB at most."""
    row = b"\x00" * (side + 1)
    body = zlib.compress(row * side, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    )


def lying_bmp(width: int, height: int, bits: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + b"\x00" * 16


def lying_gif(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b"\x3b"


def lying_npy(shape: str, descr: str, fortran: str, body: bytes) -> bytes:
    """An ``.npy`` whose header says anything (shape, dtype, order) over ``body``."""
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header = header.ljust(((len(header) + 11) // 64 + 1) * 64 - 11) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + body


DTYPES = [
    "u1", "i1", "u2", ">u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", ">f4", "f8", "g",
    "c8", "c16", "?", "U3", "S3", "V4", "M8[s]", "m8[s]", "O", [("a", "f4"), ("b", "u1")],
]  # fmt: skip


@st.composite
def npy_arrays(draw: st.DrawFn) -> bytes:
    """An ``.npy`` of any dtype and rank 0-5 (empty axes too), values from tiny to huge."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 7]), max_size=5)))
    if dtype.hasobject:
        array = np.empty(shape, dtype=object)
        if array.size:
            array.flat[0] = draw(st.sampled_from([_Trap(), None, "text", 1.5]))
        return _npy(array)
    count = int(np.prod(shape)) * dtype.itemsize
    raw = draw(st.binary(min_size=count, max_size=count)) if count <= 4096 else bytes(count)
    array = np.frombuffer(raw, dtype=np.uint8).view(dtype).reshape(shape) if count else None
    if array is None:
        array = np.zeros(shape, dtype=dtype)
    if dtype.kind == "f" and array.size and draw(st.booleans()):
        array = array.copy()
        with np.errstate(all="ignore"):  # 1e308 overflows float16/32 to inf: fine too
            array.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e308, 5e-324, -0.0]))
    return _npy(array)


_NPY_LIES = st.builds(
    lying_npy,
    st.sampled_from([
        "(1000000, 1000000)", "(99999999999999999999,)", "(-1, 3)", "(3, 3)", "(0, 5)",
        "(2, 2, 2, 2, 2, 2)", "()", "(65536, 65536, 3)", "'x'", "(1.5, 2)",
    ]),
    st.sampled_from(["'<f4'", "'|u1'", "'|O'", "'<U9'", "'nonsense'", "1", "[('a', '<f4')]"]),
    st.sampled_from(["False", "True", "2"]),
    st.binary(max_size=64),
)  # fmt: skip


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A good file cut short, or with bytes overwritten (headers and data alike)."""
    data = draw(st.sampled_from(sorted(good_files().items())))[1]
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(out) - 1))
        out[at] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def lying_tiff(draw: st.DrawFn) -> bytes:
    """A good TIFF with one directory entry's type, count or value replaced (sizes, samples
    per pixel, strip offsets...): Pillow's header checks warn, log and raise."""
    data = bytearray(good_files()[draw(st.sampled_from(["tiff", "tiff-float"]))])
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    for _ in range(draw(st.integers(1, 3))):
        entry = ifd + 2 + 12 * draw(st.integers(0, count - 1))
        field = draw(st.sampled_from([2, 4, 8]))  # type, count, value/offset
        fmt = "<H" if field == 2 else "<I"
        value = draw(st.sampled_from([0, 1, 2, 3, 5, 16, 255, 2048, 65535, 2**31 - 1, 2**32 - 1]))
        struct.pack_into(fmt, data, entry + field, value & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
    return bytes(data)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """Zip (``.npz``) and gzip archives, whole or cut short."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        names = st.sampled_from(["a.npy", "weights.npy", "x", "meta.json"])
        for name in draw(st.lists(names, unique=True)):
            archive.writestr(name, draw(st.binary(max_size=200)))
    data = draw(st.sampled_from([buf.getvalue(), gzip.compress(draw(st.binary(max_size=200)))]))
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


_TOML_VALUES = [
    "1", "0", "-1", "2.5", "1e308", "-1e308", "5e-324", "1e-300", "nan", "inf", "-inf",
    "9223372036854775807", "'sobel'", "'gaussian'", "'abs'", "'bogus'", "''", "true",
    "[]", "[[]]", "[[1, 2], [3]]", "[[1, 0, -1]]", "[[nan]]", "{}", "{ sigma = 1e-300 }",
    "{ sigma = 1e308 }", "{ size = 4 }", "{ base = 'me', rate = 2 }", "[1, 2]",
    "['sobel-x', 'sobel-y']", "['me']", "'me'", "[[1e308, 1e308], [1e308, 1e308]]",
]  # fmt: skip
_TOML_KEYS = [
    "rows", "generator", "params", "combine", "components", "alias", "scale", "offset",
    "display", "description", "arithmetic", "dilation", "bogus",
]  # fmt: skip


@st.composite
def toml_libraries(draw: st.DrawFn) -> bytes:
    """Kernel tables with any keys and values: self-references, extremes, wrong types."""
    lines = []
    for name in draw(st.lists(st.sampled_from(["me", "soft", "Edge_X", "sobel", "1"]), max_size=3)):
        lines.append(f"[kernels.{name}]")
        for key in draw(st.lists(st.sampled_from(_TOML_KEYS), unique=True, min_size=1, max_size=4)):
            lines.append(f"{key} = {draw(st.sampled_from(_TOML_VALUES))}")
    return "\n".join(lines).encode()


_MAGIC = [
    _PNG, b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP",
    b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00", b"BM", b"P6\n",
    b"P5 ", b"PK\x03\x04",
]  # fmt: skip

_SIZES = st.sampled_from([0, 1, 3, 65535, 65536, 100000, 2**31 - 1, 2**31, 2**32 - 1])

bad_files = st.one_of(
    st.just(b""),
    st.binary(max_size=512),
    st.builds(lambda m, b: m + b, st.sampled_from(_MAGIC), st.binary(max_size=256)),
    damaged(),
    lying_tiff(),
    st.builds(
        lying_png,
        _SIZES,
        _SIZES,
        st.sampled_from([1, 8, 16, 3]),
        st.sampled_from([0, 2, 3, 4, 6, 7]),
        st.binary(max_size=64),
    ),
    st.builds(
        lying_bmp,
        _SIZES.map(lambda s: min(s, 2**31 - 1)),
        st.sampled_from([-(2**31), -5, 5, 2**31 - 1]),
        st.sampled_from([0, 1, 8, 24, 32, 64]),
    ),
    st.builds(lying_gif, _SIZES.map(lambda s: min(s, 65535)), _SIZES.map(lambda s: min(s, 65535))),
    npy_arrays(),
    _NPY_LIES,
    archives(),
    toml_libraries(),
)  # fmt: skip
