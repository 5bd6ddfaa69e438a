"""CNNs: layers (forward and backward), models and their file format, ONNX import, training.

``imgkernel.nn.train.loop`` (training) and ``imgkernel.nn.onnx.convert`` (needs the
optional onnx package) are imported where they are used.
"""

from imgkernel.nn.model import (
    Model,
    classify,
    conv_filters,
    feature_grid,
    feature_maps,
    list_bundled_models,
    load_model,
    predict_proba,
    prepare_image,
    prepare_images,
    save_model,
)

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
