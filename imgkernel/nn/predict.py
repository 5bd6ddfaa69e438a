"""Classification: class probabilities for a batch, and the top labels for images."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers.attrs import fmt_shape
from imgkernel.nn.model import Model
from imgkernel.nn.prepare import prepare_images


def _softmax_last(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def predict_proba(model: Model, batch: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, K) for a prepared batch.

    If the model does not end in a softmax, its outputs are taken as logits
    and a softmax is applied.
    """
    n = batch.shape[0]
    if len(model.output_shape) != 2:
        raise UsageError(
            f"the model's output is {fmt_shape(model.output_shape)}, not N x classes; "
            "it cannot classify"
        )
    has_softmax = model.ends_in_softmax()
    outs = []
    for b0 in range(0, max(n, 1), batch_size):
        out = model.forward(batch[b0 : b0 + batch_size])
        outs.append(out if has_softmax else _softmax_last(out))
    return np.concatenate(outs) if outs else np.zeros((0, model.output_shape[1] or 0), np.float32)


def classify(
    model: Model, images: Iterable[Any] | np.ndarray, top: int = 5, *, batch_size: int = 64
) -> list[list[tuple[str, float]]]:
    """Top-``top`` (label, probability) pairs for every image, best first.

    ``images`` is a list of images (see :func:`imgkernel.nn.prepare.prepare_images`)
    or an already prepared (N, C, H, W) array. Images are run in batches of
    ``batch_size``.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = images
    else:
        batch = prepare_images(model, images)
    probs = predict_proba(model, batch, batch_size=batch_size)
    k = probs.shape[1]
    labels = model.labels or [str(i) for i in range(k)]
    top = max(1, min(int(top), k))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(labels[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]
