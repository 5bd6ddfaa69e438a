"""imgkernel.images.pool: pooling image files (alpha, pixel types, global statistics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgkernel.core import pool2d
from imgkernel.errors import UsageError
from imgkernel.images import Image, OutputOptions, pool_files, pool_image
from imgkernel.images.pool import channel_names


def gray16() -> Image:
    return Image(np.arange(16, dtype=np.uint16).reshape(4, 4) * 1001, None, "PNG", "g.png")


def test_average_rounds_back_to_the_input_type():
    pixels, alpha = pool_image(gray16(), "PNG", size=(2, 2), mode="avg")
    assert pixels.dtype == np.uint16 and alpha is None
    # half up: 2502.5 -> 2503 (numpy's rint would give 2502)
    expected = np.floor(pool2d(gray16().pixels.astype(np.float64), 2, mode="avg") + 0.5)
    np.testing.assert_array_equal(pixels, expected)
    floats, _ = pool_image(gray16(), "NPY", size=(2, 2), mode="avg")
    assert floats.dtype.kind == "f"
    # the unit rule: float output on full scale 1.0
    np.testing.assert_allclose(floats * 65535, expected - 0.5, rtol=1e-6)


def test_alpha_is_pooled_like_a_channel():
    pixels = np.zeros((4, 4), np.uint8)
    alpha = np.zeros((4, 4), np.uint8)
    alpha[0, 0] = 255
    image = Image(pixels, alpha, "PNG", "a.png")
    out, out_alpha = pool_image(image, "PNG", size=(2, 2))
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out_alpha, [[255, 0], [0, 0]])


def test_global_statistics_as_text_and_json():
    rgb = Image(np.full((2, 2, 3), (10, 20, 30), np.uint8), None, "PNG", "c.png")
    line = pool_image(rgb, "TXT", global_=True, mode="max")
    assert line == "red=10\tgreen=20\tblue=30"
    data = json.loads(pool_image(rgb, "json", global_=True, mode="avg"))
    assert data == {"source": "c.png", "mode": "avg", "red": 10.0, "green": 20.0, "blue": 30.0}
    with pytest.raises(UsageError, match="needs --global"):
        pool_image(rgb, "JSON", size=(2, 2))


def test_channel_names():
    assert channel_names(1, False) == ["gray"]
    assert channel_names(2, True) == ["gray", "alpha"]
    assert channel_names(5, False) == ["c0", "c1", "c2", "c3", "c4"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give --size"),
        ({"global_": True, "size": (2, 2)}, "--global pools the whole image"),
        ({"global_": True, "stride": (2, 2)}, "--global pools the whole image"),
    ],
)
def test_window_or_global(kwargs, message):
    with pytest.raises(UsageError, match=message):
        pool_files(["never-read.png"], OutputOptions(), **kwargs)
    with pytest.raises(UsageError, match=message):
        pool_image(gray16(), "PNG", **kwargs)


def test_mean_is_avg(tmp_path):
    np.save(tmp_path / "m.npy", np.arange(16, dtype=np.float32).reshape(4, 4))
    out = tmp_path / "p.npy"
    pool_files([str(tmp_path / "m.npy")], OutputOptions(output=str(out)), size=(2, 2), mode="mean")
    np.testing.assert_array_equal(np.load(out), [[2.5, 4.5], [10.5, 12.5]])
