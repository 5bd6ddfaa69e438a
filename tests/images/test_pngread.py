"""The libspng fast path reads exactly what Pillow reads, and leaves every other PNG to Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from imgkernel.errors import UsageError
from imgkernel.images import pngread, read_image
from imgkernel.images.png import encode_png
from imgkernel.images.pngread import plain_png_size, read_plain_png

pytest.importorskip("pyspng")


def pillow_png(array: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


@st.composite
def random_pngs(draw: st.DrawFn, **save: object) -> tuple[np.ndarray, bytes]:
    """A random 8-bit gray, RGB or RGBA image and a PNG of it by Pillow or imgkernel."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = draw(st.sampled_from([None, 3, 4]))
    shape = (height, width) if channels is None else (height, width, channels)
    array = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, shape, np.uint8)
    pillow = draw(st.booleans())
    return array, pillow_png(array, **save) if pillow else encode_png(array)


@settings(max_examples=40, deadline=None)
@given(case=random_pngs())
def test_fast_path_equals_pillow(case):
    array, data = case
    assert plain_png_size(data) == array.shape[:2]
    fast = read_plain_png(io.BytesIO(data), None)
    assert fast is not None
    np.testing.assert_array_equal(fast, np.asarray(PILImage.open(io.BytesIO(data))))


@pytest.mark.parametrize(
    "make",
    [
        lambda a: pillow_png(a.astype(np.uint16) * 257),  # 16-bit
        lambda a: pillow_png(np.stack([a, a], axis=2)),  # gray + alpha
        lambda a: pillow_png(a, transparency=5),  # a colour key (tRNS)
        lambda a: pillow_png(a, interlace=1) if False else encode_png(a)[:20],  # cut short
        lambda a: _palette(a),
        lambda a: _with_exif(a),
    ],
    ids=["16bit", "gray-alpha", "trns", "truncated", "palette", "exif"],
)
def test_other_pngs_go_to_pillow(make):
    array = np.random.default_rng(0).integers(0, 256, (6, 7), dtype=np.uint8)
    data = make(array)
    assert read_plain_png(io.BytesIO(data), None) is None


def _palette(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).convert("P").save(buffer, format="PNG")
    return buffer.getvalue()


def _with_exif(array: np.ndarray) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotated: Pillow's reader applies it, libspng would not
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


def test_exif_rotation_still_applied(tmp_path):
    array = np.arange(42, dtype=np.uint8).reshape(6, 7)
    path = tmp_path / "r.png"
    path.write_bytes(_with_exif(array))
    assert read_image(str(path)).pixels.shape == (7, 6)


def test_limit_is_left_to_pillows_report(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(encode_png(np.zeros((40, 50), np.uint8)))
    assert read_plain_png(io.BytesIO(path.read_bytes()), 1000) is None
    with pytest.raises(UsageError, match="image too large"):
        read_image(str(path), max_pixels=1000)


def test_damaged_data_is_reported_once(tmp_path):
    data = bytearray(encode_png(np.random.default_rng(1).integers(0, 256, (64, 64), np.uint8)))
    data[-40:-20] = b"\0" * 20  # inside the image data
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="bad.png"):
        read_image(str(path))


# ------------------------------------------------- large files: Pillow into the array


@pytest.fixture
def big_path_for_all(monkeypatch):
    """Every PNG counts as large, so the streaming path reads it."""
    monkeypatch.setattr(pngread, "BIG_PNG_BYTES", 0)


@settings(max_examples=30, deadline=None)
@given(case=random_pngs(optimize=True))
def test_large_file_path_equals_pillow(case):
    array, data = case
    pixels = pngread.read_big_png(io.BytesIO(data), None)
    assert pixels is not None and pixels.shape == array.shape
    np.testing.assert_array_equal(pixels, array)
    pixels[...] = 0  # an ordinary writable array: the streamed filters write into bands
    assert not pixels.any()


@pytest.mark.parametrize(
    "make",
    [
        lambda a: pillow_png(a.astype(np.uint16) * 257),
        lambda a: pillow_png(np.stack([a, a], axis=2)),
        lambda a: pillow_png(a, transparency=5),
        lambda a: _interlaced_header(encode_png(a)),
        lambda a: encode_png(a)[:60],
        lambda a: _palette(a),
        lambda a: _with_exif(a),
    ],
    ids=["16bit", "gray-alpha", "trns", "interlaced", "truncated", "palette", "exif"],
)
def test_large_file_path_leaves_other_pngs_to_pillow(make):
    array = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    stream = io.BytesIO(make(array))
    assert pngread.read_big_png(stream, None) is None
    assert stream.tell() == 0


def test_large_file_errors_are_the_ordinary_ones(tmp_path, big_path_for_all):
    data = bytearray(encode_png(np.random.default_rng(1).integers(0, 256, (64, 64), np.uint8)))
    data[-40:-20] = b"\0" * 20
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(UsageError, match="bad.png"):
        read_image(str(tmp_path / "bad.png"))
    (tmp_path / "big.png").write_bytes(encode_png(np.zeros((40, 50), np.uint8)))
    with pytest.raises(UsageError, match="image too large"):
        read_image(str(tmp_path / "big.png"), max_pixels=1000)


def test_large_file_path_through_the_command_line(tmp_path, monkeypatch):
    # The same command on the same noisy photo, read by pyspng and by the
    # large-file path, writes the same bytes.
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    (tmp_path / "in.png").write_bytes(pillow_png(photo))
    from click.testing import CliRunner

    from imgkernel.cli import cli

    outputs = []
    for limit in (1 << 62, 0):
        monkeypatch.setattr(pngread, "BIG_PNG_BYTES", limit)
        out = tmp_path / f"out{limit}.png"
        done = CliRunner().invoke(
            cli, ["filter", "emboss", str(tmp_path / "in.png"), "-o", str(out)]
        )
        assert done.exit_code == 0, done.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def _interlaced_header(data: bytes) -> bytes:
    """``data`` with IHDR claiming Adam7 interlacing (CRC fixed): decided from the header."""
    import struct
    import zlib

    ihdr = bytearray(data[12:29])
    ihdr[-1] = 1
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def test_rgb_rows_are_packed_while_decoding(monkeypatch):
    # Noise over many 64 KiB reads: rows are packed between reads, not only at the end.
    array = np.random.default_rng(3).integers(0, 256, (700, 333, 3), dtype=np.uint8)
    packs = []
    original = pngread.RGBPacker._pack

    def spy(self, stop):
        packs.append(stop)
        original(self, stop)

    monkeypatch.setattr(pngread.RGBPacker, "_pack", spy)
    pixels = pngread.read_big_png(io.BytesIO(pillow_png(array)), None)
    assert pixels is not None
    np.testing.assert_array_equal(pixels, array)
    assert len(packs) > 5 and packs == sorted(packs) and packs[-1] == 700


# ------------------------------------------- libspng called directly (images/spng.py)

from imgkernel.images import spng  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(case=random_pngs(), from_file=st.booleans())
def test_libspng_from_the_file_or_memory_equals_pillow(case, from_file, tmp_path_factory):
    # A real file is read by libspng itself (a C FILE on a duplicate descriptor);
    # standard input's bytes are decoded in memory. Both give Pillow's pixels,
    # and leave the stream at its start.
    array, data = case
    assert spng.available()
    if from_file:
        path = tmp_path_factory.mktemp("p") / "in.png"
        path.write_bytes(data)
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    else:
        stream = io.BytesIO(data)
    with stream:
        assert pngread.plain_png_layout(stream) is not None
        fast = read_plain_png(stream, None)
        assert stream.tell() == 0
    assert fast is not None and fast.shape == array.shape and fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, np.asarray(PILImage.open(io.BytesIO(data))))


def _chunks(data: bytes) -> list[tuple[int, bytes]]:
    """``(offset, type)`` of every chunk of a PNG."""
    import struct

    found, pos = [], 8
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        found.append((pos, kind))
        pos += 12 + size
    return found


@pytest.mark.parametrize("where", ["IDAT data", "IDAT crc", "tEXt after IDAT crc", "IEND crc"])
def test_libspng_refuses_any_damaged_chunk(where, tmp_path):
    # libspng checks the CRC of every chunk up to IEND (ancillary ones too), so
    # a damaged file goes to Pillow, which reads or reports it as it always did.
    from PIL import PngImagePlugin

    array = np.random.default_rng(4).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("note", "after", zip=False)
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG", pnginfo=info)
    data = bytearray(buffer.getvalue())
    chunks = _chunks(bytes(data))
    if where == "tEXt after IDAT crc":  # Pillow writes tEXt first: move it behind IDAT
        text = next(p for p, k in chunks if k == b"tEXt")
        end = text + 12 + int.from_bytes(data[text : text + 4], "big")
        piece = bytes(data[text:end])
        del data[text:end]
        iend = _chunks(bytes(data))[-1][0]
        data[iend:iend] = piece
        data[iend + len(piece) - 1] ^= 0xFF
    else:
        kind = b"IEND" if where == "IEND crc" else b"IDAT"
        pos = next(p for p, k in chunks if k == kind)
        size = int.from_bytes(data[pos : pos + 4], "big")
        data[pos + 8 + (size // 2 if where == "IDAT data" else size + 2)] ^= 0xFF
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with open(path, "rb") as stream:
        fast = read_plain_png(stream, None)
        assert stream.tell() == 0
    assert fast is None


def test_without_libspng_symbols_pyspng_reads_as_before(monkeypatch):
    monkeypatch.setattr(spng, "available", lambda: False)
    array = np.random.default_rng(5).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    np.testing.assert_array_equal(read_plain_png(io.BytesIO(pillow_png(array)), None), array)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status")
def test_reading_a_png_holds_no_copy_of_the_file(tmp_path):
    # Noise does not compress: 12 MB of file for 12 MB of pixels. Read through
    # pyspng.load the file was held twice on top of the pixels (peak ~3x the
    # decoded size); libspng reads it from the descriptor.
    import subprocess
    import sys

    path = tmp_path / "noise.png"
    path.write_bytes(
        pillow_png(np.random.default_rng(6).integers(0, 256, (2000, 2000, 3), np.uint8))
    )
    script = (
        "import sys\nfrom imgkernel.images import read_image\n"
        "def hwm():\n    s = open('/proc/self/status').read()\n"
        "    return int(s.split('VmHWM:')[1].split()[0])\n"
        "before = hwm()\nimage = read_image(sys.argv[1])\n"
        "print((hwm() - before) / 1024, image.pixels.nbytes / 2**20)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    grown, decoded = map(float, done.stdout.split())
    assert path.stat().st_size > 0.9 * decoded * 2**20
    assert grown <= decoded + 3, (grown, decoded)


def test_a_header_too_large_for_memory_is_left_to_pillows_report(tmp_path):
    # 2**31 - 1 pixels a side: no array can hold it. libspng is not asked; the
    # ordinary reader says so in one line (no traceback, no context left behind).
    import struct
    import zlib

    from imgkernel.errors import ImgkernelError

    data = bytearray(encode_png(np.zeros((8, 8, 3), np.uint8)))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", 0x7FFFFFFF, 0x7FFFFFFF)
    data[12:29], data[29:33] = ihdr, struct.pack(">I", zlib.crc32(ihdr))
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    with open(path, "rb") as stream:
        assert spng.decode_plain(stream, 0x7FFFFFFF, 0x7FFFFFFF, 2) is None
        assert stream.tell() == 0
    for progressive in (False, True):
        with pytest.raises(ImgkernelError, match="huge.png: not enough memory"):
            read_image(str(path), max_pixels=0, progressive=progressive)
