"""The kernel record (imgkernel.kernels.record): read-only weights and checked fields."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.images import DISPLAY_MODES
from imgkernel.kernels import Kernel
from imgkernel.kernels.record import KERNEL_DISPLAY_MODES


def test_kernel_weights_are_read_only(lib):
    k = lib.resolve("box")
    with pytest.raises(ValueError):
        k.weights[0, 0] = 5
    assert lib.resolve("box").weights[0, 0] == pytest.approx(1 / 9)


def test_display_defaults_are_the_shared_modes_but_normalize():
    # One list of display modes (imgkernel.images); a record may not default to
    # "normalize", which needs a whole image's range.
    assert KERNEL_DISPLAY_MODES == tuple(m for m in DISPLAY_MODES if m != "normalize")
    assert set(KERNEL_DISPLAY_MODES) == {"clip", "abs", "offset"}
    for mode in KERNEL_DISPLAY_MODES:
        assert Kernel("k", np.ones((1, 1)), display=mode).display == mode
    with pytest.raises(UsageError, match="got 'normalize'"):
        Kernel("k", np.ones((1, 1)), display="normalize")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"weights": "abc"}, "not numeric"),
        ({"weights": []}, "2-D"),
        ({"weights": [[np.inf]]}, "NaN or infinity"),
        ({"combine": "magnitude"}, "3-D"),
        ({"combine": "sum"}, "got 'sum'"),
        ({"display": "fancy"}, "got 'fancy'"),
        ({"offset": "x"}, "got 'x'"),
        ({"offset": float("nan")}, "got nan"),
        ({"dilation": 3}, "pair of integers, got 3"),
        ({"dilation": (0, 1)}, "at least 1, got 0"),
        ({"dilation": (1.5, 2)}, "got 1.5"),
    ],
)
def test_record_fields_are_checked(fields, needle):
    values = {"weights": np.ones((2, 2)), **fields}
    with pytest.raises(UsageError) as info:
        Kernel("k", **values)
    message = str(info.value)
    assert message.startswith("kernel 'k': ") and needle in message, message


def test_record_fields_are_normalized():
    k = Kernel("k", [[1, 2]], offset="0.25", dilation=(np.int64(2), 3.0))
    assert k.weights.dtype == np.float64 and k.offset == 0.25 and k.dilation == (2, 3)
    assert type(k.dilation[0]) is int and type(k.dilation[1]) is int
