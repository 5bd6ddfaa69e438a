"""Kernel generators (imgkernel.kernels.generators): the Gaussian family, box, motion, dilated,
and the registry that holds them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from imgkernel.core.correlate import rank1_factors
from imgkernel.errors import UsageError
from imgkernel.kernels import Kernel, load_library
from imgkernel.kernels.checks import odd_taps, taps
from imgkernel.kernels.generators import (
    GENERATORS,
    Generator,
    Param,
    gaussian_1d,
    register_generator,
)


def _impulse_response(sigma: float, radius: int | None = None) -> np.ndarray:
    """scipy's 1-D Gaussian taps: gaussian_filter1d applied to a unit impulse."""
    r = radius if radius is not None else int(4.0 * sigma + 0.5)
    x = np.zeros(2 * r + 1 + 2 * r)  # room so the borders never touch the taps
    x[2 * r] = 1.0
    kwargs = {"radius": radius} if radius is not None else {}
    y = ndimage.gaussian_filter1d(x, sigma, mode="constant", **kwargs)
    return y[r : 3 * r + 1]


# ---------------------------------------------------------- gaussian


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


# ------------------------------------------------------- box, motion


def test_box_sizes(lib):
    for n in (1, 2, 3, 7):
        w = lib.resolve(f"box:size={n}").weights
        assert w.shape == (n, n)
        assert np.allclose(w, 1.0 / n**2)
    assert lib.resolve("mean:size=5") == lib.resolve("box:size=5")


def test_motion_blur(lib):
    w = lib.resolve("motion:length=5").weights
    assert np.allclose(w[2], 0.2) and w.sum() == pytest.approx(1.0)
    assert np.count_nonzero(w) == 5
    v = lib.resolve("motion:length=5,angle=90").weights
    assert np.allclose(v, w.T)
    d = lib.resolve("motion:length=7,angle=45").weights
    assert np.allclose(d, d[::-1, ::-1])  # centred
    assert d[0, -1] > 0 and d[-1, 0] > 0 and d[0, 0] == 0  # rising diagonal (y up)


# ---------------------------------------------------------- dilation


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


# -------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("gaussian:sigma=0", "'0'"),
        ("gaussian:sigma=-1", "'-1'"),
        ("gaussian:sigma=abc", "'abc'"),
        ("gaussian:sigma=nan", "'nan'"),
        ("gaussian:size=4", "'4'"),
        ("gaussian:size=0", "got 0"),
        ("gaussian:size=-3", "got -3"),
        ("gaussian:size=2.5", "'2.5'"),
        ("gaussian:size=1003", "got 1003"),
        ("gaussian:sigma=300", "'300'"),
        ("gaussian:sigmaa=2", "'sigmaa'"),
        ("gaussian:truncate=0", "'0'"),
        ("box:size=0", "got 0"),
        ("box:size=5000", "got 5000"),
        ("box:sigma=1", "'sigma'"),
        ("log:sigma=-1.4", "'-1.4'"),
        ("unsharp:amount=x", "'x'"),
        ("dilated:rate=0", "got 0"),
        ("dilated:rate=1.5", "'1.5'"),
        ("dilated:base=nosuch", "'nosuch'"),
        ("dilated:base=gaussian:sigma", "'gaussian:sigma'"),
        ("binomial:size=4", "'4'"),
        ("motion:length=0", "got 0"),
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


# ------------------------------------------------------------- registry


@pytest.fixture
def registry():
    """Generators a test registers are gone after it."""
    saved = dict(GENERATORS)
    yield GENERATORS
    GENERATORS.clear()
    GENERATORS.update(saved)


def _ring(p):
    """A square ring of ones, ``width`` taps thick, normalized to sum 1."""
    n, width = p["size"], p["width"]
    w = np.ones((n, n))
    w[width : n - width, width : n - width] = 0
    return w / w.sum()


def test_a_registered_generator_resolves_by_name(registry, tmp_path):
    # Name, parameters (check and default) and builder: nothing else to touch.
    params = (Param("size", odd_taps, 5), Param("width", taps, 1))
    register_generator(Generator("ring", params, _ring, "Square ring of ones"))
    lib = load_library(include_user=False)
    k = lib.resolve("ring:size=3")
    assert k.name == "ring:size=3" and k.display == "clip"
    np.testing.assert_array_equal(k.weights, [[1, 1, 1], [1, 0, 1], [1, 1, 1]] / np.float64(8))
    assert lib.resolve("ring").shape == (5, 5)  # the registry's default
    assert "ring" in lib.names() and lib.describe("ring") == "Square ring of ones"
    # Its parameters are checked like the built-ins' ...
    with pytest.raises(UsageError, match="size must be odd .*got '4'"):
        lib.resolve("ring:size=4")
    with pytest.raises(UsageError, match=r"unknown parameter 'radius' \(valid: size, width\)"):
        lib.resolve("ring:radius=2")
    # ... and a kernels file may use it with defaults of its own.
    path = tmp_path / "mine.toml"
    path.write_text("[kernels.thick-ring]\ngenerator = 'ring'\nparams = { size = 7, width = 2 }\n")
    thick = load_library([path], include_user=False).resolve("thick-ring:width=3")
    assert thick.name == "thick-ring:width=3" and thick.shape == (7, 7)
    assert thick.weights[3, 3] == 0 and thick.weights[2, 2] > 0


def test_registry_refuses_a_taken_or_bad_name(registry):
    with pytest.raises(ValueError, match="already registered"):
        register_generator(GENERATORS["box"])
    with pytest.raises(ValueError, match="normalized kernel name"):
        register_generator(Generator("My_Ring", (), _ring))


def test_every_built_in_generator_has_a_table_in_kernels_toml(lib):
    for name in GENERATORS:
        assert lib[name].kind == "generator" and lib[name].generator == name
        assert lib[name].source.endswith("kernels.toml")
