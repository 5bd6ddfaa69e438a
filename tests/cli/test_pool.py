"""`imgkernel pool` end to end: results, bit depth and alpha, statistics as JSON, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CARDS, load, run
from PIL import Image


def test_pool_halves_png_and_matches_library(rgb: Path, tmp_path: Path) -> None:
    from imgkernel.core.pool import pool2d

    out = tmp_path / "half.png"
    assert run("pool", "--size", "2", rgb, "-o", out).exit_code == 0
    np.testing.assert_array_equal(load(out), pool2d(load(rgb), 2))


def test_pool_global_json(rgb: Path) -> None:
    result = run("pool", "--global", "--mode", "avg", rgb, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    np.testing.assert_allclose(
        [data["red"], data["green"], data["blue"]], load(rgb).reshape(-1, 3).mean(axis=0)
    )


def test_pool_keeps_16bit_and_pools_alpha(tmp_path: Path) -> None:
    out = tmp_path / "g16.png"
    assert run("pool", "--size", "2", CARDS / "gradient-16bit.png", "-o", out).exit_code == 0
    with Image.open(CARDS / "gradient-16bit.png") as src, Image.open(out) as im:
        assert im.mode.startswith("I") and im.size == (src.size[0] // 2, src.size[1] // 2)
        expected = np.asarray(src).reshape(src.size[1] // 2, 2, src.size[0] // 2, 2).max((1, 3))
        np.testing.assert_array_equal(np.asarray(im), expected)
    out = tmp_path / "rgba.png"
    result = run("pool", "--size", "2", "--mode", "min", CARDS / "rgba-disc.png", "-o", out)
    assert result.exit_code == 0, result.stderr
    with Image.open(CARDS / "rgba-disc.png") as src, Image.open(out) as im:
        rgba = np.asarray(src.convert("RGBA"))
        h, w = rgba.shape[0] // 2 * 2, rgba.shape[1] // 2 * 2
        expected = rgba[:h, :w].reshape(h // 2, 2, w // 2, 2, 4).min((1, 3))
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), expected)


def test_pool_npy_avg_is_float_and_unrounded(tmp_path: Path) -> None:
    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.save(tmp_path / "m.npy", data)
    out = tmp_path / "p.npy"
    assert run("pool", "--size", "2", "--mode", "avg", tmp_path / "m.npy", "-o", out).exit_code == 0
    np.testing.assert_array_equal(np.load(out), [[2.5, 4.5], [10.5, 12.5]])


def test_pool_global_json_lines_for_several_inputs(gray: Path, rgb: Path) -> None:
    result = run("pool", "--global", "--mode", "avg", gray, rgb, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [str(gray), str(rgb)]
    assert abs(rows[0]["gray"] - load(gray).mean()) < 1e-3


BAD = [
    (["pool", "{gray}", "--size", "2", "--ceil", "--padding", "9"], "pad"),
    (["pool", "{gray}", "--size", "0"], "size"),
    (["pool", "{gray}", "--size", "2", "--stride", "0"], "stride"),
    (["pool", "{gray}", "--size", "2", "--mode", "median"], "mode"),
    (["pool", "{gray}", "--size", "2", "--padding", "2"], "pad"),
    (["pool", "{gray}", "--size", "50"], "window"),
    (["pool", "{gray}"], "--size"),
    (["pool", "{gray}", "--global", "--size", "2"], "global"),
    (["pool", "{gray}", "--size", "2", "--format", "json"], "global"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(args: list[str], fragment: str, refused) -> None:
    refused(args, fragment)
