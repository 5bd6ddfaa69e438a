"""ONNX tensor operators: shapes, arithmetic, matrix products, padding, resizing, reductions.

One function per operator, as in :mod:`imgkernel.nn.onnx.ops`. A constant
operand of an arithmetic node is a ``constant`` node, except that a constant
added after a Conv or MatMul becomes its bias. A constant second operand of
MatMul or Gemm makes a ``dense`` layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import (
    Add,
    Concat,
    Conv2D,
    Dense,
    Div,
    Flatten,
    Gemm,
    Layer,
    MatMul,
    Mul,
    Pad,
    ReduceMean,
    Reshape,
    Resize,
    Squeeze,
    Sub,
    Sum,
    Transpose,
    Unsqueeze,
)
from imgkernel.nn.onnx.graph import op
from imgkernel.nn.onnx.ops import _str, conv_like
from imgkernel.nn.onnx.shape_ops import BATCH, FLATTEN_HINT
from imgkernel.nn.onnx.step import Step


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


@op("Flatten")
def flatten(step: Step) -> None:
    step.add(Flatten(step.name(), axis=int(step.attrs.get("axis", 1))))


def _symbolic_target(step: Step) -> list[int]:
    """A Reshape target computed from the batch size: [batch, n, ...] becomes [0, n, ...]."""
    dims = list(step.graph.syms[step.node.input[1]])
    ok = len(dims) >= 2 and dims[0] is BATCH and all(isinstance(d, int) for d in dims[1:])
    if not (ok and step.shape(0)[:1] == (None,)):
        raise UsageError(
            f"{step.where}: a Reshape target computed in the graph must be [batch size, "
            f"constants...], got {dims}; {FLATTEN_HINT}"
        )
    return [0, *dims[1:]]


@op("Reshape")
def reshape(step: Step) -> None:
    g = step.graph
    allowzero = bool(step.attrs.get("allowzero", 0))
    if step.has(1) and step.node.input[1] in g.syms:
        target = _symbolic_target(step)
    elif g.opset < 5:
        target = _ints(step.attrs.get("shape", []))
    else:
        target = _ints(step.required(1, "shape"))
        batch = step.shape(0)[:1] == (None,)
        if g.fixed_batch is not None and target[:1] == [g.fixed_batch] and batch:
            # exported with a static batch B: x.view(x.size(0), -1) folds to
            # [B, -1]; the leading B is the batch axis, kept as a 0 would
            target[0] = 0
    step.add(Reshape(step.name(), shape=target, allowzero=allowzero and 0 in target))


@op("Transpose")
def transpose(step: Step) -> None:
    perm = step.attrs.get("perm")
    step.add(Transpose(step.name(), perm=None if perm is None else list(perm)))


def _axes(step: Step, what: str = "axes") -> list[int] | None:
    """Axes given as an attribute (older opsets) or as input 1."""
    if "axes" in step.attrs:
        return [int(v) for v in step.attrs["axes"]]
    value = step.const(1, what, required=False)
    return None if value is None else _ints(value)


@op("Squeeze")
def squeeze(step: Step) -> None:
    step.add(Squeeze(step.name(), axes=_axes(step)))


@op("Unsqueeze")
def unsqueeze(step: Step) -> None:
    axes = _axes(step)
    if axes is None:
        raise UsageError(f"{step.where}: missing axes")
    step.add(Unsqueeze(step.name(), axes=axes))


@op("Concat")
def concat(step: Step) -> None:
    inputs = [step.data(i) for i in range(len(step.node.input)) if step.has(i)]
    step.add(Concat(step.name(), axis=int(step.attrs.get("axis", 0))), inputs)


def _fold_bias(step: Step, c: np.ndarray) -> bool:
    """Add a constant ``c`` to the conv or bias-less MatMul/Gemm before (True: done)."""
    found = step.sole_producer(0)
    if found is None:
        return False
    index, node = found
    prev = node.layer
    c = np.asarray(c, np.float64)
    if isinstance(prev, Dense) and prev.bias is None and not prev.transpose_input:
        n = prev.weight.shape[0]
        if c.size in (1, n) and (c.ndim <= 1 or c.shape[:-1] == (1,) * (c.ndim - 1)):
            bias = np.broadcast_to(c.reshape(-1), (n,))
            step.replace(index, Dense(prev.name, prev.weight, bias))
            return True
    if isinstance(prev, Conv2D):
        k = prev.weight.shape[0]
        per_channel = c.ndim in (3, 4) and c.shape[-2:] == (1, 1) and c.size == k
        if c.size == 1 or (per_channel and (c.ndim == 3 or c.shape[0] == 1)):
            extra = np.broadcast_to(c.reshape(-1), (k,))
            bias = extra if prev.bias is None else prev.bias + extra
            step.replace(index, conv_like(prev, prev.weight, bias))
            return True
    return False


def _binary(step: Step, cls: type[Layer]) -> None:
    value = step.graph.consts.get(step.node.input[1])
    if cls is Add and value is not None and not step.is_const(0) and _fold_bias(step, value):
        return
    step.add(cls(step.name()), [step.data(0), step.data(1)])


@op("Add")
def add(step: Step) -> None:
    _binary(step, Add)


@op("Sub")
def sub(step: Step) -> None:
    _binary(step, Sub)


@op("Mul")
def mul(step: Step) -> None:
    _binary(step, Mul)


@op("Div")
def div(step: Step) -> None:
    _binary(step, Div)


@op("Sum")
def sum_(step: Step) -> None:
    inputs = [step.data(i) for i in range(len(step.node.input)) if step.has(i)]
    step.add(Sum(step.name()), inputs)


@op("Gemm")
def gemm(step: Step) -> None:
    a = step.attrs
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = bool(a.get("transA", 0)), bool(a.get("transB", 0))
    c = step.const(2, "C", required=False) if step.is_const(2) else None
    if step.is_const(1) and not step.is_const(0) and (not step.has(2) or c is not None):
        b = np.asarray(step.required(1, "B"))
        weight = b if trans_b else b.T
        if alpha != 1:
            weight = weight.astype(np.float64) * alpha
        n = weight.shape[0]
        cc = None if c is None else np.asarray(c, np.float64)
        if b.ndim == 2 and (
            cc is None or (cc.ndim <= 1 and cc.size in (1, n)) or cc.shape == (1, n)
        ):
            bias = None if cc is None else np.broadcast_to(cc.reshape(-1), (n,)) * beta
            step.add(Dense(step.name(), weight, bias, transpose_input=trans_a))
            return
    layer = Gemm(step.name(), alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    inputs = [step.data(i) for i in range(3) if step.has(i)]
    step.add(layer, inputs)


@op("MatMul")
def matmul(step: Step) -> None:
    if step.is_const(1) and not step.is_const(0):
        b = step.required(1, "B")
        if b.ndim == 2:
            step.add(Dense(step.name(), np.asarray(b).T))
            return
    step.add(MatMul(step.name()), [step.data(0), step.data(1)])


@op("Pad")
def pad(step: Step) -> None:
    rank = len(step.shape(0))
    a = step.attrs
    if step.graph.opset < 11:
        pads, value = _ints(a.get("pads", [])), float(a.get("value", 0.0))
    else:
        pads = _ints(step.required(1, "pads"))
        v = step.const(2, "constant_value", required=False)
        value = 0.0 if v is None or np.asarray(v).size == 0 else float(np.asarray(v).reshape(-1)[0])
        axes = step.const(3, "axes", required=False)
        if axes is not None:
            full = [0] * (2 * rank)
            chosen = [ax + rank if ax < 0 else ax for ax in _ints(axes)]
            for k, ax in enumerate(chosen):
                full[ax], full[ax + rank] = pads[k], pads[k + len(chosen)]
            pads = full
    layer = Pad(step.name(), pads=pads, mode=_str(a.get("mode", "constant")), value=value)
    step.add(layer)


def _resize_values(step: Step) -> tuple[Any, Any, Any]:
    """(roi, scales, sizes) of a Resize node (opset 10: only scales, as input 1)."""
    if step.graph.opset < 11:
        return None, step.required(1, "scales"), None
    roi = step.const(1, "roi", required=False)
    scales = step.const(2, "scales", required=False)
    sizes = step.const(3, "sizes", required=False)
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    if roi is not None and np.asarray(roi).size == 0:
        roi = None
    return roi, scales, sizes


@op("Resize")
def resize(step: Step) -> None:
    a = step.attrs
    roi, scales, sizes = _resize_values(step)
    legacy = step.graph.opset < 11
    coordinates = (
        "asymmetric" if legacy else _str(a.get("coordinate_transformation_mode", "half_pixel"))
    )
    layer = Resize(
        step.name(),
        mode=_str(a.get("mode", "nearest")),
        scales=None if scales is None else [float(v) for v in np.asarray(scales).reshape(-1)],
        sizes=None if sizes is None else _ints(sizes),
        axes=None if "axes" not in a else [int(v) for v in a["axes"]],
        coordinate_transformation_mode=coordinates,
        nearest_mode="floor" if legacy else _str(a.get("nearest_mode", "round_prefer_floor")),
        cubic_coeff_a=float(a.get("cubic_coeff_a", -0.75)),
        exclude_outside=bool(a.get("exclude_outside", 0)),
        extrapolation_value=float(a.get("extrapolation_value", 0.0)),
        antialias=bool(a.get("antialias", 0)),
        keep_aspect_ratio_policy=_str(a.get("keep_aspect_ratio_policy", "stretch")),
        roi=None if roi is None else [float(v) for v in np.asarray(roi).reshape(-1)],
    )
    step.add(layer)


@op("Upsample")
def upsample(step: Step) -> None:
    a = step.attrs
    scales = a.get("scales") if "scales" in a else step.required(1, "scales")
    layer = Resize(
        step.name(),
        mode=_str(a.get("mode", "nearest")),
        scales=[float(v) for v in np.asarray(scales).reshape(-1)],
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    step.add(layer)


@op("ReduceMean")
def reduce_mean(step: Step) -> None:
    a = step.attrs
    layer = ReduceMean(
        step.name(),
        axes=_axes(step),
        keepdims=bool(a.get("keepdims", 1)),
        noop_with_empty_axes=bool(a.get("noop_with_empty_axes", 0)),
    )
    step.add(layer)
