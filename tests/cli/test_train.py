"""`imgkernel train` end to end: a tiny folder trains and classifies; bad input fails cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def stripes_folder(root: Path, count: int = 12) -> Path:
    """Vertical vs horizontal stripes with random phase and contrast."""
    rng = np.random.default_rng(0)
    for label in ("horizontal", "vertical"):
        (root / label).mkdir(parents=True)
        for i in range(count):
            period = int(rng.integers(2, 4))
            phase = int(rng.integers(0, period))
            row = (((np.arange(12) + phase) // period) % 2).astype(float)
            image = np.tile(row, (12, 1)) * rng.uniform(120, 255)
            if label == "horizontal":
                image = image.T
            Image.fromarray(image.astype(np.uint8)).save(root / label / f"{i}.png")
    return root


def test_train_then_classify(tmp_path: Path) -> None:
    data = stripes_folder(tmp_path / "data")
    (data / "vertical" / "notes.txt").write_text("not an image")
    model = tmp_path / "stripes.npz"
    result = invoke("train", data, "-o", model, "--epochs", "25", "--seed", "1", "--lr", "0.01")
    assert result.exit_code == 0, result.stderr
    assert "validation accuracy" in result.stderr
    assert "warning" in result.stderr and "notes.txt" in result.stderr
    probe = tmp_path / "probe.png"
    row = ((np.arange(12) // 2) % 2) * 255
    Image.fromarray(np.tile(row, (12, 1)).astype(np.uint8)).save(probe)
    result = invoke("classify", model, probe)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\t")[1] == "vertical"


def test_train_is_reproducible(tmp_path: Path) -> None:
    data = stripes_folder(tmp_path / "data", count=6)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for out in (a, b):
        assert invoke("train", data, "-o", out, "--epochs", "2", "--quiet").exit_code == 0
    with np.load(a) as fa, np.load(b) as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for name in fa.files:
            np.testing.assert_array_equal(fa[name], fb[name])


@pytest.mark.parametrize(
    ("make", "args", "fragment"),
    [
        ("none", [], "no such"),
        ("empty", [], ""),
        ("single", [], "only one label"),
        ("good", ["-o", "{tmp}/model.png"], ".npz"),
        ("good", ["-o", "{tmp}/nodir/model.npz"], "does not exist"),
        ("good", ["--epochs", "0"], "epochs"),
        ("good", ["--val-split", "1"], "val-split"),
        ("good", ["--lr", "0"], "lr"),
        ("good", ["--optimizer", "rmsprop"], "optimizer"),
        ("good", ["--arch", "{tmp}/missing.toml"], "missing"),
        ("good", ["--arch", "nosucharch"], "nosucharch"),
        ("good", ["--input-size", "axb"], "axb"),
        ("good", ["--input-size", "1x1"], "small"),
        ("good", ["--ema", "1"], "ema"),
        ("good", ["--label-smoothing", "-0.1"], "label-smoothing"),
        ("good", ["--rotate", "200"], "rotate"),
        ("good", ["--zoom", "2"], "zoom"),
        ("good", ["--augment", "-1"], "augment"),
        ("good", ["--seed", "-1"], "seed"),
        ("good", ["--rotate", "nan"], "rotate"),
        ("good", ["--zoom", "nan"], "zoom"),
        ("good", ["--gray", "--rgb"], "not both"),
        ("good", ["--arch", "{tmp}/binary.toml"], "utf-8"),
        ("good", ["--arch", "{tmp}/dropout.toml"], "dropout rate"),
    ],
)
def test_train_bad_input(make: str, args: list[str], fragment: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if make == "good":
        stripes_folder(data, count=3)
    elif make == "empty":
        data.mkdir()
    elif make == "single":
        stripes_folder(data, count=3)
        for f in (data / "horizontal").iterdir():
            f.unlink()
        (data / "horizontal").rmdir()
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "dropout.toml").write_text(
        '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dropout"\nrate = 1.5\n'
        '[[layer]]\ntype = "dense"\n'
    )
    argv = ["train", str(data)] + [a.format(tmp=tmp_path) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "model.npz")]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert fragment.lower() in lines[0].lower()
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob("*.png"))
