"""Convert an ONNX model (as PyTorch, Keras or the ONNX model zoo export it) to a :class:`Model`.

``onnx`` is an optional dependency, imported only when :func:`convert_onnx`
runs. The graph may be any DAG (residual additions, concatenations, several
inputs and outputs) of the operators registered in
:data:`imgkernel.nn.onnx.graph.OPS` (:mod:`imgkernel.nn.onnx.ops`,
:mod:`imgkernel.nn.onnx.tensor_ops`); nodes of constant inputs are folded
whatever their operator, and shapes computed from the batch size are
followed (:mod:`imgkernel.nn.onnx.shape_ops`).

Data tensors are float32; weights, shapes, axes, pads and scales must be
constants: initializers, or values given for graph inputs with
``constants``. An (N, C, H, W) input with 1 or 3 channels becomes the
model's image input (its input spec); its batch axis takes any size even
when the export fixed it, and a Reshape target ``[B, ...]`` of a static batch
``B`` keeps the batch axis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from imgkernel.errors import UsageError
from imgkernel.nn.model import Model
from imgkernel.nn.onnx import ops as _ops  # noqa: F401 - registers the operators
from imgkernel.nn.onnx import shape_ops as _shape_ops  # noqa: F401
from imgkernel.nn.onnx import tensor_ops as _tensor_ops  # noqa: F401
from imgkernel.nn.onnx.graph import OPS, SIDE_OPS, Graph
from imgkernel.nn.spec import InputSpec

#: The operators :func:`convert_onnx` accepts on data tensors, and Constant.
SUPPORTED = (*OPS, "Constant")
#: Operators accepted on shapes computed from the batch size.
SHAPE_OPS = tuple(name for name in SIDE_OPS if name != "Constant")


def _onnx() -> tuple[Any, Any]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UsageError(
            "ONNX import needs the onnx package: pip install 'imgkernel[onnx]'"
        ) from None
    return onnx, numpy_helper


def _read(path: Any, onnx: Any) -> tuple[Any, str]:
    """(ModelProto, a name for messages) from a path or a loaded ModelProto."""
    if hasattr(path, "graph"):
        return path, "<ModelProto>"
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise UsageError(f"no such ONNX file: {source!r}")
    try:
        proto = onnx.load(source)
    except Exception as exc:  # protobuf raises its own DecodeError
        detail = str(exc).splitlines()[0] if str(exc) else "unreadable protobuf data"
        raise UsageError(f"{source}: not an ONNX model ({detail})") from None
    if not proto.graph.node:
        # protobuf parses many non-ONNX files as an empty message
        raise UsageError(f"{source}: not an ONNX model (no graph nodes)")
    return proto, source


def _image_spec(shape: Any, options: dict[str, Any]) -> InputSpec | None:
    """The input spec of an (N, C, H, W) input of 1 or 3 channels (None: not an image)."""
    if len(shape) != 4 or shape[1] not in (1, 3):
        if options["mean"] is not None or options["std"] is not None:
            raise UsageError(
                f"the input is {'x'.join(str(d) for d in shape)}, not an (N, 1 or 3, H, W) "
                "image batch: mean and std do not apply"
            )
        return None
    return InputSpec(
        channels=shape[1],
        height=shape[2],
        width=shape[3],
        resize=options["resize"],
        scale=options["scale"],
        mean=list(options["mean"]) if options["mean"] is not None else [],
        std=list(options["std"]) if options["std"] is not None else [],
    )


def convert_onnx(
    path: str | os.PathLike[str] | Any,
    labels: Sequence[str] | None = None,
    *,
    input_shape: Sequence[int | None] | None = None,
    constants: Mapping[str, Any] | None = None,
    resize: str = "stretch",
    scale: float = 1 / 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    fold_batchnorm: bool = True,
    description: str = "",
) -> Model:
    """Convert an ONNX file (or a loaded ``ModelProto``) into a validated :class:`Model`.

    ``labels`` names the classes (their number must match the output);
    ``input_shape`` overrides the first input's shape (None or -1: any size;
    (C, H, W) for an image batch); ``constants`` gives values for graph inputs
    that operators need as constants (weights, shapes, axes, pads, scales;
    an input also read as data stays an input); ``resize``, ``scale``,
    ``mean`` and ``std`` fill the image input spec (ONNX does not record how
    images were normalised). With ``fold_batchnorm`` a BatchNormalization
    right after a Conv is folded into its weights.
    """
    onnx, numpy_helper = _onnx()
    proto, source = _read(path, onnx)
    options = {"resize": resize, "scale": scale, "mean": mean, "std": std}
    try:
        graph = Graph(proto, onnx, numpy_helper, fold_batchnorm, constants)
        inputs, outputs = graph.run(input_shape)
        if not inputs:
            raise UsageError("the graph reads no input (all its outputs are constants)")
        spec = _image_spec(inputs[0].shape, options)
        return Model.from_graph(inputs, graph.nodes, outputs, labels, spec, description)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
