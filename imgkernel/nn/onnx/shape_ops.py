"""ONNX nodes off the data path: constants, and shape values computed in the graph.

The shape of a tensor whose dims are all known is a constant (and what is
computed from it is folded). With a dynamic batch, PyTorch exports
``x.view(x.size(0), -1)`` as Shape -> Gather(0) -> Unsqueeze -> Concat with
constants -> Reshape. These nodes are followed symbolically (the batch size
is :data:`BATCH`) and accepted only in such a computation of a Reshape target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.onnx.graph import op
from imgkernel.nn.onnx.step import Step

FLATTEN_HINT = "use torch.flatten(x, 1) or export with a static batch"


class _Batch:
    """The batch size in a shape value computed in the graph."""

    def __repr__(self) -> str:
        return "N"


class _Unknown:
    """A dimension of unknown size other than the batch axis."""

    def __repr__(self) -> str:
        return "?"


BATCH = _Batch()
UNKNOWN = _Unknown()


@op("Constant", side=True)
def constant(step: Step) -> None:
    attrs, out = step.attrs, step.node.output[0]
    if "value" in attrs:
        step.graph.consts[out] = step.graph.nh.to_array(attrs["value"])
        return
    for key in ("value_float", "value_int"):
        if key in attrs:
            step.graph.consts[out] = np.array(attrs[key])
            return
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            step.graph.consts[out] = np.array(list(attrs[key]))
            return
    raise UsageError(f"{step.where}: unsupported Constant attribute {list(attrs)}")


def _refused(step: Step) -> UsageError:
    return UsageError(
        f"{step.where}: {step.node.op_type} is supported only in a Reshape target computed "
        f"from the batch size (Shape -> Gather(0) -> Unsqueeze -> Concat); {FLATTEN_HINT}"
    )


def _inputs(step: Step) -> list[str]:
    """The node's inputs: shape values and constants, at least one shape value."""
    g = step.graph
    inputs = [i for i in step.node.input if i]
    if any(i not in g.syms and i not in g.consts for i in inputs):
        raise _refused(step)
    if not any(i in g.syms for i in inputs):
        raise _refused(step)
    return inputs


@op("Shape", side=True)
def shape(step: Step) -> None:
    g = step.graph
    inputs = [i for i in step.node.input if i]
    if len(inputs) != 1 or inputs[0] in g.syms:
        raise _refused(step)
    dims: list[Any] = [
        (BATCH if i == 0 else UNKNOWN) if d is None else int(d) for i, d in enumerate(step.shape(0))
    ]
    start, end = int(step.attrs.get("start", 0)), step.attrs.get("end")
    dims = dims[start : None if end is None else int(end)]
    if all(isinstance(d, int) for d in dims):
        g.consts[step.node.output[0]] = np.array(dims, np.int64)
    else:
        g.syms[step.node.output[0]] = dims


@op("Gather", side=True)
def gather(step: Step) -> None:
    g = step.graph
    inputs = _inputs(step)
    value = g.syms.get(inputs[0])
    idx = g.consts.get(inputs[1]) if len(inputs) == 2 else None
    if not isinstance(value, list) or idx is None or int(step.attrs.get("axis", 0)) != 0:
        raise _refused(step)
    idx = np.asarray(idx)
    try:
        picked = [value[int(i)] for i in idx.reshape(-1)]
    except (IndexError, ValueError, TypeError):
        raise _refused(step) from None
    g.syms[step.node.output[0]] = (picked[0],) if idx.ndim == 0 else picked


@op("Unsqueeze", side=True)
def unsqueeze(step: Step) -> None:
    g = step.graph
    inputs = _inputs(step)
    value = g.syms.get(inputs[0])
    if g.opset >= 13:
        axes = g.consts.get(inputs[1]) if len(inputs) == 2 else None
    else:
        axes = step.attrs.get("axes")
    if (
        not isinstance(value, tuple)
        or axes is None
        or [int(v) for v in np.asarray(axes).reshape(-1)] not in ([0], [-1])
    ):
        raise _refused(step)
    g.syms[step.node.output[0]] = [value[0]]


@op("Concat", side=True)
def concat(step: Step) -> None:
    """Concat of 1-D shape values and integer constants."""
    g = step.graph
    inputs = _inputs(step)
    if int(step.attrs.get("axis", 0)) not in (0, -1):
        raise _refused(step)
    out: list[Any] = []
    for name in inputs:
        if name in g.syms:
            part = g.syms[name]
            if not isinstance(part, list):
                raise _refused(step)
            out.extend(part)
        else:
            c = np.asarray(g.consts[name])
            if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
                raise _refused(step)
            out.extend(int(v) for v in c)
    g.syms[step.node.output[0]] = out
