"""``imgkernel train``: train a small CNN on a folder of images.

The training is :func:`imgkernel.nn.train.train_folder`; this module adds the
options and the presentation: a progress bar per epoch and the summary lines.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from imgkernel.cli.app import warn
from imgkernel.errors import UsageError


class Progress:
    """The callbacks ``train_folder`` reports through: lines and a bar on stderr."""

    def __init__(self, epochs: int, patience: int, *, quiet: bool) -> None:
        self.epochs = epochs
        self.patience = patience
        self.quiet = quiet
        self.bar: Any = None

    def callbacks(self) -> dict[str, Any]:
        """The keyword arguments to pass to ``train_folder``."""
        return {
            "on_start": self.on_start,
            "on_batch": self.on_batch,
            "on_epoch": self.on_epoch,
            "on_warning": warn,
        }

    def on_start(self, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        click.echo(
            f"{info['train']} training / {info['val']} validation images, "
            f"{len(info['labels'])} labels, input {'x'.join(map(str, info['input']))}, "
            f"{info['params']:,} parameters",
            err=True,
        )
        if not info["val"] and self.patience:
            click.echo(
                f"no validation split: early stopping is off (nothing to watch), "
                f"training all {self.epochs} epochs",
                err=True,
            )

    def on_batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = click.progressbar(
                length=batches, label=f"epoch {epoch}/{self.epochs}", file=sys.stderr, width=30
            )
            self.bar.__enter__()
        self.bar.update(1)

    def on_epoch(self, epoch: int, stats: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if self.quiet:
            return
        line = f"epoch {stats.epoch}/{stats.epochs}: loss {stats.loss:.4f} acc {stats.accuracy:.3f}"
        if stats.val_accuracy is not None:
            line += f"  val_loss {stats.val_loss:.4f} val_acc {stats.val_accuracy:.3f}"
            line += "  best *" if stats.best_epoch == stats.epoch else f"  best {stats.best_epoch}"
        click.echo(f"{line}  ({stats.seconds:.1f}s)", err=True)


def summary(result: Any, epochs: int, patience: int) -> list[str]:
    """The closing lines: how the run ended, the best epoch, the accuracies."""
    lines = []
    ran = len(result.history)
    if result.stopped_early:
        lines.append(
            f"stopped early after epoch {ran}/{epochs}: "
            f"no lower validation loss for {patience} epochs"
        )
    text = f"wrote {result.output}: "
    if result.best_epoch is not None:
        best = result.history[result.best_epoch - 1]
        text += f"best epoch {result.best_epoch}/{epochs}, val_acc {best.val_accuracy:.3f}"
        if result.restored:
            text += "; restored"
        elif result.best_epoch != ran:
            text += f"; kept epoch {ran} (--patience 0)"
        text += "; "
    elif ran:
        text += f"all {ran} epochs (no validation split); "
    text += f"train accuracy {result.train_accuracy:.4f}"
    if result.val_accuracy is not None:
        text += f", validation accuracy {result.val_accuracy:.4f}"
    lines.append(f"{text} ({result.seconds:.1f}s)")
    return lines


@click.command("train")
@click.argument("data_dir", metavar="DATA_DIR")
@click.option("-o", "--output", required=True, metavar="MODEL.npz", help="Model file to write.")
@click.option(
    "--arch",
    default="default",
    show_default=True,
    help="Architecture: default, tiny, mlp, or a FILE.toml layer list.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Most epochs to train (early stopping usually ends sooner).",
)
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
    "--schedule",
    type=click.Choice(["cosine", "constant", "onecycle"]),
    default="cosine",
    show_default=True,
    help="Learning rate over the --epochs: half-cosine decay to 0, constant, or one-cycle "
    "(up from lr/25 over the first 30%, then down).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Raise the learning rate linearly over the first N epochs (cosine, constant).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="N",
    help="Stop when the validation loss has not improved for N epochs and keep the best "
    "epoch's weights; 0 trains all --epochs and keeps the last. Needs --val-split > 0.",
)
@click.option(
    "--min-epochs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Never stop early before epoch N.",
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
    default=0.1,
    show_default=True,
    help="Train against (1-E)*onehot + E/labels instead of the one-hot labels.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Makes a run exactly reproducible.",
)
@click.option(
    "--quiet", is_flag=True, help="Print nothing on success (warnings about files still)."
)
def train_command(
    data_dir: str, output: str, gray: bool, rgb: bool, quiet: bool, **options: Any
) -> None:
    """Train a small CNN on a folder of images, one sub-folder per label.

    Prints a progress bar per epoch with loss and accuracy (and the
    validation figures, with the best epoch so far), then the best epoch
    and the accuracies, and writes a model ready for 'imgkernel classify'.
    By default a tenth of every label is held out for validation; training
    stops when the validation loss has not improved for --patience epochs
    and the best epoch's weights are saved.

    \b
      imgkernel train digits-train/ -o digits.npz
      imgkernel train photos/ -o pets.npz --rgb --input-size 64x64 --arch my-arch.toml
    """
    from imgkernel.nn.train import train_folder

    if output == "-":
        raise UsageError("train needs a file for -o (a model is not written to stdout)")
    if gray and rgb:
        raise UsageError("give --gray or --rgb, not both")
    if not output.lower().endswith(".npz"):
        raise UsageError(f"{output}: a model file name should end in .npz")
    color = "gray" if gray else "rgb" if rgb else None
    progress = Progress(options["epochs"], options["patience"], quiet=quiet)
    result = train_folder(data_dir, output, color=color, **options, **progress.callbacks())
    if not quiet:
        for line in summary(result, options["epochs"], options["patience"]):
            click.echo(line, err=True)
