"""Parameter types and the shared output options: specs are parsed here, at the boundary.

Commands receive values, never spec strings: ``--stride 2,1`` arrives as
``(2, 1)``, ``--offset 50%`` as an :class:`~imgkernel.images.Offset`, and the
image-writing options arrive together as one
:class:`~imgkernel.images.OutputOptions` (see :func:`output_options`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import click

from imgkernel.errors import UsageError, check_float
from imgkernel.images import (
    LAYOUTS,
    SAVE_OPTIONS,
    BatchOptions,
    Display,
    Offset,
    OutputOptions,
)

__all__ = [
    "FINITE",
    "DIVISOR",
    "INPUTS",
    "KERNEL_LIBRARIES",
    "LAYER",
    "OUTPUT_OPTIONS",
    "PAIR",
    "FiniteFloat",
    "FloatList",
    "IntPair",
    "LayerType",
    "SchedulerType",
    "OffsetType",
    "OutputOptions",
    "PaddingType",
    "batch_options",
    "display_options",
    "output_options",
]


class IntPair(click.ParamType):
    """``N`` or ``H,W`` (also ``HxW``), each at least ``minimum``."""

    name = "N|H,W"

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).replace("x", ",").split(",")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            self.fail(f"{value!r} is not an integer or a pair H,W", param, ctx)
        if len(nums) == 1:
            nums = nums * 2
        if len(nums) != 2:
            self.fail(f"{value!r} must be N or H,W", param, ctx)
        if min(nums) < self.minimum:
            self.fail(f"{value!r} must be at least {self.minimum}", param, ctx)
        return (nums[0], nums[1])


class PaddingType(click.ParamType):
    """``same``, ``valid``, ``full``, ``N``, ``H,W`` or ``T,B,L,R``."""

    name = "same|valid|full|N|H,W|T,B,L,R"

    def convert(self, value: Any, param: Any, ctx: Any) -> str | tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text in ("same", "valid", "full"):
            return text
        try:
            nums = tuple(int(p) for p in text.split(","))
        except ValueError:
            self.fail(f"{value!r} is not same, valid, full or integers", param, ctx)
        if len(nums) not in (1, 2, 4):
            self.fail(f"{value!r} needs 1, 2 or 4 integers", param, ctx)
        if min(nums) < 0:
            self.fail(f"{value!r} must not be negative", param, ctx)
        return nums * 4 if len(nums) == 1 else nums


class _Number(click.ParamType):
    """A finite float parsed with :func:`imgkernel.errors.check_float`."""

    problem = "is not a finite number"

    def number(self, text: Any, value: Any, param: Any, ctx: Any) -> float:
        """``text`` as a finite float, or the click error ``'value' <problem>``."""
        try:
            return check_float(text, "value")
        except UsageError:
            self.fail(f"{value!r} {self.problem}", param, ctx)


class OffsetType(_Number):
    """A number in output units, or a percentage of full scale (``50%``)."""

    name = "VALUE|PERCENT%"
    problem = "is not a number or a percentage"

    def convert(self, value: Any, param: Any, ctx: Any) -> Offset:
        if isinstance(value, tuple):
            return Offset(*value)
        text = str(value).strip()
        percent = text.endswith("%")
        number = self.number(text[:-1] if percent else text, value, param, ctx)
        return Offset(number / 100.0, fraction=True) if percent else Offset(number)


class FiniteFloat(_Number):
    """A finite number (no nan or inf)."""

    name = "NUMBER"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        return self.number(value, value, param, ctx)


class DivisorType(_Number):
    """A non-zero number, or ``sum`` for the absolute sum of the weights."""

    name = "N|sum"
    problem = "is not a non-zero number or 'sum'"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | str:
        text = str(value).strip().lower()
        if text in ("sum", "auto"):
            return "sum"
        number = self.number(text, value, param, ctx)
        if number == 0:
            self.fail(f"{value!r} {self.problem}", param, ctx)
        return number


class FloatList(click.ParamType):
    """Numbers separated by commas (or spaces), e.g. ``0.485,0.456,0.406``."""

    name = "text"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[float]:
        if isinstance(value, list):
            return value
        try:
            values = [float(v) for v in str(value).replace(" ", ",").split(",") if v]
        except ValueError:
            values = []
        if not values:
            self.fail(f"{value!r} must be numbers separated by commas", param, ctx)
        return values


class LayerType(click.ParamType):
    """A model layer: its name, or its 0-based index (negative counts from the end)."""

    name = "text"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int):
            return value
        text = str(value)
        return int(text) if re.fullmatch(r"-?[0-9]+", text) else text


class SchedulerType(click.ParamType):
    """Where batches (and the tiles of one large image) run: ``local:N`` or a Dask address."""

    name = "tcp://HOST:PORT|local:N"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if text.startswith("local:"):
            count = text[len("local:") :]
            if not (count.isdigit() and 1 <= int(count) <= LOCAL_WORKERS_MAX):
                self.fail(
                    f"{value!r}: local:N needs N from 1 to {LOCAL_WORKERS_MAX} worker processes",
                    param,
                    ctx,
                )
            return f"local:{int(count)}"
        scheme, _, address = text.partition("://")
        if not (scheme.isidentifier() and address.strip("/")):
            self.fail(f"{value!r} is not tcp://HOST:PORT (a Dask scheduler) or local:N", param, ctx)
        host, colon, port = address.strip("/").rpartition(":")
        if colon and host and not (port.isdigit() and 1 <= int(port) <= 65535):
            self.fail(f"{value!r}: the port must be a number from 1 to 65535", param, ctx)
        return text


#: Most worker processes of a ``local:N`` cluster.
LOCAL_WORKERS_MAX = 256

PAIR = IntPair(1)
FINITE = FiniteFloat()
DIVISOR = DivisorType()
LAYER = LayerType()

#: The input images of a command that maps images to images.
INPUTS = click.argument("inputs", nargs=-1, metavar="[INPUT]...")

#: Extra kernel libraries, for ``filter`` and ``kernels``.
KERNEL_LIBRARIES = click.option(
    "--kernels",
    "kernel_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Extra kernel library (.toml); may be repeated.",
)


def _save_range(name: str) -> click.IntRange:
    option = SAVE_OPTIONS[name]
    return click.IntRange(option.minimum, option.maximum)


#: The options of every image-writing command: click's settings by destination name.
#: Names in :data:`imgkernel.images.SAVE_OPTIONS` become ``OutputOptions.save`` entries,
#: the others ``OutputOptions`` fields. A new encoder setting is one entry here and
#: one in ``SAVE_OPTIONS``; the commands and the batch code do not change.
OUTPUT_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "output": (
        ("-o", "--output"),
        dict(
            metavar="FILE|DIR/|TEMPLATE",
            help="Output file, '-' for stdout (default), a directory ending in '/', "
            "or a template like 'out/{stem}-edges.png' for several inputs.",
        ),
    ),
    "format": (
        ("--format",),
        dict(
            metavar="FMT",
            help="Output format (png, jpeg, tiff, bmp, webp, npy, ...); default from -o, "
            "else the input's format.",
        ),
    ),
    "compress_level": (
        ("--compress-level",),
        dict(
            type=_save_range("compress_level"),
            help="PNG zlib level 0-9 (default: fast level 1); also the deflate level of "
            "tiled TIFF output (0: uncompressed).",
        ),
    ),
    "quality": (
        ("--quality",),
        dict(type=_save_range("quality"), help="JPEG/WebP quality 1-100."),
    ),
    "max_pixels": (
        ("--max-pixels",),
        dict(
            type=click.IntRange(min=0),
            help="Raise Pillow's decompression-bomb limit (pixels) for trusted large images "
            "(0: no limit).",
        ),
    ),
    "layout": (
        ("--layout",),
        dict(
            type=click.Choice(LAYOUTS, case_sensitive=False),
            help="How a 3-D .npy input is laid out: hwc (H, W, C; the default) or chw "
            "(C, H, W). 4-D arrays are (N, C, H, W); outputs keep the input's layout.",
        ),
    ),
    "overwrite": (
        ("--overwrite",),
        dict(
            is_flag=True,
            help="Let an output replace one of the inputs (written after that input is read).",
        ),
    ),
}

#: The mutually exclusive display flags and the mode each asks for.
DISPLAY_FLAGS = {
    "clip": ("clip", "Clip to the output range."),
    "abs": ("abs", "Show magnitudes |v|."),
    "signed": ("offset", "Show signed values around mid-grey."),
    "normalize": ("normalize", "Stretch to the full range."),
}


def display_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--clip/--abs/--signed/--normalize``, ``--scale`` and ``--offset`` to a command.

    The command receives one ``display`` (:class:`~imgkernel.images.Display`);
    two mappings at once (``--clip --abs``) are a usage error naming both.
    """

    @functools.wraps(command)
    def bundled(*args: Any, **kwargs: Any) -> Any:
        chosen = [flag for flag in DISPLAY_FLAGS if kwargs.pop(f"display_{flag}")]
        if len(chosen) > 1:
            named = " and ".join(f"--{flag}" for flag in chosen)
            raise click.UsageError(f"{named} conflict: give one display mapping")
        mode = DISPLAY_FLAGS[chosen[0]][0] if chosen else None
        display = Display(mode=mode, scale=kwargs.pop("scale"), offset=kwargs.pop("offset"))
        return command(*args, display=display, **kwargs)

    bundled = click.option(
        "--offset", type=OffsetType(), default=None, help="Add after scaling: a value or N%."
    )(bundled)
    bundled = click.option(
        "--scale", type=FINITE, default=None, help="Multiply results before display."
    )(bundled)
    for flag, (_, text) in reversed(DISPLAY_FLAGS.items()):
        bundled = click.option(f"--{flag}", f"display_{flag}", is_flag=True, help=text)(bundled)
    return bundled


def output_options(
    **overrides: Mapping[str, Any],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the :data:`OUTPUT_OPTIONS` to a command; it receives them as one ``out`` argument.

    ``overrides`` change an option's click settings for one command, e.g.
    ``output={"default": "-", "help": "Grid image to write."}``.
    """
    unknown = set(overrides) - set(OUTPUT_OPTIONS)
    if unknown:
        raise TypeError(f"no output option {sorted(unknown)[0]!r}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        table = dict(OUTPUT_OPTIONS)
        saved = [name for name in table if name in SAVE_OPTIONS]

        @functools.wraps(command)
        def bundled(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in table}
            save = {name: given.pop(name) for name in saved}
            return command(*args, out=OutputOptions(save=save, **given), **kwargs)

        for name, (decls, settings) in reversed(table.items()):
            bundled = click.option(*decls, name, **{**settings, **overrides.get(name, {})})(bundled)
        return bundled

    return decorate


#: The options of a command over many inputs: click's settings by destination name,
#: and which commands have them (``targets``: they write a file per input; ``tiles``:
#: they have a tiled path).
BATCH_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any], str]] = {
    "files_from": (
        ("--files-from",),
        dict(
            metavar="FILE|-",
            help="Read more inputs from FILE, one path a line ('-': standard input).",
        ),
        "",
    ),
    "jobs": (
        ("-j", "--jobs"),
        dict(
            type=click.IntRange(min=1),
            metavar="N",
            help="Worker processes for many inputs (default: one per core; one input runs "
            "in this process).",
        ),
        "",
    ),
    "scheduler": (
        ("--scheduler",),
        dict(
            type=SchedulerType(),
            metavar="tcp://HOST:PORT|local:N",
            help="Run on a Dask cluster: tcp://HOST:PORT, or local:N worker processes. Many "
            "inputs go there in batches of files; one TIFF/Zarr image in tiles.",
        ),
        "",
    ),
    "tile_size": (
        ("--tile-size",),
        dict(
            type=click.IntRange(8, 1 << 16),
            metavar="N",
            help="Work tile by tile, N output pixels a side (TIFF or Zarr in and out); "
            "Zarr and TIFF over 67 Mpx go tile by tile anyway (1024 a side, 512 for "
            "very wide images).",
        ),
        "tiles",
    ),
    "skip_existing": (
        ("--skip-existing",),
        dict(is_flag=True, help="Skip inputs whose output exists (resume a stopped run)."),
        "targets",
    ),
    "fail_fast": (
        ("--fail-fast",),
        dict(is_flag=True, help="Stop at the first bad input (default: do the others)."),
        "",
    ),
    "quiet": (
        ("-q", "--quiet"),
        dict(is_flag=True, help="No progress bar (shown only when stderr is a terminal)."),
        "",
    ),
}


def batch_options(
    *, targets: bool = True, tiles: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the :data:`BATCH_OPTIONS` to a command; it receives them as one ``batch``
    (:class:`~imgkernel.images.BatchOptions`, with a progress bar on stderr when that is
    a terminal). ``targets``/``tiles``: whether ``--skip-existing``/``--tile-size`` apply.
    """
    kinds = {"", *(["targets"] if targets else []), *(["tiles"] if tiles else [])}
    table = {name: entry for name, entry in BATCH_OPTIONS.items() if entry[2] in kinds}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def bundled(*args: Any, **kwargs: Any) -> Any:
            from imgkernel.cli.progress import Progress

            given = {name: kwargs.pop(name) for name in table}
            if given.get("jobs") is not None and given.get("scheduler") is not None:
                raise click.UsageError(
                    "--jobs and --scheduler both say where to run: give one of them"
                )
            quiet = given.pop("quiet")
            name = click.get_current_context().info_name or "imgkernel"
            reporter = Progress(name, show=not quiet)
            return command(*args, batch=BatchOptions(reporter=reporter, **given), **kwargs)

        for name, (decls, settings, _) in reversed(table.items()):
            bundled = click.option(*decls, name, **settings)(bundled)
        return bundled

    return decorate
