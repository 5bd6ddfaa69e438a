"""``imgkernel pool``: pool images or feature maps."""

from __future__ import annotations

from typing import Any

import click

from imgkernel.cli.params import INPUTS, PAIR, PaddingType, batch_options, output_options
from imgkernel.images import POOL_MODES, BatchOptions, OutputOptions, list_inputs, pool_files


@click.command("pool")
@INPUTS
@output_options()
@click.option("--size", type=PAIR, help="Window size: K or KH,KW (required unless --global).")
@click.option("--stride", type=PAIR, help="Step: S or SH,SW (default: the window size).")
@click.option("--mode", type=click.Choice(POOL_MODES), default="max", show_default=True)
@click.option("--global", "global_", is_flag=True, help="One value per channel.")
@click.option(
    "--padding",
    type=PaddingType(),
    default="0",
    show_default=True,
    help="N, H,W, T,B,L,R, same or valid; padded cells never win and are not counted "
    "by avg unless --count-include-pad.",
)
@click.option("--dilation", type=PAIR, default="1", show_default=True)
@click.option("--ceil", "ceil_mode", is_flag=True, help="Keep a last, partial window.")
@click.option("--count-include-pad", is_flag=True, help="avg divides by the full window.")
@batch_options()
def pool_command(
    inputs: tuple[str, ...], out: OutputOptions, batch: BatchOptions, **window: Any
) -> None:
    """Pool images or feature maps window by window, per channel.

    Max, average and min pooling follow the ONNX MaxPool/AveragePool
    operators; the alpha channel is pooled like a colour channel. PNG in
    gives a smaller PNG out; .npy in (or --format npy) gives floats.

    \b
      imgkernel pool --size 2 < photo.png > half.png
      imgkernel pool --size 3 --stride 2 --mode avg maps.npy -o pooled.npy
      imgkernel pool --global --mode avg photo.png --format json
      imgkernel pool --size 4 --files-from list.txt -o 'small/{stem}.png' --jobs 2

    Many inputs run on worker processes (--jobs) or a Dask cluster
    (--scheduler); a bad input among many is named and the others go on
    (see 'imgkernel filter --help'). TIFF over 67 Mpx and Zarr go tile by tile.
    """
    sources = list_inputs(inputs, batch.files_from)
    if batch.files_from is not None and not sources:
        return  # an empty list: nothing to do
    pool_files(sources, out, batch=batch, **window)
