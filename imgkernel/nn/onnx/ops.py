"""ONNX operators of CNNs: convolution, activations, pooling, normalisation; one function each.

Each function reads its node (attributes, constant inputs) through a
:class:`~imgkernel.nn.onnx.step.Step` and adds a layer, or folds the node
into the node before it (a batchnorm into a conv's weights). The tensor
operators (shapes, arithmetic, matrix products, resizing) are in
:mod:`imgkernel.nn.onnx.tensor_ops`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import (
    LRN,
    AvgPool,
    BatchNorm,
    Clip,
    Conv2D,
    ConvTranspose,
    GlobalAvgPool,
    GlobalMaxPool,
    HardSigmoid,
    HardSwish,
    Layer,
    LeakyReLU,
    LogSoftmax,
    MaxPool,
    PRelu,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from imgkernel.nn.onnx.graph import op
from imgkernel.nn.onnx.step import Step

_FLOAT_MAX = float(np.finfo(np.float32).max)


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def same_pads(
    sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> list[tuple[int, int]]:
    """SAME_UPPER (begin, end) pads per axis: output ``ceil(n / stride)``, extra pad at the end."""
    out = []
    for n, k, s, d in zip(sizes, kernel, stride, dilation, strict=True):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return out


def window_pads(
    step: Step, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> list[int]:
    """The node's padding as (begin, end) per spatial axis, flattened (ONNX pads or auto_pad)."""
    d = len(kernel)
    auto_pad = _str(step.attrs.get("auto_pad", "NOTSET"))
    pads = list(step.attrs.get("pads") or [0] * (2 * d))
    if auto_pad in ("", "NOTSET"):
        if len(pads) != 2 * d:
            raise UsageError(f"{step.where}: pads must have {2 * d} values, got {pads}")
        return [v for i in range(d) for v in (int(pads[i]), int(pads[i + d]))]
    if auto_pad == "VALID":
        return [0] * (2 * d)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = same_pads(step.spatial(), kernel, stride, dilation)
        if auto_pad == "SAME_LOWER":  # the odd extra pad goes at the start
            pairs = [(e, b) for b, e in pairs]
        return [v for pair in pairs for v in pair]
    raise UsageError(f"{step.where}: unknown auto_pad {auto_pad!r}")


def _geometry(step: Step, kernel: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(stride, dilation, pads) of a conv or pooling node with ``kernel``."""
    d = len(kernel)
    stride = [int(v) for v in step.attrs.get("strides", [1] * d)]
    dilation = [int(v) for v in step.attrs.get("dilations", [1] * d)]
    return stride, dilation, window_pads(step, kernel, stride, dilation)


@op("Conv")
def conv(step: Step) -> None:
    w = step.required(1, "W")
    b = step.const(2, "B", required=False)
    if w.ndim != 4:
        raise UsageError(f"{step.where}: only 2-D convolution is supported (W is {w.ndim}-D)")
    kernel = [int(w.shape[2]), int(w.shape[3])]
    if "kernel_shape" in step.attrs and list(step.attrs["kernel_shape"]) != kernel:
        raise UsageError(
            f"{step.where}: kernel_shape {list(step.attrs['kernel_shape'])} != W shape {kernel}"
        )
    stride, dilation, pads = _geometry(step, kernel)
    group = int(step.attrs.get("group", 1))
    layer = Conv2D(step.name(), w, b, stride=stride, padding=pads, dilation=dilation, groups=group)
    step.add(layer)


@op("ConvTranspose")
def conv_transpose(step: Step) -> None:
    w = step.required(1, "W")
    b = step.const(2, "B", required=False)
    d = w.ndim - 2
    a = step.attrs
    stride = [int(v) for v in a.get("strides", [1] * d)]
    dilation = [int(v) for v in a.get("dilations", [1] * d)]
    extra = [int(v) for v in a.get("output_padding", [0] * d)]
    auto_pad = _str(a.get("auto_pad", "NOTSET"))
    if "output_shape" in a or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = step.spatial()
        want = list(a.get("output_shape") or [n * s for n, s in zip(sizes, stride, strict=True)])
        want = want[-d:]
        pads = []
        for i in range(d):
            full = stride[i] * (sizes[i] - 1) + extra[i] + (w.shape[2 + i] - 1) * dilation[i] + 1
            total = full - int(want[i])
            end = total - total // 2 if auto_pad == "SAME_UPPER" else total // 2
            pads += [total - end, end]
    else:
        onnx_pads = list(a.get("pads") or [0] * (2 * d))
        pads = [int(v) for i in range(d) for v in (onnx_pads[i], onnx_pads[i + d])]
    layer = ConvTranspose(
        step.name(),
        w,
        b,
        stride=stride,
        padding=pads,
        output_padding=extra,
        dilation=dilation,
        groups=int(a.get("group", 1)),
    )
    step.add(layer)


@op("Relu")
def relu(step: Step) -> None:
    step.add(ReLU(step.name()))


@op("LeakyRelu")
def leaky_relu(step: Step) -> None:
    step.add(LeakyReLU(step.name(), alpha=float(step.attrs.get("alpha", 0.01))))


@op("PRelu")
def prelu(step: Step) -> None:
    step.add(PRelu(step.name()), [step.data(0), step.data(1)])


@op("Sigmoid")
def sigmoid(step: Step) -> None:
    step.add(Sigmoid(step.name()))


@op("HardSigmoid")
def hard_sigmoid(step: Step) -> None:
    a = step.attrs
    step.add(HardSigmoid(step.name(), alpha=a.get("alpha", 0.2), beta=a.get("beta", 0.5)))


@op("HardSwish")
def hard_swish(step: Step) -> None:
    step.add(HardSwish(step.name()))


@op("Tanh")
def tanh(step: Step) -> None:
    step.add(Tanh(step.name()))


@op("Clip")
def clip(step: Step) -> None:
    lo: Any
    hi: Any
    if step.graph.opset < 11:
        lo, hi = step.attrs.get("min"), step.attrs.get("max")
    else:
        lo, hi = step.const(1, "min", required=False), step.const(2, "max", required=False)
        lo = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
    lo = None if lo is None or lo <= -_FLOAT_MAX else float(lo)
    hi = None if hi is None or hi >= _FLOAT_MAX else float(hi)
    step.add(Clip(step.name(), min=lo, max=hi))


def _softmax(step: Step, cls: type[Layer]) -> None:
    if step.graph.opset >= 13:
        step.add(cls(step.name(), axis=int(step.attrs.get("axis", -1))))
        return
    # before opset 13: over the input coerced to 2-D at `axis` (all axes from it on)
    rank = len(step.shape(0))
    axis = int(step.attrs.get("axis", 1))
    first = axis + rank if axis < 0 else axis
    flatten = any(d != 1 for d in step.shape(0)[first + 1 :])
    step.add(cls(step.name(), axis=axis, flatten=flatten))


@op("Softmax")
def softmax(step: Step) -> None:
    _softmax(step, Softmax)


@op("LogSoftmax")
def log_softmax(step: Step) -> None:
    _softmax(step, LogSoftmax)


def _pool(step: Step, cls: type[Layer]) -> None:
    a = step.attrs
    if "kernel_shape" not in a:
        raise UsageError(f"{step.where}: needs a kernel_shape")
    kernel = [int(v) for v in a["kernel_shape"]]
    if len(step.shape(0)) != len(kernel) + 2:
        raise UsageError(f"{step.where}: kernel_shape {kernel} does not fit the input's rank")
    stride, dilation, pads = _geometry(step, kernel)
    kwargs: dict[str, Any] = {
        "size": kernel,
        "stride": stride,
        "padding": pads,
        "dilation": dilation,
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


def conv_like(prev: Conv2D, weight: np.ndarray, bias: np.ndarray | None) -> Conv2D:
    """``prev`` with new weights (a bias added or a batchnorm folded in)."""
    return Conv2D(prev.name, weight, bias, **prev.attributes())


@op("BatchNormalization")
def batch_normalization(step: Step) -> None:
    """A batchnorm layer, or folded into a preceding Conv's weights (``fold_batchnorm``)."""
    arrays = [step.required(i, w) for i, w in enumerate(("X", "scale", "B", "mean", "var")) if i]
    eps = float(step.attrs.get("epsilon", 1e-5))
    training = bool(step.attrs.get("training_mode", 0))
    momentum = float(step.attrs.get("momentum", 0.9))
    bn = BatchNorm(step.name(), *arrays, epsilon=eps, momentum=momentum, training_mode=training)
    found = step.sole_producer(0)
    if step.graph.fold and found is not None and not training:
        index, node = found
        prev = node.layer
        if isinstance(prev, Conv2D) and len(bn.multiplier) == len(prev.weight):
            scale, shift, mean, var = (np.asarray(v, np.float64) for v in arrays)
            mul = scale / np.sqrt(var + eps)
            w = prev.weight.astype(np.float64) * mul[:, None, None, None]
            b0 = np.zeros(len(mul)) if prev.bias is None else prev.bias.astype(np.float64)
            step.replace(index, conv_like(prev, w, b0 * mul + shift - mean * mul))
            return
    step.add(bn)


@op("LRN")
def lrn(step: Step) -> None:
    a = step.attrs
    layer = LRN(
        step.name(),
        size=int(a["size"]) if "size" in a else None,
        alpha=float(a.get("alpha", 1e-4)),
        beta=float(a.get("beta", 0.75)),
        bias=float(a.get("bias", 1.0)),
    )
    step.add(layer)


@op("Dropout")
def dropout(step: Step) -> None:
    """The identity at inference (training-mode dropout is refused)."""
    training = step.const(2, "training_mode", required=False)
    if step.graph.opset >= 12 and training is not None and bool(np.asarray(training).any()):
        ratio = step.const(1, "ratio", required=False)
        if ratio is None or float(np.asarray(ratio)) > 0:
            raise UsageError(f"{step.where}: training-mode dropout is not supported")
    step.alias(0)


@op("Identity")
def identity(step: Step) -> None:
    step.alias(0)
