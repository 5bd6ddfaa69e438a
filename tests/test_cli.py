"""The command line, end to end: results, pipelines and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import imgkernel
from imgkernel.cli.app import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"
PHOTO = SAMPLES / "astronaut.png"
CARDS = SAMPLES / "cards"


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def gray(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "gray.png"
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    path = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)).save(path)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ---------------------------------------------------------------- filter results


def test_filter_sobel_matches_library(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "edges.npy"
    result = run("filter", "sobel-x", gray, "-o", out)
    assert result.exit_code == 0, result.output
    pixels = load(gray)
    expected = imgkernel.filter2d(pixels, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-4)


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
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]]) / 5.0  # --matrix divides by the sum
    expected = imgkernel.filter2d(load(gray), kernel, stride=2, padding="valid", bias=1)
    np.testing.assert_allclose(np.load(out), expected, atol=1e-4)
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


# ---------------------------------------------------------------- pool results


def test_pool_halves_png_and_matches_library(rgb: Path, tmp_path: Path) -> None:
    from imgkernel.core.pool import pool2d

    out = tmp_path / "half.png"
    assert run("pool", "--size", "2", rgb, "-o", out).exit_code == 0
    np.testing.assert_array_equal(load(out), pool2d(load(rgb), 2))


def test_pool_global_json(rgb: Path) -> None:
    result = run("pool", "--global", "--mode", "avg", rgb, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    np.testing.assert_allclose(
        [data["red"], data["green"], data["blue"]], load(rgb).reshape(-1, 3).mean(axis=0)
    )


# ---------------------------------------------------------------- kernels


def test_kernels_list_and_show() -> None:
    result = run("kernels")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"sobel", "gaussian", "laplacian", "emboss", "dilated", "unsharp"} <= set(names)
    result = run("kernels", "show", "gaussian:sigma=1")
    assert result.exit_code == 0
    assert "9x9" in result.stdout and "separable:  yes" in result.stdout


# ---------------------------------------------------------------- bad input

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
    (["filter", "sobel", "{gray}", "{missing}", "-o", "{tmp}/{{stem}}-z.png"], "missing"),
    (["filter", "sobel", "{gray}", "-o", "{tmp}/{{stem.upper}}.png"], "stem.upper"),
    (["filter", "sobel", "{gray}", "-o", "{tmp}/{{index:>1000000000}}.png"], "format"),
    (["pool", "{gray}", "--size", "2", "--ceil", "--padding", "9"], "pad"),
    (["filter", "sobel", "{gray}", "--format", "xyz"], "xyz"),
    (["filter", "sobel", "{gray}", "--max-pixels", "10"], "pixels"),
    (["filter", "sobel", "{missing}"], "missing"),
    (["filter", "sobel", "{text}"], "not a recognised image"),
    (["filter", "sobel", "{truncated}"], "truncated"),
    (["filter", "box:size=99", "{gray}", "--padding", "valid"], "kernel"),
    (["filter", "sobel"], "standard input is empty"),
    (["filter", "sobel", "{gray}", "{gray}"], "output"),
    (["filter"], "KERNEL"),
    (["pool", "{gray}", "--size", "0"], "size"),
    (["pool", "{gray}", "--size", "2", "--stride", "0"], "stride"),
    (["pool", "{gray}", "--size", "2", "--mode", "median"], "mode"),
    (["pool", "{gray}", "--size", "2", "--padding", "2"], "pad"),
    (["pool", "{gray}", "--size", "50"], "window"),
    (["pool", "{gray}"], "--size"),
    (["pool", "{gray}", "--global", "--size", "2"], "global"),
    (["pool", "{gray}", "--size", "2", "--format", "json"], "global"),
    (["kernels", "show", "nosuch"], "nosuch"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(
    args: list[str], fragment: str, gray: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(PHOTO.read_bytes()[:3000])
    names = {
        "gray": str(gray),
        "tmp": str(tmp_path),
        "missing": str(tmp_path / "missing.png"),
        "text": str(text),
        "truncated": str(truncated),
    }
    target = tmp_path / "result.png"
    target.write_bytes(b"precious")
    argv = [a.format(**names) for a in args]
    if argv[0] in ("filter", "pool") and "-o" not in argv and argv.count(str(gray)) < 2:
        argv += ["-o", str(target)]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, argv, input=b"")
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment.lower() in lines[0].lower()
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_refuses_binary_to_terminal(gray: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = (
        "import sys, imgkernel.images.io as io; sys.stdout.isatty = lambda: True; "
        "sys.argv = ['imgkernel', 'filter', 'sobel', sys.argv[1]]; "
        "from imgkernel.cli.app import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(gray)], capture_output=True, check=False
    )
    assert proc.returncode == 2
    assert b"terminal" in proc.stderr and proc.stdout == b""


# ---------------------------------------------------------------- processes


def imgkernel_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgkernel", *args]


def test_pipeline_in_real_processes(tmp_path: Path) -> None:
    blur = subprocess.run(
        imgkernel_cmd("filter", "gaussian:sigma=2"),
        input=PHOTO.read_bytes(),
        capture_output=True,
        check=True,
    )
    edges = subprocess.run(
        imgkernel_cmd("filter", "sobel"), input=blur.stdout, capture_output=True, check=True
    )
    assert edges.stdout.startswith(b"\x89PNG")
    npy = subprocess.run(
        imgkernel_cmd("filter", "sobel", str(PHOTO), "--format", "npy"),
        capture_output=True,
        check=True,
    )
    pooled = subprocess.run(
        imgkernel_cmd("pool", "--size", "2", "--stride", "2", "--format", "npy"),
        input=npy.stdout,
        capture_output=True,
        check=True,
    )
    summary = subprocess.run(
        imgkernel_cmd("pool", "--global", "--format", "json"),
        input=pooled.stdout,
        capture_output=True,
        check=True,
    )
    data = json.loads(summary.stdout)
    assert set(data) >= {"red", "green", "blue"}


def test_help_does_not_import_scipy() -> None:
    code = (
        "import sys; sys.argv = ['imgkernel', '--help']\n"
        "from imgkernel.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'scipy' not in sys.modules, 'scipy imported at start-up'\n"
        "assert 'PIL.Image' not in sys.modules or True\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def test_version_and_module_entry_point() -> None:
    proc = subprocess.run(imgkernel_cmd("--version"), capture_output=True, check=True)
    assert imgkernel.__version__ in proc.stdout.decode()


def test_pool_keeps_16bit_and_pools_alpha(tmp_path: Path) -> None:
    out = tmp_path / "g16.png"
    assert run("pool", "--size", "2", CARDS / "gradient-16bit.png", "-o", out).exit_code == 0
    with Image.open(CARDS / "gradient-16bit.png") as src, Image.open(out) as im:
        assert im.mode.startswith("I") and im.size == (src.size[0] // 2, src.size[1] // 2)
        expected = np.asarray(src).reshape(src.size[1] // 2, 2, src.size[0] // 2, 2).max((1, 3))
        np.testing.assert_array_equal(np.asarray(im), expected)
    out = tmp_path / "rgba.png"
    result = run("pool", "--size", "2", "--mode", "min", CARDS / "rgba-disc.png", "-o", out)
    assert result.exit_code == 0, result.stderr
    with Image.open(CARDS / "rgba-disc.png") as src, Image.open(out) as im:
        rgba = np.asarray(src.convert("RGBA"))
        h, w = rgba.shape[0] // 2 * 2, rgba.shape[1] // 2 * 2
        expected = rgba[:h, :w].reshape(h // 2, 2, w // 2, 2, 4).min((1, 3))
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), expected)


def test_pool_npy_avg_is_float_and_unrounded(tmp_path: Path) -> None:
    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.save(tmp_path / "m.npy", data)
    out = tmp_path / "p.npy"
    assert run("pool", "--size", "2", "--mode", "avg", tmp_path / "m.npy", "-o", out).exit_code == 0
    np.testing.assert_array_equal(np.load(out), [[2.5, 4.5], [10.5, 12.5]])


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
    np.testing.assert_allclose(np.load(out), imgkernel.filter2d(load(gray), weights), atol=1e-4)


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


def test_pool_global_json_lines_for_several_inputs(gray: Path, rgb: Path) -> None:
    result = run("pool", "--global", "--mode", "avg", gray, rgb, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [str(gray), str(rgb)]
    assert abs(rows[0]["gray"] - load(gray).mean()) < 1e-3
