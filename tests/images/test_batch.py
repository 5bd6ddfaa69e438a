"""imgkernel.images.batch: OutputOptions and run_images, the loop every image command shares."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from image_helpers import FakeStream, listing, png_bytes, rand
from PIL import Image as PILImage

from imgkernel.errors import BatchFailed, UsageError
from imgkernel.images import Image, OutputOptions, read_image, run_images


def inverted(image: Image, out_format: str):
    return (image.max_value - image.pixels).astype(image.pixels.dtype), image.alpha


@pytest.fixture
def two(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png_bytes(rand((4, 5))))
        paths.append(str(tmp_path / name))
    return paths


def test_output_options_defaults_and_formats():
    options = OutputOptions()
    assert options.output is None and options.format is None and dict(options.save) == {}
    assert options.target() == "-"
    assert OutputOptions(output="g.tif").format_for("g.tif", "PNG") == "TIFF"
    assert OutputOptions(format="npy").format_for("g.tif", "PNG") == "NPY"
    with pytest.raises(AttributeError):
        options.output = "x.png"  # type: ignore[misc]


def test_template_outputs_and_format_option(two: list[str], tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    run_images(two, inverted, OutputOptions(output=str(out) + "/", format="npy"))
    assert listing(out) == ["a.npy", "b.npy"]
    np.testing.assert_array_equal(np.load(out / "a.npy"), 255 - read_image(two[0]).pixels)


def test_save_options_reach_the_encoder(two: list[str], tmp_path: Path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    flat = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
    (tmp_path / "flat.png").write_bytes(png_bytes(flat))
    source = [str(tmp_path / "flat.png")]
    run_images(source, inverted, OutputOptions(output=str(big), save={"compress_level": 0}))
    run_images(source, inverted, OutputOptions(output=str(small), save={"compress_level": 9}))
    assert big.stat().st_size > small.stat().st_size
    with PILImage.open(small) as im:
        np.testing.assert_array_equal(np.asarray(im), 255 - flat)


def test_text_results_are_lines_on_stdout(two: list[str], monkeypatch: pytest.MonkeyPatch):
    fake = FakeStream()
    monkeypatch.setattr(sys, "stdout", fake)
    run_images(two, lambda image, fmt: f"{image.source} {fmt}", OutputOptions(format="json"))
    assert fake.buffer.getvalue().decode().splitlines() == [f"{two[0]} JSON", f"{two[1]} JSON"]


def test_a_bad_input_among_several_does_not_stop_the_others(two: list[str], tmp_path: Path):
    missing = str(tmp_path / "missing.png")
    template = str(tmp_path / "{stem}-x.png")
    with pytest.raises(BatchFailed, match="^1 of 3 inputs failed$") as caught:
        run_images([two[0], missing, two[1]], inverted, OutputOptions(output=template))
    assert caught.value.exit_code == 2
    assert caught.value.failures == [(f"{missing}: no such file", 2)]
    assert listing(tmp_path) == ["a-x.png", "a.png", "b-x.png", "b.png"]
    with pytest.raises(UsageError, match="only once"):  # found before any work
        run_images(["-", "-"], inverted, OutputOptions(output=str(tmp_path) + "/"))


def test_a_single_bad_input_raises_its_own_error(tmp_path: Path):
    with pytest.raises(UsageError, match="missing.png: no such file"):
        run_images([str(tmp_path / "missing.png")], inverted, OutputOptions(output="x.png"))


def test_no_inputs_reads_standard_input(monkeypatch: pytest.MonkeyPatch):
    arr = rand((3, 3))
    stdout = FakeStream()
    monkeypatch.setattr(sys, "stdin", FakeStream(png_bytes(arr)))
    monkeypatch.setattr(sys, "stdout", stdout)
    run_images([], inverted, OutputOptions())
    assert stdout.buffer.getvalue().startswith(b"\x89PNG")  # the input's format
