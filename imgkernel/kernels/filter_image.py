"""Filtering image files with a kernel record: the glue between kernels and images.

:func:`choose_kernel` finds the kernel (a library name, a matrix or a file),
:func:`filter_image` filters one decoded image and maps the result for the
output format (band by band where it can, so the whole float32 result never
exists at once), and :func:`filter_files` does it for a batch of files.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.images import (
    STREAMED_FORMATS,
    Bands,
    BatchOptions,
    Display,
    Image,
    OutputOptions,
    is_text_output,
    max_value_for,
    run_images,
    to_display,
)
from imgkernel.images.route import LARGE_PIXELS, LargeRoute
from imgkernel.kernels.apply import apply_kernel, iter_kernel_bands, output_height
from imgkernel.kernels.files import load_kernel_file
from imgkernel.kernels.library import load_library
from imgkernel.kernels.matrix import divisor_of, kernel_from_matrix, parse_matrix
from imgkernel.kernels.record import Kernel


def choose_kernel(
    spec: str | None = None,
    *,
    matrix: str | None = None,
    kernel_file: str | None = None,
    libraries: Sequence[str] = (),
    divisor: float | str | None = None,
) -> Kernel:
    """The one kernel given: a library ``spec`` (``NAME[:key=value,...]``), a matrix or a file.

    ``libraries`` are extra kernel libraries (.toml) for ``spec``. Weights are
    used as written (a library kernel as its table defines it); ``divisor``
    divides them: a number, or ``"sum"`` for their absolute sum.

    >>> choose_kernel(matrix="1 2 1").weights.tolist()
    [[1.0, 2.0, 1.0]]
    >>> choose_kernel(matrix="1 2 1", divisor="sum").weights.tolist()
    [[0.25, 0.5, 0.25]]
    >>> choose_kernel()
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: give a KERNEL name, --matrix or --kernel-file
    """
    chosen = [s for s in (spec, matrix, kernel_file) if s is not None]
    if not chosen:
        raise UsageError("give a KERNEL name, --matrix or --kernel-file")
    if len(chosen) > 1:
        raise UsageError("give only one of KERNEL, --matrix and --kernel-file")
    if matrix is not None:
        kernel = kernel_from_matrix(parse_matrix(matrix))
    elif kernel_file is not None:
        kernel = load_kernel_file(kernel_file)
    else:
        kernel = load_library(libraries).resolve(str(spec))
    if divisor is None:
        return kernel
    return kernel.divided(divisor_of(kernel.weights, divisor, f"kernel {kernel.name!r}"))


def filter_files(
    inputs: Sequence[str],
    kernel: Kernel,
    options: OutputOptions,
    *,
    display: Display | None = None,
    batch: BatchOptions | None = None,
    **filter_options: Any,
) -> None:
    """Filter each input (see :func:`filter_image`) and write it as ``options`` say.

    ``batch`` says how many inputs run (worker processes, a Dask cluster, the
    failure rule: :mod:`imgkernel.images.many`). TIFF to TIFF over 67 Mpx,
    Zarr in or out, and any TIFF to TIFF with ``batch.tile_size`` take the
    tiled path (:func:`~imgkernel.kernels.large.filter_large`); ``normalize``
    needs the whole result, so a large image then takes the whole path.
    """
    batch = batch or BatchOptions()
    whole = (display or Display()).mode_or(kernel.display) == "normalize"
    level = options.save.get("compress_level")
    large = LargeRoute(
        partial(_filter_large, kernel=kernel, display=display, level=level, **filter_options),
        tile_size=batch.tile_size,
        pixels=sys.maxsize if whole else LARGE_PIXELS,
    )
    transform = FilterTransform(kernel, display, dict(filter_options))
    run_images(inputs, transform, options, large=large, batch=batch)


def _filter_large(source: str, target: str, **options: Any) -> Any:
    """:func:`~imgkernel.kernels.large.filter_large`, imported when an input goes tiled."""
    from imgkernel.kernels.large import filter_large

    return filter_large(source, target, **options)


@dataclass(frozen=True)
class FilterTransform:
    """:func:`filter_image` with a kernel and options, as a picklable transform."""

    #: It reads its input band by band, so a PNG may still be decoding (Image.wait_rows).
    progressive_input: ClassVar[bool] = True

    kernel: Kernel
    display: Display | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(
        self, image: Image, out_format: str
    ) -> tuple[np.ndarray, np.ndarray | None] | Bands:
        return filter_image(
            image, self.kernel, out_format, display=self.display, stream=True, **self.options
        )


def filter_image(
    image: Image,
    kernel: Kernel,
    out_format: str,
    *,
    display: Display | None = None,
    stream: bool = False,
    band_rows: int | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray | None] | Bands:
    """Filter ``image`` with ``kernel``; return ``(pixels, alpha)`` ready to save as ``out_format``.

    ``options`` go to :func:`~imgkernel.kernels.apply_kernel` (``stride``,
    ``padding``, ``dilation``, ``border``, ``bias``, ``convolve``,
    ``alpha_mode``, ``method``); the image supplies the alpha plane and full
    scale. ``display`` maps the float result (the kernel's own mapping unless
    one was asked for); an alpha plane follows the pixels' type. Unless the
    mapping needs the whole result (``normalize``) or the output keeps floats
    (``.npy``), the image is filtered and mapped band by band; with ``stream``
    and a format written row by row (PNG) the bands themselves are returned
    (:class:`~imgkernel.images.Bands`), for the encoder to take one by one;
    ``band_rows`` sets their height (default: about 2 MiB of float results).

    >>> from imgkernel.kernels import kernel_from_matrix
    >>> image = Image(np.full((2, 3), 10, np.uint8), None, "PNG", "-")
    >>> filter_image(image, kernel_from_matrix([[1, 1]], scale=1), "PNG")[0]
    array([[20, 20, 20],
           [20, 20, 20]], dtype=uint8)
    """
    if is_text_output(out_format):
        raise UsageError(f"filter cannot write {out_format.lower()}; use an image format or npy")
    options.update(alpha=image.alpha, max_value=image.max_value)
    mapping = display or Display()

    def shown(values: np.ndarray, alpha: np.ndarray | None) -> tuple:
        pixels = mapping.pixels(values, image, out_format, kernel.display)
        if alpha is not None and out_format.upper() != "NPY" and alpha.dtype != pixels.dtype:
            alpha = to_display(
                alpha, mode="clip", dtype=pixels.dtype, max_value=max_value_for(alpha.dtype)
            )
        return pixels, alpha

    if out_format.upper() == "NPY" or mapping.mode_or(kernel.display) == "normalize":
        image.wait_rows()
        return shown(*apply_kernel(image.pixels, kernel, **options))
    # Map band by band: the whole float32 result never exists at once, and a
    # PNG encoder compresses each band while the next one is filtered.
    height = output_height(image.pixels.shape[0], image.pixels.shape[1], kernel, **options)
    # Rows still being decoded (a PNG read progressively) are waited for band by band.
    ready = image.wait_rows if image.arriving is not None else None
    pieces = iter_kernel_bands(image.pixels, kernel, band_rows=band_rows, ready=ready, **options)
    bands = (shown(v, a) for _, v, a in pieces)
    result = Bands(height, bands)
    if stream and out_format.upper() in STREAMED_FORMATS:
        return result
    return result.whole(rgbx=out_format.upper() == "JPEG")
