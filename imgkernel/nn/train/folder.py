"""``imgkernel train``: train a classifier on an image folder and write the model file."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgkernel.errors import UsageError, check_float, os_error_message
from imgkernel.nn.fileformat import save_model
from imgkernel.nn.model import Model
from imgkernel.nn.predict import predict_proba
from imgkernel.nn.spec import InputSpec
from imgkernel.nn.train.arch import build_network, is_arch_file, load_arch
from imgkernel.nn.train.data import Dataset, load_image_folder, parse_size, stratified_split
from imgkernel.nn.train.loop import (
    BatchCallback,
    EpochCallback,
    EpochStats,
    History,
    fit_options,
)
from imgkernel.nn.train.network import Network
from imgkernel.nn.train.options import TrainOptions


@dataclass
class TrainResult:
    """What :func:`train_folder` did."""

    model: Model
    history: list[EpochStats]
    labels: list[str]
    train_count: int
    val_count: int
    train_accuracy: float
    val_accuracy: float | None
    skipped: list[str]
    seconds: float
    output: str | None
    best_epoch: int | None = None
    stopped_early: bool = False
    restored: bool = False


def _check_target(output: str | os.PathLike[str] | None) -> str | None:
    target = None if output is None else os.fspath(output)
    if target is not None:
        if os.path.isdir(target):
            raise UsageError(f"{target}: is a directory; give the model file name")
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            raise UsageError(f"{target}: the folder {parent} does not exist")
    return target


def _normalised(
    x: np.ndarray, train_idx: np.ndarray, spec: InputSpec
) -> tuple[np.ndarray, InputSpec]:
    """``x`` standardised by the training images' channel means and stds; the spec saying so."""
    xs = x[train_idx]
    mean = xs.mean(axis=(0, 2, 3), dtype=np.float64)
    std = xs.std(axis=(0, 2, 3), dtype=np.float64)
    std = np.where(std > 1e-6, std, 1.0)
    spec = InputSpec(
        channels=spec.channels,
        height=spec.height,
        width=spec.width,
        scale=spec.scale,
        mean=[round(float(m), 6) for m in mean],
        std=[round(float(s), 6) for s in std],
    )
    m32 = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
    s32 = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    return (x - m32) / s32, spec  # as prepare_image does


def _start_info(
    net: Network,
    data: Dataset,
    spec: InputSpec,
    split: tuple[np.ndarray, np.ndarray],
    batch_size: int,
) -> dict[str, Any]:
    """What ``on_start`` learns: the data, the split and the network."""
    model0 = net.to_model(data.labels, spec)
    return {
        "labels": list(data.labels),
        "train": int(len(split[0])),
        "val": int(len(split[1])),
        "input": spec.shape,
        "color": spec.color,
        "params": model0.param_count,
        "summary": str(model0.summary()),
        "batches": -(-len(split[0]) // batch_size),
        "skipped": list(data.skipped),
    }


def _accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) == 0:
        return float("nan")
    probs = predict_proba(model, x, batch_size=256)
    return float(np.mean(probs.argmax(axis=1) == y))


def _epochs_text(history: History, epochs: int) -> str:
    """How many epochs ran and whose weights were kept, for the model's description."""
    text = f"{len(history)} of {epochs} epochs" if len(history) < epochs else f"{epochs} epochs"
    return text + (f", weights of epoch {history.best_epoch}" if history.restored else "")


def _description(folder: str, images: int, arch: Any, history: Any, options: Any) -> str:
    """The model's default description: what it was trained on and how."""
    return (
        f"trained by imgkernel train on {folder} ({images} images, arch "
        f"{os.path.basename(os.fspath(arch))}, {_epochs_text(history, options.epochs)}, "
        f"seed {options.seed})"
    )


def _result(
    model: Any, history: Any, data: Any, x: np.ndarray, split: Any, target: Any, seconds: float
) -> TrainResult:
    """The :class:`TrainResult`, its accuracies through the inference path classify() uses."""
    train, val = split
    return TrainResult(
        model,
        history,
        list(data.labels),
        int(len(train)),
        int(len(val)),
        _accuracy(model, x[train], data.y[train]),
        _accuracy(model, x[val], data.y[val]) if len(val) else None,
        list(data.skipped),
        seconds,
        target,
        history.best_epoch,
        history.stopped_early,
        history.restored,
    )


def _check_before_reading(input_size: Any, arch: Any) -> None:
    """What can be checked without the images, before reading a possibly large
    folder: the input size and the architecture file."""
    parse_size(input_size)
    if isinstance(arch, (str, os.PathLike)) and is_arch_file(arch):
        load_arch(arch)


def _save(model: Any, target: str | None) -> None:
    """Write ``model`` to ``target`` (atomically), if there is one; OS errors as one line."""
    if target is None:
        return
    try:
        save_model(model, target)
    except OSError as exc:
        raise UsageError(os_error_message(exc, target)) from None


def train_folder(
    data_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    arch: str | os.PathLike[str] = "default",
    epochs: int = 100,
    batch_size: int = 32,
    lr: float | None = None,
    optimizer: str = "adam",
    val_split: float = 0.1,
    input_size: str | int | Sequence[int] | None = None,
    color: str | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    normalize: bool = True,
    augment: int = 0,
    rotate: float = 0.0,
    zoom: float = 0.0,
    schedule: str = "cosine",
    ema: float = 0.0,
    label_smoothing: float = 0.1,
    warmup: int = 0,
    patience: int = 10,
    min_epochs: int = 0,
    description: str | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a classifier on an image folder, write it to ``output``: ``imgkernel train``.

    ``data_dir`` holds one sub-folder per label. ``val_split`` of every
    class is held out (stratified, by ``seed``) for the validation accuracy.
    With ``normalize`` the per-channel mean and std of the training images
    go into the model's input spec. ``augment``/``rotate``/``zoom`` (random
    shifts, rotations, scalings of the training images), ``schedule``,
    ``ema`` (the saved model holds the moving average of the weights) and
    ``label_smoothing``, ``warmup``, ``patience`` and ``min_epochs`` as in
    :func:`imgkernel.nn.train.loop.fit`: by default (``FOLDER_DEFAULTS`` in
    :mod:`~imgkernel.nn.train.options`) up to 100 epochs with label smoothing
    0.1, stopping once the validation loss has not improved for 10 epochs,
    the best epoch's weights saved (``best_epoch``, ``stopped_early`` and
    ``restored`` in the result say how it went). ``on_start(info)`` is
    called once the data is read and the network built (``info`` holds ``labels``,
    ``train``, ``val``, ``input`` (C, H, W), ``params``, ``summary``,
    ``batches``); ``on_epoch``/``on_batch`` as in ``fit``;
    ``on_warning(message)`` for skipped files. Nothing is printed. The model
    file is written atomically at the end (nothing is written on error).
    """
    t0 = time.perf_counter()
    target = _check_target(output)
    options = TrainOptions.pick(locals()).check()  # the keyword arguments above
    fraction = check_float(val_split, "validation split", minimum=0, maximum=1, max_open=True)
    _check_before_reading(input_size, arch)
    data = load_image_folder(data_dir, input_size=input_size, color=color, on_warning=on_warning)
    rng = np.random.default_rng(options.seed)
    split = stratified_split(data.y, fraction, rng)
    x, spec = _normalised(data.x, split[0], data.spec) if normalize else (data.x, data.spec)
    net = build_network(arch, spec.shape, len(data.labels), rng=rng)
    if on_start is not None:
        on_start(_start_info(net, data, spec, split, options.batch_size))
    train_x, train_y = x[split[0]], data.y[split[0]]
    has_val = len(split[1]) > 0
    val_x = x[split[1]] if has_val else None
    val_y = data.y[split[1]] if has_val else None
    fit_with = dataclasses.replace(options, seed=int(rng.integers(2**63)))
    history = fit_options(net, train_x, train_y, fit_with, val_x, val_y, on_epoch, on_batch)
    if description is None:
        folder = os.path.basename(os.path.abspath(data_dir))
        description = _description(folder, len(split[0]), arch, history, options)
    model = net.to_model(data.labels, spec, description)
    _save(model, target)
    return _result(model, history, data, x, split, target, time.perf_counter() - t0)
