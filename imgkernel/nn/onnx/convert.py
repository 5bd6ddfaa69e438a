"""Convert a sequential ONNX CNN (as PyTorch or Keras export it) to a :class:`Model`.

``onnx`` is an optional dependency, imported only when :func:`convert_onnx`
runs. The supported operators (default domain) are those registered in
:data:`imgkernel.nn.onnx.graph.OPS` (:mod:`imgkernel.nn.onnx.ops`): Conv,
Relu, LeakyRelu, Sigmoid, Tanh, Clip, Softmax, MaxPool, AveragePool,
GlobalAveragePool, GlobalMaxPool, Flatten, Reshape (to 2-D), Gemm, MatMul
(+ Add), Add of a per-channel constant after Conv, BatchNormalization,
Dropout and Identity; Constant nodes are a source of constants.

Reshape's target is a constant, or computed from the batch size as PyTorch
exports ``x.view(x.size(0), -1)`` with a dynamic batch
(:mod:`imgkernel.nn.onnx.shape_ops`). With a static batch B the exporter
folds that target to ``[B, -1]``; a leading B then keeps the batch axis (as
0 would), so the model runs on any batch size.

The graph must be a chain: each node takes the previous node's output (plus
constant initializers) and the last output is the graph's only output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from imgkernel.errors import UsageError
from imgkernel.nn.model import Model
from imgkernel.nn.onnx import ops as _ops  # noqa: F401 - registers the operators
from imgkernel.nn.onnx.graph import OPS, SIDE_OPS, Graph
from imgkernel.nn.spec import InputSpec

#: The operators :func:`convert_onnx` accepts on the data chain, and Constant.
SUPPORTED = (*OPS, "Constant")
#: Operators accepted only as a computation of a Reshape target from the batch size.
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
        raise UsageError(f"{source}: not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not proto.graph.node:
        # protobuf parses many non-ONNX files as an empty message
        raise UsageError(f"{source}: not an ONNX model (no graph nodes)")
    return proto, source


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
    proto, source = _read(path, onnx)
    try:
        layers, (c, h, w) = Graph(proto, onnx, numpy_helper, fold_batchnorm).run(input_shape)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
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
