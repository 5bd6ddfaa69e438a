"""imgkernel.images.image: the Image record, full scales, alpha planes."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.images import Image, attach_alpha, max_value_for
from imgkernel.images.image import convert_plane


def test_image_max_value():
    assert Image(np.zeros((1, 1), np.uint8), None, "PNG", "x").max_value == 255
    assert Image(np.zeros((1, 1), np.uint16), None, "PNG", "x").max_value == 65535
    assert Image(np.zeros((1, 1), np.float32), None, "NPY", "x").max_value == 1.0


def test_image_channels_and_display_name():
    assert Image(np.zeros((2, 3), np.uint8), None, "PNG", "a.png").channels == 1
    rgb = Image(np.zeros((2, 3, 3), np.uint8), None, "PNG", "-")
    assert rgb.channels == 3 and rgb.display_name == "standard input"


def test_max_value_for_bool_and_bad_types():
    assert max_value_for(np.bool_) == 1.0
    with pytest.raises(UsageError, match="complex"):
        max_value_for(np.complex64)


def test_attach_alpha_converts_and_checks_the_plane():
    pixels = np.zeros((2, 2, 3), np.uint16)
    alpha = np.array([[0, 255], [128, 255]], np.uint8)
    out = attach_alpha(pixels, alpha)
    assert out.shape == (2, 2, 4) and out.dtype == np.uint16
    np.testing.assert_array_equal(out[:, :, 3], alpha.astype(np.uint16) * 257)
    assert attach_alpha(pixels, None) is pixels
    with pytest.raises(UsageError, match="alpha plane has shape"):
        attach_alpha(pixels, np.zeros((3, 3), np.uint8))


def test_convert_plane_between_scales():
    floats = convert_plane(np.array([0, 255], np.uint8), np.float32)
    np.testing.assert_allclose(floats, [0.0, 1.0])
    back = convert_plane(np.array([-0.5, 0.5, 2.0], np.float32), np.uint8)
    np.testing.assert_array_equal(back, [0, 128, 255])
