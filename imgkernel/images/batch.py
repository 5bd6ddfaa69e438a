"""Batches: read each input, transform it, write the result where the user asked.

A command that maps images to images (``filter``, ``pool``) hands
:func:`run_images` its inputs, a per-image ``transform`` and one
:class:`OutputOptions`; everything about names, formats and encoder settings
happens here, the same way for every such command.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgkernel.errors import ImgkernelWarning, UsageError
from imgkernel.images.formats import format_from_name, is_text_output, requested_format
from imgkernel.images.image import Image
from imgkernel.images.outputs import check_no_input_overwritten, expand_outputs
from imgkernel.images.read import check_stdin_once, probe_image, read_image
from imgkernel.images.stream import STREAMED_FORMATS, Bands, write_bands
from imgkernel.images.write import (
    DEFAULT_PNG_COMPRESS_LEVEL,
    MULTI_FRAME_FORMATS,
    write_frames,
    write_image,
    write_text,
)

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


def run_images(inputs: Sequence[str], transform: Transform, options: OutputOptions) -> None:
    """Read each input (``-``: standard input), transform it and write it where asked.

    ``transform(image, out_format)`` returns ``(pixels, alpha)`` ready to save
    in ``out_format``, or a line of text (for ``txt``/``json`` output, one line
    per input on standard output unless ``-o`` names files). No input: ``-``.
    Every input is checked before anything is written, so a bad third input
    does not leave the first two outputs behind.
    """
    sources = list(inputs) or ["-"]
    check_stdin_once(sources)
    requested = requested_format(options.format)
    if requested is not None and is_text_output(requested) and options.output in (None, "-"):
        targets = ["-"] * len(sources)  # one text line per input on stdout
    else:
        default_ext = requested.lower() if requested else None
        targets = expand_outputs(sources, options.output, default_ext=default_ext)
    check_no_input_overwritten(sources, targets, allowed=options.overwrite)
    for source in sources:
        probe_image(source)
    for source, target in zip(sources, targets, strict=True):
        image = read_image(
            source, max_pixels=options.max_pixels, layout=options.layout, frames=True
        )
        out_format = options.format_for(target, image.format)
        if image.frames > 1 and out_format in MULTI_FRAME_FORMATS:
            _write_all_frames(image, target, out_format, transform, options)
            continue
        _write_one(image, target, out_format, transform(image, out_format), options)
        if image.frames > 1:  # said once the output exists: a failure stays one line
            warnings.warn(
                f"{image.display_name} has {image.frames} frames; only the first was used "
                "(write GIF, TIFF, WebP or PNG to keep them all)",
                ImgkernelWarning,
                stacklevel=2,
            )


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
        result = result.whole()
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
