"""imgkernel.images.png: every file decodes bit-exactly with Pillow, libpng and a reference here.

The reference decoder below is written from the PNG spec, independently of
the encoder: it checks every chunk's CRC, the chunk order, that the IDAT
data is one valid zlib stream (stdlib ``zlib``) whose Adler-32 matches the
filtered bytes, and unfilters byte by byte in plain Python.  libpng is
reached through libvips (``vips rawsave``) and ImageMagick (``convert``),
both linked to libpng here; those tests skip where the tools are missing.
Pillow decodes 16-bit colour to 8 bits, so it is only asked about 8-bit and
16-bit gray.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgkernel.images import png, pngdeflate
from imgkernel.images.png import PngWriter, adler32_combine, encode_png, plan_for, write_png

VIPS = shutil.which("vips")
# /usr/bin/convert is ImageMagick itself; a `convert` earlier on PATH may be a stand-in.
MAGICK = "/usr/bin/convert" if Path("/usr/bin/convert").exists() else None
CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


# ------------------------------------------------------------------ reference decoder


def read_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC on {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and chunks[-1][1] == b""
    assert set(kinds[1:-1]) == {b"IDAT"}
    return chunks


def paeth_predict(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def unfilter_row(kind: int, row: list[int], prev: list[int], bpp: int) -> list[int]:
    out = [0] * len(row)
    for i, x in enumerate(row):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth_predict(a, b, c)][kind]
        out[i] = (x + pred) & 0xFF
    return out


def reference_decode(data: bytes) -> tuple[np.ndarray, list[int]]:
    """(pixels, filter type of each row) of one of our PNGs."""
    chunks = read_chunks(data)
    width, height, depth, color, method, flt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (method, flt, interlace) == (0, 0, 0) and depth in (8, 16)
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    assert (stream[0] * 256 + stream[1]) % 31 == 0 and stream[0] & 0x0F == 8  # zlib header
    raw = zlib.decompress(stream)  # also checks the Adler-32
    assert stream[-4:] == struct.pack(">I", zlib.adler32(raw))
    channels = CHANNELS[color]
    bpp = channels * depth // 8
    stride = width * bpp + 1
    assert len(raw) == height * stride
    prev, rows, kinds = [0] * (stride - 1), [], []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] <= 4
        kinds.append(line[0])
        prev = unfilter_row(line[0], list(line[1:]), prev, bpp)
        rows.append(prev)
    pixels = np.array(rows, np.uint8).reshape(height, width * bpp)
    if depth == 16:
        pixels = pixels.view(">u2").astype(np.uint16)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape), kinds


# ------------------------------------------------------------------ libpng decoders


def vips_decode(data: bytes, like: np.ndarray, tmp: Path) -> np.ndarray:
    src, raw = tmp / "in.png", tmp / "out.raw"
    src.write_bytes(data)
    subprocess.run([VIPS, "rawsave", str(src), str(raw)], check=True, capture_output=True)
    return np.fromfile(raw, like.dtype).reshape(like.shape)


def magick_decode(data: bytes, like: np.ndarray) -> np.ndarray:
    """RGBA, 16 bits a sample, as ImageMagick (libpng) reads the file."""
    cmd = [MAGICK, "png:-", "-depth", "16", "-endian", "MSB", "rgba:-"]
    out = subprocess.run(cmd, input=data, check=True, capture_output=True).stdout
    return np.frombuffer(out, ">u2").reshape(*like.shape[:2], 4)


def as_rgba16(arr: np.ndarray) -> np.ndarray:
    """What ImageMagick gives for ``arr``: gray spread to RGB, opaque alpha, 16-bit."""
    c = arr if arr.ndim == 3 else arr[:, :, None]
    scale = 257 if arr.dtype == np.uint8 else 1
    full = np.full(c.shape[:2], 0xFFFF // scale, c.dtype)
    planes = {1: [0, 0, 0], 2: [0, 0, 0], 3: [0, 1, 2], 4: [0, 1, 2]}[c.shape[2]]
    alpha = c[:, :, -1] if c.shape[2] in (2, 4) else full
    return np.dstack([c[:, :, planes], alpha]).astype(np.uint32) * scale


def pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def check_all_decoders(data: bytes, arr: np.ndarray, tmp: Path) -> list[int]:
    """Assert every available decoder gives ``arr`` back; return the row filters."""
    pixels, kinds = reference_decode(data)
    np.testing.assert_array_equal(pixels, arr)
    assert pixels.dtype == arr.dtype
    if arr.dtype == np.uint8 or arr.ndim == 2:
        np.testing.assert_array_equal(pillow_decode(data).astype(arr.dtype), arr)
    if VIPS:
        np.testing.assert_array_equal(vips_decode(data, arr, tmp), arr)
    if MAGICK:
        np.testing.assert_array_equal(magick_decode(data, arr), as_rgba16(arr))
    return kinds


# ------------------------------------------------------------------ images


def make_image(shape: tuple[int, ...], dtype: type, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    if kind == "random":
        return rng.integers(0, top, shape, dtype=dtype, endpoint=True)
    if kind == "constant":
        return np.full(shape, top // 3, dtype)
    # smooth: gradients plus a little noise, what filters and deflate like
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = (np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) / 4 * top
    if len(shape) == 3:
        base = base[:, :, None] * np.linspace(0.3, 1.0, shape[2])
    noisy = base + rng.normal(0, top / 100, shape)
    return np.clip(np.rint(noisy), 0, top).astype(dtype)


SHAPES = [
    (1, 1),
    (1, 1, 4),
    (1, 17),
    (19, 1, 3),
    (7, 13),
    (9, 11, 2),
    (5, 31, 3),
    (6, 3, 4),
    (4, 4, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8bit", "16bit"])
def test_shapes_and_depths_decode_exactly(shape, dtype, tmp_path):
    for kind in ("random", "smooth"):
        arr = make_image(shape, dtype, kind)
        expected = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr  # (H, W, 1) is gray
        check_all_decoders(encode_png(arr), expected, tmp_path)
        np.testing.assert_array_equal(arr, make_image(shape, dtype, kind))  # input untouched


@pytest.mark.parametrize("level", range(10))
def test_every_level_decodes_exactly(level, tmp_path):
    arr = make_image((23, 37, 3), np.uint8, "smooth", seed=level)
    check_all_decoders(encode_png(arr, level), arr, tmp_path)
    gray16 = make_image((17, 9), np.uint16, "smooth", seed=level)
    check_all_decoders(encode_png(gray16, level), gray16, tmp_path)


@pytest.mark.parametrize("forced", range(5), ids=lambda f: png.FILTER_NAMES[f])
@pytest.mark.parametrize("shape", [(12, 15, 3), (10, 7, 4), (9, 5), (8, 6, 2)], ids=str)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8bit", "16bit"])
def test_every_forced_filter_decodes_exactly(forced, shape, dtype, tmp_path):
    arr = make_image(shape, dtype, "random", seed=forced)
    kinds = check_all_decoders(encode_png(arr, 1, filters=(forced,)), arr, tmp_path)
    assert set(kinds) == {forced}


def test_level_zero_is_stored_and_unfiltered():
    arr = make_image((30, 40, 3), np.uint8, "smooth")
    data = encode_png(arr, 0)
    assert set(reference_decode(data)[1]) == {0}
    assert len(data) > arr.nbytes  # stored blocks: bigger than the raw pixels


def test_levels_go_from_fast_to_small():
    arr = make_image((120, 200, 3), np.uint8, "smooth")
    sizes = [len(encode_png(arr, level)) for level in range(10)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > arr.nbytes > sizes[1] > sizes[2] >= sizes[3] >= sizes[9]


def test_strips_keep_their_best_candidate():
    """A tiled texture: lazy LZ77 (level 3) beats the fast one; noise: RLE beats LZ77."""
    rng = np.random.default_rng(3)
    tiled = np.tile(rng.integers(0, 256, (37, 23, 3), dtype=np.uint8), (8, 12, 1))
    sizes = [len(encode_png(tiled, level)) for level in (1, 3, 9)]
    assert sizes[0] > 1.5 * sizes[1] and sizes[2] <= sizes[1]  # 8x with isal, 1.7x zlib alone
    # What filtered noisy photo rows look like: small signed differences.
    data = rng.normal(0, 3, 600_000).round().astype(np.int8).tobytes()
    plan = plan_for(1)
    assert len(plan.compress(data, True)) < 0.95 * len(plan.first.compress(data, True))
    assert zlib.decompress(plan.compress(data, True), -15) == data
    # Level 1 decides on a probe of the strip; repetitive bytes go to LZ77.
    tiles = np.tile(rng.integers(0, 256, 997, dtype=np.uint8), 600).tobytes()
    assert plan.compress(tiles, False) == plan.first.compress(tiles, False)


def test_strips_in_flight_are_bounded(monkeypatch, small_strips):
    """However many rows one call passes, at most 2 * threads strips wait in memory."""
    seen = []
    submit = PngWriter._submit

    def spy(self, strip):
        submit(self, strip)
        seen.append(len(self._queue))

    monkeypatch.setattr(PngWriter, "_submit", spy)
    buf = io.BytesIO()
    with PngWriter(buf, 300, 400, 3, 8, level=1, threads=2) as writer:
        writer.write_rows(make_image((400, 300, 3), np.uint8, "smooth"))
    assert len(seen) > 50 and max(seen) <= 4


# ------------------------------------------------------------------ strips and streaming


@pytest.fixture
def small_strips(monkeypatch):
    """Strips of 2 KiB and IDAT chunks of 1000 bytes, so small images have many of each."""
    monkeypatch.setattr(png, "STRIP_BYTES", 2048)
    monkeypatch.setattr(png, "BAND_BYTES", 512)
    monkeypatch.setattr(png, "CHUNK_BYTES", 1000)


@pytest.mark.usefixtures("small_strips")
@pytest.mark.parametrize("level", [0, 1, 3, 5, 9])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_strips_join_into_one_stream(level, threads, tmp_path):
    arr = make_image((97, 61, 3), np.uint8, "smooth", seed=level)
    data = encode_png(arr, level, threads=threads)
    chunks = read_chunks(data)
    assert sum(kind == b"IDAT" for kind, _ in chunks) > 5
    assert max(len(body) for _, body in chunks) <= 1000
    check_all_decoders(data, arr, tmp_path)
    assert data == encode_png(arr, level, threads=1)  # threads never change the bytes


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    height=st.integers(1, 60),
    width=st.integers(1, 40),
    channels=st.sampled_from([1, 2, 3, 4]),
    wide=st.booleans(),
    kind=st.sampled_from(["random", "smooth", "constant"]),
)
def test_bands_in_any_sizes_give_the_one_shot_bytes(
    small_strips, data, height, width, channels, wide, kind
):
    dtype = np.uint16 if wide else np.uint8
    shape = (height, width) if channels == 1 else (height, width, channels)
    arr = make_image(shape, dtype, kind, seed=height * width)
    level = data.draw(st.integers(0, 9), label="level")
    cuts = sorted(data.draw(st.lists(st.integers(0, height), max_size=8), label="cuts"))
    buf = io.BytesIO()
    with PngWriter(buf, width, height, channels, 16 if wide else 8, level, threads=2) as writer:
        for start, stop in zip([0, *cuts], [*cuts, height], strict=True):
            band = arr[start:stop].copy()
            writer.write_rows(band)
            band[...] = 0  # the writer copied the rows: reusing the buffer is safe
    assert buf.getvalue() == encode_png(arr, level, threads=1)
    np.testing.assert_array_equal(reference_decode(buf.getvalue())[0], arr)


def test_row_by_row_and_whole_image_feeds(tmp_path, small_strips):
    arr = make_image((40, 33, 4), np.uint16, "smooth")
    one, whole = io.BytesIO(), io.BytesIO()
    with PngWriter(one, 33, 40, 4, 16, level=2) as writer:
        for row in arr:
            writer.write_rows(row[None])
    with PngWriter(whole, 33, 40, 4, 16, level=2) as writer:
        writer.write_rows(arr[:0])  # zero rows are fine
        writer.write_rows(arr)
    assert one.getvalue() == whole.getvalue()
    check_all_decoders(one.getvalue(), arr, tmp_path)


class WriteOnly:
    """A pipe-like target: write only, no seek or tell."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)


def test_writes_to_a_stream_that_cannot_seek():
    arr = make_image((50, 50, 3), np.uint8, "smooth")
    target = WriteOnly()
    write_png(target, arr, 1)  # type: ignore[arg-type]
    assert b"".join(target.parts) == encode_png(arr, 1)


# ------------------------------------------------------------------ larger images


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("level", [1, 4])
def test_large_images_decode_exactly(kind, level, tmp_path):
    """About 3 MB: a few default-sized strips; every decoder but the slow reference."""
    arr = make_image((700, 1201, 3), np.uint8, kind)
    data = encode_png(arr, level)
    chunks = read_chunks(data)
    stream = b"".join(body for k, body in chunks if k == b"IDAT")
    raw = zlib.decompress(stream)
    assert stream[-4:] == struct.pack(">I", zlib.adler32(raw))
    np.testing.assert_array_equal(pillow_decode(data), arr)
    if VIPS:
        np.testing.assert_array_equal(vips_decode(data, arr, tmp_path), arr)
    if MAGICK:
        np.testing.assert_array_equal(magick_decode(data, arr), as_rgba16(arr))


def test_large_16bit_gray(tmp_path):
    arr = make_image((900, 1100), np.uint16, "smooth")
    data = encode_png(arr, 3)
    np.testing.assert_array_equal(pillow_decode(data).astype(np.uint16), arr)
    if VIPS:
        np.testing.assert_array_equal(vips_decode(data, arr, tmp_path), arr)


# ------------------------------------------------------------------ deflate libraries


def hide(monkeypatch, *modules: str) -> None:
    """Make ``modules`` fail to import, as if not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_fallback_chain_when_isal_is_missing(monkeypatch, tmp_path):
    pytest.importorskip("zlib_ng.zlib_ng")
    hide(monkeypatch, "isal", "isal.isal_zlib")
    plan = plan_for(1)
    assert (plan.first.library, plan.first.level, plan.rle.library) == ("zlib-ng", 2, "zlib-ng")
    assert [d.library for d in plan_for(6).extra] == ["zlib-ng"]
    arr = make_image((64, 80, 3), np.uint8, "smooth")
    check_all_decoders(encode_png(arr, 1), arr, tmp_path)


@pytest.mark.parametrize("level", [0, 1, 3, 4, 9])
def test_stdlib_zlib_alone_is_enough(monkeypatch, level, tmp_path, small_strips):
    hide(monkeypatch, "isal", "isal.isal_zlib", "zlib_ng", "zlib_ng.zlib_ng")
    plan = plan_for(level)
    libraries = {plan.first.library, *(d.library for d in plan.extra)}
    assert libraries | ({plan.rle.library} if plan.rle else set()) == {"zlib"}
    assert pngdeflate.checksums() is zlib
    arr = make_image((45, 37, 4), np.uint8, "smooth")
    check_all_decoders(encode_png(arr, level, threads=2), arr, tmp_path)


def test_isal_is_preferred_when_installed():
    pytest.importorskip("isal.isal_zlib")
    assert [plan_for(level).first.library for level in (0, 1, 2, 3)] == [
        "zlib",
        "isal",
        "isal",
        "isal",
    ]


@settings(deadline=None)  # a loaded machine must not fail a pure-arithmetic check
@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_adler32_combine_matches_zlib(first, second, start):
    a = zlib.adler32(first, start % 65521)
    combined = adler32_combine(a, zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second, start % 65521)


def test_adler32_combine_on_long_runs():
    a, b = b"\xff" * 100_000, b"\xfe" * 300_000
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


# ------------------------------------------------------------------ errors


def test_bad_arguments_are_refused():
    buf = io.BytesIO()
    with pytest.raises(ValueError, match="compress level"):
        encode_png(np.zeros((2, 2), np.uint8), 10)
    with pytest.raises(ValueError, match="filter"):
        encode_png(np.zeros((2, 2), np.uint8), filters=(5,))
    with pytest.raises(TypeError, match="uint8 or uint16"):
        encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError, match="width"):
        encode_png(np.zeros((2, 0), np.uint8))
    writer = PngWriter(buf, 4, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        writer.write_rows(np.zeros((1, 4), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        writer.write_rows(np.zeros((1, 4, 3), np.uint16))
    writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="too many rows"):
        writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2 of 3 rows"):
        writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_rows(np.zeros((1, 4, 3), np.uint8))


def test_a_failing_worker_surfaces_and_stops_the_pool(monkeypatch, small_strips):
    calls = []

    def broken(self, data, last):
        calls.append(last)
        if len(calls) == 3:
            raise MemoryError("out of memory in deflate")
        return original(self, data, last)

    original = png.Deflater.compress
    monkeypatch.setattr(png.Deflater, "compress", broken)
    with pytest.raises(MemoryError):
        encode_png(make_image((200, 50, 3), np.uint8, "smooth"), 1, threads=2)


def test_big_endian_and_single_channel_inputs():
    arr = make_image((6, 5), np.uint16, "random")
    assert encode_png(arr.astype(">u2")) == encode_png(arr)
    assert encode_png(arr[:, :, None]) == encode_png(arr)
