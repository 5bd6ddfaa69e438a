"""``imgkernel filter``: apply a kernel to images."""

from __future__ import annotations

from typing import Any

import click

from imgkernel.cli.params import (
    FINITE,
    INPUTS,
    KERNEL_LIBRARIES,
    PAIR,
    OffsetType,
    PaddingType,
    output_options,
)
from imgkernel.images import Display, Offset, OutputOptions


@click.command("filter")
@click.argument("kernel_spec", metavar="KERNEL", required=False)
@INPUTS
@output_options()
@click.option("--matrix", help="Kernel weights: rows split by ';', values by ',' or spaces.")
@click.option(
    "--kernel-file",
    type=click.Path(dir_okay=False),
    help="Kernel from a .toml, .npy or whitespace matrix file.",
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
@click.option("--bias", type=FINITE, default=0.0, help="Added to every result (input units).")
@click.option("--convolve", is_flag=True, help="Flip the kernel (true convolution).")
@click.option("--clip", "display_mode", flag_value="clip", help="Clip to the output range.")
@click.option("--abs", "display_mode", flag_value="abs", help="Show magnitudes |v|.")
@click.option(
    "--signed", "display_mode", flag_value="offset", help="Show signed values around mid-grey."
)
@click.option(
    "--normalize", "display_mode", flag_value="normalize", help="Stretch to the full range."
)
@click.option("--scale", type=FINITE, default=None, help="Multiply results before display.")
@click.option("--offset", type=OffsetType(), default=None, help="Add after scaling: a value or N%.")
@click.option(
    "--alpha",
    "alpha_mode",
    type=click.Choice(["keep", "filter", "premultiply"]),
    default="keep",
    show_default=True,
    help="Alpha: keep unfiltered, filter like a channel, or weight colours by alpha.",
)
@click.option("--method", default="auto", hidden=True)
def filter_command(
    kernel_spec: str | None,
    inputs: tuple[str, ...],
    out: OutputOptions,
    matrix: str | None,
    kernel_file: str | None,
    kernel_files: tuple[str, ...],
    display_mode: str | None,
    scale: float | None,
    offset: Offset | None,
    **options: Any,
) -> None:
    """Apply a named kernel (or --matrix / --kernel-file) to images.

    KERNEL is a name with optional parameters, NAME[:key=value,...], e.g.
    sobel, gaussian:sigma=2.5, box:size=7, dilated:base=laplacian,rate=2.
    'imgkernel kernels' lists the names. Images are cross-correlated (as
    OpenCV, GIMP and PyTorch do) unless --convolve is given.

    \b
      imgkernel filter sobel photo.png -o edges.png
      imgkernel filter gaussian:sigma=2 < photo.png > blurred.png
      imgkernel filter emboss *.png -o out/{stem}-emboss.png
      imgkernel filter --matrix "1,0,-1;2,0,-2;1,0,-1" photo.png --abs -o gx.png
    """
    from imgkernel.kernels import choose_kernel, filter_files

    if kernel_spec is not None and (matrix is not None or kernel_file is not None):
        # `filter --matrix ... photo.png`: the first positional is an input.
        inputs, kernel_spec = (kernel_spec, *inputs), None
    kernel = choose_kernel(
        kernel_spec, matrix=matrix, kernel_file=kernel_file, libraries=kernel_files
    )
    display = Display(mode=display_mode, scale=scale, offset=offset)
    filter_files(inputs, kernel, out, display=display, **options)
