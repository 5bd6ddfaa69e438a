"""Every compute path of imgkernel.core.correlate against direct and a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imgkernel.core import correlate as C
from imgkernel.core.conv import filter2d
from imgkernel.errors import UsageError


def reference(xp: np.ndarray, k: np.ndarray, stride, dilation) -> np.ndarray:
    """float64 valid cross-correlation straight from the definition (tap loop)."""
    x = xp.astype(np.float64)
    kh, kw = k.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += (
                k[i, j]
                * x[
                    :,
                    i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                    j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                ]
            )
    return out


def check(method: str, xp: np.ndarray, k: np.ndarray, stride, dilation) -> None:
    ref = reference(xp, k, stride, dilation)
    got = C.correlate_planes(xp, k, stride, dilation, method)
    direct = C.correlate_direct(xp, k, stride, dilation)
    assert got.dtype == np.float32 and got.shape == ref.shape == direct.shape
    scale = float(np.abs(xp).max() * np.abs(k).sum()) or 1.0
    tol = 2e-6 * scale * max(4.0, np.sqrt(k.size))
    assert np.abs(got - ref).max() <= tol, (method, k.shape, stride, dilation)
    assert np.abs(got - direct).max() <= 2 * tol


def planes(rng, p: int, h: int, w: int) -> np.ndarray:
    return (rng.random((p, h, w), dtype=np.float32) * 255).astype(np.float32)


GEOMETRY = [((1, 1), (1, 1)), ((2, 3), (1, 1)), ((1, 1), (3, 2)), ((3, 2), (2, 3))]
SHAPES = [(1, 37, 53), (3, 20, 130), (2, 1, 70), (4, 70, 1), (1, 131, 67)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 15, 16, 31])
def test_box(size):
    rng = np.random.default_rng(size)
    for kh, kw in [(size, size), (size, max(1, size // 3)), (1, size)]:
        k = np.full((kh, kw), 1.0 / (kh * kw))
        for stride, dilation in GEOMETRY:
            for shape in SHAPES:
                xp = planes(rng, *shape)
                if (kh - 1) * dilation[0] + 1 > shape[1] or (kw - 1) * dilation[1] + 1 > shape[2]:
                    continue
                check("box", xp, k, stride, dilation)


@pytest.mark.parametrize("kh", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_separable(kh):
    rng = np.random.default_rng(100 + kh)
    for kw in (1, kh, 9 - kh + 1, 9):
        k = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
        for stride, dilation in GEOMETRY:
            for shape in SHAPES:
                xp = planes(rng, *shape)
                if (kh - 1) * dilation[0] + 1 > shape[1] or (kw - 1) * dilation[1] + 1 > shape[2]:
                    continue
                check("separable", xp, k, stride, dilation)


@pytest.mark.parametrize("n", [17, 33, 81])
def test_separable_long_gemm(n):
    """Kernels long enough for the Toeplitz sgemm path, plane widths off any block."""
    rng = np.random.default_rng(n)
    g = np.exp(-0.5 * ((np.arange(n) - n // 2) / (n / 8)) ** 2)
    k = np.outer(g, rng.standard_normal(n // 2 + 1))
    for stride, dilation in [((1, 1), (1, 1)), ((2, 3), (1, 3)), ((1, 1), (2, 1))]:
        for shape in [(1, 200, 211), (3, 170, 300), (2, 300, 70)]:
            xp = planes(rng, *shape)
            if (k.shape[0] - 1) * dilation[0] + 1 > shape[1]:
                continue
            if (k.shape[1] - 1) * dilation[1] + 1 > shape[2]:
                continue
            check("separable", xp, k, stride, dilation)


@pytest.mark.parametrize("size", [11, 12, 15, 20, 25])
def test_fft(size):
    rng = np.random.default_rng(200 + size)
    for kh, kw in [(size, size), (size, 11)]:
        k = rng.standard_normal((kh, kw))
        for stride, dilation in GEOMETRY:
            for shape in [(1, 80, 90), (3, 60, 300), (2, 300, 75), (1, 75, 120)]:
                xp = planes(rng, *shape)
                if (kh - 1) * dilation[0] + 1 > shape[1] or (kw - 1) * dilation[1] + 1 > shape[2]:
                    continue
                check("fft", xp, k, stride, dilation)


@pytest.mark.parametrize("method", ["direct", "gemm"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_direct(size, method):
    rng = np.random.default_rng(300 + size)
    k = rng.standard_normal((size, size + 1))
    k[0, 0] = 0.0  # a skipped tap
    k[-1, -1] = 1.0  # a tap without multiply
    if size > 2:
        k[:, 1] = 0.0  # a skipped column (gemm)
    for stride, dilation in GEOMETRY:
        for shape in SHAPES:
            xp = planes(rng, *shape)
            if (size - 1) * dilation[0] + 1 > shape[1] or size * dilation[1] + 1 > shape[2]:
                continue
            check(method, xp, k, stride, dilation)


def test_gemm_zero_kernel_and_row_blocks():
    """All-zero kernels, and heights that leave a partial block of GEMM rows."""
    rng = np.random.default_rng(5)
    for h in (3, 4, 5, 6, 7, 9, 31):
        xp = planes(rng, 2, h, 50)
        check("gemm", xp, rng.standard_normal((3, 3)), (1, 1), (1, 1))
        check("gemm", xp, rng.standard_normal((2, 4)), (2, 1), (1, 2))
    got = C.correlate_planes(planes(rng, 1, 9, 9), np.zeros((3, 3)), method="gemm")
    assert got.shape == (1, 7, 7) and not got.any()


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(["direct", "gemm", "separable", "box", "fft"]),
    p=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_random_geometry(method, p, h, w, kh, kw, sh, sw, dh, dw, seed):
    if (kh - 1) * dh + 1 > h or (kw - 1) * dw + 1 > w:
        return
    rng = np.random.default_rng(seed)
    if method == "box":
        k = np.full((kh, kw), rng.uniform(-2, 2) or 1.0)
    elif method == "separable":
        k = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
    else:
        k = rng.standard_normal((kh, kw))
    check(method, planes(rng, p, h, w), k, (sh, sw), (dh, dw))


def gaussian(n: int) -> np.ndarray:
    g = np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (n / 6)) ** 2)
    return np.outer(g, g) / g.sum() ** 2


@pytest.mark.parametrize(
    ("kernel", "stride", "expected"),
    [
        (np.ones((31, 31)) / 961, (1, 1), "box"),
        (np.ones((3, 3)), (2, 2), "box"),
        (gaussian(17), (1, 1), "separable"),
        (gaussian(5), (2, 2), "separable"),
        (np.outer([1, 2, 1], [1, 0, -1]), (1, 1), "direct"),
        (np.eye(3), (1, 1), "direct"),
        (np.eye(15) + np.fliplr(np.eye(15)), (1, 1), "direct"),  # sparse: 29 taps
        (np.random.default_rng(0).standard_normal((9, 9)), (1, 1), "direct"),
        (np.random.default_rng(0).standard_normal((13, 13)), (1, 1), "fft"),
        (np.random.default_rng(0).standard_normal((15, 15)), (1, 1), "fft"),
        (np.random.default_rng(0).standard_normal((15, 15)), (2, 2), "direct"),
        (np.random.default_rng(0).standard_normal((5, 5)), (1, 1), "direct"),
        (np.array([[2.0]]), (1, 1), "direct"),
        (np.random.default_rng(0).standard_normal((1, 15)), (1, 1), "separable"),
    ],
)
def test_choose_method(kernel, stride, expected):
    assert C.choose_method(kernel, stride, (1, 1), (500, 500)) == expected


def test_choose_method_small_plane_avoids_fft():
    k = np.random.default_rng(1).standard_normal((15, 15))
    assert C.choose_method(k, (1, 1), (1, 1), (15, 400)) in ("direct", "fft")
    assert C.choose_method(k, (1, 1), (1, 1), (1000, 1000)) == "fft"


def test_paths_reject_unsuitable_kernels():
    xp = np.zeros((1, 10, 10), np.float32)
    with pytest.raises(UsageError):
        C.correlate_planes(xp, np.eye(3), method="separable")
    with pytest.raises(UsageError):
        C.correlate_planes(xp, np.eye(3), method="box")
    with pytest.raises(UsageError):
        C.correlate_planes(xp, np.eye(3), method="nope")


def test_methods_listed():
    assert set(C.METHODS) == {"auto", *C.PATHS}


@pytest.mark.parametrize("method", ["direct", "gemm", "separable", "box", "fft", "auto"])
def test_filter2d_channels_last_agrees(method):
    """filter2d's interleaved-channel plane (dilation dw*C) through every path."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    kernels = {
        "direct": rng.standard_normal((3, 4)),
        "gemm": rng.standard_normal((5, 5)),
        "separable": np.outer(rng.standard_normal(9), rng.standard_normal(7)),
        "box": np.full((7, 5), 1 / 35),
        "fft": rng.standard_normal((13, 13)),
    }
    k = kernels.get(method, kernels["fft"])
    for dilation in (1, 2):
        want = filter2d(img, k, dilation=dilation, method="direct")
        got = filter2d(img, k, dilation=dilation, method=method)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4 * 255 * np.abs(k).sum()


def test_rank1_factors():
    col, row = C.rank1_factors(np.outer([1.0, 2.0, 3.0], [4.0, -1.0]))
    assert np.allclose(np.outer(col, row), [[4, -1], [8, -2], [12, -3]])
    assert C.rank1_factors(np.eye(2)) is None


def test_concurrent_separable_calls_restore_blas_threads() -> None:
    """The BLAS thread limit is process-wide: overlapping calls must not leak it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading

    def blas_threads() -> list[int]:
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    before = blas_threads()
    rng = np.random.default_rng(0)
    plane = rng.random((1, 300, 320)).astype(np.float32)
    kernel = np.outer(np.hanning(15), np.hanning(15))
    expected = C.correlate_planes(plane, kernel, method="separable")
    results = []

    def work() -> None:
        for _ in range(4):
            results.append(C.correlate_planes(plane, kernel, method="separable"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blas_threads() == before
    for got in results:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


#: uint8 images (H, W) or (H, W, C), up to 30x30.
IMAGES8 = st.builds(
    lambda h, w, c, seed: np.random.default_rng(seed).integers(
        0, 256, (h, w) if c == 0 else (h, w, c), dtype=np.uint8
    ),
    st.integers(1, 30),
    st.integers(1, 30),
    st.sampled_from([0, 1, 3, 4]),
    st.integers(0, 2**16),
)


def assert_int16_equals_float32(image: np.ndarray, kernel: np.ndarray, **options) -> None:
    """The 8-bit image through its int16 sums equals its float32 copy through the float32 loop."""
    got = filter2d(image, kernel, method="direct", **options)
    want = filter2d(image.astype(np.float32), kernel, method="direct", **options)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(
    image=IMAGES8,
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    scale=st.sampled_from([1, 2, 8, 256]),
    border=st.sampled_from(["reflect", "symmetric", "edge", "wrap", "zero", "constant"]),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    zeros=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**16),
)
def test_int16_tap_loop_equals_the_float32_one(
    image, size, scale, border, stride, dilation, zeros, seed
):
    # uint8 images with weights that are integers over a power of two go through
    # int16 sums; the float32 loop on the same values must agree bit for bit.
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-6, 7, size).astype(np.float64) / scale
    kernel[rng.random(size) < zeros] = 0.0  # sparse kernels take the int16 loop
    assert_int16_equals_float32(
        image, kernel, border=border, cval=17.0, stride=stride, dilation=dilation
    )


def test_int16_tap_loop_is_taken_only_when_exact():
    from imgkernel.core.padding import PaddedPlanes, parse_border

    zeros8 = np.zeros((5, 5), np.uint8)
    plane = PaddedPlanes(zeros8, (1, 1, 1, 1), parse_border("reflect"), channels_last=True)
    assert plane.int16_scale(np.array([[1.0, -2.0], [0.5, 0.25]])) == 4
    assert plane.int16_scale(np.array([[0.3]])) == 0  # not a binary fraction
    assert plane.int16_scale(np.full((13, 13), 1.0)) == 0  # 169 * 255 > 32767
    floats = PaddedPlanes(
        zeros8.astype(np.float32), (1, 1, 1, 1), parse_border("reflect"), channels_last=True
    )
    assert floats.int16_scale(np.ones((3, 3))) == 0
    big = PaddedPlanes(zeros8, (1, 1, 1, 1), parse_border("constant", 5000.0), channels_last=True)
    assert big.int16_scale(np.ones((3, 3))) == 0  # 9 * 5000 > 32767


@settings(max_examples=60, deadline=None)
@given(
    image=IMAGES8,
    col=st.lists(st.integers(-4, 4), min_size=1, max_size=5),
    row=st.lists(st.integers(-4, 4), min_size=1, max_size=5),
    scale=st.sampled_from([1, 4, 16]),
    border=st.sampled_from(["reflect", "edge", "wrap", "constant"]),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
)
def test_factored_int16_taps_equal_the_float32_loop(
    image, col, row, scale, border, stride, dilation
):
    # Rank-1 integer kernels on 8-bit data (sobel, prewitt, small boxes) go down
    # the column, then across the row, in int16: exact, so the float32 tap loop
    # on the same values must agree bit for bit, strides and dilations included.
    kernel = np.outer(col, row).astype(np.float64) / scale
    assert_int16_equals_float32(
        image, kernel, border=border, cval=9.0, stride=stride, dilation=dilation
    )


def test_factored_int16_taps_against_a_naive_loop(monkeypatch):
    from imgkernel.core import direct

    calls = []
    original = direct._factored_taps
    monkeypatch.setattr(direct, "_factored_taps", lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    sobel_y = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    got = filter2d(image, sobel_y, padding=0)
    assert calls  # 6 passes (down, then across) against the tap loop's 8
    want = np.zeros((21, 29, 3))
    for y in range(21):
        for x in range(29):
            want[y, x] = np.einsum("ij,ijc->c", sobel_y, image[y : y + 3, x : x + 3].astype(float))
    np.testing.assert_array_equal(got, want)


def test_integer_factors():
    from imgkernel.core.direct import integer_factors

    col, row = integer_factors(np.array([[2.0, 4.0, -6.0], [3.0, 6.0, -9.0]]))
    assert col.ravel().tolist() == [2, 3] and row.ravel().tolist() == [1, 2, -3]
    assert integer_factors(np.array([[0.0, 3.0], [0.0, 5.0]])) is not None
    assert integer_factors(np.array([[2.0, 3.0], [3.0, 4.0]])) is None  # rank 2
    assert integer_factors(np.array([[2.0, 4.0], [3.0, 6.0], [1.0, 2.0]])) is not None
    assert integer_factors(np.array([[4.0, 6.0], [2.0, 3.0]])) is not None
    assert integer_factors(np.zeros((3, 3))) is None


@settings(max_examples=80, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 70)),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    zeros=st.floats(0.0, 0.7),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 4)),
    non_finite=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    seed=st.integers(0, 2**16),
)
def test_dense_einsum_equals_the_tap_loop(shape, size, zeros, stride, dilation, non_finite, seed):
    # Dense kernels take one einsum per tile; its values must be the tap
    # loop's bit for bit (up to the sign of a zero), NaN and inf included,
    # so that tiles of a big image and the whole image agree.
    from imgkernel.core import direct

    rng = np.random.default_rng(seed)
    xp = (rng.standard_normal(shape) * 100).astype(np.float32)
    kh, kw = size
    assume(shape[1] > (kh - 1) * dilation[0] and shape[2] > (kw - 1) * dilation[1])
    if non_finite is not None:
        xp.reshape(-1)[rng.integers(0, xp.size, 1 + xp.size // 50)] = non_finite
    kernel = rng.standard_normal(size)
    kernel[rng.random(size) < zeros] = 0.0
    with np.errstate(invalid="ignore"):  # inf - inf in the tap loop
        got = direct.correlate_direct(xp, kernel, stride, dilation)
    with pytest.MonkeyPatch.context() as patch, np.errstate(invalid="ignore"):
        patch.setattr(direct, "DENSE_SHARE", 2.0)  # the tap loop for every kernel
        want = direct.correlate_direct(xp, kernel, stride, dilation)
    np.testing.assert_array_equal(got, want)


def test_dense_einsum_is_taken_for_dense_kernels(monkeypatch):
    from imgkernel.core import direct

    calls = []
    original = direct._einsum_tile
    monkeypatch.setattr(direct, "_einsum_tile", lambda *a: calls.append(1) or original(*a))
    xp = np.ones((1, 12, 40), np.float32)
    direct.correlate_direct(xp, np.ones((3, 3)) / 9)
    assert calls
    calls.clear()
    direct.correlate_direct(xp, np.eye(3))  # 3 of 9 taps: the loop
    direct.correlate_direct(xp[:, :3, :3], np.ones((3, 3)))  # one output: the loop
    assert not calls


def test_float64_beyond_float32_takes_the_direct_path():
    # 1e39 is finite in float64 and inf in float32: the FFT would smear it.
    x = np.ones((120, 120))
    x[40, 40] = 1e39
    kernel = np.random.default_rng(0).standard_normal((15, 15))
    with np.errstate(all="ignore"):
        auto = filter2d(x, kernel)
        direct = filter2d(x, kernel, method="direct")
    assert np.count_nonzero(~np.isfinite(auto)) == np.count_nonzero(~np.isfinite(direct)) == 225


def test_no_einsum_where_it_would_fuse_multiply_and_add(monkeypatch):
    # A numpy whose einsum uses FMA would round otherwise than the tap loop:
    # then no kernel is dense, and every tile takes the loop.
    from imgkernel.core import direct

    assert direct.is_dense(np.ones((3, 3)))
    monkeypatch.setattr(direct, "_einsum_rounds_as_the_loop", lambda: False)
    assert not direct.is_dense(np.ones((3, 3)))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 40), st.sampled_from([0, 1, 3, 4])),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    border=st.sampled_from(["reflect", "symmetric", "edge", "wrap", "zero", "constant"]),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 3)),
    non_finite=st.sampled_from([None, np.nan, np.inf]),
    seed=st.integers(0, 2**16),
)
def test_float_images_einsum_equals_the_tap_loop(
    shape, size, border, stride, dilation, non_finite, seed
):
    # Through filter2d: padded bands, channels-last rows (a tap's step is C
    # values), planar channels at column strides, NaN and inf in the image.
    from imgkernel.core import direct

    rng = np.random.default_rng(seed)
    h, w, c = shape
    image = (rng.standard_normal((h, w) if c == 0 else (h, w, c)) * 50).astype(np.float32)
    if non_finite is not None:
        image.reshape(-1)[rng.integers(0, image.size, 2)] = non_finite
    kernel = rng.standard_normal(size)
    kernel[rng.random(size) < 0.2] = 0.0
    options = dict(border=border, cval=2.5, stride=stride, dilation=dilation, method="direct")
    with np.errstate(all="ignore"):
        got = filter2d(image, kernel, **options)
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(direct, "DENSE_SHARE", 2.0)
        want = filter2d(image, kernel, **options)
    np.testing.assert_array_equal(got, want)
