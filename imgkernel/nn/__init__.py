"""CNNs: layers (forward and backward), models and their file format, ONNX import, training.

The package, bottom to top:

* :mod:`~imgkernel.nn.layers` - one class per layer type (conv, activations,
  pooling, shape, dense, norm), each with its attributes, shape inference,
  inference forward pass and training forward/backward pass; a registry of
  layer types;
* :mod:`~imgkernel.nn.graph` - the graph (named tensors, nodes, inputs and
  outputs, shape inference); :mod:`~imgkernel.nn.plan` - running it (tensors
  released after their last reader, batchnorm folded, batches split over
  threads); :mod:`~imgkernel.nn.spec` - the image input spec;
  :mod:`~imgkernel.nn.model` - the :class:`Model` (a sequential model is a
  chain graph); :mod:`~imgkernel.nn.header` and :mod:`~imgkernel.nn.fileformat`
  - the ``.npz`` file and the bundled models (``models/``);
* :mod:`~imgkernel.nn.prepare`, :mod:`~imgkernel.nn.predict`,
  :mod:`~imgkernel.nn.features` - images in, classes and feature maps out;
  :mod:`~imgkernel.nn.classify_files` - image files classified in batches
  (on worker processes or a Dask cluster, through :mod:`imgkernel.images.many`);
* :mod:`imgkernel.nn.train` - training (loss, optimizers, architectures, the
  loop, image folders) and :mod:`imgkernel.nn.onnx` - ONNX import (needs the
  optional onnx package), imported where they are used.

Arrays: CNN tensors ``(N, C, H, W)`` float32 (graph tensors any rank),
conv weights ``(K, C/groups, kh, kw)``, dense weights ``(out, in)``.
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
