"""The fully connected layer: ``y = x @ weight.T + bias`` on the last axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape
from imgkernel.nn.layers.build import BuildContext, positive_int


class Dense(Layer):
    """Fully connected: ``y = x @ weight.T + bias`` on the last axis (PyTorch ``Linear``).

    ``transpose_input`` (from ONNX ``Gemm`` with ``transA=1``) uses ``x.T`` for
    a 2-D input instead.
    """

    type = "dense"
    ATTRS = {"transpose_input": False}
    ARRAYS = ("weight", "bias")
    OPTIONAL = ("bias",)
    ARCH_KEYS = frozenset({"units", "bias", "init"})

    def configure(self, transpose_input: Any) -> None:
        w = self.arrays["weight"]
        if w.ndim != 2 or min(w.shape) < 1:
            raise LayerError(f"weight must be 2-D (out, in), got shape {w.shape}")
        b = self.arrays.get("bias")
        if b is not None and b.shape != (w.shape[0],):
            raise LayerError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
        self.transpose_input = attrs.boolean(transpose_input, "transpose_input")
        self.weight, self.bias = w, b

    def attributes(self) -> dict[str, Any]:
        return {"transpose_input": self.transpose_input} if self.transpose_input else {}

    def output_shape(self, shape: Shape) -> Shape:
        n_in = self.weight.shape[1]
        if self.transpose_input:
            if len(shape) != 2:
                raise LayerError(f"transpose_input needs a 2-D input, got {attrs.fmt_shape(shape)}")
            shape = (shape[1], shape[0])
        if len(shape) < 1 or shape[-1] != n_in:
            got = (
                "an unknown number of"
                if shape and shape[-1] is None
                else (shape[-1] if shape else "no")
            )
            raise LayerError(
                f"weight expects {n_in} input features, got {got} ({attrs.fmt_shape(shape)})"
            )
        return (*shape[:-1], self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.transpose_input:
            x = x.T
        y = x @ self.weight.T
        if self.bias is not None:
            y += self.bias
        return y

    def training_problem(self) -> str | None:
        return "cannot train a transpose_input dense" if self.transpose_input else None

    def per_sample(self, shapes: Sequence[Shape]) -> bool:
        return not self.transpose_input and len(shapes[0]) >= 2

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        y = x2 @ p["weight"].T
        if "bias" in p:
            y += p["bias"]
        return y.reshape(*shape[:-1], -1), (x2, shape)

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        x2, shape = cache
        d2 = dy.reshape(-1, dy.shape[-1])
        grads = {"weight": d2.T @ x2}
        if "bias" in p:
            grads["bias"] = d2.sum(axis=0)
        dx = (d2 @ p["weight"]).reshape(shape) if need_input else None
        return dx, grads

    @classmethod
    def from_arch(cls, name: str, spec: dict[str, Any], shape: Shape, ctx: BuildContext) -> Layer:
        """``units`` (an int, or "classes": the default of the last dense) and ``bias`` (true)."""
        if len(shape) != 2:
            raise UsageError("dense needs a flat (N, features) input; add a flatten before it")
        units = spec.pop("units", "classes" if ctx.last_dense else None)
        if units == "classes":
            units = ctx.n_classes
        units = positive_int(units, "units", ' or "classes"')
        bias = spec.pop("bias", True)
        arrays = {"weight": ctx.weight((units, int(shape[1] or 0)))}
        if bias:
            arrays["bias"] = np.zeros(units, np.float32)
        return cls(name, **arrays)


class MatMul(Layer):
    """The matrix product of two tensors with numpy ``matmul`` rules (ONNX ``MatMul``).

    1-D operands are taken as a row (first) or a column (second) vector and
    the leading axes broadcast. A constant 2-D second operand is better a
    ``dense`` layer.
    """

    type = "matmul"
    ARITY = (2, 2)
    ARCH_KEYS = None

    def output_shape(self, *shapes: Shape) -> Shape:
        a, b = shapes
        if not a or not b:
            raise LayerError("matmul operands must have at least one axis")
        a2 = (1, *a) if len(a) == 1 else a
        b2 = (*b, 1) if len(b) == 1 else b
        k1, k2 = a2[-1], b2[-2]
        if k1 is not None and k2 is not None and k1 != k2:
            raise LayerError(
                f"cannot multiply {attrs.fmt_shape(a)} by {attrs.fmt_shape(b)} ({k1} != {k2})"
            )
        batch = attrs.broadcast([a2[:-2], b2[:-2]])
        out = (*batch, a2[-2], b2[-1])
        if len(a) == 1:
            out = out[:-2] + out[-1:]
        if len(b) == 1:
            out = out[:-1]
        return out

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return np.matmul(xs[0], xs[1])


class Gemm(Layer):
    """``alpha * A' @ B' + beta * C`` of 2-D tensors, ``'`` a transpose if asked (ONNX ``Gemm``).

    ``C`` (optional) broadcasts to the (M, N) result. With constant ``B`` and a
    per-column ``C`` this is a ``dense`` layer.
    """

    type = "gemm"
    ATTRS = {"alpha": 1.0, "beta": 1.0, "trans_a": False, "trans_b": False}
    ARITY = (2, 3)
    ARCH_KEYS = None

    def configure(self, alpha: Any, beta: Any, trans_a: Any, trans_b: Any) -> None:
        self.alpha = attrs.number(alpha, "alpha")
        self.beta = attrs.number(beta, "beta")
        self.trans_a = attrs.boolean(trans_a, "trans_a")
        self.trans_b = attrs.boolean(trans_b, "trans_b")

    def attributes(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "trans_a": self.trans_a,
            "trans_b": self.trans_b,
        }

    def output_shape(self, *shapes: Shape) -> Shape:
        a, b = shapes[:2]
        if len(a) != 2 or len(b) != 2:
            raise LayerError(
                f"A and B must be 2-D, got {attrs.fmt_shape(a)} and {attrs.fmt_shape(b)}"
            )
        (m, k1), (k2, n) = a[:: -1 if self.trans_a else 1], b[:: -1 if self.trans_b else 1]
        if k1 is not None and k2 is not None and k1 != k2:
            raise LayerError(f"A' is {m} x {k1} but B' is {k2} x {n}")
        if len(shapes) == 3 and attrs.broadcast([shapes[2], (m, n)]) != (m, n):
            raise LayerError(f"C {attrs.fmt_shape(shapes[2])} does not broadcast to {m} x {n}")
        return (m, n)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        a = xs[0].T if self.trans_a else xs[0]
        b = xs[1].T if self.trans_b else xs[1]
        y = a @ b
        if self.alpha != 1:
            y *= np.float32(self.alpha)
        if len(xs) == 3:
            y += xs[2] if self.beta == 1 else xs[2] * np.float32(self.beta)
        return y
