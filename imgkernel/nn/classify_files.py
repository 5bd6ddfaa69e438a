"""Classifying image files in batches: the work of one batch, picklable for worker processes.

``imgkernel classify`` hands batches of image paths to :class:`ClassifyJob`
through :func:`imgkernel.images.run_many`:
each worker loads the model once, reads and prepares each image on its own
(a bad one is that image's failure, not the batch's), runs the good ones
through the model ``batch_size`` at a time and returns one output line per
image; the lines are printed in input order.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgkernel.images import Outcome, attempt, read_image
from imgkernel.nn.fileformat import load_model
from imgkernel.nn.predict import classify
from imgkernel.nn.prepare import prepare_image

__all__ = ["ClassifyJob", "Ranked", "ranked_json", "ranked_line"]

Ranked = list[tuple[str, float]]


@functools.lru_cache(maxsize=2)
def _model(path: str) -> Any:
    return load_model(path)


def _prepared(model: Any, path: str, max_pixels: int | None) -> np.ndarray:
    return prepare_image(model, read_image(path, max_pixels=max_pixels).pixels)


@dataclass(frozen=True)
class ClassifyJob:
    """Classify a batch of image paths: one :class:`~imgkernel.images.Outcome` per path,
    its value the line to print."""

    model: str
    top: int = 1
    as_json: bool = False
    batch_size: int = 64
    max_pixels: int | None = None

    def __call__(self, paths: list[str]) -> list[Outcome]:
        model = _model(self.model)
        outcomes = [
            attempt(functools.partial(_prepared, model, p, self.max_pixels), p) for p in paths
        ]
        good = [i for i, outcome in enumerate(outcomes) if outcome.error is None]
        for start in range(0, len(good), self.batch_size):
            chunk = good[start : start + self.batch_size]
            batch = np.stack([outcomes[i].value for i in chunk])
            for i, ranked in zip(chunk, classify(model, batch, top=self.top), strict=True):
                outcomes[i] = outcomes[i]._replace(value=self.line(paths[i], ranked))
        return outcomes

    def line(self, path: str, ranked: Ranked) -> str:
        return ranked_json(path, ranked) if self.as_json else ranked_line(path, ranked)


def ranked_line(path: str, ranked: Ranked) -> str:
    """``PATH<TAB>LABEL<TAB>P[<TAB>LABEL<TAB>P...]``.

    >>> ranked_line("a.png", [("cat", 0.91234), ("dog", 0.08766)])
    'a.png\\tcat\\t0.9123\\tdog\\t0.0877'
    """
    pairs = "\t".join(f"{label}\t{p:.4f}" for label, p in ranked)
    return f"{path}\t{pairs}"


def ranked_json(path: str, ranked: Ranked) -> str:
    """One JSON object: the path, the best label and probability, and the top list."""
    best_label, best_p = ranked[0]
    top = [{"label": label, "probability": round(p, 6)} for label, p in ranked]
    return json.dumps(
        {"path": path, "label": best_label, "probability": round(best_p, 6), "top": top}
    )
