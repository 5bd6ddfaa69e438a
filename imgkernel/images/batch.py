"""Batches: read each input, transform it, write the result where the user asked.

A command that maps images to images (``filter``, ``pool``) hands
:func:`run_images` its inputs, a per-image ``transform`` and one
:class:`OutputOptions`; everything about names, formats and encoder settings
happens here, the same way for every such command. Many inputs run in
batches on worker processes or a Dask cluster (:mod:`imgkernel.images.many`,
which also states the rule for a bad input among many); the work on one
input is an :class:`ImageJob`, which worker processes receive pickled.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from imgkernel.errors import ImgkernelWarning, UsageError
from imgkernel.images.formats import format_from_name, is_text_output, requested_format
from imgkernel.images.image import Image
from imgkernel.images.many import BatchOptions, Outcome, attempt, run_many
from imgkernel.images.outputs import check_no_input_overwritten, expand_outputs
from imgkernel.images.read import check_stdin_once, read_image
from imgkernel.images.stream import STREAMED_FORMATS, Bands, write_bands
from imgkernel.images.write import (
    DEFAULT_PNG_COMPRESS_LEVEL,
    MULTI_FRAME_FORMATS,
    write_frames,
    write_image,
    write_text,
)

if TYPE_CHECKING:  # tiled imports pool, which imports this module
    from imgkernel.images.route import LargeRoute

#: What a transform returns: ``(pixels, alpha)`` ready to save, the same as row
#: bands (:class:`~imgkernel.images.stream.Bands`), or one line of text.
Result = tuple[np.ndarray, np.ndarray | None] | Bands | str
Transform = Callable[[Image, str], Result]


@dataclass(frozen=True)
class OutputOptions:
    """Where and how a command writes images, and how large an input it reads.

    ``output`` is a file, ``-`` or None (standard output), a directory ending
    in ``/`` or a template (see :func:`~imgkernel.images.outputs.expand_outputs`);
    ``format`` overrides the format the name implies; ``max_pixels`` replaces
    the decompression-bomb limit for reading; ``layout`` (``hwc``/``chw``)
    says how a 3-D ``.npy`` input is read; ``overwrite`` lets an output
    replace an input (refused otherwise); ``save`` holds the encoder
    settings, by their names in :data:`~imgkernel.images.write.SAVE_OPTIONS`
    (None: the format's default).
    """

    output: str | None = None
    format: str | None = None
    max_pixels: int | None = None
    layout: str | None = None
    overwrite: bool = False
    save: Mapping[str, int | None] = field(default_factory=dict)

    def target(self) -> str:
        """The single output a one-image command writes: ``output``, or ``-``."""
        return self.output or "-"

    def format_for(self, target: str, fallback: str) -> str:
        """The format to write ``target`` in: ``format``, else the name's, else ``fallback``.

        >>> OutputOptions(format="jpg").format_for("x.png", "PNG")
        'JPEG'
        >>> OutputOptions().format_for("x.tif", "PNG"), OutputOptions().format_for("-", "PNG")
        ('TIFF', 'PNG')
        """
        named = format_from_name(target) if target != "-" else None
        return requested_format(self.format) or named or fallback


def run_images(
    inputs: Sequence[str],
    transform: Transform,
    options: OutputOptions,
    *,
    large: LargeRoute | None = None,
    batch: BatchOptions | None = None,
) -> None:
    """Read each input (``-``: standard input), transform it and write it where asked.

    ``transform(image, out_format)`` returns ``(pixels, alpha)`` ready to save
    in ``out_format``, row bands, or a line of text (for ``txt``/``json``
    output, one line per input on standard output unless ``-o`` names files).
    No input: ``-``. ``large`` says which inputs take the tiled path (see
    :class:`~imgkernel.images.route.LargeRoute`; its own scheduler is not
    used: ``batch.scheduler`` computes the tiles of a single input, and
    inputs among many run whole on a worker). ``batch`` says how many inputs
    run (see :mod:`imgkernel.images.many`).

    The output names, and whether one would replace an input, are settled
    before any work; any problem there is raised at once. A single input's
    failure is raised as it is. Among several inputs a bad one does not stop
    the others: the failure rule of :mod:`imgkernel.images.many` (each error
    reported, the complete outputs of good inputs kept,
    :class:`~imgkernel.errors.BatchFailed` at the end).
    """
    batch = batch or BatchOptions()
    sources = list(inputs) or ["-"]
    check_stdin_once(sources)
    targets = _targets(sources, options)
    check_no_input_overwritten(sources, targets, allowed=options.overwrite)
    if large is not None and large.tile_size is not None:
        _check_tiled_targets(targets)
    local = None if large is None else replace(large, scheduler=None)
    job = ImageJob(transform, options, local)
    pairs = list(zip(sources, targets, strict=True))
    if batch.skip_existing:
        pairs = [(s, t) for s, t in pairs if t == "-" or not os.path.lexists(t)]
    if len(sources) == 1:
        for source, target in pairs:
            route = _single_route(local, batch.scheduler, source, target)
            job.run(source, target, route=route, text_out=True)
        return
    on_stdin = "-" in sources
    run_many(job, pairs, batch, emit=_print_line, total=len(sources), local=on_stdin)


def _targets(sources: list[str], options: OutputOptions) -> list[str]:
    requested = requested_format(options.format)
    if requested is not None and is_text_output(requested) and options.output in (None, "-"):
        return ["-"] * len(sources)  # one text line per input on stdout
    default_ext = requested.lower() if requested else None
    return expand_outputs(sources, options.output, default_ext=default_ext)


def _check_tiled_targets(targets: list[str]) -> None:
    from imgkernel.images.tiled import check_target_format

    for target in targets:
        if target == "-":
            raise UsageError("--tile-size writes a file: give -o NAME.tif (or NAME.zarr)")
        check_target_format(target)


def _single_route(
    local: LargeRoute | None, scheduler: Any, source: str, target: str
) -> LargeRoute | None:
    """The route of a single input: its tiles on ``scheduler`` when the pair goes tiled
    with a scheduler asked for (TIFF to TIFF, Zarr), else the local route."""
    if scheduler is None:
        return local
    if local is not None:
        remote = replace(local, scheduler=scheduler)
        try:
            if remote.applies(source, target):
                return remote
        except UsageError:
            if local.tile_size is not None:
                raise
    warnings.warn(SCHEDULER_UNUSED, ImgkernelWarning, stacklevel=2)
    return local


#: Said when --scheduler has nothing to run on a cluster.
SCHEDULER_UNUSED = (
    "--scheduler runs many inputs, or the tiles of one TIFF or Zarr image: "
    "this single input runs here"
)


def _print_line(pair: tuple[str, str], text: str | None) -> None:
    if text is not None:
        write_text("-", text + "\n")


@dataclass(frozen=True)
class ImageJob:
    """One command's work on ``(source, target)`` pairs; picklable, for worker processes."""

    transform: Transform
    options: OutputOptions
    large: LargeRoute | None = None

    def __call__(self, pairs: list[tuple[str, str]]) -> list[Outcome]:
        """Each pair done, its failure caught (:func:`~imgkernel.images.many.attempt`)."""
        return [attempt(partial(self.run, source, target), source) for source, target in pairs]

    def run(
        self, source: str, target: str, *, route: LargeRoute | None = None, text_out: bool = False
    ) -> str | None:
        """Do one input; a text result for standard output is returned (or, with
        ``text_out``, written)."""
        options = self.options
        route = route or self.large
        if route is not None and route.applies(source, target):
            route(source, target)
            return None
        progressive = getattr(self.transform, "progressive_input", False)
        image = read_image(
            source,
            max_pixels=options.max_pixels,
            layout=options.layout,
            frames=True,
            progressive=progressive,
        )
        try:
            return self._transform_and_write(image, target, text_out)
        finally:
            if image.arriving is not None:  # a failure: stop decoding rows no one reads
                image.arriving.cancel()

    def _transform_and_write(self, image: Image, target: str, text_out: bool) -> str | None:
        options = self.options
        out_format = options.format_for(target, image.format)
        if image.frames > 1 and out_format in MULTI_FRAME_FORMATS:
            _write_all_frames(image, target, out_format, self.transform, options)
            return None
        result = self.transform(image, out_format)
        if isinstance(result, str) and target == "-" and not text_out:
            return result
        _write_one(image, target, out_format, result, options)
        if image.frames > 1:  # said once the output exists: a failure stays one line
            warnings.warn(
                f"{image.display_name} has {image.frames} frames; only the first was used "
                "(write GIF, TIFF, WebP or PNG to keep them all)",
                ImgkernelWarning,
                stacklevel=2,
            )
        return None


def _write_one(
    image: Image, target: str, out_format: str, result: Result, options: OutputOptions
) -> None:
    if isinstance(result, str):
        write_text(target, result + "\n")
        return
    if isinstance(result, Bands):
        if out_format in STREAMED_FORMATS:
            level = options.save.get("compress_level")
            write_bands(
                target, result, level=DEFAULT_PNG_COMPRESS_LEVEL if level is None else level
            )
            return
        result = result.whole(rgbx=out_format == "JPEG")
    pixels, alpha = result
    if out_format == "NPY" and image.layout is not None:
        pixels = image.layout.restore(pixels)  # .npy in, .npy out: the same layout
    write_image(target, pixels, alpha=alpha, format=out_format, **options.save)


def _write_all_frames(
    image: Image, target: str, out_format: str, transform: Transform, options: OutputOptions
) -> None:
    """Transform every frame of an animation or multi-page file into one output file."""
    results = [transform(frame, out_format) for frame in (image, *image.more_frames)]
    if any(isinstance(result, str) for result in results):  # pragma: no cover - text formats
        raise UsageError("text output has one line per image, not per frame")
    frames = [r.whole() if isinstance(r, Bands) else r for r in results if not isinstance(r, str)]
    write_frames(
        target,
        frames,
        format=out_format,
        duration=image.info.get("duration"),
        loop=image.info.get("loop"),
        **options.save,
    )
