"""ONNX operators that become layers: one small function per operator, registered by op_type.

Each function reads its node (attributes, constant inputs) through a
:class:`~imgkernel.nn.onnx.graph.Step` and adds a layer (or folds the node
into the previous layer, or adds nothing for an identity). The order of
registration is the order of the "supported" list in error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.core.windows import resolve_padding
from imgkernel.errors import UsageError
from imgkernel.nn.layers import (
    AvgPool,
    BatchNorm,
    Clip,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    Layer,
    LeakyReLU,
    MaxPool,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from imgkernel.nn.onnx.graph import Step, op
from imgkernel.nn.onnx.shape_ops import BATCH, FLATTEN_HINT

_FLOAT_MAX = 3.4028234663852886e38


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _pads(
    step: Step, k_hw: tuple[int, int], stride: Sequence[int], dilation: Sequence[int]
) -> tuple[int, int, int, int]:
    """The node's ONNX auto_pad/pads as imgkernel padding (top, bottom, left, right)."""
    auto_pad = _str(step.attrs.get("auto_pad", "NOTSET"))
    pads = step.attrs.get("pads")
    if auto_pad in ("", "NOTSET"):
        if not pads:
            return (0, 0, 0, 0)
        if len(pads) != 4:
            raise UsageError(
                f"{step.where}: pads must have 4 values for a 2-D op, got {list(pads)}"
            )
        return (int(pads[0]), int(pads[2]), int(pads[1]), int(pads[3]))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        s2, d2 = (stride[0], stride[1]), (dilation[0], dilation[1])
        top, bot, left, right = resolve_padding("same", step.spatial(), k_hw, s2, d2)
        if auto_pad == "SAME_LOWER":  # the odd extra pad goes at the start
            top, bot, left, right = bot, top, right, left
        return (top, bot, left, right)
    raise UsageError(f"{step.where}: unknown auto_pad {auto_pad!r}")


def _conv_like(prev: Conv2D, weight: np.ndarray, bias: np.ndarray | None) -> Conv2D:
    """``prev`` with new weights (a bias added or a batchnorm folded in)."""
    return Conv2D(
        prev.name,
        weight,
        bias,
        stride=list(prev.stride),
        padding=prev.padding,
        dilation=list(prev.dilation),
        groups=prev.groups,
    )


def _bias(c: np.ndarray | None, n: int, where: str, beta: float = 1.0) -> np.ndarray | None:
    if c is None:
        return None
    c = np.asarray(c, dtype=np.float64)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, n):
        raise UsageError(
            f"{where}: bias of shape {c.shape} must broadcast as ({n},) "
            "(a per-sample bias is not supported)"
        )
    return np.broadcast_to(c.reshape(-1), (n,)) * beta


@op("Conv")
def conv(step: Step) -> None:
    w = step.required(1, "W")
    b = step.const(2, "B", required=False)
    if w.ndim != 4:
        raise UsageError(f"{step.where}: only 2-D convolution is supported (W is {w.ndim}-D)")
    a = step.attrs
    k_hw = (w.shape[2], w.shape[3])
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != k_hw:
        raise UsageError(f"{step.where}: kernel_shape {list(a['kernel_shape'])} != W shape {k_hw}")
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    padding = _pads(step, k_hw, stride, dilation)
    layer = Conv2D(
        step.name(),
        w,
        b,
        stride=list(stride),
        padding=padding,
        dilation=list(dilation),
        groups=int(a.get("group", 1)),
    )
    step.add(layer)


@op("Relu")
def relu(step: Step) -> None:
    step.add(ReLU(step.name()))


@op("LeakyRelu")
def leaky_relu(step: Step) -> None:
    step.add(LeakyReLU(step.name(), alpha=float(step.attrs.get("alpha", 0.01))))


@op("Sigmoid")
def sigmoid(step: Step) -> None:
    step.add(Sigmoid(step.name()))


@op("Tanh")
def tanh(step: Step) -> None:
    step.add(Tanh(step.name()))


@op("Clip")
def clip(step: Step) -> None:
    lo: float | None
    hi: float | None
    if step.graph.opset < 11:
        lo, hi = step.attrs.get("min"), step.attrs.get("max")
    else:
        mn = step.const(1, "min", required=False)
        mx = step.const(2, "max", required=False)
        lo = None if mn is None else float(np.asarray(mn).reshape(-1)[0])
        hi = None if mx is None else float(np.asarray(mx).reshape(-1)[0])
    lo = None if lo is None or lo <= -_FLOAT_MAX else float(lo)
    hi = None if hi is None or hi >= _FLOAT_MAX else float(hi)
    step.add(Clip(step.name(), min=lo, max=hi))


@op("Softmax")
def softmax(step: Step) -> None:
    rank = len(step.shape)
    if step.graph.opset >= 13:
        axis = int(step.attrs.get("axis", -1))
    else:
        # opset < 13: softmax of the input coerced to 2-D at `axis`; the
        # same as a one-axis softmax only if it is the last non-1 axis.
        axis = int(step.attrs.get("axis", 1))
        a = axis + rank if axis < 0 else axis
        if any(d != 1 for d in step.shape[a + 1 :]):
            raise UsageError(
                f"{step.where}: Softmax before opset 13 over axes {a}.. of a "
                f"rank-{rank} tensor is not supported (flatten first)"
            )
    step.add(Softmax(step.name(), axis=axis))


def _pool(step: Step, cls: type[Layer]) -> None:
    a = step.attrs
    if "kernel_shape" not in a or len(a["kernel_shape"]) != 2:
        raise UsageError(f"{step.where}: needs a 2-D kernel_shape")
    size = (int(a["kernel_shape"][0]), int(a["kernel_shape"][1]))
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    if int(a.get("storage_order", 0)) not in (0, 1):
        raise UsageError(f"{step.where}: bad storage_order")
    kwargs: dict[str, Any] = {
        "size": list(size),
        "stride": list(stride),
        "padding": _pads(step, size, stride, dilation),
        "dilation": list(dilation),
        "ceil_mode": bool(a.get("ceil_mode", 0)),
    }
    if cls is AvgPool:
        kwargs["count_include_pad"] = bool(a.get("count_include_pad", 0))
    step.add(cls(step.name(), **kwargs))


@op("MaxPool")
def max_pool(step: Step) -> None:
    _pool(step, MaxPool)


@op("AveragePool")
def average_pool(step: Step) -> None:
    _pool(step, AvgPool)


@op("GlobalAveragePool")
def global_average_pool(step: Step) -> None:
    step.add(GlobalAvgPool(step.name()))


@op("GlobalMaxPool")
def global_max_pool(step: Step) -> None:
    step.add(GlobalMaxPool(step.name()))


@op("Flatten")
def flatten(step: Step) -> None:
    step.add(Flatten(step.name(), axis=int(step.attrs.get("axis", 1))))


@op("Reshape")
def reshape(step: Step) -> None:
    """To 2-D: a constant target, or [batch size, n] computed in the graph."""
    g, data = step.graph, step.node.input[0]
    if len(step.node.input) > 1 and step.node.input[1] in g.syms:
        value = g.syms[step.node.input[1]]
        dims = list(value)
        ok = isinstance(value, list) and len(dims) == 2 and dims[0] is BATCH
        if not (ok and isinstance(dims[1], int) and g.batch_axis.get(data, False)):
            raise UsageError(
                f"{step.where}: a Reshape target computed in the graph must be [batch size, "
                f"constant], got {dims}; {FLATTEN_HINT}"
            )
        target = [0, int(dims[1])]
    else:
        target = [int(v) for v in np.asarray(step.required(1, "shape")).reshape(-1)]
        if len(target) != 2:
            raise UsageError(
                f"{step.where}: only reshapes to 2-D are supported, got shape {target}"
            )
        if int(step.attrs.get("allowzero", 0)) and 0 in target:
            raise UsageError(f"{step.where}: Reshape with allowzero=1 and a 0 dim is not supported")
        if g.fixed_batch is not None and target[0] == g.fixed_batch and g.batch_axis.get(data):
            # exported with a static batch B: x.view(x.size(0), -1) folds to
            # [B, -1]; the leading B is the batch axis, kept as a 0 would
            target[0] = 0
    step.add(Reshape(step.name(), shape=target))


@op("Gemm")
def gemm(step: Step) -> None:
    a = step.attrs
    if step.node.input[0] in step.graph.consts:
        raise UsageError(f"{step.where}: the data must be Gemm's first input (A)")
    b = step.required(1, "B")
    c = step.const(2, "C", required=False)
    if b.ndim != 2:
        raise UsageError(f"{step.where}: B must be 2-D, got shape {b.shape}")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    weight = (b if int(a.get("transB", 0)) else b.T).astype(np.float64) * alpha
    bias = _bias(c, weight.shape[0], step.where, beta)
    step.add(Dense(step.name(), weight, bias, transpose_input=bool(a.get("transA", 0))))


@op("MatMul")
def matmul(step: Step) -> None:
    if step.node.input[0] in step.graph.consts:
        raise UsageError(f"{step.where}: the data must be MatMul's first input")
    b = step.required(1, "B")
    if b.ndim != 2:
        raise UsageError(f"{step.where}: only a 2-D constant B is supported, got {b.shape}")
    step.add(Dense(step.name(), b.T))


@op("Add")
def add(step: Step) -> None:
    """The bias of a preceding MatMul or Conv: folded into that layer."""
    consts = [i for i in step.node.input if i in step.graph.consts]
    if len(consts) != 1:
        raise UsageError(f"{step.where}: Add needs one constant input")
    c = np.asarray(step.graph.consts[consts[0]], dtype=np.float64)
    prev = step.previous
    if isinstance(prev, Dense) and prev.bias is None:
        bias = _bias(c, prev.weight.shape[0], step.where)
        step.replace_last(Dense(prev.name, prev.weight, bias, transpose_input=prev.transpose_input))
        return
    if isinstance(prev, Conv2D):
        k = prev.weight.shape[0]
        per_channel = (
            c.ndim in (3, 4)
            and c.shape[-2:] == (1, 1)
            and c.size == k
            and (c.ndim == 3 or c.shape[0] == 1)
        )
        if c.size == 1 or per_channel:
            extra = np.broadcast_to(c.reshape(-1), (k,))
            bias = extra if prev.bias is None else prev.bias + extra
            step.replace_last(_conv_like(prev, prev.weight, bias))
            return
    raise UsageError(
        f"{step.where}: Add is supported only as the bias of a preceding MatMul or Conv "
        "(a constant per output feature/channel)"
    )


@op("BatchNormalization")
def batch_normalization(step: Step) -> None:
    """A batchnorm layer, or folded into a preceding Conv's weights (``fold_batchnorm``)."""
    if int(step.attrs.get("training_mode", 0)):
        raise UsageError(f"{step.where}: training_mode=1 is not supported")
    arrays = [step.const(i, w) for i, w in enumerate(("X", "scale", "B", "mean", "var")) if i]
    eps = float(step.attrs.get("epsilon", 1e-5))
    bn = BatchNorm(step.name(), *arrays, epsilon=eps)
    prev = step.previous
    if step.graph.fold and isinstance(prev, Conv2D) and len(bn.multiplier) == len(prev.weight):
        scale, shift, mean, var = (np.asarray(v, np.float64) for v in arrays)
        mul = scale / np.sqrt(var + eps)
        shift = shift - mean * mul
        w = prev.weight.astype(np.float64) * mul[:, None, None, None]
        b0 = np.zeros(len(mul)) if prev.bias is None else prev.bias.astype(np.float64)
        step.replace_last(_conv_like(prev, w, b0 * mul + shift))
        return
    step.add(bn)


@op("Dropout", "Identity")
def identity(step: Step) -> None:
    """Dropout is the identity at inference."""
