"""`imgkernel train`: early stopping, schedules, the best epoch in the output, --quiet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def noise_folder(root: Path, count: int = 16) -> Path:
    """Two labels of random pixels: nothing to learn, the validation loss soon grows."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (6, 6), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


EPOCH = re.compile(r"^epoch (\d+)/(\d+): loss \S+ acc \S+  val_loss \S+ val_acc \S+  best (\S+)  ")


def test_progress_and_summary_show_the_best_epoch(tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data")
    out = tmp_path / "m.npz"
    args = ["train", data, "-o", out, "--arch", "tiny", "--val-split", "0.25", "--patience", "3"]
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    epochs = [m for m in map(EPOCH.match, lines) if m]
    assert epochs and all(m[2] == "100" for m in epochs)
    best = [int(m[1]) for m in epochs if m[3] == "*"][-1]
    assert all(m[3] in ("*", str(best)) for m in epochs[best:])
    assert len(epochs) == best + 3 < 100
    stopped = f"stopped early after epoch {best + 3}/100: no lower validation loss for 3 epochs"
    assert stopped in lines
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))}: best epoch {best}/100, val_acc \d\.\d{{3}}; restored; "
        r"train accuracy \S+, validation accuracy \S+ \(\S+s\)",
        lines[-1],
    ), lines[-1]
    # --patience 0: every epoch, the best one named, the last one kept
    result = invoke(*args[:-1], "0", "--epochs", "8")
    assert result.exit_code == 0, result.stderr
    last = result.stderr.splitlines()[-1]
    assert len([line for line in result.stderr.splitlines() if EPOCH.match(line)]) == 8
    assert re.search(r"best epoch \d/8, val_acc \S+(; kept epoch 8 \(--patience 0\))?; train", last)


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data")
    result = invoke("train", data, "-o", tmp_path / "m.npz", "--arch", "tiny", "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert (tmp_path / "m.npz").exists()


def test_no_validation_split_trains_every_epoch(tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data")
    out = tmp_path / "m.npz"
    result = invoke("train", data, "-o", out, "--arch", "tiny", "--val-split", "0", "--epochs", "7")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    off = "no validation split: early stopping is off (nothing to watch), training all 7 epochs"
    assert off in lines
    assert len([line for line in lines if re.match(r"epoch \d/7: ", line)]) == 7
    assert "best" not in result.stderr
    assert lines[-1].startswith(f"wrote {out}: all 7 epochs (no validation split); train accuracy")


def test_schedules_and_warmup_train(tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data", count=4)
    for extra in (["--schedule", "onecycle"], ["--schedule", "constant", "--warmup", "2"]):
        out = tmp_path / "m.npz"
        result = invoke("train", data, "-o", out, "--arch", "tiny", "--epochs", "3", *extra)
        assert result.exit_code == 0, result.stderr
        out.unlink()


def test_help_documents_the_new_options() -> None:
    text = invoke("train", "--help").stdout
    for option in ("--patience", "--min-epochs", "--schedule", "--warmup", "--label-smoothing"):
        assert option in text
    text = " ".join(text.split())
    assert "[default: 100; x>=1]" in text and "[default: 10; x>=0]" in text
    assert "onecycle" in text and "[default: 0.1; 0<=x<1]" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--patience", "-1"], "patience"),
        (["--patience", "x"], "patience"),
        (["--min-epochs", "-1"], "min-epochs"),
        (["--min-epochs", "30", "--epochs", "20"], "min epochs"),
        (["--schedule", "linear"], "schedule"),
        (["--warmup", "-2"], "warmup"),
        (["--warmup", "1.5"], "warmup"),
    ],
)
def test_bad_stopping_and_schedule_options(args: list[str], fragment: str, tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data", count=3)
    out = tmp_path / "model.npz"
    result = invoke("train", data, "-o", out, *args)
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0].lower()
    assert not out.exists()


def test_default_run_is_reproducible(tmp_path: Path) -> None:
    data = noise_folder(tmp_path / "data", count=8)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for out in (a, b):
        result = invoke("train", data, "-o", out, "--quiet")
        assert result.exit_code == 0 and result.stderr == ""
    with np.load(a) as fa, np.load(b) as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for name in fa.files:
            np.testing.assert_array_equal(fa[name], fb[name])
