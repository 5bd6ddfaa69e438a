"""Creating a layer from an architecture entry: the context it gets and weight initialisation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imgkernel.errors import UsageError


class BuildContext:
    """What an architecture entry may need to create its layer's weights.

    ``init`` is "he" (normal, fan-in, gain sqrt 2) or "xavier" (uniform,
    fan-in + fan-out); ``last_dense`` tells the last dense layer, whose
    ``units`` default to the number of classes.
    """

    def __init__(
        self, rng: np.random.Generator, n_classes: int, init: str, last_dense: bool
    ) -> None:
        self.rng, self.n_classes, self.init, self.last_dense = rng, n_classes, init, last_dense

    def weight(self, shape: tuple[int, ...], groups: int = 1) -> np.ndarray:
        return init_weight(self.rng, shape, self.init, groups)


def init_weight(
    rng: np.random.Generator, shape: tuple[int, ...], method: str, groups: int = 1
) -> np.ndarray:
    """He (normal, fan-in, gain sqrt 2) or Xavier (uniform, fan-in + fan-out) weights.

    ``shape`` is (K, C/groups, kh, kw) for conv or (out, in) for dense.
    """
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive
    fan_out = shape[0] // groups * receptive
    if method == "he":
        std = math.sqrt(2.0 / fan_in)
        return (rng.standard_normal(shape) * std).astype(np.float32)
    if method == "xavier":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    raise UsageError(f"unknown init {method!r}; choose he or xavier")


def positive_int(value: Any, what: str, extra: str = "") -> int:
    """An architecture count (``filters``, ``units``): a positive int, not a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"'{what}' must be a positive integer{extra}, got {value!r}")
    return value
