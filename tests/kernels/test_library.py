"""Named kernels (imgkernel.kernels.library): the built-in kernels.toml, specs, user files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from imgkernel.errors import UsageError
from imgkernel.kernels import Kernel, load_library, parse_spec
from imgkernel.kernels.library import user_kernels_path

REQUIRED = [
    "identity", "box", "mean", "gaussian", "blur", "sobel-x", "sobel-y", "sobel",
    "prewitt-x", "prewitt-y", "prewitt", "scharr-x", "scharr-y", "scharr", "laplacian",
    "laplacian-8", "log", "sharpen", "unsharp", "emboss", "edge-enhance", "edge-enhance-more",
    "contour", "detail", "smooth", "smooth-more", "find-edges", "dilated",
]  # fmt: skip


BLURS = ["box", "mean", "gaussian", "blur", "gaussian-3", "gaussian-5", "binomial", "smooth",
         "smooth-more", "motion", "identity"]  # fmt: skip
EDGES = ["sobel-x", "sobel-y", "sobel", "prewitt-x", "prewitt-y", "prewitt", "scharr-x",
         "scharr-y", "scharr", "laplacian", "laplacian-8", "log", "find-edges", "roberts",
         "emboss", "contour", "dilated"]  # fmt: skip


# ----------------------------------------------------------- library


def test_required_names_present(lib):
    missing = set(REQUIRED) - set(lib.names())
    assert not missing


def test_every_name_resolves(lib):
    for name in lib.names():
        k = lib.resolve(name)
        assert isinstance(k, Kernel)
        assert k.weights.dtype == np.float64
        assert k.display in ("clip", "abs", "offset")
        assert lib.describe(name) and "\n" not in lib.describe(name)
        assert lib.details(name).startswith(name)
        assert np.all(np.isfinite(k.weights))


def test_names_are_case_and_underscore_insensitive(lib):
    assert lib.resolve("EDGE_ENHANCE").name == "edge-enhance"
    assert "Sobel_X" in lib


@pytest.mark.parametrize("name", BLURS)
def test_blurs_sum_to_one(lib, name):
    assert lib.resolve(name).total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", EDGES)
def test_edge_kernels_are_zero_sum(lib, name):
    k = lib.resolve(name)
    assert k.is_zero_sum
    for c in k.components:
        assert abs(c.sum()) < 1e-12


def test_sharpeners_keep_brightness(lib):
    for name in ["sharpen", "sharpen-pillow", "unsharp", "detail", "edge-enhance",
                 "edge-enhance-more", "emboss-gimp"]:  # fmt: skip
        assert lib.resolve(name).total == pytest.approx(1.0, abs=1e-12), name


def test_seed_matrices(lib):
    # seed 004 (teaching slides) and seed 001 (GIMP)
    assert np.array_equal(lib.resolve("sobel-x").weights, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    # Deliberate choice: y points down (scipy/OpenCV); seed 004 prints the negation.
    assert np.array_equal(lib.resolve("sobel-y").weights, -np.array([[1, 2, 1], [0, 0, 0],
                                                                     [-1, -2, -1]]))  # fmt: skip
    assert np.array_equal(lib.resolve("laplacian").weights, [[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    # Deliberate choice: positive centre; seed 004 prints [[1,1,1],[1,-8,1],[1,1,1]].
    seed_l8 = np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]])
    assert np.array_equal(lib.resolve("laplacian-8").weights, -seed_l8)
    assert np.array_equal(lib.resolve("sharpen").weights, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert np.array_equal(
        lib.resolve("sharpen").weights,
        lib.resolve("laplacian").weights + np.pad([[1.0]], 1),
    )
    g3 = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    assert np.array_equal(lib.resolve("gaussian-3").weights, g3)
    row = np.array([1, 4, 6, 4, 1])
    assert np.array_equal(lib.resolve("gaussian-5").weights, np.outer(row, row) / 256)
    assert np.array_equal(lib.resolve("binomial").weights, lib.resolve("gaussian-5").weights)
    assert np.array_equal(lib.resolve("binomial:size=3").weights, g3)
    assert np.array_equal(lib.resolve("box").weights, np.full((3, 3), 1 / 9))
    assert np.array_equal(lib.resolve("emboss-gimp").weights, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def test_derivative_signs_match_scipy(lib):
    rng = np.random.default_rng(1)
    img = rng.random((12, 14))
    for name, func in [("sobel", ndimage.sobel), ("prewitt", ndimage.prewitt)]:
        gx = ndimage.correlate(img, lib.resolve(f"{name}-x").weights, mode="reflect")
        gy = ndimage.correlate(img, lib.resolve(f"{name}-y").weights, mode="reflect")
        assert np.allclose(gx, func(img, axis=1, mode="reflect"))
        assert np.allclose(gy, func(img, axis=0, mode="reflect"))
    lap = ndimage.correlate(img, lib.resolve("laplacian").weights, mode="reflect")
    assert np.allclose(lap, -ndimage.laplace(img, mode="reflect"))


def test_magnitude_kernels(lib):
    k = lib.resolve("sobel")
    assert k.combine == "magnitude" and k.weights.shape == (2, 3, 3)
    assert np.array_equal(k.weights[0], lib.resolve("sobel-x").weights)
    assert np.array_equal(k.weights[1], lib.resolve("sobel-y").weights)
    assert k.shape == (3, 3)
    assert lib.resolve("scharr").weights.shape == (2, 3, 3)


# ------------------------------------------------------------ Pillow


PILLOW = {
    "blur": "BLUR", "contour": "CONTOUR", "detail": "DETAIL", "edge-enhance": "EDGE_ENHANCE",
    "edge-enhance-more": "EDGE_ENHANCE_MORE", "emboss": "EMBOSS", "find-edges": "FIND_EDGES",
    "sharpen-pillow": "SHARPEN", "smooth": "SMOOTH", "smooth-more": "SMOOTH_MORE",
}  # fmt: skip


@pytest.mark.parametrize(("name", "pil_name"), sorted(PILLOW.items()))
def test_pillow_kernels_match_filterargs(lib, name, pil_name):
    size, scale, offset, weights = getattr(ImageFilter, pil_name).filterargs
    k = lib.resolve(name)
    expected = np.array(weights, dtype=float).reshape(size[1], size[0]) / scale
    if name == "emboss":  # stored as Pillow applies it: rows bottom-to-top
        expected = expected[::-1]
    assert k.shape == (size[1], size[0])
    assert np.allclose(k.weights, expected, rtol=0, atol=1e-15)
    # offsets are fractions of full scale: Pillow's 8-bit offset / 255
    assert round(k.offset * 255) == offset


@pytest.mark.parametrize(("name", "pil_name"), sorted(PILLOW.items()))
def test_pillow_pictures_reproduced(lib, name, pil_name):
    """Our kernels reproduce Pillow's pictures (emboss is stored as Pillow applies it)."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (16, 18)).astype(np.uint8)
    pil = np.asarray(Image.fromarray(img).filter(getattr(ImageFilter, pil_name))).astype(float)
    k = lib.resolve(name)
    w = k.weights
    ours = ndimage.correlate(img.astype(float), w, mode="nearest") + k.offset * 255
    ours = np.clip(np.floor(ours + 0.5), 0, 255)
    m = w.shape[0] // 2
    inner = (slice(m, -m), slice(m, -m))  # Pillow copies border pixels
    assert np.abs(ours[inner] - pil[inner]).max() <= 1


# ------------------------------------------------------------- specs


def test_parse_spec():
    assert parse_spec("gaussian:sigma=2.5,size=7") == ("gaussian", {"sigma": "2.5", "size": "7"})
    assert parse_spec(" sobel ") == ("sobel", {})
    assert parse_spec("box: size = 5 ") == ("box", {"size": "5"})


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("", "''"),
        (":sigma=1", "':sigma=1'"),
        ("gaussian:", "'gaussian:'"),
        ("gaussian:sigma", "'sigma'"),
        ("gaussian:sigma=", "'sigma='"),
        ("gaussian:=2", "'=2'"),
        ("gaussian:sigma=1,sigma=2", "'sigma'"),
    ],
)
def test_parse_spec_rejects(spec, quoted):
    with pytest.raises(UsageError) as info:
        parse_spec(spec)
    assert quoted in str(info.value)


def test_unknown_name_suggests(lib):
    with pytest.raises(UsageError, match=r"did you mean 'gaussian'"):
        lib.resolve("gausian")
    with pytest.raises(UsageError, match=r"'sobel-x'"):
        lib.resolve("sobelx")
    with pytest.raises(UsageError, match=r"unknown kernel 'zzzzqq'; known kernels: .*sobel"):
        lib.resolve("zzzzqq")


def test_canonical_names(lib):
    assert lib.resolve("gaussian").name == "gaussian"
    assert lib.resolve("Gaussian:size=7,sigma=2.0").name == "gaussian:sigma=2,size=7"
    assert lib.resolve("mean:size=5").name == "box:size=5"
    assert lib.resolve("dilated:rate=3,base=sobel_x").name == "dilated:base=sobel-x,rate=3"


# ----------------------------------------------------------- sources


def test_self_reference_is_reported(tmp_path):
    path = tmp_path / "loop.toml"
    path.write_text("[kernels.a]\nalias = 'b'\n[kernels.b]\nalias = 'a'\n")
    lib = load_library([path], include_user=False)
    with pytest.raises(UsageError, match="refers to itself"):
        lib.resolve("a")


def test_missing_extra_file(tmp_path):
    with pytest.raises(UsageError, match="nope.toml"):
        load_library([tmp_path / "nope.toml"], include_user=False)


def test_user_file_and_extra_files_override(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "imgkernel").mkdir(parents=True)
    (xdg / "imgkernel" / "kernels.toml").write_text(
        "[kernels.sobel-x]\ndescription = 'mine'\nrows = [[1, 0, -1]]\ndisplay = 'abs'\n"
        "[kernels.my-blur]\ngenerator = 'box'\nparams = { size = 5 }\n"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert user_kernels_path() == xdg / "imgkernel" / "kernels.toml"
    lib = load_library()
    assert np.array_equal(lib.resolve("sobel-x").weights, [[1, 0, -1]])
    assert lib.describe("sobel-x") == "mine"
    assert lib.resolve("my-blur").shape == (5, 5)
    assert "my-blur" in lib.names()
    # built-ins referring to an overridden name see the override
    with pytest.raises(UsageError, match="differ in shape"):
        lib.resolve("sobel")
    # not read when include_user=False
    assert "my-blur" not in load_library(include_user=False)

    extra = tmp_path / "extra.toml"
    extra.write_text("[kernels.my-blur]\nrows = [[2]]\nscale = 2\n")
    lib2 = load_library([extra])
    assert np.array_equal(lib2.resolve("my-blur").weights, [[1]])
    assert np.array_equal(lib2.resolve("sobel-x").weights, [[1, 0, -1]])  # user file still on


def test_default_xdg_location(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_kernels_path() == tmp_path / ".config" / "imgkernel" / "kernels.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # ignored per the XDG spec
    assert user_kernels_path() == tmp_path / ".config" / "imgkernel" / "kernels.toml"


def test_builtin_toml_is_the_repository_file():
    lib = load_library(include_user=False)
    src = Path(lib["gaussian"].source)
    assert src.name == "kernels.toml" and src.is_file()


def test_offset_semantics(lib):
    assert lib.resolve("emboss").offset == 0.5
    assert lib.resolve("contour").offset == 1.0
    others = [n for n in lib.names() if n not in ("emboss", "contour")]
    assert all(lib.resolve(n).offset == 0 for n in others)
