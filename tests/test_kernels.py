"""Tests for the named-kernel library (imgkernel.kernels.library and kernels.toml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter
from scipy import ndimage

from imgkernel.errors import UsageError
from imgkernel.kernels.library import (
    Kernel,
    gaussian_1d,
    kernel_from_matrix,
    load_kernel_file,
    load_library,
    parse_matrix,
    parse_spec,
    rank1_factors,
    user_kernels_path,
)


@pytest.fixture(scope="module")
def lib():
    return load_library(include_user=False)


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory, monkeypatch):
    # Keep the developer's own ~/.config out of every test.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-empty")))


def _impulse_response(sigma: float, radius: int | None = None) -> np.ndarray:
    """scipy's 1-D Gaussian taps: gaussian_filter1d applied to a unit impulse."""
    r = radius if radius is not None else int(4.0 * sigma + 0.5)
    x = np.zeros(2 * r + 1 + 2 * r)  # room so the borders never touch the taps
    x[2 * r] = 1.0
    kwargs = {"radius": radius} if radius is not None else {}
    y = ndimage.gaussian_filter1d(x, sigma, mode="constant", **kwargs)
    return y[r : 3 * r + 1]


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


# ------------------------------------------------------------------ library


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


def test_box_sizes(lib):
    for n in (1, 2, 3, 7):
        w = lib.resolve(f"box:size={n}").weights
        assert w.shape == (n, n)
        assert np.allclose(w, 1.0 / n**2)
    assert lib.resolve("mean:size=5") == lib.resolve("box:size=5")


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


# ------------------------------------------------------------------ gaussian


@pytest.mark.parametrize("sigma", [0.3, 0.5, 1.0, 1.5, 2.0, 3.7])
def test_gaussian_1d_matches_scipy(sigma):
    g = gaussian_1d(sigma)
    assert g.size == 2 * int(4.0 * sigma + 0.5) + 1
    assert np.allclose(g, _impulse_response(sigma), atol=1e-14)


@pytest.mark.parametrize(("sigma", "size"), [(1.0, 3), (1.0, 5), (2.0, 7), (0.8, 11), (3.0, 25)])
def test_gaussian_size_override_matches_scipy_radius(lib, sigma, size):
    k = lib.resolve(f"gaussian:sigma={sigma},size={size}")
    assert k.shape == (size, size)
    g = _impulse_response(sigma, radius=size // 2)
    assert np.allclose(k.weights, np.outer(g, g), atol=1e-14)


@pytest.mark.parametrize(("sigma", "expected"), [(1, 9), (2, 17), (3, 25)])
def test_gaussian_default_sizes(lib, sigma, expected):
    k = lib.resolve(f"gaussian:sigma={sigma}")
    assert k.shape == (expected, expected)
    assert k.name == f"gaussian:sigma={sigma}"


def test_gaussian_2d_equals_scipy_gaussian_filter(lib):
    img = np.zeros((31, 31))
    img[15, 15] = 1
    ref = ndimage.gaussian_filter(img, 2.0, mode="constant")
    k = lib.resolve("gaussian:sigma=2").weights
    assert np.allclose(ref[7:24, 7:24], k, atol=1e-15)


def test_gaussian_is_separable(lib):
    k = lib.resolve("gaussian:sigma=1.3").weights
    col, row = rank1_factors(k)
    g = gaussian_1d(1.3)
    assert np.allclose(col / col.sum(), g) and np.allclose(row / row.sum(), g)


@settings(max_examples=60, deadline=None)
@given(sigma=st.floats(min_value=0.1, max_value=10.0, exclude_min=True))
def test_gaussian_property_sum_symmetric(sigma):
    g = gaussian_1d(sigma)
    assert g.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(g, g[::-1])
    assert np.argmax(g) == g.size // 2
    assert np.all(g > 0)


@settings(max_examples=40, deadline=None)
@given(
    sigma=st.floats(min_value=0.2, max_value=3.0),
    amount=st.floats(min_value=0.0, max_value=5.0),
)
def test_unsharp_property(sigma, amount):
    lib = load_library(include_user=False)
    k = lib.resolve(f"unsharp:amount={amount!r},sigma={sigma!r}").weights
    g = gaussian_1d(sigma)
    delta = np.zeros((g.size, g.size))
    delta[g.size // 2, g.size // 2] = 1
    assert np.allclose(k, (1 + amount) * delta - amount * np.outer(g, g), atol=1e-12)
    assert k.sum() == pytest.approx(1.0, abs=1e-9)


def test_unsharp_defaults(lib):
    k = lib.resolve("unsharp").weights
    g = gaussian_1d(1.0)
    delta = np.zeros((9, 9))
    delta[4, 4] = 1
    assert np.allclose(k, 2 * delta - np.outer(g, g))


def test_log_zero_sum_symmetric_positive_centre(lib):
    for spec in ("log", "log:sigma=0.8", "log:sigma=2,size=9"):
        w = lib.resolve(spec).weights
        c = w.shape[0] // 2
        assert abs(w.sum()) < 1e-12
        assert np.allclose(w, w.T) and np.allclose(w, w[::-1]) and np.allclose(w, w[:, ::-1])
        assert w[c, c] == w.max() > 0
    assert lib.resolve("log").shape == (13, 13)  # scipy rule: int(4*1.4+0.5) = 6


def test_log_approximates_negative_laplacian_of_smooth_image(lib):
    # On a quadratic bowl x^2 + y^2 (del^2 = 4), -del^2 G * f is about -4 inside.
    w = lib.resolve("log:sigma=1").weights
    yy, xx = np.mgrid[-20:21, -20:21].astype(float)
    out = ndimage.correlate(xx**2 + yy**2, w, mode="nearest")
    assert out[20, 20] == pytest.approx(-4.0, rel=0.05)


def test_motion_blur(lib):
    w = lib.resolve("motion:length=5").weights
    assert np.allclose(w[2], 0.2) and w.sum() == pytest.approx(1.0)
    assert np.count_nonzero(w) == 5
    v = lib.resolve("motion:length=5,angle=90").weights
    assert np.allclose(v, w.T)
    d = lib.resolve("motion:length=7,angle=45").weights
    assert np.allclose(d, d[::-1, ::-1])  # centred
    assert d[0, -1] > 0 and d[-1, 0] > 0 and d[0, 0] == 0  # rising diagonal (y up)


# ------------------------------------------------------------------ Pillow

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


# ------------------------------------------------------------------ dilation


def test_dilated_expanded(lib):
    k = lib.resolve("dilated:base=box,rate=2")
    assert k.dilation == (2, 2) and k.shape == (3, 3) and k.extent == (5, 5)
    expected = np.zeros((5, 5))
    expected[::2, ::2] = 1 / 9
    assert np.array_equal(k.expanded(), expected)
    ones = Kernel("ones", np.ones((3, 3)), dilation=(2, 2)).expanded()
    assert ones.tolist() == [
        [1, 0, 1, 0, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 1, 0, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 1, 0, 1],
    ]
    # the seed slide's [[1,0,1],[0,0,0],[1,0,1]] is NOT the dilated 3x3 of ones
    assert ones.shape != (3, 3)


def test_dilated_defaults_and_inheritance(lib):
    k = lib.resolve("dilated")
    assert np.array_equal(k.weights, lib.resolve("laplacian").weights)
    assert k.dilation == (2, 2) and k.display == "abs"
    s = lib.resolve("dilated:base=sobel,rate=3")
    assert s.combine == "magnitude" and s.dilation == (3, 3)
    assert s.expanded().shape == (2, 7, 7)
    e = lib.resolve("dilated:base=emboss")
    assert e.offset == 0.5 and e.display == "clip"


def test_dilated_expanded_equals_dilated_correlation(lib):
    rng = np.random.default_rng(3)
    img = rng.random((20, 20))
    k = lib.resolve("dilated:base=sobel-x,rate=3")
    dense = ndimage.correlate(img, k.expanded(), mode="constant")
    # manual dilated correlation
    w, r = k.weights, 3
    pad = np.pad(img, r)
    manual = sum(
        w[i, j] * pad[i * r : i * r + 20, j * r : j * r + 20] for i in range(3) for j in range(3)
    )
    assert np.allclose(dense, manual)


# ------------------------------------------------------------------ rank-1


@settings(max_examples=50, deadline=None)
@given(
    kh=st.integers(1, 9),
    kw=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank1_recovers_outer_products(kh, kw, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=kh), rng.normal(size=kw)
    w = np.outer(a, b)
    factors = rank1_factors(w)
    assert factors is not None
    col, row = factors
    assert col.shape == (kh,) and row.shape == (kw,)
    assert np.allclose(np.outer(col, row), w, atol=1e-12 * np.abs(w).max())


def test_rank1_rejects_rank2():
    rng = np.random.default_rng(0)
    w = np.outer(rng.normal(size=5), rng.normal(size=5)) + np.outer(
        rng.normal(size=5), rng.normal(size=5)
    )
    assert rank1_factors(w) is None
    assert rank1_factors(np.eye(3)) is None
    lib = load_library(include_user=False)
    assert rank1_factors(lib.resolve("laplacian").weights) is None
    assert rank1_factors(lib.resolve("sobel-y").weights) is not None
    with pytest.raises(UsageError):
        rank1_factors(np.ones(3))


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "text",
    [
        "1,0,-1;2,0,-2;1,0,-1",
        "1 0 -1; 2 0 -2; 1 0 -1",
        "1, 0, -1\n2, 0, -2\n1, 0, -1\n",
        "\n  1 0 -1   # row one\n\n  2 0 -2\n  1 0 -1\n",
        "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]",
        "1,0,-1;2,0,-2;1,0,-1;",
        "2/2 0 -1;4/2 0 -2;1 0 -1",
    ],
)
def test_parse_matrix_forms(text):
    m = parse_matrix(text)
    assert m.dtype == np.float64
    assert np.array_equal(m, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("1,2;3", "row 2"),
        ("1,2;3,x", "'x'"),
        ("", "is empty"),
        ("  ;  ", "is empty"),
        ("# nothing\n", "is empty"),
        ("1,,2", "empty value"),
        ("1,nan", "'nan'"),
        ("1,inf", "'inf'"),
        ("1/0", "'1/0'"),
    ],
)
def test_parse_matrix_rejects(text, quoted):
    with pytest.raises(UsageError) as info:
        parse_matrix(text)
    msg = str(info.value)
    assert quoted in msg and "\n" not in msg


def test_parse_matrix_size_limit():
    with pytest.raises(UsageError, match="1002"):
        parse_matrix(" ".join(["1"] * 1002))


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


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("gaussian:sigma=0", "'0'"),
        ("gaussian:sigma=-1", "'-1'"),
        ("gaussian:sigma=abc", "'abc'"),
        ("gaussian:sigma=nan", "'nan'"),
        ("gaussian:size=4", "'4'"),
        ("gaussian:size=0", "'0'"),
        ("gaussian:size=-3", "'-3'"),
        ("gaussian:size=2.5", "'2.5'"),
        ("gaussian:size=1003", "'1003'"),
        ("gaussian:sigma=300", "'300'"),
        ("gaussian:sigmaa=2", "'sigmaa'"),
        ("gaussian:truncate=0", "'0'"),
        ("box:size=0", "'0'"),
        ("box:size=5000", "'5000'"),
        ("box:sigma=1", "'sigma'"),
        ("log:sigma=-1.4", "'-1.4'"),
        ("unsharp:amount=x", "'x'"),
        ("dilated:rate=0", "'0'"),
        ("dilated:rate=1.5", "'1.5'"),
        ("dilated:base=nosuch", "'nosuch'"),
        ("dilated:base=gaussian:sigma", "'gaussian:sigma'"),
        ("binomial:size=4", "'4'"),
        ("motion:length=0", "'0'"),
        ("motion:angle=north", "'north'"),
        ("sobel-x:size=5", "'size=5'"),
        ("sobel:rate=2", "'rate=2'"),
    ],
)
def test_bad_parameters(lib, spec, quoted):
    with pytest.raises(UsageError) as info:
        lib.resolve(spec)
    msg = str(info.value)
    assert quoted in msg, msg
    assert "\n" not in msg


def test_unknown_parameter_lists_valid_keys(lib):
    with pytest.raises(UsageError, match=r"valid: sigma, size, truncate"):
        lib.resolve("gaussian:radius=3")


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


# ------------------------------------------------------------------ files


def test_kernel_from_matrix_scale_and_offset():
    k = kernel_from_matrix("1 2 1; 2 4 2; 1 2 1")
    assert k.total == pytest.approx(1.0)
    assert np.array_equal(kernel_from_matrix([[1, 1]], scale=1).weights, [[1, 1]])
    edge = kernel_from_matrix("-1 0 1")
    assert np.array_equal(edge.weights, [[-1, 0, 1]])  # zero-sum: not divided
    neg = kernel_from_matrix("-1 -1")
    assert np.array_equal(neg.weights, [[-0.5, -0.5]])  # |sum|: sign kept
    assert kernel_from_matrix("1", offset=0.5).offset == 0.5
    with pytest.raises(UsageError, match="'128'"):
        kernel_from_matrix("1", offset=128)
    with pytest.raises(UsageError, match="'0'"):
        kernel_from_matrix("1", scale=0)
    with pytest.raises(UsageError):
        kernel_from_matrix([[1, 2], [3]])
    with pytest.raises(UsageError):
        kernel_from_matrix(np.ones((2, 2, 2)))


def test_kernel_weights_are_read_only(lib):
    k = lib.resolve("box")
    with pytest.raises(ValueError):
        k.weights[0, 0] = 5
    assert lib.resolve("box").weights[0, 0] == pytest.approx(1 / 9)


def test_load_kernel_file_formats(tmp_path):
    txt = tmp_path / "k.txt"
    txt.write_text("1 2 1\n2 4 2\n1 2 1\n")
    assert load_kernel_file(txt).total == pytest.approx(1.0)
    csv = tmp_path / "k.csv"
    csv.write_text("-1,0,1\n-2,0,2\n-1,0,1\n")
    assert np.array_equal(load_kernel_file(csv).weights, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    npy = tmp_path / "k.npy"
    np.save(npy, np.array([[0, 1], [1, 0]], dtype=np.int16))
    assert np.array_equal(load_kernel_file(npy, scale=1).weights, [[0, 1], [1, 0]])
    one = tmp_path / "one.toml"
    one.write_text("rows = [[1, 1], [1, 1]]\nscale = 4\ndisplay = 'clip'\n")
    k = load_kernel_file(one)
    assert k.name == "one" and np.allclose(k.weights, 0.25)
    many = tmp_path / "many.toml"
    many.write_text(
        "[kernels.first]\ngenerator = 'gaussian'\nparams = { sigma = 0.5 }\n"
        "[kernels.second]\nrows = [[1]]\n"
    )
    assert load_kernel_file(many).name == "first"
    assert load_kernel_file(many).total == pytest.approx(1.0)


def test_load_kernel_file_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_kernel_file(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3\n")
    with pytest.raises(UsageError, match="bad.txt"):
        load_kernel_file(bad)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="obj.npy"):
        load_kernel_file(pickled)
    three = tmp_path / "three.npy"
    np.save(three, np.ones((2, 2, 2)))
    with pytest.raises(UsageError, match="2-D"):
        load_kernel_file(three)
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n")
    with pytest.raises(UsageError, match="no kernel"):
        load_kernel_file(empty)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[kernels.k]\nrows = [[1, 2], [3]]\n", "ragged"),
        ("[kernels.k]\nrows = [[1, 'a']]\n", "'a'"),
        ("[kernels.k]\nrows = []\n", "non-empty"),
        ("[kernels.k]\nrows = [[]]\n", "non-empty"),
        ("[kernels.k]\ngenerator = 'wavelet'\n", "'wavelet'"),
        ("[kernels.k]\ngenerator = 'gaussian'\nparams = { sigma = -2 }\n", "'-2'"),
        ("[kernels.k]\ngenerator = 'gaussian'\nparams = { sgma = 2 }\n", "'sgma'"),
        ("[kernels.k]\nrows = [[1]]\nscale = 0\n", "'0'"),
        ("[kernels.k]\nrows = [[1]]\noffset = 128\n", "'128'"),
        ("[kernels.k]\nrows = [[1]]\ndisplay = 'fancy'\n", "'fancy'"),
        ("[kernels.k]\nrows = [[1]]\nscal = 2\n", "'scal'"),
        ("[kernels.k]\ndescription = 'nothing'\n", "exactly one of"),
        ("[kernels.k]\ncombine = 'magnitude'\ncomponents = ['sobel-x', 'nope']\n", "'nope'"),
        ("[kernels.k]\nalias = 'nosuch'\n", "'nosuch'"),
        ("[kernels.k\nrows = [[1]]\n", "not valid TOML"),
    ],
)
def test_bad_library_files(tmp_path, toml, needle):
    path = tmp_path / "mine.toml"
    path.write_text(toml)
    with pytest.raises(UsageError) as info:
        load_library([path], include_user=False)
    msg = str(info.value)
    assert needle in msg and "mine.toml" in msg, msg


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
