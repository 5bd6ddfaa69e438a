"""The CNN commands: ``classify``, ``run``, ``summary``, ``features``, ``convert``, ``models``.

The nn package (and onnx, for ``convert``) is imported inside each command,
so ``imgkernel --help`` and the image commands start without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import click
import numpy as np

from imgkernel.cli.app import PROG, warn
from imgkernel.cli.params import LAYER, FloatList, batch_options, output_options
from imgkernel.errors import UsageError, read_user_text
from imgkernel.images import (
    BatchOptions,
    OutputOptions,
    check_stdin_once,
    deliver,
    list_inputs,
    read_array,
    read_image,
    run_many,
    write_array,
    write_image,
)
from imgkernel.images.batch import SCHEDULER_UNUSED

#: Most tiles `features` draws in one grid.
GRID_LIMIT = 256


@click.command("classify")
@click.argument("model_path", metavar="MODEL")
@click.argument("images", nargs=-1, metavar="IMAGE...")
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
@batch_options(targets=False, tiles=False)
def classify_command(
    model_path: str,
    images: tuple[str, ...],
    top: int,
    as_json: bool,
    batch_size: int,
    max_pixels: int | None,
    batch: BatchOptions,
) -> None:
    """Classify images with a saved CNN (a .npz path or a bundled model name).

    Prints one line per image: PATH<TAB>LABEL<TAB>PROBABILITY, followed by
    further LABEL<TAB>PROBABILITY pairs with --top K, in the order of the
    inputs. '-' reads one image from standard input. 'imgkernel models'
    lists the bundled models. Many images run on worker processes (--jobs)
    or a Dask cluster (--scheduler); a bad image among many is named on
    stderr and the others go on.

    \b
      imgkernel classify digits sample_images/digits/*.png
      imgkernel classify model.npz photo.jpg --top 3 --json
      find photos -name '*.jpg' | imgkernel classify model.npz --files-from - --jobs 2
    """
    from imgkernel.nn import load_model
    from imgkernel.nn.classify_files import ClassifyJob, ranked_json, ranked_line

    paths = list_inputs(images, batch.files_from)
    if not paths:
        if batch.files_from is not None:
            return  # an empty list: nothing to do
        raise UsageError("missing argument IMAGE...: give images (or --files-from FILE)")
    model = load_model(model_path)
    check_stdin_once(paths)
    if len(paths) == 1:
        if batch.scheduler is not None:
            warn(SCHEDULER_UNUSED)
        for path, ranked in classified(model, paths, top, batch_size, max_pixels):
            click.echo(ranked_json(path, ranked) if as_json else ranked_line(path, ranked))
        return
    on_stdin = "-" in paths
    if batch.scheduler is not None and not on_stdin and os.path.isfile(model_path):
        model_path = os.path.abspath(model_path)  # a worker's folder is its own
    job = ClassifyJob(model_path, top, as_json, batch_size, max_pixels)
    run_many(
        job,
        paths,
        batch,
        emit=lambda _, line: click.echo(line),
        local=on_stdin,
        local_batch=batch_size,
    )


def classified(
    model: Any, paths: Sequence[str], top: int, batch_size: int, max_pixels: int | None
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """``(path, ranked labels)`` per image, reading only ``batch_size`` images at a time."""
    from imgkernel.nn import classify, prepare_images

    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        pictures = [read_image(p, max_pixels=max_pixels).pixels for p in chunk]
        batch = prepare_images(model, pictures)
        yield from zip(chunk, classify(model, batch, top=top), strict=True)


@click.command("run")
@click.argument("model_path", metavar="MODEL")
@click.argument("tensors", nargs=-1, metavar="[INPUT.npy]...")
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="OUTPUT.npy",
    help="Where to write the float32 result ('-' for stdout; a .npz holds every output by name).",
)
@click.option("--layer", type=LAYER, help="Write this node's output (name or 0-based index).")
@click.option(
    "--from-layer",
    "start",
    type=LAYER,
    help="Feed INPUT to this node (name or index) instead of to the graph input.",
)
def run_command(
    model_path: str,
    tensors: tuple[str, ...],
    output: str,
    layer: int | str | None,
    start: int | str | None,
) -> None:
    """Run the forward pass on tensors saved with numpy.save; write the raw result.

    The result is the model's output as its last node makes it: probabilities
    when the model ends in a softmax, otherwise raw outputs (logits for a
    classifier). Each INPUT ('-' or none: standard input) feeds a graph input,
    in order, of the shape 'imgkernel summary MODEL' shows: an image model
    takes (N, C, H, W) float32 prepared as its input spec says (a single
    (C, H, W) sample is accepted), a model of feature vectors (N, F).
    --layer writes one node's output instead (feature maps); --from-layer
    feeds INPUT to a node, so feature maps can be changed on the way:

    \b
      imgkernel run digits x.npy --layer relu1 | imgkernel pool --size 2 --format npy \\
          | imgkernel run digits --from-layer conv2d2
    """
    from imgkernel.nn import load_model

    lowered = output.lower()
    if output != "-" and not lowered.endswith((".npy", ".npz")):
        raise UsageError(
            f"{output}: run writes a .npy array; name the output *.npy (or *.npz) or use -"
        )
    sources = list(tensors) or ["-"]
    check_stdin_once(sources)
    model = load_model(model_path)
    g = model.graph
    targets = [g.data_input(start)] if start is not None else g.input_names
    if len(sources) != len(targets):
        raise UsageError(
            f"the model takes {len(targets)} input tensor(s) ({', '.join(targets)}), "
            f"got {len(sources)}"
        )
    feeds = {t: _read_tensor(src, g.shapes[t]) for src, t in zip(sources, targets, strict=True)}
    wanted = [layer] if layer is not None else list(g.outputs)
    if len(wanted) > 1 and not lowered.endswith(".npz"):
        raise UsageError(
            f"the model has {len(wanted)} outputs ({', '.join(g.outputs)}): write them to a "
            ".npz (-o OUTPUT.npz) or pick one with --layer"
        )
    results = model.run(feeds, wanted)
    if lowered.endswith(".npz"):
        names = [g.tensor(k) for k in wanted]
        arrays = {n: np.asarray(r, np.float32) for n, r in zip(names, results, strict=True)}
        deliver(output, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
        return
    write_array(output, np.asarray(results[0], dtype=np.float32))


def _read_tensor(source: str, expected: tuple[int | None, ...]) -> np.ndarray:
    """A .npy tensor of the ``expected`` shape (a single sample gets a batch axis)."""
    x = read_array(source)
    if x.ndim == len(expected) - 1 and expected[:1] == (None,):
        x = x[None]
    if x.ndim != len(expected) or any(
        d is not None and d != s for d, s in zip(expected, x.shape, strict=True)
    ):
        shape = ", ".join("N" if d is None else str(d) for d in expected)
        raise UsageError(f"{source}: expected a tensor of shape ({shape}), got {tuple(x.shape)}")
    return x.astype(np.float32, copy=False)


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


class DimList(click.ParamType):
    """Tensor dims ``3,224,224`` or ``N,64``: integers, ``N`` (or -1) for any size."""

    name = "dims"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int | None]:
        if isinstance(value, list):
            return value
        dims: list[int | None] = []
        for part in str(value).replace("x", ",").split(","):
            text = part.strip()
            if text.upper() in ("N", "-1", "?"):
                dims.append(None)
            elif text.isdigit() and int(text) > 0:
                dims.append(int(text))
            else:
                self.fail(f"{value!r} is not a list of dims like 3,224,224 or N,64", param, ctx)
        return dims


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
    "--input-shape",
    type=DimList(),
    help="The first input's shape for a graph of dynamic dims, e.g. 3,224,224 or N,64.",
)
@click.option(
    "--resize",
    type=click.Choice(["stretch", "fit", "crop", "none"]),
    default="stretch",
    show_default=True,
    help="How images are brought to size.",
)
def convert_command(source: str, output: str, labels_file: str | None, **options: Any) -> None:
    """Import an ONNX model (a CNN graph: Conv, Relu, Add, Concat, Resize, Gemm, ...).

    Any DAG of the supported operators converts (residual blocks, U-Nets,
    several inputs and outputs); 'imgkernel summary' shows the result. An
    (N, C, H, W) input with 1 or 3 channels becomes the image input, which
    --scale, --mean, --std and --resize describe; other inputs take tensors
    ('imgkernel run'). Needs the optional onnx package: pip install 'imgkernel[onnx]'.

    \b
      imgkernel convert resnet18.onnx -o resnet18.npz --labels classes.txt \\
          --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
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
        f"wrote {output}: {len(model.nodes)} nodes, {model.param_count:,} parameters", err=True
    )


@click.command("models")
def models_command() -> None:
    """List the models bundled with imgkernel."""
    from imgkernel.nn import list_bundled_models, load_model

    for name in list_bundled_models():
        model = load_model(name)
        dims = model.input_shape[1:] if model.input_shape[:1] == (None,) else model.input_shape
        labels = ",".join(model.labels[:12]) + ("..." if len(model.labels) > 12 else "")
        shape = "x".join(str(d) for d in dims)
        click.echo(f"{name}\t{shape}\t{labels}\t{model.description}")
