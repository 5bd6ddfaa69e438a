"""imgkernel.cli.params: parameter types, and one bundle of output options for every writer."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from imgkernel.cli import cli
from imgkernel.cli.params import (
    INPUTS,
    OUTPUT_OPTIONS,
    FiniteFloat,
    FloatList,
    IntPair,
    LayerType,
    OffsetType,
    PaddingType,
    output_options,
)
from imgkernel.images import SAVE_OPTIONS, Offset, OutputOptions, run_images
from imgkernel.images.write import SaveOption

#: The commands that write images; each takes exactly the same output options.
IMAGE_WRITERS = ("filter", "pool", "features")


def output_params(command: click.Command) -> dict[str, tuple]:
    return {
        p.name: (tuple(p.opts), repr(p.type), p.multiple)
        for p in command.params
        if p.name in OUTPUT_OPTIONS
    }


def test_every_image_writing_command_takes_the_same_output_options() -> None:
    # get_command, not cli.commands: commands are registered when first looked up
    context = click.Context(cli)

    def command(name: str) -> click.Command:
        found = cli.get_command(context, name)
        assert found is not None, name
        return found

    expected = output_params(command("filter"))
    assert set(expected) == set(OUTPUT_OPTIONS)
    assert set(SAVE_OPTIONS) <= set(expected)  # every encoder setting has its option
    for name in IMAGE_WRITERS:
        assert output_params(command(name)) == expected, name


def probe_command(seen: dict) -> click.Command:
    @click.command()
    @INPUTS
    @output_options()
    def probe(inputs: tuple[str, ...], out: OutputOptions) -> None:
        seen["out"] = out
        run_images(inputs, lambda image, fmt: (image.pixels, image.alpha), out)

    return probe


def test_output_options_arrive_as_one_frozen_bundle(tmp_path: Path) -> None:
    seen: dict = {}
    source = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(source)
    args = [str(source), "-o", str(tmp_path / "b.jpg"), "--quality", "80", "--max-pixels", "0"]
    result = CliRunner().invoke(probe_command(seen), args)
    assert result.exit_code == 0, result.output
    assert seen["out"] == OutputOptions(
        output=str(tmp_path / "b.jpg"),
        format=None,
        max_pixels=0,
        save={"compress_level": None, "quality": 80},
    )


def test_a_new_save_option_is_one_entry_here_and_one_in_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SAVE_OPTIONS, "optimize", SaveOption({"JPEG": 0}, 0, 1))
    monkeypatch.setitem(
        OUTPUT_OPTIONS, "optimize", (("--optimize",), {"type": click.IntRange(0, 1)})
    )
    saved: list[dict] = []
    real_save = PILImage.Image.save

    def recording_save(self, fp, format=None, **params):
        saved.append(params)
        return real_save(self, fp, format=format, **params)

    monkeypatch.setattr(PILImage.Image, "save", recording_save)
    source = tmp_path / "a.png"
    source.write_bytes(b"")
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(source)
    saved.clear()
    seen: dict = {}
    args = [str(source), "-o", str(tmp_path / "b.jpg"), "--optimize", "1"]
    result = CliRunner().invoke(probe_command(seen), args)
    assert result.exit_code == 0, result.output
    assert seen["out"].save["optimize"] == 1
    assert saved == [{"quality": 90, "optimize": 1}]


def test_output_option_overrides_are_checked() -> None:
    with pytest.raises(TypeError, match="colour"):
        output_options(colour={"default": "red"})


def convert(kind: click.ParamType, value: object) -> object:
    return kind.convert(value, None, None)


def test_int_pair() -> None:
    assert convert(IntPair(), "3") == (3, 3)
    assert convert(IntPair(), "2,5") == (2, 5) == convert(IntPair(), "2x5")
    assert convert(IntPair(), (4, 4)) == (4, 4)
    for bad in ("0", "1,2,3", "a"):
        with pytest.raises(click.BadParameter):
            convert(IntPair(), bad)


def test_padding() -> None:
    assert convert(PaddingType(), "Same") == "same"
    assert convert(PaddingType(), "2") == (2, 2, 2, 2)
    assert convert(PaddingType(), "1,2") == (1, 2)
    assert convert(PaddingType(), "1,2,3,4") == (1, 2, 3, 4)
    for bad in ("middle", "1,2,3", "-1"):
        with pytest.raises(click.BadParameter):
            convert(PaddingType(), bad)


def test_offset_and_finite_numbers() -> None:
    assert convert(OffsetType(), "50%") == Offset(0.5, fraction=True)
    assert convert(OffsetType(), "-12.5") == Offset(-12.5)
    assert convert(FiniteFloat(), "1e3") == 1000.0
    for kind, bad in ((OffsetType(), "abc"), (OffsetType(), "inf%"), (FiniteFloat(), "nan")):
        with pytest.raises(click.BadParameter, match=repr(bad)):
            convert(kind, bad)


def test_float_list_and_layer() -> None:
    assert convert(FloatList(), "0.5, 0.25 1") == [0.5, 0.25, 1.0]
    for bad in ("", "1,x"):
        with pytest.raises(click.BadParameter, match="numbers separated by commas"):
            convert(FloatList(), bad)
    assert convert(LayerType(), "3") == 3 and convert(LayerType(), "-1") == -1
    assert convert(LayerType(), "conv2d1") == "conv2d1"
    assert convert(LayerType(), "--5") == "--5"  # a name, not an index
