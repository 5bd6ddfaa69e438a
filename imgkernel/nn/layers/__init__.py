"""Layer types: one class per type, each with its forward and backward pass.

Importing this package registers every built-in type in :data:`LAYER_TYPES`
(in this order: conv, activations, pooling, shape, dense, normalisation,
arithmetic, tensor-making, transposed conv, reductions, resizing). A
new type is one :class:`Layer` subclass with a ``type`` string, anywhere: see
:mod:`imgkernel.nn.layers.base` (the base class and registry),
:mod:`imgkernel.nn.layers.attrs` (attribute checks, shape helpers) and
:mod:`imgkernel.nn.layers.build` (weights for layers built from an architecture).
"""

# ruff: noqa: I001 - the import order is the registration order
from imgkernel.nn.layers.base import (
    LAYER_TYPES,
    BuildContext,
    Layer,
    LayerError,
    Shape,
    arch_types,
    make_layer,
    trainable_types,
)
from imgkernel.nn.layers.conv import Conv2D, conv2d_backward, conv2d_forward
from imgkernel.nn.layers.activations import (
    Clip,
    HardSigmoid,
    HardSwish,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from imgkernel.nn.layers.pool import (
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MinPool,
    pool2d_backward,
    pool2d_forward,
)
from imgkernel.nn.layers.shape import Flatten, Identity, Reshape, Squeeze, Transpose, Unsqueeze
from imgkernel.nn.layers.dense import Dense, Gemm, MatMul
from imgkernel.nn.layers.norm import LRN, BatchNorm, Dropout
from imgkernel.nn.layers.arith import Add, Div, Mul, PRelu, Sub, Sum
from imgkernel.nn.layers.combine import Concat, Constant, Pad
from imgkernel.nn.layers.deconv import ConvTranspose
from imgkernel.nn.layers.reduce import ReduceMean
from imgkernel.nn.layers.resize import Resize

__all__ = [
    "Add",
    "AvgPool",
    "BatchNorm",
    "BuildContext",
    "Clip",
    "Concat",
    "Constant",
    "Conv2D",
    "ConvTranspose",
    "Dense",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LAYER_TYPES",
    "LRN",
    "Layer",
    "LayerError",
    "LeakyReLU",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "MinPool",
    "Mul",
    "PRelu",
    "Pad",
    "ReLU",
    "ReduceMean",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "arch_types",
    "conv2d_backward",
    "conv2d_forward",
    "make_layer",
    "pool2d_backward",
    "pool2d_forward",
    "trainable_types",
]
