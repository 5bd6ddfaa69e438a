"""Walking an ONNX graph: the conversion state and the registry of operator functions.

:class:`Graph` visits the nodes in order. A node whose inputs are all
constants is folded into a constant (evaluated by ``onnx.reference``, so any
ONNX operator folds); a node computing a shape from a tensor's shape is
followed symbolically (:mod:`imgkernel.nn.onnx.shape_ops`); any other node is
handed to the function registered for its ``op_type`` (:data:`OPS`, filled by
:mod:`imgkernel.nn.onnx.ops` and :mod:`imgkernel.nn.onnx.tensor_ops`), which
adds imgkernel nodes through a :class:`~imgkernel.nn.onnx.step.Step`.

Tensors keep their ONNX names at the graph's inputs and outputs; a tensor in
between is named after the node that makes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.graph import Node, TensorSpec
from imgkernel.nn.layers import Layer, Shape
from imgkernel.nn.layers.attrs import fmt_shape

if TYPE_CHECKING:
    from imgkernel.nn.onnx.step import Step

OpFunction = Callable[["Step"], None]

#: Operators on data tensors: op_type -> function adding the node's layer(s).
OPS: dict[str, OpFunction] = {}
#: Operators on shape values computed in the graph (and Constant).
SIDE_OPS: dict[str, OpFunction] = {}


def op(*op_types: str, side: bool = False) -> Callable[[OpFunction], OpFunction]:
    """Register the decorated function as the converter of ``op_types``."""

    def register(function: OpFunction) -> OpFunction:
        for name in op_types:
            (SIDE_OPS if side else OPS)[name] = function
        return function

    return register


class Graph:
    """The state of one conversion: constants, shape values, the imgkernel nodes so far."""

    def __init__(
        self,
        model_proto: Any,
        onnx: Any,
        numpy_helper: Any,
        fold: bool,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        self.onnx, self.nh, self.fold = onnx, numpy_helper, fold
        self.graph = model_proto.graph
        self.opset = 1
        for imp in model_proto.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in self.graph.initializer
        }
        #: values of graph inputs, used where an operator needs a constant
        self.bound = {k: np.asarray(v) for k, v in (constants or {}).items()}
        #: shape values computed in the graph (Shape, Gather, ...)
        self.syms: dict[str, list[Any] | tuple[Any]] = {}
        #: ONNX data tensor -> imgkernel tensor; imgkernel tensor -> shape
        self.names: dict[str, str] = {}
        self.shapes: dict[str, Shape] = {}
        self.nodes: list[Node] = []
        self.producer: dict[str, int] = {}
        self.layer_names: set[str] = set()
        self.inputs: list[TensorSpec] = []
        self.read: set[str] = set()  # graph inputs read as data
        self.input_names: set[str] = set()
        self.const_tensors: dict[str, str] = {}  # constant -> its constant node's tensor
        self.uses = Counter(i for n in self.graph.node for i in n.input if i)
        self.uses.update(o.name for o in self.graph.output)
        self.output_names = {o.name for o in self.graph.output}
        #: the graph input's batch size if it is fixed (a static-batch export)
        self.fixed_batch: int | None = None

    # -- the walk -------------------------------------------------------------
    def run(self, input_shape: Sequence[int | None] | None) -> tuple[list[TensorSpec], list[str]]:
        """Convert every node; the graph inputs read and the output tensor names."""
        from imgkernel.nn.onnx.step import Step

        self._add_inputs(input_shape)
        for index, node in enumerate(self.graph.node):
            self._convert(Step(self, node, index))
        outputs = [self._output(o.name) for o in self.graph.output]
        self.read.update(t for t in outputs if t in self.input_names)
        inputs = [spec for spec in self.inputs if spec.name in self.read]
        return inputs, outputs

    def _convert(self, step: Step) -> None:
        node = step.node
        if node.domain not in ("", "ai.onnx"):
            raise UsageError(f"{step.where}: unsupported operator {node.domain}.{node.op_type}")
        given = [i for i in node.input if i]
        if all(i in self.consts for i in given) and self._fold(step):
            return
        if node.op_type in SIDE_OPS and (
            node.op_type not in OPS or not given or any(i in self.syms for i in given)
        ):
            SIDE_OPS[node.op_type](step)
            return
        if node.op_type not in OPS:
            supported = ", ".join(sorted({*OPS, *SIDE_OPS}))
            raise UsageError(
                f"{step.where}: unsupported operator {node.op_type} (supported: {supported})"
            )
        OPS[node.op_type](step)
        for pos, name in enumerate(node.output):
            if name and name not in self.names and name not in self.consts:
                if self.uses[name]:
                    raise UsageError(f"{step.where}: output {pos} ({name!r}) is not supported")

    def _fold(self, step: Step) -> bool:
        """Evaluate a node of constant inputs with the ONNX reference (False: it cannot)."""
        from onnx.reference import ReferenceEvaluator

        node = step.node
        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            values = evaluator.run(None, {i: self.consts[i] for i in node.input if i})
        except Exception:  # noqa: BLE001 - any failure: convert the node instead
            return False
        for name, value in zip(node.output, values, strict=False):
            if name and isinstance(value, np.ndarray):
                self.consts[name] = value
        return True

    def _add_inputs(self, override: Sequence[int | None] | None) -> None:
        data = [i for i in self.graph.input if i.name not in self.consts]
        if not data:
            raise UsageError("the graph has no (non-constant) input")
        for k, value_info in enumerate(data):
            shape = self._input_dims(value_info, override if k == 0 else None)
            self.inputs.append(TensorSpec(value_info.name, shape))
            self.names[value_info.name] = value_info.name
            self.shapes[value_info.name] = shape
            self.input_names.add(value_info.name)

    def _input_dims(self, value_info: Any, override: Sequence[int | None] | None) -> Shape:
        dims = value_info.type.tensor_type.shape.dim
        shape: list[int | None] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if override is not None:
            given = [None if d is None or d < 0 else int(d) for d in override]
            if len(shape) == 4 and len(given) == 3:
                given = [None, *given]  # (C, H, W) of an (N, C, H, W) input
            if len(given) != len(shape) and shape:
                raise UsageError(
                    f"input shape {list(override)!r} does not fit the rank-{len(shape)} "
                    f"graph input {value_info.name!r}"
                )
            shape = given
        elif len(shape) == 4 and shape[0] is not None and value_info.name not in self.bound:
            # an (N, C, H, W) image batch exported with a static batch: any batch size runs
            self.fixed_batch = int(shape[0])
            shape[0] = None
        if any(d is None for d in shape[1:]):
            raise UsageError(
                f"the graph input {value_info.name!r} has dynamic dims "
                f"{fmt_shape(tuple(shape))}; give input_shape (e.g. (C, H, W))"
            )
        return tuple(shape)

    def _output(self, name: str) -> str:
        """The imgkernel tensor of a graph output (a constant output becomes a constant node)."""
        if name in self.names:
            return self.names[name]
        if name in self.consts or name in self.bound:
            from imgkernel.nn.layers import Constant

            value = self.consts.get(name, self.bound.get(name))
            layer = Constant(self.unique_name("constant"), value=value)
            return self.add_node(layer, [], [name], f"graph output {name!r}")[0]
        raise UsageError(f"the graph output {name!r} is not computed by any node")

    # -- building ---------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.layer_names or name in self.shapes:
            k += 1
            name = f"{base}_{k}"
        self.layer_names.add(name)
        return name

    def add_node(
        self, layer: Layer, inputs: list[str], outputs: list[str], where: str
    ) -> list[str]:
        """Append ``layer`` reading the imgkernel tensors ``inputs``; its output tensors.

        ``outputs`` are the ONNX names of the outputs (mapped to the new tensors).
        """
        try:
            shapes = layer.infer([self.shapes[t] for t in inputs])
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        made = []
        for k, shape in enumerate(shapes):
            onnx_name = outputs[k] if k < len(outputs) else ""
            base = onnx_name if onnx_name in self.output_names else layer.name
            tensor = base if k == 0 or onnx_name in self.output_names else f"{base}:{k}"
            while tensor in self.shapes:
                tensor += "_"
            self.shapes[tensor] = shape
            self.producer[tensor] = len(self.nodes)
            if onnx_name:
                self.names[onnx_name] = tensor
            made.append(tensor)
        self.nodes.append(Node(layer, tuple(inputs), tuple(made)))
        self.read.update(t for t in inputs if t in self.input_names)
        return made
