"""The model graph: named tensors, nodes that read and write them, graph inputs and outputs.

A :class:`Node` is a layer (:mod:`imgkernel.nn.layers`) with the names of the
tensors it reads and writes. A :class:`Graph` is validated when built: node
names are unique, every tensor has one producer (a graph input or a node),
every node reads only graph inputs and outputs of earlier nodes (the list is
in topological order, as in ONNX), and the shapes of all tensors are
inferred node by node from the inputs' shapes, so a graph that exists also
runs and every error names its node. A sequential model is the chain where
each node reads the previous node's output (:func:`chain`).

Shapes are tuples of dims where ``None`` is a dim of any size (the batch
axis, or one derived from it).

>>> from imgkernel.nn.layers import ReLU, Flatten
>>> g = chain([ReLU("relu"), Flatten("flat")], (None, 2, 3, 3))
>>> [(n.name, n.inputs, n.outputs) for n in g.nodes]
[('relu', ('input',), ('relu',)), ('flat', ('relu',), ('flat',))]
>>> g.shapes["flat"]
(None, 18)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imgkernel.errors import UsageError
from imgkernel.nn.layers import Layer, Shape
from imgkernel.nn.layers.attrs import fmt_shape

#: Most elements one tensor may have (a sanity limit on shapes read from a file).
MAX_ELEMENTS = 1 << 32
#: Names listed at most in a "no node named ..." message.
_LISTED = 30


@dataclass(frozen=True)
class TensorSpec:
    """A graph input: its name and shape (``None``: any size)."""

    name: str
    shape: Shape

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape)}


@dataclass(frozen=True)
class Node:
    """A layer and the names of the tensors it reads (in order) and writes."""

    layer: Layer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def type(self) -> str:
        return self.layer.type

    def spec(self) -> dict[str, Any]:
        """The node's JSON entry: the layer's, plus ``inputs`` and ``outputs``."""
        out = self.layer.spec()
        out["inputs"] = list(self.inputs)
        out["outputs"] = list(self.outputs)
        return out


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise UsageError(f"{what} must be a non-empty string, got {name!r}")
    return name


def _check_shape(shape: Any, what: str) -> Shape:
    if not isinstance(shape, (list, tuple)) or len(shape) > 16:
        raise UsageError(f"{what} must be a list of at most 16 dims, got {shape!r}")
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise UsageError(f"{what} dims must be integers >= 0 or null, got {shape!r}")
    return tuple(shape)


class Graph:
    """Graph inputs, nodes in topological order and graph outputs, validated with shapes.

    ``word`` names the nodes in messages ("node", or "layer" for models built
    from a list of layers).
    """

    def __init__(
        self,
        inputs: Sequence[TensorSpec],
        nodes: Sequence[Node],
        outputs: Sequence[str],
        *,
        word: str = "node",
    ) -> None:
        self.inputs = list(inputs)
        self.nodes = list(nodes)
        self.outputs = [str(o) for o in outputs]
        self.word = word
        #: every tensor's shape; the index of its producer (-1: a graph input)
        self.shapes: dict[str, Shape] = {}
        self.producer: dict[str, int] = {}
        self.index: dict[str, int] = {}
        self._check_inputs()
        for i, node in enumerate(self.nodes):
            self._add_node(i, node)
        self._check_outputs()
        self.consumers: dict[str, list[int]] = {t: [] for t in self.shapes}
        for i, node in enumerate(self.nodes):
            for t in dict.fromkeys(node.inputs):
                self.consumers[t].append(i)

    # -- validation ---------------------------------------------------------
    def _check_inputs(self) -> None:
        for spec in self.inputs:
            name = _check_name(spec.name, "a graph input name")
            _check_shape(spec.shape, f"graph input {name!r} shape")
            if name in self.shapes:
                raise UsageError(f"graph input {name!r} is defined twice")
            self.shapes[name] = tuple(spec.shape)
            self.producer[name] = -1

    def where(self, i: int) -> str:
        """``node 3 ('conv1', conv2d)``: a node for messages."""
        node = self.nodes[i]
        return f"{self.word} {i} ({node.name!r}, {node.type})"

    def _add_node(self, i: int, node: Node) -> None:
        if not isinstance(node, Node) or not isinstance(node.layer, Layer):
            layer = node.layer if isinstance(node, Node) else node
            raise UsageError(f"{self.word} {i} is not a Layer: {layer!r}")
        if node.name in self.index:
            raise UsageError(f"{self.word} {i} ({node.name!r}): duplicate {self.word} name")
        where = self.where(i)
        for t in node.inputs:
            if t not in self.shapes:
                raise UsageError(
                    f"{where}: input {t!r} is neither a graph input nor an earlier "
                    f"{self.word}'s output"
                )
        try:
            shapes = node.layer.infer([self.shapes[t] for t in node.inputs])
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if len(shapes) != len(node.outputs):
            raise UsageError(
                f"{where}: the layer makes {len(shapes)} output(s), {len(node.outputs)} named"
            )
        for t, shape in zip(node.outputs, shapes, strict=True):
            _check_name(t, f"{where}: an output name")
            if t in self.shapes:
                raise UsageError(f"{where}: tensor {t!r} is already defined")
            size = 1
            for d in shape:
                size *= d or 1
            if size > MAX_ELEMENTS:
                raise UsageError(f"{where}: output {fmt_shape(shape)} is too large")
            self.shapes[t] = shape
            self.producer[t] = i
        self.index[node.name] = i

    def _check_outputs(self) -> None:
        if not self.outputs:
            raise UsageError("the graph has no outputs")
        for t in self.outputs:
            if t not in self.shapes:
                raise UsageError(f"graph output {t!r} is not a tensor of the graph")
        if len(set(self.outputs)) != len(self.outputs):
            raise UsageError(f"graph outputs are listed twice: {self.outputs}")

    # -- queries ------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def is_chain(self) -> bool:
        """Whether each node reads only the previous node's only output (a sequential model)."""
        prev = self.inputs[0].name if len(self.inputs) == 1 else None
        for node in self.nodes:
            if prev is None or node.inputs != (prev,) or len(node.outputs) != 1:
                return False
            prev = node.outputs[0]
        return prev is not None and self.outputs == [prev]

    def node_index(self, key: int | str) -> int:
        """Index of a node given by index (negative counts from the end) or name."""
        n = len(self.nodes)
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            if key in self.index:
                return self.index[key]
            names = [node.name for node in self.nodes]
            listed = ", ".join(names[:_LISTED]) + (", ..." if n > _LISTED else "")
            raise UsageError(f"no {self.word} named {key!r}; {self.word}s: {listed}")
        idx = int(key)
        if not -n <= idx < n:
            raise UsageError(
                f"{self.word} index {idx} out of range: the model has {n} {self.word}s (0-{n - 1})"
            )
        return idx % n

    def tensor(self, key: int | str) -> str:
        """The tensor a user means: a node's (first) output by node name or index, or a tensor."""
        if isinstance(key, str) and key not in self.index and key in self.shapes:
            return key
        return self.nodes[self.node_index(key)].outputs[0]

    def data_input(self, key: int | str) -> str:
        """The tensor fed to a node (by name or index): its first input."""
        node = self.nodes[self.node_index(key)]
        if not node.inputs:
            raise UsageError(f"{self.where(self.index[node.name])} reads no tensor")
        return node.inputs[0]


def chain(layers: Sequence[Layer], input_shape: Shape, *, word: str = "node") -> Graph:
    """The graph of a sequential model: one input, each layer reading the previous output."""
    names = {getattr(layer, "name", None) for layer in layers}
    input_name = "input"
    while input_name in names:
        input_name = "_" + input_name
    nodes, prev = [], input_name
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise UsageError(f"{word} {i} is not a Layer: {layer!r}")
        nodes.append(Node(layer, (prev,), (layer.name,)))
        prev = layer.name
    return Graph([TensorSpec(input_name, input_shape)], nodes, [prev], word=word)
