"""The CNN commands: ``classify``, ``run``, ``summary``, ``features``, ``convert``, ``models``.

The nn package (and onnx, for ``convert``) is imported inside each command,
so ``imgkernel --help`` and the image commands start without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import click
import numpy as np

from imgkernel.cli.app import PROG, warn
from imgkernel.cli.params import LAYER, FloatList, output_options
from imgkernel.errors import UsageError, read_user_text
from imgkernel.images import (
    OutputOptions,
    check_stdin_once,
    read_array,
    read_image,
    write_array,
    write_image,
)

#: Most tiles `features` draws in one grid.
GRID_LIMIT = 256

Ranked = list[tuple[str, float]]


@click.command("classify")
@click.argument("model_path", metavar="MODEL")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Print the K most probable labels.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Images per forward pass.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=0),
    help="Raise Pillow's decompression-bomb limit (pixels; 0: no limit).",
)
def classify_command(
    model_path: str,
    images: tuple[str, ...],
    top: int,
    as_json: bool,
    batch_size: int,
    max_pixels: int | None,
) -> None:
    """Classify images with a saved CNN (a .npz path or a bundled model name).

    Prints one line per image: PATH<TAB>LABEL<TAB>PROBABILITY, followed by
    further LABEL<TAB>PROBABILITY pairs with --top K. '-' reads one image
    from standard input. 'imgkernel models' lists the bundled models.

    \b
      imgkernel classify digits sample_images/digits/*.png
      imgkernel classify model.npz photo.jpg --top 3 --json
    """
    from imgkernel.nn import load_model

    model = load_model(model_path)
    check_stdin_once(images)
    for path, ranked in classified(model, images, top, batch_size, max_pixels):
        click.echo(ranked_json(path, ranked) if as_json else ranked_line(path, ranked))


def classified(
    model: Any, paths: Sequence[str], top: int, batch_size: int, max_pixels: int | None
) -> Iterator[tuple[str, Ranked]]:
    """``(path, ranked labels)`` per image, reading only ``batch_size`` images at a time."""
    from imgkernel.nn import classify, prepare_images

    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        pictures = [read_image(p, max_pixels=max_pixels).pixels for p in chunk]
        batch = prepare_images(model, pictures)
        yield from zip(chunk, classify(model, batch, top=top), strict=True)


def ranked_line(path: str, ranked: Ranked) -> str:
    """``PATH<TAB>LABEL<TAB>P[<TAB>LABEL<TAB>P...]``.

    >>> ranked_line("a.png", [("cat", 0.91234), ("dog", 0.08766)])
    'a.png\\tcat\\t0.9123\\tdog\\t0.0877'
    """
    pairs = "\t".join(f"{label}\t{p:.4f}" for label, p in ranked)
    return f"{path}\t{pairs}"


def ranked_json(path: str, ranked: Ranked) -> str:
    """One JSON object: the path, the best label and probability, and the top list."""
    best_label, best_p = ranked[0]
    top = [{"label": label, "probability": round(p, 6)} for label, p in ranked]
    return json.dumps(
        {"path": path, "label": best_label, "probability": round(best_p, 6), "top": top}
    )


@click.command("run")
@click.argument("model_path", metavar="MODEL")
@click.argument("tensor", metavar="INPUT.npy")
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="OUTPUT.npy",
    help="Where to write the float32 result ('-' for stdout).",
)
@click.option("--layer", type=LAYER, help="Stop after this layer (name or 0-based index).")
def run_command(model_path: str, tensor: str, output: str, layer: int | str | None) -> None:
    """Run the raw forward pass on a float tensor saved with numpy.save.

    Spatial models take (N, C, H, W) (a single (C, H, W) sample is accepted);
    --layer prints the feature maps of one layer instead of the output.
    """
    from imgkernel.nn import load_model

    if output != "-" and not output.lower().endswith(".npy"):
        raise UsageError(f"{output}: run writes a .npy array; name the output *.npy or use -")
    model = load_model(model_path)
    x = read_array(tensor)
    expected = model.input_spec.shape
    if x.ndim == len(expected):
        x = x[None]
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        shape = ", ".join(str(d) for d in expected)
        raise UsageError(f"{tensor}: expected a tensor of shape (N, {shape}), got {tuple(x.shape)}")
    result = model.forward(x.astype(np.float32, copy=False), until=layer)
    write_array(output, np.asarray(result, dtype=np.float32))


@click.command("summary")
@click.argument("model_path", metavar="MODEL")
def summary_command(model_path: str) -> None:
    """Print each layer's output shape and parameter count, and the totals."""
    from imgkernel.nn import load_model

    click.echo(str(load_model(model_path).summary()))


@click.command("features")
@click.argument("model_path", metavar="MODEL")
@click.argument("image", required=False, default="-")
@click.option(
    "--layer", type=LAYER, help="Layer whose outputs (or, with --weights, filters) to draw."
)
@click.option("--weights", is_flag=True, help="Draw a conv layer's filters instead.")
@output_options(
    output={"default": "-", "show_default": True, "metavar": None, "help": "Grid image to write."},
    format={"help": "Output format (default from -o, else PNG)."},
)
@click.option(
    "--cell",
    type=click.IntRange(8, 1024),
    default=64,
    show_default=True,
    help="Approximate tile size in pixels.",
)
@click.option("--columns", type=click.IntRange(min=1), help="Tiles per row.")
def features_command(
    model_path: str,
    image: str,
    layer: int | str | None,
    weights: bool,
    out: OutputOptions,
    cell: int,
    columns: int | None,
) -> None:
    """Draw a layer's feature maps for IMAGE (or a conv layer's filters) as a grid.

    Layer names and indices are listed by 'imgkernel summary MODEL'.

    \b
      imgkernel features digits sample_images/digits/digit-3-1504.png --layer conv2d1 -o maps.png
      imgkernel features digits --weights --layer 0 -o filters.png
    """
    from imgkernel.nn import conv_filters, feature_grid, feature_maps, load_model

    model = load_model(model_path)
    if weights:
        tiles = conv_filters(model, layer)
        count = tiles.shape[0] * (1 if tiles.shape[1] == 3 else tiles.shape[1])
        normalize = "each"
    else:
        if layer is None:
            raise UsageError(f"give --layer NAME|INDEX (see '{PROG} summary MODEL')")
        picture = read_image(image, max_pixels=out.max_pixels)
        tiles = feature_maps(model, picture.pixels, layer)
        count = tiles.shape[0]
        # 1x1 maps (dense, flatten, softmax outputs) are only comparable together
        normalize = "all" if tiles.shape[-2:] == (1, 1) else "each"
    if count > GRID_LIMIT:
        warn(f"drawing the first {GRID_LIMIT} of {count} tiles")
    grid = feature_grid(tiles, cell=cell, columns=columns, normalize=normalize, limit=GRID_LIMIT)
    target = out.target()
    write_image(target, grid, alpha=None, format=out.format_for(target, "PNG"), **out.save)


@click.command("convert")
@click.argument("source", metavar="MODEL.onnx")
@click.option("-o", "--output", required=True, metavar="MODEL.npz", help="Model file to write.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False),
    help="Text file with one class label per line.",
)
@click.option(
    "--scale",
    type=float,
    default=1 / 255,
    show_default="1/255",
    help="Multiply 0-255 pixel values by this before mean/std.",
)
@click.option("--mean", type=FloatList(), help="Per-channel mean, e.g. 0.485,0.456,0.406.")
@click.option("--std", type=FloatList(), help="Per-channel std, e.g. 0.229,0.224,0.225.")
@click.option(
    "--resize",
    type=click.Choice(["stretch", "fit", "crop", "none"]),
    default="stretch",
    show_default=True,
    help="How images are brought to size.",
)
def convert_command(source: str, output: str, labels_file: str | None, **options: Any) -> None:
    """Import an ONNX CNN (Conv, Relu, MaxPool, Gemm, Softmax, ...) as a model file.

    Needs the optional onnx package: pip install 'imgkernel[onnx]'.
    """
    from imgkernel.nn import save_model
    from imgkernel.nn.onnx import convert_onnx

    labels = None
    if labels_file is not None:
        labels = [line.strip() for line in read_user_text(labels_file).splitlines() if line.strip()]
    model = convert_onnx(source, labels, **options)
    if output == "-":
        raise UsageError("convert needs a file for -o (a model is not written to stdout)")
    save_model(model, output)
    click.echo(
        f"wrote {output}: {len(model.layers)} layers, {model.param_count:,} parameters", err=True
    )


@click.command("models")
def models_command() -> None:
    """List the models bundled with imgkernel."""
    from imgkernel.nn import list_bundled_models, load_model

    for name in list_bundled_models():
        model = load_model(name)
        c, h, w = model.input_spec.shape
        labels = ",".join(model.labels[:12]) + ("..." if len(model.labels) > 12 else "")
        click.echo(f"{name}\t{c}x{h}x{w}\t{labels}\t{getattr(model, 'description', '')}")
