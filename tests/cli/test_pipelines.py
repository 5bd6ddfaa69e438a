"""Pipelines keep their meaning: chained commands give the picture the direct command gives.

Every test chains commands the way a user does (files, standard input and
output, ``.npy`` between stages) and compares with the direct result or with
the library calls.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import imgkernel
from imgkernel.cli import cli
from imgkernel.kernels import load_library

ROOT = Path(__file__).resolve().parents[2]
CAMERA = ROOT / "sample_images" / "camera.png"
ASTRONAUT = ROOT / "sample_images" / "astronaut.png"


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(*args: object, input: bytes | None = None) -> bytes:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


# --------------------------------------------------------------------------- the unit rule


@pytest.mark.parametrize(
    ("second", "tolerance"),
    [
        (["identity", "--clip"], 1),  # was all white when .npy was read with full scale 1.0
        (["box:size=3"], 1),
        (["gaussian:sigma=1"], 1),
        (["emboss"], 1),  # was +0.5 instead of mid-grey
        (["identity", "--signed", "--scale", "0.5"], 1),
        (["identity", "--offset", "8%"], 1),  # a percentage of full scale means the same
    ],
)
def test_png_npy_png_gives_the_direct_picture(second: list[str], tolerance: int) -> None:
    photo = CAMERA.read_bytes()
    direct = ok("filter", *second, input=ok("filter", "gaussian:sigma=2", input=photo))
    through_npy = ok(
        "filter", *second, "--format", "png",
        input=ok("filter", "gaussian:sigma=2", "--format", "npy", input=photo),
    )  # fmt: skip
    a, b = picture(direct).astype(int), picture(through_npy).astype(int)
    assert a.shape == b.shape == (512, 512)
    assert np.abs(a - b).max() <= tolerance
    assert 40 < b.mean() < 220  # a picture, not a white or black page


def test_edges_through_npy_match_edges_of_the_exact_blur() -> None:
    # sobel amplifies the 8-bit intermediate's rounding; the .npy pipeline has
    # none, so it must equal the library's sobel of the unrounded blur.
    photo = CAMERA.read_bytes()
    blur = array(ok("filter", "gaussian:sigma=2", "--format", "npy", input=photo))
    edges = picture(ok("filter", "sobel", "--format", "png", input=ok(
        "filter", "gaussian:sigma=2", "--format", "npy", input=photo)))  # fmt: skip
    kernel = load_library().resolve("sobel")
    gx = imgkernel.filter2d(blur, kernel.weights[0])
    gy = imgkernel.filter2d(blur, kernel.weights[1])
    expected = np.clip(np.floor(np.hypot(gx, gy) * 255 + 0.5), 0, 255)
    assert np.abs(edges.astype(int) - expected).max() <= 1
    direct = picture(ok("filter", "sobel", input=ok("filter", "gaussian:sigma=2", input=photo)))
    # the direct pipeline rounds the blur to 8 bits first: close, not equal
    assert np.abs(direct.astype(int) - edges.astype(int)).mean() < 1.5


def test_offset_values_are_in_the_input_units(tmp_path: Path) -> None:
    photo = CAMERA.read_bytes()
    direct = picture(ok("filter", "identity", "--offset", "20", input=photo))
    floats = ok("filter", "identity", "--format", "npy", input=photo)
    via = picture(ok("filter", "identity", "--offset", str(20 / 255), "--format", "png",
                     input=floats))  # fmt: skip
    assert np.abs(direct.astype(int) - via.astype(int)).max() <= 1


def test_npy_holds_full_scale_one_and_bias_is_in_input_units(tmp_path: Path) -> None:
    values = array(ok("filter", "identity", CAMERA, "--format", "npy", "--bias", "10"))
    pixels = np.asarray(Image.open(CAMERA)).astype(np.float32)
    np.testing.assert_allclose(values, (pixels + 10) / 255, atol=1e-6)
    floats = tmp_path / "f.npy"
    np.save(floats, pixels / 255)
    again = array(ok("filter", "identity", floats, "--bias", "0.5", "--format", "npy"))
    np.testing.assert_allclose(again, pixels / 255 + 0.5, atol=1e-6)


def test_standard_output_keeps_the_input_format(tmp_path: Path) -> None:
    npy = ok("filter", "box", "--format", "npy", input=CAMERA.read_bytes())
    assert npy.startswith(b"\x93NUMPY")
    assert ok("filter", "box", input=npy).startswith(b"\x93NUMPY")  # .npy in, .npy out
    assert ok("filter", "box", "--format", "png", input=npy).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- weights as written


def test_notes_binary_example_from_the_cli(tmp_path: Path) -> None:
    # The lecture notes' first example: a binary 5x5 image, the "X" filter,
    # bias 1, valid padding: 5 4 5 / 3 5 4 / 3 4 5 (computed by hand there).
    binary = tmp_path / "binary.npy"
    np.save(binary, np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1],
                              [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]))  # fmt: skip
    out = ok("filter", "--matrix", "1,0,1;0,1,0;1,0,1", "--bias", "1", "--padding", "valid",
             "--border", "zero", binary, "--format", "npy")  # fmt: skip
    np.testing.assert_array_equal(array(out), [[5, 4, 5], [3, 5, 4], [3, 4, 5]])


def test_notes_padding_example_from_the_cli(tmp_path: Path) -> None:
    # Zero padding 1 around a 5x5 input: top-left outputs 1 6 5 / 7 10 9 / 7 10 8.
    image = tmp_path / "in.npy"
    np.save(image, np.array([[2, 2, 3, 3, 3], [0, 1, 3, 0, 3], [2, 3, 0, 1, 3],
                             [3, 3, 2, 1, 2], [3, 3, 0, 2, 3]]))  # fmt: skip
    kernel = tmp_path / "k.txt"
    kernel.write_text("2 0 1\n1 0 0\n0 1 1\n")
    out = array(ok("filter", "--kernel-file", kernel, "--padding", "1", "--border", "zero",
                   image, "--format", "npy"))  # fmt: skip
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out[:3, :3], [[1, 6, 5], [7, 10, 9], [7, 10, 8]])


def test_notes_feature_detector_and_max_pooling_from_the_cli(tmp_path: Path) -> None:
    # The notes' feature detector on a 7x7 binary picture, then 2x2 max pooling
    # (stride 2, partial windows kept): 1 1 0 / 4 2 1 / 0 2 1.
    image = tmp_path / "smile.npy"
    picture_ = np.zeros((7, 7))
    for r, c in [(1, 1), (1, 5), (3, 3), (4, 1), (4, 5), (5, 2), (5, 3), (5, 4)]:
        picture_[r, c] = 1
    np.save(image, picture_)
    maps = ok("filter", "--matrix", "0 0 1; 1 0 0; 0 1 1", "--padding", "valid", image,
              "--format", "npy")  # fmt: skip
    expected_map = [[0, 1, 0, 0, 0], [0, 1, 1, 1, 0], [1, 0, 0, 2, 1],
                    [1, 4, 2, 1, 0], [0, 0, 1, 2, 1]]  # fmt: skip
    np.testing.assert_array_equal(array(maps), expected_map)
    pooled = ok("pool", "--size", "2", "--ceil", "--format", "npy", input=maps)
    np.testing.assert_array_equal(array(pooled), [[1, 1, 0], [4, 2, 1], [0, 2, 1]])


def test_divisor_normalizes_only_when_asked(tmp_path: Path) -> None:
    ones = tmp_path / "ones.npy"
    np.save(ones, np.ones((5, 5), np.float32))
    raw = array(ok("filter", "--matrix", "1 2 1", ones, "--format", "npy"))
    assert np.allclose(raw, 4.0)  # as written
    summed = array(ok("filter", "--matrix", "1 2 1", "--divisor", "sum", ones, "--format", "npy"))
    assert np.allclose(summed, 1.0)
    halved = array(ok("filter", "--matrix", "1 2 1", "--divisor", "2", ones, "--format", "npy"))
    assert np.allclose(halved, 2.0)
    named = array(ok("filter", "box:size=3", "--divisor", "0.5", ones, "--format", "npy"))
    assert np.allclose(named, 2.0)  # a named kernel as its table defines it, then divided


@pytest.mark.parametrize("bad", ["0", "x", "nan", "-inf", ""])
def test_divisor_bad_values(bad: str, tmp_path: Path) -> None:
    result = run("filter", "--matrix", "1 1", "--divisor", bad, CAMERA, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr.startswith("imgkernel: error: Invalid value for '--divisor'")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- feature maps


def test_run_pool_filter_round_trip_matches_the_library(tmp_path: Path) -> None:
    from imgkernel.nn import load_model

    rng = np.random.default_rng(0)
    x = tmp_path / "x.npy"
    np.save(x, rng.random((2, 1, 16, 16), dtype=np.float32))
    maps = ok("run", "digits", x, "--layer", "0")
    tensor = array(maps)
    assert tensor.ndim == 4 and tensor.shape[:2] == (2, 32)
    expected = load_model("digits").forward(np.load(x), until=0)
    np.testing.assert_allclose(tensor, expected, rtol=1e-5, atol=1e-6)
    pooled_bytes = ok("pool", "--size", "2", "--mode", "avg", "--format", "npy", input=maps)
    pooled = array(pooled_bytes)
    want = imgkernel.pool2d(tensor, 2, mode="avg", layout="tensor")
    np.testing.assert_allclose(pooled, want, rtol=1e-6)
    edges = array(ok("filter", "sobel-x", "--format", "npy", input=pooled_bytes))
    weights = load_library().resolve("sobel-x").weights
    planes = want.reshape(-1, *want.shape[2:])
    per_plane = np.stack([imgkernel.filter2d(p, weights) for p in planes]).reshape(want.shape)
    assert edges.shape == want.shape
    np.testing.assert_allclose(edges, per_plane, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "layout"), [((16, 16, 64), None), ((64, 16, 16), "chw"), ((6, 7, 1), None)]
)
def test_feature_maps_keep_their_layout(shape: tuple, layout: str | None, tmp_path: Path) -> None:
    maps = tmp_path / "maps.npy"
    data = np.random.default_rng(1).random(shape, dtype=np.float32)
    np.save(maps, data)
    extra = ["--layout", layout] if layout else []
    pooled = array(ok("pool", "--size", "2", "--ceil", maps, "--format", "npy", *extra))
    as_hwc = np.moveaxis(data, 0, -1) if layout == "chw" else data
    want = imgkernel.pool2d(as_hwc, 2, ceil_mode=True)
    assert pooled.shape == (np.moveaxis(want, -1, 0).shape if layout == "chw" else want.shape)
    got = np.moveaxis(pooled, 0, -1) if layout == "chw" else pooled
    np.testing.assert_array_equal(got, want)
    filtered = array(ok("filter", "box", maps, "--format", "npy", *extra))
    assert filtered.shape == data.shape  # a trailing channel of 1 stays


def test_many_channels_cannot_become_a_png(tmp_path: Path) -> None:
    maps = tmp_path / "maps.npy"
    np.save(maps, np.zeros((8, 8, 64), np.float32))
    result = run("filter", "box", maps, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert "64 channels cannot be stored as PNG" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_layout_bad_value(tmp_path: Path) -> None:
    result = run("pool", "--size", "2", "--layout", "nhwc", CAMERA, "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "Invalid value for '--layout'" in result.stderr
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- exact rounding


def test_average_pooling_matches_pillows_reduce() -> None:
    image = Image.open(ASTRONAUT)
    for factor in (2, 4):
        ours = picture(ok("pool", "--size", str(factor), "--mode", "avg", ASTRONAUT))
        assert (ours.astype(int) != np.asarray(image.reduce(factor)).astype(int)).sum() == 0


def test_pillow_rounds_thirds_of_nine_down_where_half_up_does_not() -> None:
    # Pillow's reduce(3) divides by 9 in fixed point: where sum + 4 is a
    # multiple of 9 it gives one less than round-half-up. Every other pixel agrees.
    image = Image.open(ASTRONAUT)
    ours = picture(ok("pool", "--size", "3", "--mode", "avg", ASTRONAUT)).astype(int)
    theirs = np.asarray(image.reduce(3)).astype(int)
    h, w = ours.shape[:2]
    pixels = np.asarray(image).astype(int)[: 3 * h, : 3 * w]
    sums = pixels.reshape(h, 3, w, 3, -1).sum(axis=(1, 3))
    np.testing.assert_array_equal(ours - theirs, ((sums + 4) % 9 == 0).astype(int))


# --------------------------------------------------------------------------- inputs are safe


def test_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(CAMERA.read_bytes())
    before = photo.read_bytes()
    for output in (photo, f"{tmp_path}/", f"{tmp_path}/{{stem}}.png"):
        result = run("filter", "sobel", photo, "-o", output)
        assert result.exit_code == 2, output
        assert "is also an input" in result.stderr and "--overwrite" in result.stderr
        assert photo.read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    assert run("filter", "sobel", photo, "-o", link).exit_code == 2
    assert photo.read_bytes() == before


def test_overwrite_replaces_the_input_after_reading_it(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(CAMERA.read_bytes())
    expected = ok("filter", "box", CAMERA)
    ok("filter", "box", photo, "-o", photo, "--overwrite")
    np.testing.assert_array_equal(picture(photo.read_bytes()), picture(expected))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # no temp files left


def test_several_inputs_into_their_own_directory_are_refused(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(CAMERA.read_bytes())
    result = run("filter", "sobel", tmp_path / "a.png", tmp_path / "b.png", "-o", f"{tmp_path}/")
    assert result.exit_code == 2 and "is also an input" in result.stderr
    assert (tmp_path / "a.png").read_bytes() == CAMERA.read_bytes()


# --------------------------------------------------------------------------- smaller things


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--clip", "--abs"], "--clip and --abs"), (["--signed", "--normalize"],
     "--signed and --normalize")],
)  # fmt: skip
def test_conflicting_display_flags(flags: list[str], named: str, tmp_path: Path) -> None:
    result = run("filter", "sobel", CAMERA, *flags, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"imgkernel: error: {named} conflict: give one display mapping"
    assert not (tmp_path / "o.png").exists()


def animated_gif(path: Path, frames: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    pictures = [rng.integers(0, 256, (24, 32), dtype=np.uint8) for _ in range(frames)]
    first, *rest = (Image.fromarray(p).convert("P") for p in pictures)
    first.save(path, save_all=True, append_images=rest, duration=120, loop=0)
    with Image.open(path) as im:  # what the GIF really holds after quantising
        return [np.asarray(im.seek(i) or im.convert("L")) for i in range(frames)]


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".png", ".webp"])
def test_animations_are_filtered_frame_by_frame(suffix: str, tmp_path: Path) -> None:
    source = tmp_path / "anim.gif"
    frames = animated_gif(source)
    out = tmp_path / f"out{suffix}"
    ok("filter", "box", source, "-o", out, "--quality", "100")
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 3
        if suffix in (".gif", ".png"):
            for i, frame in enumerate(frames):
                im.seek(i)
                got = np.asarray(im.convert("L")).astype(int)
                alone = ok("filter", "box", "--format", "png", input=_png(frame))
                direct = picture(alone).astype(int)
                tolerance = 0 if suffix == ".png" else 16  # GIF re-quantises colours
                assert np.abs(got - direct).max() <= tolerance, i


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_frames_that_cannot_be_kept_give_one_warning_line(tmp_path: Path) -> None:
    source = tmp_path / "anim.gif"
    animated_gif(source)
    result = run("filter", "box", source, "-o", tmp_path / "first.jpg")
    assert result.exit_code == 0
    assert result.stderr.strip().splitlines() == [
        f"imgkernel: warning: {source} has 3 frames; only the first was used "
        "(write GIF, TIFF, WebP or PNG to keep them all)"
    ]


def test_kernels_show_takes_a_library_after_the_subcommand(tmp_path: Path) -> None:
    library = tmp_path / "mine.toml"
    library.write_text("[kernels.ridge]\nrows = [[-1, -1], [2, 2]]\n")
    result = run("kernels", "show", "ridge", "--kernels", library)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ridge") and "sum:        2" in result.stdout
    assert "ridge" in run("kernels", "--kernels", library, "show", "ridge").stdout


def test_kernel_file_with_several_kernels(tmp_path: Path) -> None:
    library = tmp_path / "two.toml"
    library.write_text("[kernels.a]\nrows = [[1]]\n[kernels.b]\nrows = [[2]]\n")
    result = run("filter", "--kernel-file", library, CAMERA, "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert f"choose one as {library}:a" in result.stderr
    out = array(ok("filter", "--kernel-file", f"{library}:b", CAMERA, "--format", "npy"))
    pixels = np.asarray(Image.open(CAMERA)).astype(np.float64)
    np.testing.assert_allclose(out, 2 * pixels / 255, atol=1e-6)
