"""Layer types: one class per type, each with its forward and backward pass.

Importing this package registers every built-in type in :data:`LAYER_TYPES`
(in this order: conv, activations, pooling, shape, dense, normalisation). A
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
from imgkernel.nn.layers.activations import Clip, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from imgkernel.nn.layers.pool import (
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MinPool,
    pool2d_backward,
    pool2d_forward,
)
from imgkernel.nn.layers.shape import Flatten, Reshape
from imgkernel.nn.layers.dense import Dense
from imgkernel.nn.layers.norm import BatchNorm, Dropout

__all__ = [
    "LAYER_TYPES",
    "AvgPool",
    "BatchNorm",
    "BuildContext",
    "Clip",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Layer",
    "LayerError",
    "LeakyReLU",
    "MaxPool",
    "MinPool",
    "ReLU",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "arch_types",
    "conv2d_backward",
    "conv2d_forward",
    "make_layer",
    "pool2d_backward",
    "pool2d_forward",
    "trainable_types",
]
