"""CNNs: layers (forward and backward), models and their file format, ONNX import, training.

The package, bottom to top:

* :mod:`~imgkernel.nn.layers` - one class per layer type (conv, activations,
  pooling, shape, dense, norm), each with its attributes, shape inference,
  inference forward pass and training forward/backward pass; a registry of
  layer types;
* :mod:`~imgkernel.nn.spec` - the input spec; :mod:`~imgkernel.nn.model` - the
  sequential :class:`Model`; :mod:`~imgkernel.nn.fileformat` - the ``.npz``
  file and the bundled models (``models/``);
* :mod:`~imgkernel.nn.prepare`, :mod:`~imgkernel.nn.predict`,
  :mod:`~imgkernel.nn.features` - images in, classes and feature maps out;
* :mod:`imgkernel.nn.train` - training (loss, optimizers, architectures, the
  loop, image folders) and :mod:`imgkernel.nn.onnx` - ONNX import (needs the
  optional onnx package), imported where they are used.

Arrays: CNN tensors ``(N, C, H, W)`` float32, conv weights ``(K, C/groups, kh, kw)``,
dense weights ``(out, in)``.
"""

from imgkernel.nn.features import conv_filters, feature_grid, feature_maps
from imgkernel.nn.fileformat import list_bundled_models, load_model, save_model
from imgkernel.nn.model import Model
from imgkernel.nn.predict import classify, predict_proba
from imgkernel.nn.prepare import prepare_image, prepare_images

__all__ = [
    "Model",
    "classify",
    "conv_filters",
    "feature_grid",
    "feature_maps",
    "list_bundled_models",
    "load_model",
    "predict_proba",
    "prepare_image",
    "prepare_images",
    "save_model",
]
