"""The hand-built demo model bundled as ``stripes`` (``models/stripes.npz`` is its file)."""

from __future__ import annotations

import numpy as np

from imgkernel.nn.layers import Conv2D, Dense, Flatten, GlobalMaxPool, Layer, ReLU, Softmax
from imgkernel.nn.model import Model
from imgkernel.nn.predict import classify  # noqa: F401 - used by the doctest
from imgkernel.nn.spec import InputSpec


def stripes_model() -> Model:
    """A hand-built demo: tells vertical from horizontal stripes (bundled as "stripes").

    Two Sobel filters (vertical edges, horizontal edges) -> relu -> global max
    pool -> flatten -> dense (difference of the two responses) -> softmax.
    Input: grey 32x32, pixel values scaled to 0-1. No padding, so the image
    border is not taken for an edge.

    >>> m = stripes_model()
    >>> vertical = np.tile(np.repeat([0, 255], 4), (32, 4)).astype(np.uint8)
    >>> classify(m, [vertical, vertical.T], top=1)  # doctest: +ELLIPSIS
    [[('vertical', 0.99...)], [('horizontal', 0.99...)]]
    """
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    weight = np.stack([sobel_x, sobel_x.T])[:, None]  # (2, 1, 3, 3)
    layers: list[Layer] = [
        Conv2D("edges", weight, np.zeros(2, np.float32), padding="valid"),
        ReLU("relu"),
        GlobalMaxPool("pool"),
        Flatten("flatten"),
        Dense("fc", np.array([[2.0, -2.0], [-2.0, 2.0]], np.float32), np.zeros(2, np.float32)),
        Softmax("softmax"),
    ]
    spec = InputSpec(channels=1, height=32, width=32, resize="stretch", scale=1 / 255)
    return Model(
        layers,
        ["vertical", "horizontal"],
        spec,
        "Sobel edge filters telling vertical from horizontal stripes (hand-built demo)",
    )
