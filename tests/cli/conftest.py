"""Shared fixtures of the command-line tests: small images and the clean-refusal check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli

PHOTO = Path(__file__).resolve().parents[2] / "sample_images" / "astronaut.png"


@pytest.fixture
def gray(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "gray.png"
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    path = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def refused(gray: Path, tmp_path: Path) -> Callable[[list[str], str], None]:
    """``refused(args, fragment)``: exit status 2, one stderr line naming ``fragment``.

    ``args`` may name ``{gray}``, ``{tmp}``, ``{missing}``, ``{text}`` (not an
    image) and ``{truncated}``; an existing output file and the folder's
    listing must be left as they were.
    """

    def check(args: list[str], fragment: str) -> None:
        text = tmp_path / "notes.png"
        text.write_text("not an image\n")
        truncated = tmp_path / "cut.png"
        truncated.write_bytes(PHOTO.read_bytes()[:3000])
        names = {
            "gray": str(gray),
            "tmp": str(tmp_path),
            "missing": str(tmp_path / "missing.png"),
            "text": str(text),
            "truncated": str(truncated),
        }
        target = tmp_path / "result.png"
        target.write_bytes(b"precious")
        argv = [a.format(**names) for a in args]
        if argv[0] in ("filter", "pool") and "-o" not in argv and argv.count(str(gray)) < 2:
            argv += ["-o", str(target)]
        before = sorted(p.name for p in tmp_path.iterdir())
        result = CliRunner().invoke(cli, argv, input=b"")
        assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert fragment.lower() in lines[0].lower()
        assert target.read_bytes() == b"precious"
        assert sorted(p.name for p in tmp_path.iterdir()) == before

    return check
