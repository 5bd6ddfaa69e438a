"""Normalisation and regularisation: batchnorm (inference only) and dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape


class BatchNorm(Layer):
    """Inference batch normalisation over axis 1 (ONNX ``BatchNormalization``).

    Not trainable: it has no backward pass.
    """

    type = "batchnorm"
    ATTRS = {"epsilon": 1e-5}
    ARRAYS = ("scale", "bias", "mean", "var")

    def configure(self, epsilon: Any) -> None:
        self.epsilon = attrs.number(epsilon, "epsilon")
        shapes = {k: a.shape for k, a in self.arrays.items()}
        if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
            raise LayerError(f"scale, bias, mean and var must be 1-D of one length, got {shapes}")
        var = self.arrays["var"].astype(np.float64)
        if np.any(var + self.epsilon <= 0):
            raise LayerError("var + epsilon must be positive")
        mul = self.arrays["scale"] / np.sqrt(var + self.epsilon)
        self.multiplier = mul.astype(np.float32)
        self.shift = (self.arrays["bias"] - self.arrays["mean"] * mul).astype(np.float32)

    def attributes(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def output_shape(self, shape: Shape) -> Shape:
        c = self.multiplier.shape[0]
        if len(shape) < 2 or shape[1] != c:
            raise LayerError(f"expects {c} channels on axis 1, got {attrs.fmt_shape(shape)}")
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        extra = (1,) * (x.ndim - 2)
        c = self.multiplier.shape[0]
        return x * self.multiplier.reshape(c, *extra) + self.shift.reshape(c, *extra)


class Dropout(Layer):
    """Identity at inference; inverted dropout in training (kept cells scaled by 1/(1-rate))."""

    type = "dropout"
    ATTRS = {"rate": 0.5}
    ARCH_KEYS = frozenset({"rate"})

    def configure(self, rate: Any) -> None:
        self.rate = attrs.number(rate, "rate")
        if not 0 <= self.rate < 1:
            raise LayerError(f"dropout rate must be in [0, 1), got {self.rate!r}")

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        rate = self.rate
        if not training or rate <= 0:
            return x, None
        assert rng is not None, "dropout in training mode needs a random generator"
        keep = rng.random(x.shape, dtype=np.float32) >= rate
        mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - rate))
        return x * mask, mask

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        return (dy if cache is None else dy * cache), {}
