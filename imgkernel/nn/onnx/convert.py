"""Convert a sequential ONNX CNN (as PyTorch or Keras export it) to a :class:`Model`.

``onnx`` is an optional dependency, imported only when :func:`convert_onnx`
runs. Supported operators (default domain): Conv, Relu, LeakyRelu, Sigmoid,
Tanh, Clip, Softmax, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
Flatten, Reshape (to 2-D), Gemm, MatMul (+ Add), Add of a per-channel
constant after Conv, BatchNormalization, Dropout and Identity.

Reshape's target is a constant, or computed from the batch size as PyTorch
exports ``x.view(x.size(0), -1)`` with a dynamic batch: Shape -> Gather(0) ->
Unsqueeze -> Concat with constants -> Reshape (Shape, Gather, Unsqueeze and
Concat are accepted only in such a computation). With a static batch B the
exporter folds that target to ``[B, -1]``; a leading B then keeps the batch
axis (as 0 would), so the model runs on any batch size.

The graph must be a chain: each node takes the previous node's output (plus
constant initializers) and the last output is the graph's only output.
Constant nodes are accepted as a source of constants.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.core.windows import resolve_padding
from imgkernel.errors import UsageError
from imgkernel.nn.model import (
    AvgPool,
    BatchNorm,
    Clip,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    InputSpec,
    Layer,
    LeakyReLU,
    MaxPool,
    Model,
    ReLU,
    Reshape,
    Shape,
    Sigmoid,
    Softmax,
    Tanh,
    clean_name,
)

SUPPORTED = (
    "Conv",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Add",
    "BatchNormalization",
    "Dropout",
    "Identity",
    "Constant",
)

#: Operators accepted only as a computation of a Reshape target from the batch size.
SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Concat")

_FLATTEN_HINT = "use torch.flatten(x, 1) or export with a static batch"

_FLOAT_MAX = 3.4028234663852886e38


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


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UsageError(
            "ONNX import needs the onnx package: pip install 'imgkernel[onnx]'"
        ) from None
    return onnx, numpy_helper


def _pads(
    auto_pad: str,
    pads: Sequence[int] | None,
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    where: str,
) -> str | tuple[int, int, int, int]:
    """ONNX auto_pad/pads -> imgkernel padding (top, bottom, left, right)."""
    if auto_pad in ("", "NOTSET"):
        if not pads:
            return (0, 0, 0, 0)
        if len(pads) != 4:
            raise UsageError(f"{where}: pads must have 4 values for a 2-D op, got {list(pads)}")
        return (int(pads[0]), int(pads[2]), int(pads[1]), int(pads[3]))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        top, bot, left, right = resolve_padding("same", in_hw, k_hw, stride, dilation)
        if auto_pad == "SAME_LOWER":  # the odd extra pad goes at the start
            top, bot, left, right = bot, top, right, left
        return (top, bot, left, right)
    raise UsageError(f"{where}: unknown auto_pad {auto_pad!r}")


class _Converter:
    def __init__(self, model_proto: Any, numpy_helper: Any, onnx: Any) -> None:
        self.onnx = onnx
        self.nh = numpy_helper
        self.graph = model_proto.graph
        self.opset = 1
        for imp in model_proto.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in self.graph.initializer
        }
        self.layers: list[Layer] = []
        self.shapes: list[Shape] = []
        self.names: set[str] = set()
        self.fold = True
        #: shape of each data tensor so far, and whether its axis 0 is the batch
        self.tensor_shapes: dict[str, Shape] = {}
        self.batch_axis: dict[str, bool] = {}
        #: shape values computed in the graph (Shape, Gather, ...): a list of
        #: dims (int, BATCH or UNKNOWN) or, for a scalar, a 1-tuple
        self.syms: dict[str, list[Any] | tuple[Any]] = {}
        #: the graph input's batch size if it is fixed
        self.fixed_batch: int | None = None

    # -- helpers ------------------------------------------------------------
    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def where(self, node: Any, index: int) -> str:
        return f"node {index} ({node.name or '<unnamed>'!r}, {node.op_type})"

    def const(
        self, node: Any, index: int, pos: int, what: str, required: bool = True
    ) -> np.ndarray | None:
        if pos >= len(node.input) or node.input[pos] == "":
            if required:
                raise UsageError(f"{self.where(node, index)}: missing input {what}")
            return None
        name = node.input[pos]
        if name not in self.consts:
            raise UsageError(
                f"{self.where(node, index)}: input {what} ({name!r}) must be a constant "
                "initializer (only sequential graphs are supported)"
            )
        return self.consts[name]

    def shape(self) -> Shape:
        return self.shapes[-1] if self.shapes else self.input_shape

    def add(self, layer: Layer, node: Any, index: int) -> None:
        try:
            out = layer.output_shape(self.shape())
        except UsageError as exc:
            raise UsageError(f"{self.where(node, index)}: {exc}") from None
        self.layers.append(layer)
        self.shapes.append(out)

    def name(self, node: Any, index: int) -> str:
        base = clean_name(node.name, f"{node.op_type.lower()}{index}")
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    # -- conversion ---------------------------------------------------------
    def run(self, input_shape: Sequence[int] | None) -> tuple[list[Layer], tuple[int, int, int]]:
        graph = self.graph
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UsageError(
                f"the graph must have exactly one (non-constant) input, got {len(inputs)}"
            )
        if len(graph.output) != 1:
            raise UsageError(f"the graph must have exactly one output, got {len(graph.output)}")
        dims = self._input_dims(inputs[0], input_shape)
        self.input_shape: Shape = (None, *dims)
        current = inputs[0].name
        self.tensor_shapes[current] = self.input_shape
        self.batch_axis[current] = True
        for index, node in enumerate(graph.node):
            if node.domain not in ("", "ai.onnx"):
                raise UsageError(
                    f"{self.where(node, index)}: unsupported operator {node.domain}.{node.op_type}"
                )
            op = node.op_type
            if op in SHAPE_OPS:
                self._shape_op(node, index)
                continue
            if op not in SUPPORTED:
                raise UsageError(
                    f"{self.where(node, index)}: unsupported operator {op} "
                    f"(supported: {', '.join(s for s in SUPPORTED if s != 'Constant')})"
                )
            if op == "Constant":
                self._constant(node, index)
                continue
            data_inputs = [
                i for i in node.input if i and i not in self.consts and i not in self.syms
            ]
            if data_inputs != [current]:
                raise UsageError(
                    f"{self.where(node, index)}: the graph is not sequential (inputs "
                    f"{list(node.input)}, expected the output of the previous node {current!r})"
                )
            n_layers = len(self.layers)
            getattr(self, f"op_{op}")(node, index)
            extra = [o for o in node.output[1:] if o]
            if extra and any(self._used(o) for o in extra):
                raise UsageError(f"{self.where(node, index)}: only the first output may be used")
            keeps = self.batch_axis[current]
            if len(self.layers) > n_layers:
                keeps = keeps and _keeps_batch_axis(self.layers[-1])
            current = node.output[0]
            self.tensor_shapes[current] = self.shape()
            self.batch_axis[current] = keeps
        if graph.output[0].name != current:
            raise UsageError(
                f"the graph is not sequential: its output {graph.output[0].name!r} is not "
                f"the last node's output {current!r}"
            )
        return self.layers, dims

    def _used(self, name: str) -> bool:
        return any(name in n.input for n in self.graph.node) or any(
            o.name == name for o in self.graph.output
        )

    def _input_dims(self, value_info: Any, override: Sequence[int] | None) -> tuple[int, int, int]:
        graph_dims = value_info.type.tensor_type.shape.dim
        if graph_dims and graph_dims[0].HasField("dim_value") and graph_dims[0].dim_value > 0:
            self.fixed_batch = int(graph_dims[0].dim_value)
        if override is not None:
            dims = tuple(int(d) for d in override)
            if len(dims) == 4:
                dims = dims[1:]
            if len(dims) != 3:
                raise UsageError(f"input shape must be (C, H, W), got {override!r}")
            return dims
        t = value_info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if len(shape) != 4:
            raise UsageError(
                f"the graph input {value_info.name!r} must be (N, C, H, W), got rank {len(shape)}"
            )
        if any(d is None or d <= 0 for d in shape[1:]):
            raise UsageError(
                f"the graph input {value_info.name!r} has dynamic C/H/W {shape}; "
                "give input_shape=(C, H, W)"
            )
        return (int(shape[1]), int(shape[2]), int(shape[3]))  # type: ignore[arg-type]

    def _constant(self, node: Any, index: int) -> None:
        attrs = self.attrs(node)
        if "value" in attrs:
            self.consts[node.output[0]] = self.nh.to_array(attrs["value"])
            return
        for key in ("value_float", "value_int"):
            if key in attrs:
                self.consts[node.output[0]] = np.array(attrs[key])
                return
        for key in ("value_floats", "value_ints"):
            if key in attrs:
                self.consts[node.output[0]] = np.array(list(attrs[key]))
                return
        raise UsageError(f"{self.where(node, index)}: unsupported Constant attribute {list(attrs)}")

    def _spatial(self, node: Any, index: int) -> tuple[int, int]:
        s = self.shape()
        if len(s) != 4:
            raise UsageError(
                f"{self.where(node, index)}: needs an (N, C, H, W) input, got rank {len(s)}"
            )
        return int(s[2]), int(s[3])  # type: ignore[arg-type]

    def op_Conv(self, node: Any, index: int) -> None:
        w = self.const(node, index, 1, "W")
        b = self.const(node, index, 2, "B", required=False)
        assert w is not None
        where = self.where(node, index)
        if w.ndim != 4:
            raise UsageError(f"{where}: only 2-D convolution is supported (W is {w.ndim}-D)")
        a = self.attrs(node)
        k_hw = (w.shape[2], w.shape[3])
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != k_hw:
            raise UsageError(f"{where}: kernel_shape {list(a['kernel_shape'])} != W shape {k_hw}")
        stride = tuple(a.get("strides", (1, 1)))
        dilation = tuple(a.get("dilations", (1, 1)))
        padding = _pads(
            _str(a.get("auto_pad", "NOTSET")),
            a.get("pads"),
            self._spatial(node, index),
            k_hw,
            stride,
            dilation,
            where,
        )
        layer = Conv2D(
            self.name(node, index),
            w,
            b,
            stride=list(stride),
            padding=padding,
            dilation=list(dilation),
            groups=int(a.get("group", 1)),
        )
        self.add(layer, node, index)

    def _pool(self, node: Any, index: int, cls: type[Layer]) -> None:
        a = self.attrs(node)
        where = self.where(node, index)
        if "kernel_shape" not in a or len(a["kernel_shape"]) != 2:
            raise UsageError(f"{where}: needs a 2-D kernel_shape")
        size = tuple(a["kernel_shape"])
        stride = tuple(a.get("strides", (1, 1)))
        dilation = tuple(a.get("dilations", (1, 1)))
        if int(a.get("storage_order", 0)) not in (0, 1):
            raise UsageError(f"{where}: bad storage_order")
        padding = _pads(
            _str(a.get("auto_pad", "NOTSET")),
            a.get("pads"),
            self._spatial(node, index),
            size,
            stride,
            dilation,
            where,
        )
        kwargs: dict[str, Any] = {
            "size": list(size),
            "stride": list(stride),
            "padding": padding,
            "dilation": list(dilation),
            "ceil_mode": bool(a.get("ceil_mode", 0)),
        }
        if cls is AvgPool:
            kwargs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        self.add(cls(self.name(node, index), **kwargs), node, index)

    def op_MaxPool(self, node: Any, index: int) -> None:
        self._pool(node, index, MaxPool)

    def op_AveragePool(self, node: Any, index: int) -> None:
        self._pool(node, index, AvgPool)

    def op_GlobalAveragePool(self, node: Any, index: int) -> None:
        self.add(GlobalAvgPool(self.name(node, index)), node, index)

    def op_GlobalMaxPool(self, node: Any, index: int) -> None:
        self.add(GlobalMaxPool(self.name(node, index)), node, index)

    def op_Relu(self, node: Any, index: int) -> None:
        self.add(ReLU(self.name(node, index)), node, index)

    def op_LeakyRelu(self, node: Any, index: int) -> None:
        alpha = float(self.attrs(node).get("alpha", 0.01))
        self.add(LeakyReLU(self.name(node, index), alpha=alpha), node, index)

    def op_Sigmoid(self, node: Any, index: int) -> None:
        self.add(Sigmoid(self.name(node, index)), node, index)

    def op_Tanh(self, node: Any, index: int) -> None:
        self.add(Tanh(self.name(node, index)), node, index)

    def op_Clip(self, node: Any, index: int) -> None:
        lo: float | None
        hi: float | None
        if self.opset < 11:
            a = self.attrs(node)
            lo, hi = a.get("min"), a.get("max")
        else:
            mn = self.const(node, index, 1, "min", required=False)
            mx = self.const(node, index, 2, "max", required=False)
            lo = None if mn is None else float(np.asarray(mn).reshape(-1)[0])
            hi = None if mx is None else float(np.asarray(mx).reshape(-1)[0])
        lo = None if lo is None or lo <= -_FLOAT_MAX else float(lo)
        hi = None if hi is None or hi >= _FLOAT_MAX else float(hi)
        self.add(Clip(self.name(node, index), min=lo, max=hi), node, index)

    def op_Softmax(self, node: Any, index: int) -> None:
        rank = len(self.shape())
        if self.opset >= 13:
            axis = int(self.attrs(node).get("axis", -1))
        else:
            # opset < 13: softmax of the input coerced to 2-D at `axis`; the
            # same as a one-axis softmax only if it is the last non-1 axis.
            axis = int(self.attrs(node).get("axis", 1))
            a = axis + rank if axis < 0 else axis
            tail = self.shape()[a + 1 :]
            if any(d != 1 for d in tail):
                raise UsageError(
                    f"{self.where(node, index)}: Softmax before opset 13 over axes {a}.. of a "
                    f"rank-{rank} tensor is not supported (flatten first)"
                )
        self.add(Softmax(self.name(node, index), axis=axis), node, index)

    def op_Flatten(self, node: Any, index: int) -> None:
        axis = int(self.attrs(node).get("axis", 1))
        self.add(Flatten(self.name(node, index), axis=axis), node, index)

    def op_Reshape(self, node: Any, index: int) -> None:
        where = self.where(node, index)
        data = node.input[0]
        if len(node.input) > 1 and node.input[1] in self.syms:
            target = self._computed_target(node, index, self.syms[node.input[1]])
        else:
            shape = self.const(node, index, 1, "shape")
            assert shape is not None
            target = [int(v) for v in np.asarray(shape).reshape(-1)]
            if len(target) != 2:
                raise UsageError(f"{where}: only reshapes to 2-D are supported, got shape {target}")
            if int(self.attrs(node).get("allowzero", 0)) and 0 in target:
                raise UsageError(f"{where}: Reshape with allowzero=1 and a 0 dim is not supported")
            if (
                self.fixed_batch is not None
                and target[0] == self.fixed_batch
                and self.batch_axis.get(data, False)
            ):
                # exported with a static batch B: x.view(x.size(0), -1) folds to
                # [B, -1]; the leading B is the batch axis, kept as a 0 would
                target[0] = 0
        self.add(Reshape(self.name(node, index), shape=target), node, index)

    def _computed_target(self, node: Any, index: int, value: list[Any] | tuple[Any]) -> list[int]:
        """A Reshape target computed from the batch size -> [0, n] (flatten to 2-D)."""
        where = self.where(node, index)
        dims = list(value)
        ok = (
            isinstance(value, list)
            and len(dims) == 2
            and dims[0] is BATCH
            and isinstance(dims[1], int)
            and self.batch_axis.get(node.input[0], False)
        )
        if not ok:
            raise UsageError(
                f"{where}: a Reshape target computed in the graph must be [batch size, "
                f"constant], got {dims}; {_FLATTEN_HINT}"
            )
        return [0, int(dims[1])]

    # -- shape computations (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) --
    def _shape_op(self, node: Any, index: int) -> None:
        op = node.op_type
        where = self.where(node, index)
        hint = (
            f"{where}: {op} is supported only in a Reshape target computed from the batch "
            f"size (Shape -> Gather(0) -> Unsqueeze -> Concat); {_FLATTEN_HINT}"
        )
        inputs = [i for i in node.input if i]
        if op == "Shape":
            if len(inputs) != 1 or inputs[0] not in self.tensor_shapes:
                raise UsageError(hint)
            src = inputs[0]
            shape = self.tensor_shapes[src]
            dims: list[Any] = [
                (BATCH if i == 0 and self.batch_axis[src] else UNKNOWN) if d is None else int(d)
                for i, d in enumerate(shape)
            ]
            a = self.attrs(node)
            start, end = int(a.get("start", 0)), a.get("end")
            self.syms[node.output[0]] = dims[start : None if end is None else int(end)]
            return
        if any(i not in self.syms and i not in self.consts for i in inputs) or not any(
            i in self.syms for i in inputs
        ):
            raise UsageError(hint)
        a = self.attrs(node)
        if op == "Gather":
            value = self.syms.get(inputs[0])
            idx = self.consts.get(inputs[1]) if len(inputs) == 2 else None
            if not isinstance(value, list) or idx is None or int(a.get("axis", 0)) != 0:
                raise UsageError(hint)
            idx = np.asarray(idx)
            try:
                picked = [value[int(i)] for i in idx.reshape(-1)]
            except (IndexError, ValueError, TypeError):
                raise UsageError(hint) from None
            self.syms[node.output[0]] = (picked[0],) if idx.ndim == 0 else picked
            return
        if op == "Unsqueeze":
            value = self.syms.get(inputs[0])
            if self.opset >= 13:
                axes = self.consts.get(inputs[1]) if len(inputs) == 2 else None
            else:
                axes = a.get("axes")
            if (
                not isinstance(value, tuple)
                or axes is None
                or [int(v) for v in np.asarray(axes).reshape(-1)] not in ([0], [-1])
            ):
                raise UsageError(hint)
            self.syms[node.output[0]] = [value[0]]
            return
        # Concat of 1-D shape values and constants
        if int(a.get("axis", 0)) not in (0, -1):
            raise UsageError(hint)
        out: list[Any] = []
        for name in inputs:
            if name in self.syms:
                part = self.syms[name]
                if not isinstance(part, list):
                    raise UsageError(hint)
                out.extend(part)
            else:
                c = np.asarray(self.consts[name])
                if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
                    raise UsageError(hint)
                out.extend(int(v) for v in c)
        self.syms[node.output[0]] = out

    def op_Gemm(self, node: Any, index: int) -> None:
        a = self.attrs(node)
        where = self.where(node, index)
        if node.input[0] in self.consts:
            raise UsageError(f"{where}: the data must be Gemm's first input (A)")
        b = self.const(node, index, 1, "B")
        c = self.const(node, index, 2, "C", required=False)
        assert b is not None
        if b.ndim != 2:
            raise UsageError(f"{where}: B must be 2-D, got shape {b.shape}")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        weight = (b if int(a.get("transB", 0)) else b.T).astype(np.float64) * alpha
        bias = self._bias(c, weight.shape[0], where, beta)
        layer = Dense(
            self.name(node, index), weight, bias, transpose_input=bool(a.get("transA", 0))
        )
        self.add(layer, node, index)

    def _bias(
        self, c: np.ndarray | None, n: int, where: str, beta: float = 1.0
    ) -> np.ndarray | None:
        if c is None:
            return None
        c = np.asarray(c, dtype=np.float64)
        if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, n):
            raise UsageError(
                f"{where}: bias of shape {c.shape} must broadcast as ({n},) "
                "(a per-sample bias is not supported)"
            )
        return np.broadcast_to(c.reshape(-1), (n,)) * beta

    def op_MatMul(self, node: Any, index: int) -> None:
        where = self.where(node, index)
        if node.input[0] in self.consts:
            raise UsageError(f"{where}: the data must be MatMul's first input")
        b = self.const(node, index, 1, "B")
        assert b is not None
        if b.ndim != 2:
            raise UsageError(f"{where}: only a 2-D constant B is supported, got {b.shape}")
        self.add(Dense(self.name(node, index), b.T), node, index)

    def op_Add(self, node: Any, index: int) -> None:
        where = self.where(node, index)
        consts = [i for i in node.input if i in self.consts]
        if len(consts) != 1:
            raise UsageError(f"{where}: Add needs one constant input")
        c = np.asarray(self.consts[consts[0]], dtype=np.float64)
        prev = self.layers[-1] if self.layers else None
        if isinstance(prev, Dense) and prev.bias is None:
            bias = self._bias(c, prev.weight.shape[0], where)
            self._replace_last(
                Dense(prev.name, prev.weight, bias, transpose_input=prev.transpose_input),
                node,
                index,
            )
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
                add = np.broadcast_to(c.reshape(-1), (k,))
                bias = add if prev.bias is None else prev.bias + add
                self._replace_last(_conv_like(prev, prev.weight, bias), node, index)
                return
        raise UsageError(
            f"{where}: Add is supported only as the bias of a preceding MatMul or Conv "
            "(a constant per output feature/channel)"
        )

    def _replace_last(self, layer: Layer, node: Any, index: int) -> None:
        self.layers.pop()
        self.shapes.pop()
        self.add(layer, node, index)

    def op_BatchNormalization(self, node: Any, index: int) -> None:
        a = self.attrs(node)
        where = self.where(node, index)
        if int(a.get("training_mode", 0)):
            raise UsageError(f"{where}: training_mode=1 is not supported")
        arrays = [
            self.const(node, index, i, w)
            for i, w in enumerate(("X", "scale", "B", "mean", "var"))
            if i
        ]
        eps = float(a.get("epsilon", 1e-5))
        bn = BatchNorm(self.name(node, index), *arrays, epsilon=eps)
        prev = self.layers[-1] if self.layers else None
        if (
            self.fold
            and isinstance(prev, Conv2D)
            and bn.multiplier.shape[0] == prev.weight.shape[0]
        ):
            mul = np.asarray(arrays[0], np.float64) / np.sqrt(
                np.asarray(arrays[3], np.float64) + eps
            )
            shift = np.asarray(arrays[1], np.float64) - np.asarray(arrays[2], np.float64) * mul
            w = prev.weight.astype(np.float64) * mul[:, None, None, None]
            b0 = np.zeros(len(mul)) if prev.bias is None else prev.bias.astype(np.float64)
            self._replace_last(_conv_like(prev, w, b0 * mul + shift), node, index)
            return
        self.add(bn, node, index)

    def op_Dropout(self, node: Any, index: int) -> None:
        pass  # identity at inference

    def op_Identity(self, node: Any, index: int) -> None:
        pass


def _conv_like(prev: Conv2D, weight: np.ndarray, bias: np.ndarray | None) -> Conv2D:
    return Conv2D(
        prev.name,
        weight,
        bias,
        stride=list(prev.stride),
        padding=prev.padding,
        dilation=list(prev.dilation),
        groups=prev.groups,
    )


def _keeps_batch_axis(layer: Layer) -> bool:
    """Whether ``layer`` keeps its input's axis 0 as its output's axis 0."""
    if isinstance(layer, Flatten):
        return layer.axis == 1
    if isinstance(layer, Reshape):
        return layer.shape[0] == 0
    if isinstance(layer, Dense):
        return not layer.transpose_input
    return True


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def convert_onnx(
    path: str | os.PathLike[str] | Any,
    labels: Sequence[str] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    resize: str = "stretch",
    scale: float = 1 / 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    fold_batchnorm: bool = True,
    description: str = "",
) -> Model:
    """Convert an ONNX file (or a loaded ``ModelProto``) into a validated :class:`Model`.

    ``labels`` names the classes (their number must match the output);
    ``input_shape`` (C, H, W) overrides a dynamic graph input; ``resize``,
    ``scale``, ``mean`` and ``std`` fill the model's input spec (ONNX does not
    record how images were normalised). With ``fold_batchnorm`` a
    BatchNormalization right after a Conv is folded into its weights.
    """
    onnx, numpy_helper = _onnx()
    if hasattr(path, "graph"):
        proto = path
        source = "<ModelProto>"
    else:
        source = os.fspath(path)
        if not os.path.isfile(source):
            raise UsageError(f"no such ONNX file: {source!r}")
        try:
            proto = onnx.load(source)
        except Exception as exc:  # protobuf raises its own DecodeError
            raise UsageError(f"{source}: not an ONNX model ({type(exc).__name__}: {exc})") from None
        if not proto.graph.node:
            # protobuf parses many non-ONNX files as an empty message
            raise UsageError(f"{source}: not an ONNX model (no graph nodes)")
    conv = _Converter(proto, numpy_helper, onnx)
    conv.fold = fold_batchnorm
    try:
        layers, dims = conv.run(input_shape)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    c, h, w = dims
    if c not in (1, 3):
        raise UsageError(
            f"{source}: the input has {c} channels; only 1 (L) or 3 (RGB) are supported"
        )
    try:
        spec = InputSpec(
            channels=c,
            height=h,
            width=w,
            resize=resize,
            scale=scale,
            mean=list(mean) if mean is not None else [],
            std=list(std) if std is not None else [],
        )
        return Model(layers, labels, spec, description)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
