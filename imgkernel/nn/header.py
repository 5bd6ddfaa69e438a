"""The model file's JSON header: every field checked, then the model built from it.

Version 2 (written since graph models) holds a graph: ``inputs`` (name and
shape of each graph input), ``nodes`` (each a layer with the tensors it reads
and writes) and ``outputs``; ``input`` (the image spec) is optional. A node
that names no ``inputs`` reads the previous node's output (the first reads
the first graph input) and one that names no ``outputs`` writes a tensor
named after itself, so a sequential model is written as a plain list of
nodes. Version 1 files hold a sequential ``layers`` list and are still read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.graph import Graph, Node, TensorSpec, _check_name, _check_shape
from imgkernel.nn.layers import LAYER_TYPES, Layer
from imgkernel.nn.model import FORMAT, VERSION, Model
from imgkernel.nn.spec import InputSpec

_KEYS = {
    1: {"format", "version", "input", "labels", "layers", "description"},
    2: {"format", "version", "input", "inputs", "outputs", "labels", "nodes", "description"},
}
_NODE_KEYS = ("type", "name", "inputs", "outputs")


#: Most nodes (layers) a model file may hold: ResNet-152 has about 500, and
#: checking a million took 14 s and 1.2 GB before anything was refused.
MAX_NODES = 10_000


def _check_header(header: dict[str, Any]) -> int:
    if header.get("format") != FORMAT:
        raise UsageError(
            f"not an imgkernel model (format is {header.get('format')!r}, expected {FORMAT!r})"
        )
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"bad model format version {version!r}")
    if version > VERSION:
        raise UsageError(
            f"the model uses format version {version}; this imgkernel reads versions 1 to "
            f"{VERSION} (upgrade imgkernel)"
        )
    unknown = set(header) - _KEYS[version]
    if unknown:
        raise UsageError(
            f"unknown model header key(s) for version {version}: {', '.join(sorted(unknown))}"
        )
    entries = header.get("nodes", header.get("layers"))
    if isinstance(entries, list) and len(entries) > MAX_NODES:
        raise UsageError(
            f"the model has {len(entries):,} nodes, more than the limit of {MAX_NODES:,}"
        )
    if version == 1 and "input" not in header:
        raise UsageError("the model header lacks the 'input' spec")
    if version == 2 and "input" not in header and "inputs" not in header:
        raise UsageError("the model header needs 'inputs' (or an image 'input' spec)")
    return version


def model_from_json(header: dict[str, Any], arrays: dict[str, np.ndarray] | Any) -> Model:
    """Build and validate a model from its header and a mapping of npz entries."""
    version = _check_header(header)
    spec = InputSpec.from_json(header["input"]) if "input" in header else None
    labels = header.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise UsageError("model labels must be a list of strings")
    description = header.get("description", "") or ""
    if not isinstance(description, str):
        raise UsageError("the model description must be a string")
    if version == 1:
        entries = header.get("layers")
        if not isinstance(entries, list):
            raise UsageError("the model header must hold a list of layers")
        layers = [
            _layer(f"layer {i}", entry, arrays, _NODE_KEYS[:2])[0]
            for i, entry in enumerate(entries)
        ]
        return Model(layers, labels, spec, description)
    graph = _graph(header, spec, arrays)
    return Model(labels=labels, input_spec=spec, description=description, graph=graph)


def _inputs(header: dict[str, Any], spec: InputSpec | None) -> list[TensorSpec]:
    raw = header.get("inputs")
    if raw is None:
        assert spec is not None
        return [TensorSpec("input", (None, *spec.shape))]
    if not isinstance(raw, list) or not raw:
        raise UsageError("'inputs' must be a non-empty list of {name, shape} objects")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"name", "shape"}:
            raise UsageError(f"graph input {i} must be an object with 'name' and 'shape'")
        name = _check_name(item["name"], f"graph input {i} name")
        out.append(TensorSpec(name, _check_shape(item["shape"], f"graph input {name!r} shape")))
    return out


def _names(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: {key} must be a list of tensor names, got {value!r}")
    return tuple(value)


def _graph(header: dict[str, Any], spec: InputSpec | None, arrays: Any) -> Graph:
    inputs = _inputs(header, spec)
    entries = header.get("nodes")
    if not isinstance(entries, list):
        raise UsageError("the model header must hold a list of nodes")
    nodes: list[Node] = []
    prev = inputs[0].name
    for i, entry in enumerate(entries):
        layer, where = _layer(f"node {i}", entry, arrays)
        default = [] if layer.ARITY[1] == 0 else [prev]  # a constant reads nothing
        reads = _names(entry.get("inputs", default), where, "inputs")
        named = [layer.name] + [f"{layer.name}:{k}" for k in range(1, layer.n_outputs())]
        writes = _names(entry.get("outputs", named), where, "outputs")
        nodes.append(Node(layer, reads, writes))
        prev = writes[0] if writes else prev
    outputs = header.get("outputs", [prev])
    if not isinstance(outputs, list) or not all(isinstance(t, str) for t in outputs):
        raise UsageError(f"'outputs' must be a list of tensor names, got {outputs!r}")
    return Graph(inputs, nodes, outputs)


def _layer(
    what: str, entry: Any, arrays: Any, skip: tuple[str, ...] = _NODE_KEYS
) -> tuple[Layer, str]:
    """A node's layer from its header entry, its weight arrays looked up in ``arrays``."""
    name: Any = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(entry, dict):
        raise UsageError(f"{what}: must be an object, got {entry!r}")
    kind = entry.get("type")
    if kind not in LAYER_TYPES:
        raise UsageError(
            f"{what} ({name!r}): unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[kind]
    where = f"{what} ({name!r}, {kind})"
    available = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays)
    kwargs: dict[str, Any] = {}
    for key, value in entry.items():
        if key in skip:
            continue
        if key not in cls.ARRAYS:
            kwargs[key] = value
        elif value is not None:
            if not isinstance(value, str):
                raise UsageError(f"{where}: {key} must name an array entry, got {value!r}")
            if value not in available:
                raise UsageError(f"{where}: missing array {value!r} ({key})")
            try:
                kwargs[key] = arrays[value]
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            except ValueError as exc:
                raise UsageError(
                    f"{where}: array {value!r} cannot be read without pickle ({exc})"
                ) from None
    try:
        return cls(name, **kwargs), where
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
