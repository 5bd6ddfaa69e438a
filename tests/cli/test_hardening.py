"""Issue 13 "Zero tracebacks": each class of bad input found by fuzzing, refused at its root.

Every case is one line on stderr, the documented status and nothing written;
the generated cases live in ``tests/fuzz``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imgkernel.cli import cli

HUGE = [
    ["filter", "sobel", "--dilation", "9223372036854775808", "{gray}"],
    ["filter", "sobel", "--dilation", "4611686018427387904", "{gray}"],
    ["filter", "sobel", "--padding", "9223372036854775807", "{gray}"],
    ["filter", "gaussian", "--stride", "9223372036854775808", "{gray}"],
    ["filter", "sobel", "--dilation", "99999999999", "{gray}"],
    ["filter", "--matrix", "1 2 1", "--padding", "0,0,0,99999999999", "{gray}"],
    ["pool", "--size", "4611686018427387904", "--padding", "same", "{gray}"],
    ["pool", "--size", "2", "--dilation", "9223372036854775808", "{gray}"],
]


@pytest.mark.parametrize("args", HUGE, ids=lambda a: " ".join(a[:4]))
def test_huge_geometry_is_a_usage_error(args: list[str], refused) -> None:
    refused(args, "")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["filter", "sobel", "--dilation", "99999999999", "{gray}"], "memory"),
        (["filter", "sobel", "--padding", "9223372036854775807", "{gray}"], "padded input"),
        (["filter", "sobel", "--stride", "9223372036854775808", "{gray}"], "at most"),
    ],
)
def test_unallocatable_sizes_say_so(args: list[str], fragment: str, refused) -> None:
    refused(args, fragment)


def test_huge_stride_takes_one_window(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.npy"
    for kernel in ("gaussian", "sobel"):
        result = CliRunner().invoke(
            cli, ["filter", kernel, str(gray), "--stride", "4611686018427387904", "-o", str(out)]
        )
        assert result.exit_code == 0, result.stderr
        assert np.load(out).shape == (1, 1)


def test_kernel_far_larger_than_the_image_is_refused_before_work(tmp_path: Path, refused) -> None:
    np.save(tmp_path / "k.npy", np.ones((1001, 1001)))
    refused(["filter", "--kernel-file", "{tmp}/k.npy", "{gray}"], "far larger than the 20x30")
    refused(["filter", "gaussian", "--dilation", "3000", "{gray}"], "far larger than the 20x30")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("gaussian:sigma=1e-300", "at least 0.01"),
        ("log:sigma=5e-324", "at least 0.01"),
        ("unsharp:sigma=1e-300", "at least 0.01"),
        ("gaussian:sigma=1e308", "limit 1001"),
        ("gaussian:sigma=1,truncate=1e308", "limit 1001"),
        ("log:sigma=0.1", "no usable weights"),
        ("log:sigma=1e300,size=5", "no usable weights"),
    ],
)
def test_extreme_kernel_parameters(spec: str, fragment: str, refused) -> None:
    refused(["kernels", "show", spec], fragment)


def test_toml_kernel_with_a_tiny_sigma(tmp_path: Path, refused) -> None:
    (tmp_path / "k.toml").write_text(
        "[kernels.soft]\ngenerator = 'gaussian'\nparams = { sigma = 1e-300 }\n"
    )
    refused(["filter", "--kernel-file", "{tmp}/k.toml", "{gray}"], "sigma must be at least")


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not a readable .npy"),
        (b"PK\x03\x04" + bytes(60), "not a readable .npy"),
        (_npy(np.ones((3, 3)))[:-5], "not a readable .npy"),
        (_npy(np.array([[1, None]], dtype=object)), "not numeric"),
        (_npy(np.ones((1002, 1))), "limit"),
        (_npy(np.ones(3)), "2-d array"),
    ],
    ids=["empty", "zip", "truncated", "object", "too-large", "1-d"],
)
def test_bad_npy_kernel_files(data: bytes, fragment: str, tmp_path: Path, refused) -> None:
    (tmp_path / "k.npy").write_bytes(data)
    refused(["filter", "--kernel-file", "{tmp}/k.npy", "{gray}"], fragment)


def test_no_arguments_prints_help_to_stdout() -> None:
    result = CliRunner().invoke(cli, [], prog_name="imgkernel")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: imgkernel") and result.stderr == ""


def test_reader_leaving_mid_image_is_a_quiet_failure(tmp_path: Path) -> None:
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((800, 800, 3), np.float32))
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgkernel", "filter", "box", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1000)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() in (1, 141)
    assert err == b""


def test_worker_threads_keep_the_callers_errstate(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from imgkernel.core import filter2d, pool2d

    monkeypatch.setenv("IMGKERNEL_THREADS", "2")
    huge = np.full((600, 600), 3e38, np.float32)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        filter2d(huge, np.ones((3, 3)), method="direct")
        pool2d(huge, 3, mode="avg")


def _tiff_with_samples_per_pixel(count: int) -> bytes:
    """An RGB TIFF whose SamplesPerPixel tag (277) says ``count``: Pillow logs an error."""
    import struct

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        if struct.unpack_from("<H", data, entry)[0] == 277:
            struct.pack_into("<H", data, entry + 8, count)
    return bytes(data)


def test_library_log_records_stay_off_stderr(tmp_path: Path) -> None:
    """Pillow's ``logger.error`` about a damaged TIFF is not a second stderr line."""
    import logging

    bad = tmp_path / "bad.tif"
    bad.write_bytes(_tiff_with_samples_per_pixel(2048))
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, []  # as in a real process: no handler at all
    try:
        result = CliRunner().invoke(
            cli, ["filter", "sobel", str(bad), "-o", str(tmp_path / "o.png")]
        )
    finally:
        root.handlers = handlers
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"imgkernel: error: {bad}: not a valid TIFF image"]


def test_c_library_chatter_stays_off_stderr(tmp_path: Path) -> None:
    """libtiff writes "Fax3SetupState: ..." to file descriptor 2 itself: a real process."""
    import struct

    data = bytearray(_tiff_with_samples_per_pixel(3))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        if struct.unpack_from("<H", data, entry)[0] == 259:  # Compression: CCITT Group 3
            struct.pack_into("<H", data, entry + 8, 3)
    bad = tmp_path / "fax.tif"
    bad.write_bytes(bytes(data))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgkernel",
            "filter",
            "sobel",
            str(bad),
            "-o",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"imgkernel: error: {bad}: truncated or corrupt image (decoder error -2)"
    ]


@pytest.mark.parametrize("name", ["a\nb.png", "tab\x0bbed.png", "sep\u2028.png"])
def test_control_characters_in_messages_are_escaped(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["filter", "sobel", str(tmp_path / name), "-o", "o.png"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "no such file" in result.stderr
