"""One ONNX node being converted, with the helpers its operator function needs.

An operator function reads the node's attributes (:attr:`Step.attrs`), its
constant inputs (:meth:`Step.const`: initializers, folded constants, or
values given for graph inputs) and the imgkernel tensors of its data inputs
(:meth:`Step.data`; a constant read as data becomes a ``constant`` node),
then adds a layer (:meth:`Step.add`), folds itself into the node before it
(:meth:`Step.sole_producer`, :meth:`Step.replace`) or passes its input on
(:meth:`Step.alias`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.graph import Node
from imgkernel.nn.layers import Constant, Layer, Shape
from imgkernel.nn.onnx.graph import Graph

_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def clean_name(name: str, fallback: str) -> str:
    """A layer name safe as an npz entry prefix."""
    cleaned = _NAME_RE.sub("_", name).strip("_./")
    return cleaned or fallback


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

    def has(self, pos: int) -> bool:
        """Whether the node has input ``pos`` (optional inputs may be absent or empty)."""
        return pos < len(self.node.input) and self.node.input[pos] != ""

    def is_const(self, pos: int) -> bool:
        name = self.node.input[pos] if self.has(pos) else ""
        return name in self.graph.consts or name in self.graph.bound

    def const(self, pos: int, what: str, required: bool = True) -> np.ndarray | None:
        """Input ``pos`` of the node, which must be a constant (None if absent and optional)."""
        if not self.has(pos):
            if required:
                raise UsageError(f"{self.where}: missing input {what}")
            return None
        name = self.node.input[pos]
        g = self.graph
        if name in g.consts:
            return g.consts[name]
        if name in g.bound:
            return g.bound[name]
        raise UsageError(
            f"{self.where}: input {what} ({name!r}) must be a constant (an initializer, "
            "or a value given for the graph input)"
        )

    def required(self, pos: int, what: str) -> np.ndarray:
        value = self.const(pos, what)
        assert value is not None
        return value

    def data(self, pos: int) -> str:
        """The imgkernel tensor of input ``pos`` (a constant becomes a ``constant`` node)."""
        g, name = self.graph, self.node.input[pos]
        if name in g.names:
            return g.names[name]
        if name in g.consts:
            if name not in g.const_tensors:
                layer = Constant(g.unique_name(clean_name(name, "constant")), value=g.consts[name])
                made = g.add_node(layer, [], [], f"{self.where} (constant {name!r})")
                g.const_tensors[name] = made[0]
            return g.const_tensors[name]
        if name in g.syms:
            raise UsageError(f"{self.where}: a shape computed in the graph cannot be used as data")
        raise UsageError(f"{self.where}: input {name!r} is not computed by any earlier node")

    def shape(self, pos: int = 0) -> Shape:
        """The shape of input ``pos`` (a data tensor or a constant)."""
        g, name = self.graph, self.node.input[pos]
        if name in g.names:
            return g.shapes[g.names[name]]
        value = g.consts.get(name, g.bound.get(name))
        if value is None:
            raise UsageError(f"{self.where}: input {name!r} is not computed by any earlier node")
        return tuple(value.shape)

    def spatial(self) -> tuple[int, ...]:
        """The spatial sizes of input 0, which must be (N, C, spatial...) with known sizes."""
        s = self.shape(0)
        if len(s) < 3 or any(d is None for d in s[2:]):
            raise UsageError(f"{self.where}: needs an (N, C, ...) input, got rank {len(s)}")
        return tuple(int(d) for d in s[2:])  # type: ignore[arg-type]

    def name(self) -> str:
        """A new unique layer name from the node's name."""
        base = clean_name(self.node.name, f"{self.node.op_type.lower()}{self.index}")
        return self.graph.unique_name(base)

    def add(self, layer: Layer, inputs: list[str] | None = None) -> list[str]:
        """Append ``layer`` reading ``inputs`` (default: the data of input 0)."""
        reads = [self.data(0)] if inputs is None else inputs
        return self.graph.add_node(layer, reads, list(self.node.output), self.where)

    def alias(self, pos: int = 0) -> None:
        """The node passes input ``pos`` on as its output (Identity, Dropout at inference)."""
        g, name, out = self.graph, self.node.input[pos], self.node.output[0]
        if name in g.names:
            g.names[out] = g.names[name]
        elif name in g.consts or name in g.bound:
            g.consts[out] = g.consts.get(name, g.bound.get(name))  # type: ignore[assignment]
        else:
            raise UsageError(f"{self.where}: input {name!r} is not computed by any earlier node")

    def sole_producer(self, pos: int = 0) -> tuple[int, Node] | None:
        """The imgkernel node making input ``pos`` if nothing else reads it (else None)."""
        g, name = self.graph, self.node.input[pos] if self.has(pos) else ""
        tensor = g.names.get(name)
        index = g.producer.get(tensor) if tensor is not None else None
        if index is None or g.uses[name] != 1 or name in g.output_names:
            return None
        node = g.nodes[index]
        return (index, node) if node.outputs == (tensor,) else None

    def replace(self, index: int, layer: Layer) -> None:
        """Put ``layer`` in place of node ``index``, whose output becomes this node's output."""
        g = self.graph
        old = g.nodes[index]
        try:
            shapes = layer.infer([g.shapes[t] for t in old.inputs])
        except UsageError as exc:
            raise UsageError(f"{self.where}: {exc}") from None
        g.shapes[old.outputs[0]] = shapes[0]
        g.nodes[index] = Node(layer, old.inputs, old.outputs)
        g.names[self.node.output[0]] = old.outputs[0]
