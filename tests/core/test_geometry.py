"""The one window-geometry check: exact arithmetic, refusals before work, tamed strides."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.core.conv import conv2d, conv_geometry, filter2d
from imgkernel.core.geometry import pool_geometry, window_geometry
from imgkernel.core.pool import pool2d
from imgkernel.core.windows import MAX_INDEX
from imgkernel.errors import UsageError


def test_a_stride_beyond_the_input_is_one_window() -> None:
    image = np.arange(35.0).reshape(5, 7)
    huge = filter2d(image, np.ones((3, 3)), stride=MAX_INDEX)
    assert np.array_equal(huge, filter2d(image, np.ones((3, 3)), stride=7))
    assert pool2d(image, 2, MAX_INDEX, mode="avg").shape == (1, 1)
    assert window_geometry((5, 7), 3, MAX_INDEX, padding="same").stride == (5, 7)


def test_dilation_of_a_single_tap_axis_is_harmless() -> None:
    image = np.arange(35.0).reshape(5, 7)
    row = np.array([[1.0, 0.0, -1.0]])
    assert np.array_equal(
        filter2d(image, row, dilation=(MAX_INDEX, 1)), filter2d(image, row, dilation=1)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(dilation=2**62, padding="same"),
        dict(padding=MAX_INDEX),
        dict(padding=(0, 0, 0, 10**11)),
        dict(dilation=10**11, padding="full"),
    ],
)
def test_unallocatable_padded_inputs_are_refused(kwargs: dict) -> None:
    with pytest.raises(UsageError, match="more than this machine's"):
        window_geometry((5, 5), 3, **kwargs)


@pytest.mark.parametrize("name", ["stride", "dilation"])
def test_values_beyond_numpy_indices_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=f"{name} must be at most"):
        window_geometry((5, 5), 3, **{name: MAX_INDEX + 1})
    with pytest.raises(UsageError, match="padding must be at most"):
        window_geometry((5, 5), 3, padding=MAX_INDEX + 1)


def test_pool_and_conv_share_the_check() -> None:
    with pytest.raises(UsageError, match="more than this machine's"):
        pool_geometry((5, 5), 2**61, padding="same")
    with pytest.raises(UsageError, match="more than this machine's"):
        conv2d(np.ones((1, 4, 4)), np.ones((1, 1, 3, 3)), padding=10**10)
    with pytest.raises(UsageError, match="pooling window .* padded input is only 5x5"):
        pool_geometry((5, 5), 6)


def test_a_kernel_far_larger_than_the_input() -> None:
    with pytest.raises(UsageError, match="1001x1001 kernel is far larger than the 24x32 input"):
        conv_geometry((24, 32), (1001, 1001))
    # Larger than the image but cheap, or large but on a large image: fine.
    assert conv_geometry((24, 32), (101, 101)).out_hw == (24, 32)
    assert conv_geometry((2000, 2000), (1001, 1001), padding="valid").out_hw == (1000, 1000)


def test_a_dilated_window_far_larger_than_the_input() -> None:
    """gaussian --dilation 3000 on 24x32 would pad to gigabytes for one real pixel a window."""
    with pytest.raises(UsageError, match="spans 24001x24001 pixels, far larger than the 24x32"):
        window_geometry((24, 32), 9, dilation=3000, padding="same", channels=3)
    with pytest.raises(UsageError, match="pooling window .* far larger than the 24x32"):
        pool_geometry((24, 32), 20000, padding="same")
    # Explicit padding of a small kernel, or a dilation within the image: as asked.
    assert window_geometry((24, 32), 3, padding=3000).out_hw == (6022, 6030)
    assert window_geometry((2000, 2000), 9, dilation=200, padding="same").out_hw == (2000, 2000)
