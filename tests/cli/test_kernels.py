"""`imgkernel kernels` and `kernels show`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_images"
PHOTO = SAMPLES / "astronaut.png"
CARDS = SAMPLES / "cards"


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_kernels_list_and_show() -> None:
    result = run("kernels")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"sobel", "gaussian", "laplacian", "emboss", "dilated", "unsharp"} <= set(names)
    result = run("kernels", "show", "gaussian:sigma=1")
    assert result.exit_code == 0
    assert "9x9" in result.stdout and "separable:  yes" in result.stdout


BAD = [
    (["kernels", "show", "nosuch"], "nosuch"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(args: list[str], fragment: str, refused) -> None:
    refused(args, fragment)
