"""``imgkernel filter``: apply a kernel to images."""

from __future__ import annotations

from typing import Any

import click

from imgkernel.cli.params import (
    DIVISOR,
    FINITE,
    INPUTS,
    KERNEL_LIBRARIES,
    PAIR,
    PaddingType,
    batch_options,
    display_options,
    output_options,
)
from imgkernel.images import BatchOptions, Display, OutputOptions


@click.command("filter")
@click.argument("kernel_spec", metavar="KERNEL", required=False)
@INPUTS
@output_options()
@click.option(
    "--matrix",
    help="Kernel weights, used as written: rows split by ';', values by ',' or spaces.",
)
@click.option(
    "--kernel-file",
    help="Kernel from a .toml (FILE.toml:NAME for one of several), .npy or text matrix file.",
)
@KERNEL_LIBRARIES
@click.option("--stride", type=PAIR, default="1", show_default=True, help="N or H,W.")
@click.option("--dilation", type=PAIR, default="1", show_default=True, help="N or H,W.")
@click.option("--padding", type=PaddingType(), default="same", show_default=True)
@click.option(
    "--border",
    default="reflect",
    show_default=True,
    help="zero, constant[:V], reflect, symmetric, edge, wrap (or an alias: replicate, "
    "nearest, mirror, reflect101, circular, tile...).",
)
@click.option(
    "--divisor",
    type=DIVISOR,
    help="Divide the weights by N, or by their sum ('sum', as GIMP and Pillow do). "
    "Without it --matrix and --kernel-file weights are used as written.",
)
@click.option(
    "--bias",
    type=FINITE,
    default=0.0,
    help="Added to every result, in the input's units (levels for 8/16-bit, 0-1 for float).",
)
@click.option("--convolve", is_flag=True, help="Flip the kernel (true convolution).")
@display_options
@click.option(
    "--alpha",
    "alpha_mode",
    type=click.Choice(["keep", "filter", "premultiply"]),
    default="keep",
    show_default=True,
    help="Alpha: keep unfiltered, filter like a channel, or weight colours by alpha.",
)
@click.option("--method", default="auto", hidden=True)
@batch_options()
def filter_command(
    kernel_spec: str | None,
    inputs: tuple[str, ...],
    out: OutputOptions,
    matrix: str | None,
    kernel_file: str | None,
    kernel_files: tuple[str, ...],
    divisor: float | str | None,
    display: Display,
    batch: BatchOptions,
    **options: Any,
) -> None:
    """Apply a named kernel (or --matrix / --kernel-file) to images.

    KERNEL is a name with optional parameters, NAME[:key=value,...], e.g.
    sobel, gaussian:sigma=2.5, box:size=7, dilated:base=laplacian,rate=2.
    'imgkernel kernels' lists the names. Images are cross-correlated (as
    OpenCV, GIMP and PyTorch do) unless --convolve is given. --matrix and
    --kernel-file weights are used as written (as scipy, OpenCV and
    PyTorch do); --divisor sum normalizes them.

    Units: 8/16-bit images have full scale 255/65535, float (.npy) images
    1.0; .npy output is float32 on full scale 1.0, so PNG -> .npy -> PNG
    pipelines keep the picture. Without -o or --format the output keeps the
    input's format.

    \b
      imgkernel filter sobel photo.png -o edges.png
      imgkernel filter gaussian:sigma=2 < photo.png > blurred.png
      imgkernel filter emboss *.png -o out/{stem}-emboss.png
      imgkernel filter --matrix "1,0,-1;2,0,-2;1,0,-1" photo.png --abs -o gx.png
      imgkernel filter sobel 'photos/**/*.jpg' -o 'edges/{stem}.png' --skip-existing
      imgkernel filter sobel huge.tif -o edges.tif --scheduler tcp://scheduler:8786

    Many inputs run on worker processes (--jobs, default one per core) or a
    Dask cluster (--scheduler). A bad input among many is named on stderr
    and the others go on; the command then fails with a count (--fail-fast
    stops at the first). TIFF over 67 Mpx and Zarr go tile by tile.
    """
    from imgkernel.images import list_inputs
    from imgkernel.kernels import choose_kernel, filter_files

    if kernel_spec is not None and (matrix is not None or kernel_file is not None):
        # `filter --matrix ... photo.png`: the first positional is an input.
        inputs, kernel_spec = (kernel_spec, *inputs), None
    kernel = choose_kernel(
        kernel_spec, matrix=matrix, kernel_file=kernel_file, libraries=kernel_files, divisor=divisor
    )
    sources = list_inputs(inputs, batch.files_from)
    if batch.files_from is not None and not sources:
        return  # an empty list: nothing to do
    filter_files(sources, kernel, out, display=display, batch=batch, **options)
