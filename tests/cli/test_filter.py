"""`imgkernel filter` end to end: results, display modes, kernels from files, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CARDS, load, run
from click.testing import CliRunner
from PIL import Image

import imgkernel
from imgkernel.cli import cli


def test_filter_sobel_matches_library(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "edges.npy"
    result = run("filter", "sobel-x", gray, "-o", out)
    assert result.exit_code == 0, result.output
    pixels = load(gray)
    expected = imgkernel.filter2d(pixels, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    # the unit rule: 8-bit in, float out on full scale 1.0
    np.testing.assert_allclose(np.load(out) * 255, expected, atol=1e-3)


def test_filter_png_abs_display_of_edges(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "edges.png"
    assert run("filter", "sobel-x", gray, "-o", out).exit_code == 0
    expected = np.abs(imgkernel.filter2d(load(gray), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    got = load(out)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_filter_signed_and_normalize_modes(gray: Path, tmp_path: Path) -> None:
    raw = imgkernel.filter2d(load(gray), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    out = tmp_path / "n.png"
    assert run("filter", "sobel-x", gray, "--normalize", "-o", out).exit_code == 0
    got = load(out).astype(float)
    assert got.min() == 0 and got.max() == 255
    # the stretch is monotonic: ordering of the raw values is preserved
    assert np.corrcoef(got.ravel(), raw.ravel())[0, 1] > 0.999
    out2 = tmp_path / "clip.png"
    assert run("filter", "sobel-x", gray, "--clip", "-o", out2).exit_code == 0
    np.testing.assert_array_equal(load(out2), np.clip(np.rint(raw), 0, 255).astype(np.uint8))


def test_filter_matrix_and_stride_and_valid(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.npy"
    result = run(
        "filter",
        "--matrix",
        "1 0 1; 0 1 0; 1 0 1",
        gray,
        "--stride",
        "2",
        "--padding",
        "valid",
        "--bias",
        "1",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])  # weights as written
    expected = imgkernel.filter2d(load(gray), kernel, stride=2, padding="valid", bias=1)
    np.testing.assert_allclose(np.load(out) * 255, expected, atol=1e-3)
    assert np.load(out).shape == (9, 14)


def test_filter_keeps_gray_rgb_16bit_and_alpha(tmp_path: Path) -> None:
    out = tmp_path / "g16.png"
    assert run("filter", "box", CARDS / "gradient-16bit.png", "-o", out).exit_code == 0
    with Image.open(out) as im:
        assert im.mode.startswith("I")
        assert np.asarray(im).max() > 255
    out = tmp_path / "rgba.png"
    assert run("filter", "gaussian", CARDS / "rgba-disc.png", "-o", out).exit_code == 0
    with Image.open(CARDS / "rgba-disc.png") as src, Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == src.size
        np.testing.assert_array_equal(
            np.asarray(im)[..., 3], np.asarray(src.convert("RGBA"))[..., 3]
        )


def test_filter_several_inputs_with_template(gray: Path, rgb: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = run("filter", "emboss", gray, rgb, "-o", str(outdir / "{stem}-e.png"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in outdir.iterdir()) == ["gray-e.png", "rgb-e.png"]


def test_filter_stdin_to_stdout(gray: Path) -> None:
    result = run("filter", "sharpen", input=gray.read_bytes())
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"\x89PNG")


def test_convolve_flips_the_kernel(gray: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run("filter", "sobel-x", gray, "--convolve", "-o", a).exit_code == 0
    assert run("filter", "sobel-x", gray, "-o", b).exit_code == 0
    np.testing.assert_allclose(np.load(a), -np.load(b), atol=1e-4)


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".toml"])
def test_kernel_file_forms(suffix: str, gray: Path, tmp_path: Path) -> None:
    weights = np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    path = tmp_path / f"k{suffix}"
    if suffix == ".npy":
        np.save(path, weights)
    elif suffix == ".txt":
        path.write_text("0 -1 0\n-1 5 -1\n0 -1 0\n")
    else:
        path.write_text("rows = [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]\n")
    out = tmp_path / "o.npy"
    result = run("filter", "--kernel-file", path, gray, "-o", out)
    assert result.exit_code == 0, result.stderr
    expected = imgkernel.filter2d(load(gray), weights)
    np.testing.assert_allclose(np.load(out) * 255, expected, atol=1e-3)


def test_emboss_matches_pillows_picture(tmp_path: Path) -> None:
    from PIL import ImageFilter

    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(flat)
    out = tmp_path / "e.png"
    assert run("filter", "emboss", flat, "-o", out).exit_code == 0
    assert (load(out) == 128).all()  # mid-grey once, not twice
    rng = np.random.default_rng(9)
    photo = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(photo)
    assert run("filter", "emboss", photo, "-o", out).exit_code == 0
    pillow = np.asarray(Image.open(photo).filter(ImageFilter.EMBOSS)).astype(int)
    inner = (slice(1, -1), slice(1, -1))  # Pillow copies its border pixels
    assert np.abs(load(out).astype(int)[inner] - pillow[inner]).max() <= 1


BAD = [
    (["filter", "sobl", "{gray}"], "did you mean"),
    (["filter", "gaussian:sigma=-1", "{gray}"], "sigma"),
    (["filter", "gaussian:sigma=abc", "{gray}"], "abc"),
    (["filter", "box:size=0", "{gray}"], "size"),
    (["filter", "--matrix", "1,2;3", "{gray}"], "row"),
    (["filter", "--matrix", "1,x", "{gray}"], "x"),
    (["filter", "--kernel-file", "{missing}", "{gray}"], "missing"),
    (["filter", "sobel", "{gray}", "--stride", "0"], "stride"),
    (["filter", "sobel", "{gray}", "--stride", "-2"], "stride"),
    (["filter", "sobel", "{gray}", "--dilation", "0"], "dilation"),
    (["filter", "sobel", "{gray}", "--padding", "middle"], "padding"),
    (["filter", "sobel", "{gray}", "--padding", "1,2,3"], "padding"),
    (["filter", "sobel", "{gray}", "--border", "bogus"], "border"),
    (["filter", "sobel", "{gray}", "--offset", "abc"], "offset"),
    (["filter", "sobel", "{gray}", "--alpha", "nope"], "alpha"),
    (["filter", "sobel", "{gray}", "--compress-level", "12"], "compress-level"),
    (["filter", "sobel", "{gray}", "--quality", "0"], "quality"),
    (["filter", "sobel", "{gray}", "--max-pixels", "-1"], "max-pixels"),
    (["filter", "sobel", "{gray}", "--bias", "nan"], "bias"),
    (["filter", "sobel", "{gray}", "--scale", "inf"], "scale"),
    (["filter", "sobel", "{gray}", "--border", "reflect:9"], "takes no value"),
    (["filter", "sobel", "{gray}", "--border", "constant:1e40"], "float32"),
    (["filter", "--matrix", "", "{gray}"], "matrix"),
    (["filter", "sobel", "{gray}", "-o", "{tmp}/{{stem.upper}}.png"], "stem.upper"),
    (["filter", "sobel", "{gray}", "-o", "{tmp}/{{index:>1000000000}}.png"], "format"),
    (["filter", "sobel", "{gray}", "--format", "xyz"], "xyz"),
    (["filter", "sobel", "{gray}", "--max-pixels", "10"], "pixels"),
    (["filter", "sobel", "{missing}"], "missing"),
    (["filter", "sobel", "{text}"], "not a recognised image"),
    (["filter", "sobel", "{truncated}"], "truncated"),
    (["filter", "box:size=99", "{gray}", "--padding", "valid"], "kernel"),
    (["filter", "sobel"], "standard input is empty"),
    (["filter", "sobel", "{gray}", "{gray}"], "output"),
    (["filter"], "KERNEL"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(args: list[str], fragment: str, refused) -> None:
    refused(args, fragment)


@pytest.mark.parametrize("name", ["tif", "tiff", "TIF"])
def test_format_tif_is_tiff(tmp_path, name):
    tifffile = pytest.importorskip("tifffile")
    pixels = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 97).astype(np.uint16)
    tifffile.imwrite(tmp_path / "g16.tif", pixels)
    args = ["filter", "identity", str(tmp_path / "g16.tif"), "--format", name]

    result = CliRunner().invoke(cli, args)  # to standard output: the format is the option's
    assert result.exit_code == 0
    written = tifffile.imread(io.BytesIO(result.stdout_bytes))
    np.testing.assert_array_equal(written, pixels)  # 16 bits kept, any spelling
