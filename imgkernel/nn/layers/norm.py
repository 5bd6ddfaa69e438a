"""Normalisation and regularisation: batchnorm and lrn (inference only), dropout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape


class BatchNorm(Layer):
    """Batch normalisation over axis 1 (ONNX ``BatchNormalization``), any rank >= 2.

    Not trainable (it has no backward pass). With ``training_mode`` (ONNX
    ``training_mode=1``) it normalises with the batch's own statistics and has
    three outputs: the result, and the running mean and variance updated with
    ``momentum``.
    """

    type = "batchnorm"
    ATTRS = {"epsilon": 1e-5, "momentum": 0.9, "training_mode": False}
    ARRAYS = ("scale", "bias", "mean", "var")

    def configure(self, epsilon: Any, momentum: Any, training_mode: Any) -> None:
        self.epsilon = attrs.number(epsilon, "epsilon")
        self.momentum = attrs.number(momentum, "momentum")
        self.training_mode = attrs.boolean(training_mode, "training_mode")
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
        out: dict[str, Any] = {"epsilon": self.epsilon}
        if self.training_mode:
            out.update(momentum=self.momentum, training_mode=True)
        return out

    def n_outputs(self) -> int:
        return 3 if self.training_mode else 1

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return not self.training_mode

    def output_shape(self, shape: Shape) -> Shape | list[Shape]:  # type: ignore[override]
        c = self.multiplier.shape[0]
        if len(shape) < 2 or shape[1] != c:
            raise LayerError(f"expects {c} channels on axis 1, got {attrs.fmt_shape(shape)}")
        return [shape, (c,), (c,)] if self.training_mode else shape

    def __call__(self, x: np.ndarray) -> Any:
        extra = (1,) * (x.ndim - 2)
        c = self.multiplier.shape[0]
        if not self.training_mode:
            return x * self.multiplier.reshape(c, *extra) + self.shift.reshape(c, *extra)
        axes = (0, *range(2, x.ndim))
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        mul = self.arrays["scale"] / np.sqrt(var + np.float32(self.epsilon))
        y = (x - mean.reshape(c, *extra)) * mul.reshape(c, *extra)
        y += self.arrays["bias"].reshape(c, *extra)
        m = np.float32(self.momentum)
        return (
            y,
            self.arrays["mean"] * m + mean * (1 - m),
            self.arrays["var"] * m + var * (1 - m),
        )


class LRN(Layer):
    """Local response normalisation across channels (ONNX ``LRN``, AlexNet, GoogLeNet).

    ``y = x / (bias + alpha / size * sum of x^2 over the size channels around)^beta``.
    """

    PER_SAMPLE = True

    type = "lrn"
    ATTRS = {"size": None, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}
    ARCH_KEYS = None

    def configure(self, size: Any, alpha: Any, beta: Any, bias: Any) -> None:
        if size is None:
            raise LayerError("missing attribute 'size'")
        self.size = attrs.integer(size, "size", 1)
        self.alpha = attrs.number(alpha, "alpha")
        self.beta = attrs.number(beta, "beta")
        self.bias = attrs.number(bias, "bias")

    def attributes(self) -> dict[str, Any]:
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "bias": self.bias}

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 3:
            raise LayerError(f"lrn needs an (N, C, ...) input, got {attrs.fmt_shape(shape)}")
        return shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c = x.shape[1]
        sq = np.square(x, dtype=np.float64)
        before, after = (self.size - 1) // 2, self.size // 2  # floor and ceil of (size-1)/2
        csum = np.cumsum(np.pad(sq, [(0, 0), (1, 0)] + [(0, 0)] * (x.ndim - 2)), axis=1)
        hi = np.minimum(np.arange(c) + after + 1, c)
        lo = np.maximum(np.arange(c) - before, 0)
        window = csum[:, hi] - csum[:, lo]
        scale = (self.bias + self.alpha / self.size * window) ** self.beta
        return (x / scale).astype(np.float32)


class Dropout(Layer):
    """Identity at inference; inverted dropout in training (kept cells scaled by 1/(1-rate))."""

    PER_SAMPLE = True

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
