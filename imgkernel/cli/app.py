"""The ``imgkernel`` command line: a thin layer over the library.

Each command parses options, calls the library and writes the result. Errors
the user can fix (:class:`~imgkernel.errors.ImgkernelError`) become one line
on stderr and an exit status (2 for usage errors, 1 for other failures).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import numpy as np

from imgkernel import images as imgio
from imgkernel.errors import ImgkernelError, UsageError

DISPLAY_MODES = ("clip", "abs", "offset", "normalize")

#: Most tiles `features` draws in one grid.
GRID_LIMIT = 256

# --------------------------------------------------------------------------
# Parameter types: parse specs at the boundary so the library sees values.


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


class OffsetType(click.ParamType):
    """A number in output units, or a percentage of full scale (``50%``)."""

    name = "VALUE|PERCENT%"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, bool]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        percent = text.endswith("%")
        try:
            number = float(text[:-1] if percent else text)
        except ValueError:
            self.fail(f"{value!r} is not a number or a percentage", param, ctx)
        if not np.isfinite(number):
            self.fail(f"{value!r} is not finite", param, ctx)
        return (number / 100.0 if percent else number, percent)


class FiniteFloat(click.ParamType):
    """A finite number (no nan or inf)."""

    name = "NUMBER"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not np.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


PAIR = IntPair(1)
FINITE = FiniteFloat()

# --------------------------------------------------------------------------
# The command group and error handling.


class Group(click.Group):
    """Turns library errors into one line on stderr and an exit status."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        prog = "imgkernel"
        try:
            # Overflow to inf in float32 is clipped at display time; numpy's
            # warnings would only add noise to stderr.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo(f"{prog}: aborted", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else prog
            click.echo(f"{where}: error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"{prog}: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except ImgkernelError as exc:
            click.echo(f"{prog}: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): nothing more to say.
            sys.stderr.close()
            sys.exit(1)
        except MemoryError:
            click.echo(f"{prog}: error: out of memory (try a smaller image)", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo(f"{prog}: interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgkernel", prog_name="imgkernel")
def cli() -> None:
    """Image convolution, pooling and small-CNN inference.

    Every command reads images from files or standard input ('-') and writes
    to a file (-o) or standard output, so commands chain in pipelines:

    \b
      imgkernel filter gaussian:sigma=2 photo.png | imgkernel filter sobel > edges.png
    """


# --------------------------------------------------------------------------
# Shared image input/output for filter and pool.

io_options = [
    click.argument("inputs", nargs=-1, metavar="[INPUT]..."),
    click.option(
        "-o",
        "--output",
        metavar="FILE|DIR/|TEMPLATE",
        help="Output file, '-' for stdout (default), a directory ending in '/', "
        "or a template like 'out/{stem}-edges.png' for several inputs.",
    ),
    click.option(
        "--format",
        "fmt",
        metavar="FMT",
        help="Output format (png, jpeg, tiff, bmp, webp, npy, ...); default from -o, "
        "else the input's format.",
    ),
    click.option(
        "--compress-level",
        type=click.IntRange(0, 9),
        help="PNG zlib level 0-9 (default: fast level 1).",
    ),
    click.option("--quality", type=click.IntRange(1, 100), help="JPEG/WebP quality 1-100."),
    click.option(
        "--max-pixels",
        type=click.IntRange(min=0),
        help="Raise Pillow's decompression-bomb limit (pixels) for trusted large images "
        "(0: no limit).",
    ),
]


def with_io_options(func: Callable) -> Callable:
    for option in reversed(io_options):
        func = option(func)
    return func


def run_images(
    inputs: Sequence[str],
    output: str | None,
    fmt: str | None,
    transform: Callable[[imgio.Image, str], tuple[np.ndarray, np.ndarray | None] | str],
    *,
    compress_level: int | None,
    quality: int | None,
    max_pixels: int | None,
) -> None:
    """Read each input, transform it and write it where the user asked.

    ``transform(image, out_format)`` returns ``(pixels, alpha)`` ready to save
    in ``out_format``, or a text string (for ``txt``/``json`` output).
    """
    sources = list(inputs) or ["-"]
    if sources.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    requested = fmt.upper() if fmt else None
    if requested == "JPG":
        requested = "JPEG"
    if requested is not None and is_text_format(requested) and output in (None, "-"):
        targets = ["-"] * len(sources)  # one text line per input on stdout
    else:
        targets = imgio.expand_outputs(
            sources, output, default_ext=requested.lower() if requested else None
        )
    for source in sources:
        # Fail before writing anything: a bad third input must not leave
        # the first two outputs behind.
        imgio.probe_image(source)
    for source, target in zip(sources, targets, strict=True):
        image = imgio.read_image(source, max_pixels=max_pixels)
        out_format = (
            requested or (imgio.format_from_name(target) if target != "-" else None) or image.format
        )
        result = transform(image, out_format)
        if isinstance(result, str):
            write_text(target, result)
            continue
        pixels, alpha = result
        imgio.write_image(
            target,
            pixels,
            alpha=alpha,
            format=out_format,
            compress_level=compress_level,
            quality=quality,
        )


def write_text(target: str, text: str) -> None:
    if target == "-":
        click.echo(text)
    else:
        imgio.write_text(target, text + "\n")


def is_text_format(fmt: str) -> bool:
    return fmt.upper() in ("TXT", "JSON")


def effective_mode(image: imgio.Image, mode: str, asked: bool) -> str:
    """Float input has no known range: stretch it unless a mapping was asked for."""
    if image.pixels.dtype not in (np.uint8, np.uint16) and not asked:
        return "normalize"
    return mode


def display(
    values: np.ndarray,
    image: imgio.Image,
    out_format: str,
    *,
    mode: str,
    scale: float,
    offset: float,
    asked: bool,
) -> np.ndarray:
    """Map a float result to what ``out_format`` stores.

    ``.npy`` keeps the raw float32 values unless a mapping was asked for.
    Integer formats store the input's bit depth (8-bit for float input, whose
    default mapping is ``normalize`` since its range is unknown).
    """
    if out_format.upper() == "NPY":
        if not asked:
            return values.astype(np.float32, copy=False)
        mapped = imgio.to_display(
            values,
            mode=mode,
            dtype=np.dtype(np.float32),
            max_value=image.max_value,
            scale=scale,
            offset=offset,
        )
        # to_display returns float on a 0..1 scale; .npy keeps the input's units
        return mapped * np.float32(image.max_value)
    sixteen = image.pixels.dtype == np.uint16 and out_format.upper() in ("PNG", "TIFF")
    # to_display rescales from the input's full scale to the target's itself.
    return imgio.to_display(
        values,
        mode=effective_mode(image, mode, asked),
        dtype=np.dtype(np.uint16 if sixteen else np.uint8),
        max_value=image.max_value,
        scale=scale,
        offset=offset,
    )


# --------------------------------------------------------------------------
# filter


@cli.command("filter")
@click.argument("kernel_spec", metavar="KERNEL", required=False)
@with_io_options
@click.option("--matrix", help="Kernel weights: rows split by ';', values by ',' or spaces.")
@click.option(
    "--kernel-file",
    type=click.Path(dir_okay=False),
    help="Kernel from a .toml, .npy or whitespace matrix file.",
)
@click.option(
    "--kernels",
    "kernel_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Extra kernel library (.toml); may be repeated.",
)
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
    output: str | None,
    fmt: str | None,
    compress_level: int | None,
    quality: int | None,
    max_pixels: int | None,
    matrix: str | None,
    kernel_file: str | None,
    kernel_files: tuple[str, ...],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: Any,
    border: str,
    bias: float,
    convolve: bool,
    display_mode: str | None,
    scale: float | None,
    offset: tuple[float, bool] | None,
    alpha_mode: str,
    method: str,
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
    from imgkernel import kernels as kern
    from imgkernel.kernels import apply_kernel, iter_kernel_bands

    chosen = [s for s in (kernel_spec, matrix, kernel_file) if s is not None]
    if len(chosen) != 1:
        if not chosen:
            raise UsageError("give a KERNEL name, --matrix or --kernel-file")
        if kernel_spec is not None and (matrix is not None or kernel_file is not None):
            # `filter --matrix ... photo.png`: the first positional is an input.
            inputs = (kernel_spec, *inputs)
            kernel_spec = None
            if matrix is not None and kernel_file is not None:
                raise UsageError("give only one of KERNEL, --matrix and --kernel-file")
        else:
            raise UsageError("give only one of KERNEL, --matrix and --kernel-file")
    if matrix is not None:
        kernel = kern.kernel_from_matrix(kern.parse_matrix(matrix))
    elif kernel_file is not None:
        kernel = kern.load_kernel_file(kernel_file)
    else:
        library = kern.load_library(kernel_files)
        kernel = library.resolve(str(kernel_spec))
    asked = display_mode is not None or scale is not None or offset is not None
    mode = display_mode or kernel.display

    def transform(image: imgio.Image, out_format: str) -> tuple[np.ndarray, np.ndarray | None]:
        if is_text_format(out_format):
            raise UsageError(
                f"filter cannot write {out_format.lower()}; use an image format or npy"
            )
        extra = 0.0
        if offset is not None:
            extra = offset[0] if offset[1] else offset[0] / image.max_value
        options = dict(
            alpha=image.alpha,
            alpha_mode=alpha_mode,
            bias=bias,
            stride=stride,
            padding=padding,
            dilation=dilation,
            border=border,
            convolve=convolve,
            method=method,
            max_value=image.max_value,
        )

        def shown(values: np.ndarray, alpha: np.ndarray | None) -> tuple:
            pixels = display(
                values,
                image,
                out_format,
                mode=mode,
                scale=1.0 if scale is None else scale,
                offset=extra,
                asked=asked,
            )
            if alpha is not None and out_format.upper() != "NPY" and alpha.dtype != pixels.dtype:
                alpha = imgio.to_display(
                    alpha,
                    mode="clip",
                    dtype=pixels.dtype,
                    max_value=imgio.max_value_for(alpha.dtype),
                )
            return pixels, alpha

        if out_format.upper() == "NPY" or effective_mode(image, mode, asked) == "normalize":
            return shown(*apply_kernel(image.pixels, kernel, **options))
        # Map band by band: the whole float32 result never exists at once.
        bands = [shown(v, a) for _, v, a in iter_kernel_bands(image.pixels, kernel, **options)]
        pixels = np.concatenate([p for p, _ in bands])
        alphas = [a for _, a in bands if a is not None]
        return pixels, (np.concatenate(alphas) if alphas else None)

    run_images(
        inputs,
        output,
        fmt,
        transform,
        compress_level=compress_level,
        quality=quality,
        max_pixels=max_pixels,
    )


# --------------------------------------------------------------------------
# kernels


@cli.group("kernels", invoke_without_command=True)
@click.option(
    "--kernels",
    "kernel_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Extra kernel library (.toml); may be repeated.",
)
@click.pass_context
def kernels_command(ctx: click.Context, kernel_files: tuple[str, ...]) -> None:
    """List the named kernels, or show one with 'kernels show NAME'."""
    ctx.obj = kernel_files
    if ctx.invoked_subcommand is None:
        from imgkernel import kernels as kern

        library = kern.load_library(kernel_files)
        names = library.names()
        width = max(len(n) for n in names)
        for name in names:
            click.echo(f"{name:<{width}}  {library.describe(name)}")


@kernels_command.command("show")
@click.argument("spec", metavar="NAME[:key=value,...]")
@click.pass_obj
def kernels_show(kernel_files: tuple[str, ...], spec: str) -> None:
    """Print a kernel's matrix and properties (sum, separable or not)."""
    from imgkernel import kernels as kern
    from imgkernel.kernels import describe_kernel

    kernel = kern.load_library(kernel_files).resolve(spec)
    click.echo(describe_kernel(kernel))


# --------------------------------------------------------------------------
# pool


@cli.command("pool")
@with_io_options
@click.option("--size", type=PAIR, help="Window size: K or KH,KW (required unless --global).")
@click.option("--stride", type=PAIR, help="Step: S or SH,SW (default: the window size).")
@click.option(
    "--mode",
    type=click.Choice(["max", "avg", "mean", "min"]),
    default="max",
    show_default=True,
)
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
def pool_command(
    inputs: tuple[str, ...],
    output: str | None,
    fmt: str | None,
    compress_level: int | None,
    quality: int | None,
    max_pixels: int | None,
    size: tuple[int, int] | None,
    stride: tuple[int, int] | None,
    mode: str,
    global_: bool,
    padding: Any,
    dilation: tuple[int, int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> None:
    """Pool images or feature maps window by window, per channel.

    Max, average and min pooling follow the ONNX MaxPool/AveragePool
    operators; the alpha channel is pooled like a colour channel. PNG in
    gives a smaller PNG out; .npy in (or --format npy) gives floats.

    \b
      imgkernel pool --size 2 < photo.png > half.png
      imgkernel pool --size 3 --stride 2 --mode avg maps.npy -o pooled.npy
      imgkernel pool --global --mode avg photo.png --format json
    """
    from imgkernel.core import global_pool, pool2d

    mode = "avg" if mode == "mean" else mode
    if global_ and (size or stride):
        raise UsageError("--global pools the whole image; drop --size/--stride")
    if not global_ and size is None:
        raise UsageError("give --size K (or --global)")

    def transform(image: imgio.Image, out_format: str) -> Any:
        pixels = image.pixels
        has_alpha = image.alpha is not None
        if has_alpha:
            base = pixels if pixels.ndim == 3 else pixels[:, :, None]
            pixels = np.concatenate([base, image.alpha[:, :, None]], axis=2)  # type: ignore[index]
        if global_:
            pooled = global_pool(pixels, mode)
        else:
            assert size is not None
            pooled = pool2d(
                pixels,
                size,
                stride,
                mode=mode,
                padding=padding,
                dilation=dilation,
                ceil_mode=ceil_mode,
                count_include_pad=count_include_pad,
            )
        if is_text_format(out_format):
            if not global_:
                raise UsageError("txt/json output needs --global (one value per channel)")
            values = [float(v) for v in np.asarray(pooled, dtype=np.float64).reshape(-1)]
            names = channel_names(len(values), has_alpha)
            if out_format.upper() == "JSON":
                return json.dumps(
                    {"source": image.source, "mode": mode, **dict(zip(names, values, strict=True))}
                )
            return "\t".join(f"{n}={v:.6g}" for n, v in zip(names, values, strict=True))
        if out_format.upper() == "NPY":
            return pooled, None
        if pooled.dtype != image.pixels.dtype:
            info = np.iinfo(image.pixels.dtype) if image.pixels.dtype.kind in "ui" else None
            if info is not None:
                pooled = np.clip(np.rint(pooled), info.min, info.max).astype(image.pixels.dtype)
        if has_alpha:
            alpha = pooled[:, :, -1]
            pooled = pooled[:, :, :-1]
            if pooled.shape[2] == 1 and image.pixels.ndim == 2:
                pooled = pooled[:, :, 0]
            return pooled, alpha
        return pooled, None

    run_images(
        inputs,
        output,
        fmt,
        transform,
        compress_level=compress_level,
        quality=quality,
        max_pixels=max_pixels,
    )


# --------------------------------------------------------------------------
# CNN models: classify, run, summary, features, convert, models


@cli.command("classify")
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
    from imgkernel.nn import classify, load_model, prepare_images

    model = load_model(model_path)
    if list(images).count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pictures = [imgio.read_image(p, max_pixels=max_pixels) for p in chunk]
        batch = prepare_images(model, [(p.pixels) for p in pictures])
        for path, ranked in zip(chunk, classify(model, batch, top=top), strict=True):
            if as_json:
                best_label, best_p = ranked[0]
                click.echo(
                    json.dumps(
                        {
                            "path": path,
                            "label": best_label,
                            "probability": round(best_p, 6),
                            "top": [
                                {"label": lbl, "probability": round(p, 6)} for lbl, p in ranked
                            ],
                        }
                    )
                )
            else:
                pairs = "\t".join(f"{lbl}\t{p:.4f}" for lbl, p in ranked)
                click.echo(f"{path}\t{pairs}")


@cli.command("run")
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
@click.option("--layer", help="Stop after this layer (name or 0-based index).")
def run_command(model_path: str, tensor: str, output: str, layer: str | None) -> None:
    """Run the raw forward pass on a float tensor saved with numpy.save.

    Spatial models take (N, C, H, W) (a single (C, H, W) sample is accepted);
    --layer prints the feature maps of one layer instead of the output.
    """
    from imgkernel.nn import load_model

    if output != "-" and not output.lower().endswith(".npy"):
        raise UsageError(f"{output}: run writes a .npy array; name the output *.npy or use -")
    model = load_model(model_path)
    x = imgio.read_array(tensor)
    expected = model.input_spec.shape
    if x.ndim == len(expected):
        x = x[None]
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        shape = ", ".join(str(d) for d in expected)
        raise UsageError(f"{tensor}: expected a tensor of shape (N, {shape}), got {tuple(x.shape)}")
    until: int | str | None = layer
    if layer is not None and layer.lstrip("-").isdigit():
        until = int(layer)
    result = model.forward(x.astype(np.float32, copy=False), until=until)
    imgio.write_array(output, np.asarray(result, dtype=np.float32))


@cli.command("summary")
@click.argument("model_path", metavar="MODEL")
def summary_command(model_path: str) -> None:
    """Print each layer's output shape and parameter count, and the totals."""
    from imgkernel.nn import load_model

    click.echo(str(load_model(model_path).summary()))


@cli.command("features")
@click.argument("model_path", metavar="MODEL")
@click.argument("image", required=False, default="-")
@click.option("--layer", help="Layer whose outputs (or, with --weights, filters) to draw.")
@click.option("--weights", is_flag=True, help="Draw a conv layer's filters instead.")
@click.option("-o", "--output", default="-", show_default=True, help="Grid image to write.")
@click.option(
    "--cell",
    type=click.IntRange(8, 1024),
    default=64,
    show_default=True,
    help="Approximate tile size in pixels.",
)
@click.option("--columns", type=click.IntRange(min=1), help="Tiles per row.")
@click.option("--format", "fmt", metavar="FMT", help="Output format (default from -o, else PNG).")
def features_command(
    model_path: str,
    image: str,
    layer: str | None,
    weights: bool,
    output: str,
    cell: int,
    columns: int | None,
    fmt: str | None,
) -> None:
    """Draw a layer's feature maps for IMAGE (or a conv layer's filters) as a grid.

    Layer names and indices are listed by 'imgkernel summary MODEL'.

    \b
      imgkernel features digits sample_images/digits/digit-3-1504.png --layer conv2d1 -o maps.png
      imgkernel features digits --weights --layer 0 -o filters.png
    """
    from imgkernel.nn import conv_filters, feature_grid, feature_maps, load_model

    model = load_model(model_path)
    key: int | str | None = layer
    if layer is not None and layer.lstrip("-").isdigit():
        key = int(layer)
    if weights:
        tiles = conv_filters(model, key)
        count = tiles.shape[0] * (1 if tiles.shape[1] == 3 else tiles.shape[1])
        normalize = "each"
    else:
        if key is None:
            raise UsageError("give --layer NAME|INDEX (see 'imgkernel summary MODEL')")
        picture = imgio.read_image(image)
        tiles = feature_maps(model, picture.pixels, key)
        count = tiles.shape[0]
        # 1x1 maps (dense, flatten, softmax outputs) are only comparable together
        normalize = "all" if tiles.shape[-2:] == (1, 1) else "each"
    if count > GRID_LIMIT:
        click.echo(f"imgkernel: warning: drawing the first {GRID_LIMIT} of {count} tiles", err=True)
    grid = feature_grid(tiles, cell=cell, columns=columns, normalize=normalize, limit=GRID_LIMIT)
    out_format = fmt or (imgio.format_from_name(output) if output != "-" else None) or "PNG"
    imgio.write_image(output, grid, format=out_format)


@cli.command("convert")
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
@click.option("--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406.")
@click.option("--std", help="Per-channel std, e.g. 0.229,0.224,0.225.")
@click.option(
    "--resize",
    type=click.Choice(["stretch", "fit", "crop", "none"]),
    default="stretch",
    show_default=True,
    help="How images are brought to size.",
)
def convert_command(
    source: str,
    output: str,
    labels_file: str | None,
    scale: float,
    mean: str | None,
    std: str | None,
    resize: str,
) -> None:
    """Import an ONNX CNN (Conv, Relu, MaxPool, Gemm, Softmax, ...) as a model file.

    Needs the optional onnx package: pip install 'imgkernel[onnx]'.
    """
    from imgkernel.nn import save_model
    from imgkernel.nn.onnx import convert_onnx

    labels = None
    if labels_file is not None:
        labels = [line.strip() for line in read_text(labels_file).splitlines() if line.strip()]
    model = convert_onnx(
        source,
        labels,
        scale=scale,
        resize=resize,
        mean=parse_floats(mean, "--mean"),
        std=parse_floats(std, "--std"),
    )
    if output == "-":
        raise UsageError("convert needs a file for -o (a model is not written to stdout)")
    save_model(model, output)
    click.echo(
        f"wrote {output}: {len(model.layers)} layers, {model.param_count:,} parameters", err=True
    )


@cli.command("models")
def models_command() -> None:
    """List the models bundled with imgkernel."""
    from imgkernel.nn import list_bundled_models, load_model

    for name in list_bundled_models():
        model = load_model(name)
        c, h, w = model.input_spec.shape
        labels = ",".join(model.labels[:12]) + ("..." if len(model.labels) > 12 else "")
        click.echo(f"{name}\t{c}x{h}x{w}\t{labels}\t{getattr(model, 'description', '')}")


@cli.command("train")
@click.argument("data_dir", metavar="DATA_DIR")
@click.option("-o", "--output", required=True, metavar="MODEL.npz", help="Model file to write.")
@click.option(
    "--arch",
    default="default",
    show_default=True,
    help="Architecture: default, tiny, mlp, or a FILE.toml layer list.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="Learning rate (default 0.001 for adam, 0.01 for sgd).",
)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--val-split",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of each class held out for validation.",
)
@click.option(
    "--input-size", metavar="HxW", help="Network input size (default: the size most images have)."
)
@click.option("--gray", is_flag=True, help="Train on grayscale.")
@click.option("--rgb", is_flag=True, help="Train on RGB.")
@click.option(
    "--augment",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random shifts of up to N pixels of the training images.",
)
@click.option(
    "--rotate",
    type=click.FloatRange(0, 180),
    default=0.0,
    show_default=True,
    help="Random rotations of up to this many degrees.",
)
@click.option(
    "--zoom",
    type=click.FloatRange(0, 0.9),
    default=0.0,
    show_default=True,
    help="Random scaling by up to this fraction.",
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Keep a moving average of the weights with this decay (e.g. 0.999) and save it.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Makes a run exactly reproducible.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
def train_command(
    data_dir: str,
    output: str,
    arch: str,
    epochs: int,
    batch_size: int,
    lr: float | None,
    optimizer: str,
    weight_decay: float,
    val_split: float,
    input_size: str | None,
    gray: bool,
    rgb: bool,
    augment: int,
    rotate: float,
    zoom: float,
    ema: float,
    label_smoothing: float,
    seed: int,
    quiet: bool,
) -> None:
    """Train a small CNN on a folder of images, one sub-folder per label.

    Prints a progress bar per epoch with loss and accuracy, then the
    validation accuracy, and writes a model ready for 'imgkernel classify'.

    \b
      imgkernel train digits-train/ -o digits.npz --epochs 20
      imgkernel train photos/ -o pets.npz --rgb --input-size 64x64 --arch my-arch.toml
    """
    from imgkernel.nn.train import train_folder

    if output == "-":
        raise UsageError("train needs a file for -o (a model is not written to stdout)")
    if gray and rgb:
        raise UsageError("give --gray or --rgb, not both")
    color = "gray" if gray else "rgb" if rgb else None
    if not output.lower().endswith(".npz"):
        raise UsageError(f"{output}: a model file name should end in .npz")
    bar: Any = None

    def on_start(info: dict[str, Any]) -> None:
        if not quiet:
            click.echo(
                f"{info['train']} training / {info['val']} validation images, "
                f"{len(info['labels'])} labels, input {'x'.join(map(str, info['input']))}, "
                f"{info['params']:,} parameters",
                err=True,
            )

    def on_batch(epoch: int, batch: int, batches: int, loss: float) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = click.progressbar(
                length=batches, label=f"epoch {epoch}/{epochs}", file=sys.stderr, width=30
            )
            bar.__enter__()
        bar.update(1)

    def on_epoch(epoch: int, stats: Any) -> None:
        nonlocal bar
        if bar is not None:
            bar.__exit__(None, None, None)
            bar = None
        if quiet:
            return
        line = f"epoch {stats.epoch}/{stats.epochs}: loss {stats.loss:.4f} acc {stats.accuracy:.3f}"
        if stats.val_accuracy is not None:
            line += f"  val_loss {stats.val_loss:.4f} val_acc {stats.val_accuracy:.3f}"
        click.echo(f"{line}  ({stats.seconds:.1f}s)", err=True)

    def on_warning(message: str) -> None:
        click.echo(f"imgkernel: warning: {message}", err=True)

    result = train_folder(
        data_dir,
        output,
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        val_split=val_split,
        input_size=input_size,
        color=color,
        seed=seed,
        weight_decay=weight_decay,
        augment=augment,
        rotate=rotate,
        zoom=zoom,
        ema=ema,
        label_smoothing=label_smoothing,
        on_start=on_start,
        on_epoch=on_epoch,
        on_batch=on_batch,
        on_warning=on_warning,
    )
    summary = f"wrote {output}: train accuracy {result.train_accuracy:.4f}"
    if result.val_accuracy is not None:
        summary += f", validation accuracy {result.val_accuracy:.4f}"
    click.echo(f"{summary} ({result.seconds:.1f}s)", err=True)


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None


def parse_floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise UsageError(f"{what} {text!r} must be numbers separated by commas") from None
    if not values:
        raise UsageError(f"{what} {text!r} must be numbers separated by commas")
    return values


def channel_names(count: int, has_alpha: bool) -> list[str]:
    colour = {1: ["gray"], 3: ["red", "green", "blue"]}
    base = count - 1 if has_alpha else count
    names = colour.get(base, [f"c{i}" for i in range(base)])
    return names + (["alpha"] if has_alpha else [])


def main() -> None:
    cli.main(prog_name="imgkernel")


if __name__ == "__main__":  # pragma: no cover
    main()
