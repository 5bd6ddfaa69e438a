"""Optimizers: SGD with momentum and Adam, both with L2 weight decay (as ``torch.optim``).

An optimizer's ``step(params, grads)`` updates the arrays of ``params`` in
place from the gradients of the same keys; its ``lr`` may be changed between
steps (the learning-rate schedule does).
"""

from __future__ import annotations

import math

import numpy as np

from imgkernel.errors import check_choice, check_float

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.01}


class SGD:
    """Stochastic gradient descent with momentum and L2 weight decay (as ``torch.optim.SGD``)."""

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.lr, self.momentum = lr, momentum
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for key, g in grads.items():
            p = params[key]
            if self.weight_decay:
                g = g + p.dtype.type(self.weight_decay) * p
            if self.momentum:
                v = self.velocity.get(key)
                if v is None:
                    v = self.velocity[key] = g.astype(p.dtype, copy=True)
                else:
                    v *= p.dtype.type(self.momentum)
                    v += g
                g = g + p.dtype.type(self.momentum) * v if self.nesterov else v
            p -= p.dtype.type(self.lr) * g


class Adam:
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient (as ``torch.optim.Adam``)."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for key, g in grads.items():
            p = params[key]
            f = p.dtype.type
            if self.weight_decay:
                g = g + f(self.weight_decay) * p
            m = self.m.setdefault(key, np.zeros_like(p))
            v = self.v.setdefault(key, np.zeros_like(p))
            m *= f(b1)
            m += f(1 - b1) * g
            v *= f(b2)
            v += f(1 - b2) * (g * g)
            denom = np.sqrt(v) / f(math.sqrt(c2))
            denom += f(self.eps)
            p -= f(self.lr / c1) * (m / denom)


Optimizer = SGD | Adam


def make_optimizer(
    name: str, lr: float | None = None, *, momentum: float = 0.9, weight_decay: float = 0.0
) -> Optimizer:
    """An optimizer by name ("adam" or "sgd"); ``lr`` None takes the optimizer's default."""
    key = check_choice(name, "optimizer", OPTIMIZERS)
    rate = DEFAULT_LR[key] if lr is None else lr
    rate = check_float(rate, "learning rate", minimum=0, min_open=True)
    weight_decay = check_float(weight_decay, "weight decay", minimum=0)
    if key == "sgd":
        return SGD(rate, momentum=momentum, weight_decay=weight_decay)
    return Adam(rate, weight_decay=weight_decay)
