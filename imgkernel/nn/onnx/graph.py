"""Walking a sequential ONNX graph: the conversion state, and the node being converted.

:class:`Graph` follows the chain of data tensors from the graph input to its
output, hands every node to the function registered for its ``op_type``
(:data:`OPS`, filled by :mod:`imgkernel.nn.onnx.ops` and
:mod:`imgkernel.nn.onnx.shape_ops`) and collects the layers they add. A
:class:`Step` is one node with the helpers an operator function needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import Dense, Flatten, Layer, Reshape, Shape

OpFunction = Callable[["Step"], None]

#: Operators on the data chain: op_type -> function adding the node's layer(s).
OPS: dict[str, OpFunction] = {}
#: Operators off the chain: constants and computations of shape values.
SIDE_OPS: dict[str, OpFunction] = {}


def op(*op_types: str, side: bool = False) -> Callable[[OpFunction], OpFunction]:
    """Register the decorated function as the converter of ``op_types``."""

    def register(function: OpFunction) -> OpFunction:
        for name in op_types:
            (SIDE_OPS if side else OPS)[name] = function
        return function

    return register


_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def clean_name(name: str, fallback: str) -> str:
    """A layer name safe as an npz entry prefix."""
    cleaned = _NAME_RE.sub("_", name).strip("_./")
    return cleaned or fallback


def keeps_batch_axis(layer: Layer) -> bool:
    """Whether ``layer`` keeps its input's axis 0 as its output's axis 0."""
    if isinstance(layer, Flatten):
        return layer.axis == 1
    if isinstance(layer, Reshape):
        return layer.shape[0] == 0
    if isinstance(layer, Dense):
        return not layer.transpose_input
    return True


class Graph:
    """The state of one conversion: constants, layers so far, tensor shapes, shape values."""

    def __init__(self, model_proto: Any, onnx: Any, numpy_helper: Any, fold: bool) -> None:
        self.onnx, self.nh, self.fold = onnx, numpy_helper, fold
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
        self.input_shape: Shape = ()
        #: shape of each data tensor so far, and whether its axis 0 is the batch
        self.tensor_shapes: dict[str, Shape] = {}
        self.batch_axis: dict[str, bool] = {}
        #: shape values computed in the graph (Shape, Gather, ...): a list of
        #: dims (int, BATCH or UNKNOWN) or, for a scalar, a 1-tuple
        self.syms: dict[str, list[Any] | tuple[Any]] = {}
        #: the graph input's batch size if it is fixed
        self.fixed_batch: int | None = None

    @property
    def shape(self) -> Shape:
        """The shape of the chain's current tensor."""
        return self.shapes[-1] if self.shapes else self.input_shape

    def run(self, input_shape: Sequence[int] | None) -> tuple[list[Layer], tuple[int, int, int]]:
        """Convert every node; the layers and the (C, H, W) input."""
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UsageError(
                f"the graph must have exactly one (non-constant) input, got {len(inputs)}"
            )
        if len(self.graph.output) != 1:
            raise UsageError(
                f"the graph must have exactly one output, got {len(self.graph.output)}"
            )
        dims = self._input_dims(inputs[0], input_shape)
        self.input_shape = (None, *dims)
        current = inputs[0].name
        self.tensor_shapes[current] = self.input_shape
        self.batch_axis[current] = True
        for index, node in enumerate(self.graph.node):
            current = self._convert(Step(self, node, index), current)
        if self.graph.output[0].name != current:
            raise UsageError(
                f"the graph is not sequential: its output {self.graph.output[0].name!r} is not "
                f"the last node's output {current!r}"
            )
        return self.layers, dims

    def _convert(self, step: Step, current: str) -> str:
        """Convert one node; the name of the chain's tensor after it."""
        node = step.node
        if node.domain not in ("", "ai.onnx"):
            raise UsageError(f"{step.where}: unsupported operator {node.domain}.{node.op_type}")
        if node.op_type in SIDE_OPS:
            SIDE_OPS[node.op_type](step)
            return current
        if node.op_type not in OPS:
            raise UsageError(
                f"{step.where}: unsupported operator {node.op_type} (supported: {', '.join(OPS)})"
            )
        data_inputs = [i for i in node.input if i and i not in self.consts and i not in self.syms]
        if data_inputs != [current]:
            raise UsageError(
                f"{step.where}: the graph is not sequential (inputs "
                f"{list(node.input)}, expected the output of the previous node {current!r})"
            )
        n_layers = len(self.layers)
        OPS[node.op_type](step)
        extra = [o for o in node.output[1:] if o]
        if extra and any(self._used(o) for o in extra):
            raise UsageError(f"{step.where}: only the first output may be used")
        keeps = self.batch_axis[current]
        if len(self.layers) > n_layers:
            keeps = keeps and keeps_batch_axis(self.layers[-1])
        self.tensor_shapes[node.output[0]] = self.shape
        self.batch_axis[node.output[0]] = keeps
        return str(node.output[0])

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
            return (dims[0], dims[1], dims[2])
        shape = [d.dim_value if d.HasField("dim_value") else None for d in graph_dims]
        if len(shape) != 4:
            raise UsageError(
                f"the graph input {value_info.name!r} must be (N, C, H, W), got rank {len(shape)}"
            )
        c, h, w = shape[1:]
        if c is None or h is None or w is None or min(c, h, w) <= 0:
            raise UsageError(
                f"the graph input {value_info.name!r} has dynamic C/H/W {shape}; "
                "give input_shape=(C, H, W)"
            )
        return (int(c), int(h), int(w))


@dataclass
class Step:
    """One node being converted, with what its operator function needs."""

    graph: Graph
    node: Any
    index: int

    @property
    def where(self) -> str:
        return f"node {self.index} ({self.node.name or '<unnamed>'!r}, {self.node.op_type})"

    @cached_property
    def attrs(self) -> dict[str, Any]:
        get = self.graph.onnx.helper.get_attribute_value
        return {a.name: get(a) for a in self.node.attribute}

    @property
    def shape(self) -> Shape:
        return self.graph.shape

    def const(self, pos: int, what: str, required: bool = True) -> np.ndarray | None:
        """Input ``pos`` of the node, which must be a constant (None if absent and optional)."""
        if pos >= len(self.node.input) or self.node.input[pos] == "":
            if required:
                raise UsageError(f"{self.where}: missing input {what}")
            return None
        name = self.node.input[pos]
        if name not in self.graph.consts:
            raise UsageError(
                f"{self.where}: input {what} ({name!r}) must be a constant "
                "initializer (only sequential graphs are supported)"
            )
        return self.graph.consts[name]

    def required(self, pos: int, what: str) -> np.ndarray:
        value = self.const(pos, what)
        assert value is not None
        return value

    def spatial(self) -> tuple[int, int]:
        """(H, W) of the current tensor, which must be (N, C, H, W)."""
        s = self.shape
        if len(s) != 4:
            raise UsageError(f"{self.where}: needs an (N, C, H, W) input, got rank {len(s)}")
        return int(s[2] or 0), int(s[3] or 0)

    def name(self) -> str:
        """A new unique layer name from the node's name."""
        base = clean_name(self.node.name, f"{self.node.op_type.lower()}{self.index}")
        name, k = base, 1
        while name in self.graph.names:
            k += 1
            name = f"{base}_{k}"
        self.graph.names.add(name)
        return name

    def add(self, layer: Layer) -> None:
        """Append ``layer`` to the model, checking it fits the current shape."""
        try:
            out = layer.output_shape(self.shape)
        except UsageError as exc:
            raise UsageError(f"{self.where}: {exc}") from None
        self.graph.layers.append(layer)
        self.graph.shapes.append(out)

    def replace_last(self, layer: Layer) -> None:
        """Replace the previous layer (a bias or a batchnorm folded into it)."""
        self.graph.layers.pop()
        self.graph.shapes.pop()
        self.add(layer)

    @property
    def previous(self) -> Layer | None:
        return self.graph.layers[-1] if self.graph.layers else None
