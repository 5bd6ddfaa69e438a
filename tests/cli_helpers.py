"""Shared by the command-line tests: sample files, the CLI run in process, a picture read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"
PHOTO = SAMPLES / "astronaut.png"
CARDS = SAMPLES / "cards"


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))
