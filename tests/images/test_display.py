"""imgkernel.images.display: the display mapping and the Display policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imgkernel.errors import UsageError
from imgkernel.images import DISPLAY_MODES, Display, Image, Offset, max_value_for, to_display
from imgkernel.images import display as display_module

V = np.array([-300.0, -128.0, -1.0, 0.0, 0.5, 1.5, 100.4, 127.0, 254.6, 300.0], np.float32)


def test_display_clip():
    out = to_display(V, mode="clip", dtype=np.uint8, max_value=255)
    # half up, as Pillow rounds: 0.5 -> 1, 1.5 -> 2 (numpy's rint would give 0 and 2)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 1, 2, 100, 127, 255, 255])
    assert out.dtype == np.uint8


def test_display_abs():
    out = to_display(V, mode="abs", dtype=np.uint8, max_value=255)
    np.testing.assert_array_equal(out, [255, 128, 1, 0, 1, 2, 100, 127, 255, 255])


def test_display_offset():
    out = to_display(V, mode="offset", dtype=np.uint8, max_value=255)
    # v + 128, clipped to 0..255, half up: 128.5 -> 129
    np.testing.assert_array_equal(out, [0, 0, 127, 128, 129, 130, 228, 255, 255, 255])
    out16 = to_display(
        np.array([-32768.0, 0.0, 32767.0]), mode="offset", dtype=np.uint16, max_value=65535
    )
    np.testing.assert_array_equal(out16, [0, 32768, 65535])
    outf = to_display(np.array([-0.5, 0.0, 0.25]), mode="offset", dtype=np.float32, max_value=1.0)
    np.testing.assert_allclose(outf, [0.0, 0.5, 0.75])


def test_display_normalize():
    v = np.array([[2.0, 4.0], [6.0, 12.0]])
    out = to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    # (v - 2) / 10 * 255 -> 0, 51, 102, 255
    np.testing.assert_array_equal(out, [[0, 51], [102, 255]])
    const = to_display(np.full((3, 3), 7.0), mode="normalize", dtype=np.uint8, max_value=255)
    np.testing.assert_array_equal(const, np.zeros((3, 3)))
    inverted = to_display(v, mode="normalize", dtype=np.uint8, max_value=255, scale=-1.0)
    np.testing.assert_array_equal(inverted, [[255, 204], [153, 0]])


def test_display_scale_and_offset():
    v = np.array([-10.0, 0.0, 10.0])
    # v*2 + 0.5*255 = -20+127.5, 127.5, 147.5 -> 107.5, 127.5, 147.5 -> half up
    out = to_display(v, mode="clip", dtype=np.uint8, max_value=255, scale=2.0, offset=0.5)
    np.testing.assert_array_equal(out, [108, 128, 148])
    out = to_display(v, mode="abs", dtype=np.uint8, max_value=255, offset=-0.1)
    # |v - 25.5| -> 35.5, 25.5, 15.5 -> 36, 26, 16
    np.testing.assert_array_equal(out, [36, 26, 16])


def test_display_changes_units():
    # float feature map (full scale 1.0) to 8 and 16 bits
    v = np.array([0.0, 0.5, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint8, max_value=1.0), [0, 128, 255, 255]
    )
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint16, max_value=1.0), [0, 32768, 65535, 65535]
    )
    # uint8 units to float output
    out = to_display(np.array([0.0, 51.0, 255.0]), mode="clip", dtype=np.float32, max_value=255)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.2, 1.0], rtol=1e-6)


def test_display_nan_inf():
    v = np.array([np.nan, np.inf, -np.inf, 10.0, 20.0], np.float32)
    np.testing.assert_array_equal(
        to_display(v, mode="clip", dtype=np.uint8, max_value=255), [0, 255, 0, 10, 20]
    )
    np.testing.assert_array_equal(
        to_display(v, mode="normalize", dtype=np.uint8, max_value=255), [0, 255, 0, 0, 255]
    )


def test_display_chunked_matches_whole(monkeypatch):
    v = np.random.default_rng(1234).standard_normal((37, 11, 3)).astype(np.float32) * 200
    expected = to_display(v, mode="normalize", dtype=np.uint8, max_value=255)
    real_chunks = display_module._row_chunks
    monkeypatch.setattr(
        display_module, "_row_chunks", lambda h, row_size: real_chunks(h, row_size, 50)
    )
    np.testing.assert_array_equal(
        to_display(v, mode="normalize", dtype=np.uint8, max_value=255), expected
    )


def test_display_validation():
    with pytest.raises(UsageError, match="display mode"):
        to_display(V, mode="sqrt", dtype=np.uint8, max_value=255)
    with pytest.raises(UsageError, match="dtype"):
        to_display(V, mode="clip", dtype=np.int16, max_value=255)
    with pytest.raises(UsageError, match="max value"):
        to_display(V, mode="clip", dtype=np.uint8, max_value=0)


@settings(max_examples=150, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(-1e6, 1e6, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
    ),
    mode=st.sampled_from(DISPLAY_MODES),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    max_value=st.sampled_from([1.0, 255.0, 65535.0]),
    scale=st.floats(-100, 100),
    offset=st.floats(-2, 2),
)
def test_display_property_in_range(values, mode, dtype, max_value, scale, offset):
    out = to_display(
        values, mode=mode, dtype=dtype, max_value=max_value, scale=scale, offset=offset
    )
    assert out.dtype == np.dtype(dtype)
    assert out.shape == values.shape
    top = max_value_for(dtype)
    assert np.all(out >= 0) and np.all(out <= top)
    assert not np.isnan(out).any()


def reference_display(values, mode, dtype, max_value, scale, offset):
    """The documented arithmetic step by step: scale and offset, the mode, clip, then round."""
    top = float(max_value_for(dtype))
    v = np.array(values, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        if scale != 1.0:
            v *= np.float32(scale)
        add = offset * max_value
        if mode == "offset":
            whole_units = float(max_value).is_integer() and max_value >= 2
            add += (max_value + 1) / 2 if whole_units else max_value / 2
        if add != 0.0:
            v += np.float32(add)
        if mode == "abs":
            v = np.abs(v)
        if mode == "normalize":
            finite = v[np.isfinite(v)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            v = (v - np.float32(lo)) * np.float32(top / (hi - lo)) if hi > lo else v * 0
        elif top != max_value:
            v *= np.float32(top / max_value)
        v = np.where(np.isnan(v), np.float32(0), v)
        v = np.minimum(np.maximum(v, np.float32(0)), np.float32(top)) + np.float32(
            0
        )  # +0.0, not -0.0
        if np.dtype(dtype).kind == "u":
            v = np.floor(v + np.float32(0.5))
    return v.astype(dtype)


@settings(max_examples=300, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(-1e6, 1e6, width=32)
        | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 0.5, 254.5, 255.5, -0.5]),
    ),
    kind=st.sampled_from(["float32", "float64", "int16"]),
    mode=st.sampled_from(DISPLAY_MODES),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    max_value=st.sampled_from([1.0, 255.0, 65535.0]),
    scale=st.sampled_from([1.0, -1.0, 0.5]) | st.floats(-100, 100),
    offset=st.sampled_from([0.0]) | st.floats(-2, 2),
)
def test_display_matches_the_arithmetic_step_by_step(
    values, kind, mode, dtype, max_value, scale, offset
):
    # Bit for bit, including the one-pass forms (the rounding offset before np.clip).
    if kind == "int16":
        values = np.nan_to_num(np.clip(values, -32768, 32767)).astype(np.int16)
    values = values.astype(kind)
    out = to_display(
        values, mode=mode, dtype=dtype, max_value=max_value, scale=scale, offset=offset
    )
    expected = reference_display(values, mode, dtype, max_value, scale, offset)
    np.testing.assert_array_equal(out, expected)
    # Bit for bit: no -0.0 where the step-by-step arithmetic gives +0.0.
    assert np.array_equal(np.signbit(out), np.signbit(expected))


def test_display_into_a_given_array():
    out = np.full(V.shape, 7, np.uint8)
    assert to_display(V, mode="clip", dtype=np.uint8, max_value=255, out=out) is out
    np.testing.assert_array_equal(out, to_display(V, mode="clip", dtype=np.uint8, max_value=255))
    with pytest.raises(ValueError, match="out is uint16"):
        to_display(V, mode="clip", dtype=np.uint8, max_value=255, out=out.astype(np.uint16))


# -------------------------------------------------------------------- Display


def image_of(dtype) -> Image:
    return Image(np.zeros((2, 2), dtype), None, "NPY" if dtype == np.float32 else "PNG", "x")


def test_display_asked_only_when_an_option_is_given():
    assert not Display().asked
    assert Display(mode="abs").asked and Display(scale=1.0).asked
    assert Display(offset=Offset(0.0)).asked


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        (Display(), "abs"),  # the kernel's own mapping, whatever the input's type
        (Display(scale=2.0), "abs"),
        (Display(mode="clip"), "clip"),
        (Display(mode="offset"), "offset"),
    ],
)
def test_display_mode_or_default(display, expected):
    assert display.mode_or("abs") == expected


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_display_pixels_npy_on_full_scale_one(dtype):
    # The unit rule: .npy output is float on full scale 1.0, whatever the input type.
    full = {np.uint8: 255.0, np.uint16: 65535.0, np.float32: 1.0}[dtype]
    values = np.array([[-0.04, 1.2]], np.float64) * full
    raw = Display().pixels(values, image_of(dtype), "npy", "abs")
    assert raw.dtype == np.float32
    np.testing.assert_allclose(raw, [[-0.04, 1.2]], rtol=1e-6)
    mapped = Display(mode="clip").pixels(values, image_of(dtype), "NPY", "abs")
    np.testing.assert_allclose(mapped, [[0.0, 1.0]])


def test_display_float_input_maps_like_8bit_input():
    # A float image is on full scale 1.0: the same picture as its 8-bit twin.
    eight = np.array([[-20.0, 0.0, 51.0, 127.5, 255.0, 300.0]])
    for mode in ("clip", "abs", "offset"):
        a = Display(mode=mode).pixels(eight, image_of(np.uint8), "PNG", "clip")
        b = Display(mode=mode).pixels(eight / 255.0, image_of(np.float32), "PNG", "clip")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, mode


def test_display_pixels_bit_depth_follows_input_and_format():
    values = np.array([[0.0, 40000.0]], np.float32)
    deep = image_of(np.uint16)
    assert Display().pixels(values, deep, "PNG", "clip").dtype == np.uint16
    assert Display().pixels(values, deep, "TIFF", "clip").dtype == np.uint16
    assert Display().pixels(values, deep, "JPEG", "clip").dtype == np.uint8
    assert Display().pixels(values, image_of(np.float32), "PNG", "clip").dtype == np.uint8


def test_display_offset_in_units_or_percent_agree():
    values = np.array([[0.0, 10.0]], np.float32)
    gray = image_of(np.uint8)
    in_units = Display(offset=Offset(51.0)).pixels(values, gray, "PNG", "clip")
    percent = Display(offset=Offset(0.2, fraction=True)).pixels(values, gray, "PNG", "clip")
    np.testing.assert_array_equal(in_units, percent)
    np.testing.assert_array_equal(in_units, [[51, 61]])


def test_display_modes_defined_once():
    # the CLI and the images package share one tuple (kernels import it from here too)
    from imgkernel.images import display

    assert DISPLAY_MODES is display.DISPLAY_MODES
    assert DISPLAY_MODES == ("clip", "abs", "offset", "normalize")
    assert display.POINTWISE_DISPLAY_MODES == ("clip", "abs", "offset")
