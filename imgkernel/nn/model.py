"""The model: a graph of layers, class labels and an input spec.

A :class:`Model` holds a :class:`~imgkernel.nn.graph.Graph`: named tensors,
nodes (a layer reading and writing tensors) and one or more graph outputs.
The simple case, a sequential model, is built from a list of layers
(``Model(layers, labels, input_spec)``): a chain whose input is the image
batch ``(N, C, H, W)``. It validates itself when built: shapes are
propagated from the inputs through every node, so a model that exists also
runs. Node indices are 0-based everywhere (summary rows, error messages,
``until``). Files: :mod:`imgkernel.nn.fileformat`; images in and classes
out: :mod:`imgkernel.nn.prepare`, :mod:`imgkernel.nn.predict`; running:
:mod:`imgkernel.nn.plan`.

Examples
--------
The lecture notes' example: 64 filters of 3x3 over a 256x256 RGB image.

>>> rng = np.random.default_rng(0)
>>> m = Model.from_layers(
...     [Conv2D("conv1", rng.standard_normal((64, 3, 3, 3)), np.zeros(64))],
...     input_spec=InputSpec(channels=3, height=256, width=256))
>>> print(m.summary())
input: input  N x 3 x 256 x 256
image: RGB 256x256 (W x H), resize stretch, layout N x C x H x W (channels first), float32
       value = (pixel_0_255 * 0.0039215686 - mean) / std; mean [0, 0, 0], std [1, 1, 1]
  #  name   type    output shape    params
  0  conv1  conv2d  64 x 254 x 254   1,792
total parameters: 1,792
output: conv1  N x 64 x 254 x 254 (raw outputs)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.graph import Graph, Node, TensorSpec, chain
from imgkernel.nn.layers import Conv2D, Layer, Shape
from imgkernel.nn.layers.attrs import fmt_shape
from imgkernel.nn.plan import Plan
from imgkernel.nn.spec import InputSpec
from imgkernel.nn.summary import Summary, SummaryRow

__all__ = ["Conv2D", "InputSpec", "Model", "Summary", "SummaryRow"]

FORMAT = "imgkernel-model"
#: The file format version written; 1 (a list of layers) is still read.
VERSION = 2
#: Layers that pass their input through at inference (skipped when asking what a model ends in).
PASS_THROUGH = ("dropout", "identity")


class Model:
    """A CNN: a graph of layers, class labels and an input spec.

    Build a sequential model with ``Model(layers, labels, input_spec)`` (or
    :meth:`from_layers`), a graph with :meth:`from_graph`, or load one with
    :func:`imgkernel.nn.fileformat.load_model`. Call ``model(x)``,
    ``model.forward(x, until=...)`` or :meth:`run`.
    """

    def __init__(
        self,
        layers: Sequence[Layer] = (),
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
        *,
        graph: Graph | None = None,
    ) -> None:
        self.labels = [str(s) for s in (labels or [])]
        self.description = str(description)
        self.input_spec: InputSpec | None
        if graph is None:
            self.input_spec = input_spec or InputSpec()
            graph = chain(list(layers), (None, *self.input_spec.shape), word="layer")
        else:
            if layers:
                raise UsageError("give a model layers or a graph, not both")
            self.input_spec = input_spec
            _check_spec(graph, input_spec)
        self.graph = graph
        self._check_labels()
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], Plan] = {}

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[Layer],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> Model:
        return cls(layers, labels, input_spec, description)

    @classmethod
    def from_graph(
        cls,
        inputs: Sequence[TensorSpec],
        nodes: Sequence[Node],
        outputs: Sequence[str],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> Model:
        """A model from graph inputs, nodes (in topological order) and output tensor names."""
        return cls(labels=labels, input_spec=input_spec, description=description,
                   graph=Graph(inputs, nodes, outputs))  # fmt: skip

    def _check_labels(self) -> None:
        if self.labels:
            out = self.output_shape
            if len(out) != 2 or out[1] != len(self.labels):
                raise UsageError(
                    f"the model has {len(self.labels)} labels but its output is "
                    f"{fmt_shape(out)}; expected N x {len(self.labels)}"
                )

    # -- queries --------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        return self.graph.nodes

    @property
    def layers(self) -> list[Layer]:
        """The layers of all nodes, in order (a sequential model's layers)."""
        return [node.layer for node in self.graph.nodes]

    @property
    def shapes(self) -> list[Shape]:
        """Each node's (first) output shape."""
        return [self.graph.shapes[node.outputs[0]] for node in self.graph.nodes]

    @property
    def input_shape(self) -> Shape:
        """The shape of the (first) graph input."""
        return self.graph.inputs[0].shape

    @property
    def output_shape(self) -> Shape:
        """The shape of the (first) graph output."""
        return self.graph.shapes[self.graph.outputs[0]]

    @property
    def is_sequential(self) -> bool:
        return self.graph.is_chain()

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def layer_index(self, key: int | str) -> int:
        """Index of a node given by index (negative counts from the end) or name."""
        return self.graph.node_index(key)

    def layer(self, key: int | str) -> Layer:
        return self.graph.nodes[self.layer_index(key)].layer

    def ends_in_softmax(self, output: str | None = None) -> bool:
        """Whether the (first) output is a softmax's (through dropout and identity)."""
        g = self.graph
        t = g.outputs[0] if output is None else output
        while g.producer.get(t, -1) >= 0:
            node = g.nodes[g.producer[t]]
            if node.type not in PASS_THROUGH:
                return node.type == "softmax"
            t = node.inputs[0]
        return False

    def summary(self) -> Summary:
        g = self.graph
        rows = [
            SummaryRow(i, n.name, n.type, g.shapes[n.outputs[0]], n.layer.param_count, n.inputs)
            for i, n in enumerate(g.nodes)
        ]
        kind = "probabilities" if self.ends_in_softmax() else "raw outputs"
        return Summary(
            tuple(d or 0 for d in self.input_shape[1:]),
            rows,
            self.param_count,
            inputs=[(s.name, s.shape) for s in g.inputs],
            outputs=[(t, g.shapes[t]) for t in g.outputs],
            spec=self.input_spec,
            output_kind=kind,
            show_inputs=not g.is_chain(),
        )

    # -- inference ----------------------------------------------------------
    def forward(self, x: Any, until: int | str | None = None) -> np.ndarray:
        """The (first) output for the input ``x``; with ``until``, that node's output instead.

        An empty batch (N = 0) gives an empty float32 result of the inferred shape.
        """
        want = self.graph.outputs[0] if until is None else self.graph.tensor(until)
        return self.run(x, [want])[0]

    __call__ = forward

    def run(
        self,
        inputs: np.ndarray | Mapping[str, Any],
        outputs: Sequence[int | str] | None = None,
        *,
        start: int | str | None = None,
    ) -> list[np.ndarray]:
        """The tensors ``outputs`` (node names or indices, tensor names; default the graph's).

        ``inputs`` is one array (for the only graph input, or with ``start`` the
        input of that node) or a mapping of tensor names to arrays: graph inputs,
        or any tensors of the graph to start from.
        """
        g = self.graph
        wanted = tuple(g.outputs if outputs is None else [g.tensor(k) for k in outputs])
        feeds = self._feeds(inputs, start)
        given = tuple(sorted(feeds))
        empty = self._empty_result(feeds, wanted)
        if empty is not None:
            return empty
        plan = self._plans.get((wanted, given))
        if plan is None:
            plan = self._plans[wanted, given] = Plan(g, wanted, given)
        return plan(feeds)

    def _feeds(self, inputs: Any, start: int | str | None) -> dict[str, np.ndarray]:
        g = self.graph
        if isinstance(inputs, Mapping):
            named = {str(k): v for k, v in inputs.items()}
        elif start is not None:
            named = {g.data_input(start): inputs}
        elif len(g.inputs) == 1:
            named = {g.inputs[0].name: inputs}
        else:
            raise UsageError(f"the model has {len(g.inputs)} inputs; give them by name")
        feeds = {}
        for name, value in named.items():
            if name not in g.shapes:
                raise UsageError(f"the model has no tensor {name!r}")
            feeds[name] = _checked_input(name, value, g.shapes[name], g.inputs[0].name)
        return feeds

    def _empty_result(
        self, feeds: dict[str, np.ndarray], wanted: tuple[str, ...]
    ) -> list[np.ndarray] | None:
        """Zeros of the inferred shapes for an empty batch (every any-size dim becomes 0)."""
        if not any(x.size == 0 and self.graph.shapes[t][:1] == (None,) for t, x in feeds.items()):
            return None
        return [
            np.zeros(tuple(0 if d is None else d for d in self.graph.shapes[t]), np.float32)
            for t in wanted
        ]

    def __repr__(self) -> str:
        shape = fmt_shape(self.input_shape[1:] if self.input_shape[:1] == (None,) else ())
        return (
            f"Model({len(self.layers)} layers, {self.param_count:,} params, "
            f"input {shape or fmt_shape(self.input_shape)}, {len(self.labels)} labels)"
        )

    # -- serialisation ------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The model file's JSON header (see ``docs/model-format.md``)."""
        g = self.graph
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.input_spec is not None:
            out["input"] = self.input_spec.to_json()
        out["inputs"] = [spec.to_json() for spec in g.inputs]
        out["outputs"] = list(g.outputs)
        out["labels"] = list(self.labels)
        out["nodes"] = [node.spec() for node in g.nodes]
        if self.description:
            out["description"] = self.description
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The model file's weight entries: ``"layer.key"`` -> array."""
        return {
            f"{layer.name}.{key}": arr
            for layer in self.layers
            for key, arr in layer.parameters().items()
        }


def _check_spec(graph: Graph, spec: InputSpec | None) -> None:
    """An image spec must describe the first graph input (N, C, H, W)."""
    if spec is None:
        return
    if not graph.inputs:
        raise UsageError("a model with an image input spec needs a graph input")
    first = graph.inputs[0]
    if len(first.shape) != 4 or tuple(first.shape[1:]) != spec.shape:
        raise UsageError(
            f"the image input spec ({fmt_shape(spec.shape)}) does not match graph input "
            f"{first.name!r} ({fmt_shape(first.shape)}); expected N x {fmt_shape(spec.shape)}"
        )


def _checked_input(name: str, value: Any, expect: Shape, first: str) -> np.ndarray:
    x = np.asarray(value)
    if x.dtype.kind not in "fiub":
        raise UsageError(f"input {name!r} must hold real numbers, got dtype {x.dtype}")
    ok = x.ndim == len(expect) and all(
        d is None or d == s for d, s in zip(expect, x.shape, strict=False)
    )
    if not ok:
        what = "model input" if name == first else f"tensor {name!r}"
        raise UsageError(f"{what} must be {fmt_shape(expect)}, got {fmt_shape(x.shape)}")
    return x if x.dtype == np.float32 else x.astype(np.float32)
