"""`imgkernel train DIR -o M.npz` with no other option learns scikit-learn's digits (issue #12).

The folder is built as ``scripts/make_digits.py`` builds it: samples 0-1499
as 8-bit grey PNGs (``round(v * 255 / 16)``), one sub-folder per digit; the
model is scored on samples 1500-1796 through ``classify``. The run takes
10-30 s. scikit-learn is not in the ``test`` extra: without it the test is
skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli
from imgkernel.nn import classify, load_model


def test_default_training_reaches_95_percent_on_held_out_digits(tmp_path: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    pixels = np.rint(digits.images * 255.0 / 16.0).astype(np.uint8)
    labels = digits.target
    root = tmp_path / "train"
    for i in range(1500):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i], mode="L").save(folder / f"digit-{labels[i]}-{i:04d}.png")
    out = tmp_path / "digits.npz"
    result = CliRunner().invoke(cli, ["train", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "best epoch" in result.stderr.splitlines()[-1]
    held = range(1500, len(labels))
    predicted = [top[0][0] for top in classify(load_model(str(out)), list(pixels[held]), top=1)]
    accuracy = np.mean(np.array(predicted) == labels[held].astype(str))
    assert accuracy >= 0.95, (accuracy, result.stderr.splitlines()[-2:])
