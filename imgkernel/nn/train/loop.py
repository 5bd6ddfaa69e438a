"""The training loop: mini-batches, the learning-rate schedule, weight averaging, evaluation.

Runs are reproducible: the seed drives one :class:`numpy.random.Generator`
(shuffling, augmentation, dropout), and BLAS is limited to one thread while
training (when threadpoolctl is installed) so the summation order does not
depend on the machine's thread count.

Examples
--------
A tiny network learns to tell bright images from dark ones:

>>> from imgkernel.nn.train.arch import build_network
>>> rng = np.random.default_rng(0)
>>> x = rng.random((64, 1, 6, 6)).astype(np.float32)
>>> y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
>>> net = build_network("tiny", (1, 6, 6), 2, seed=0)
>>> history = fit(net, x, y, epochs=20, batch_size=16, lr=0.01, seed=0)
>>> history[-1].loss < history[0].loss
True
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgkernel.core.parallel import blas_single_thread
from imgkernel.errors import UsageError
from imgkernel.nn.train.data import random_affine, random_shift
from imgkernel.nn.train.loss import softmax_cross_entropy
from imgkernel.nn.train.network import Network
from imgkernel.nn.train.optim import Optimizer
from imgkernel.nn.train.options import TrainOptions
from imgkernel.nn.train.schedule import scheduled_lr
from imgkernel.nn.train.stopping import EarlyStopping

EpochCallback = Callable[[int, "EpochStats"], None]
BatchCallback = Callable[[int, int, int, float], None]


@dataclass
class EpochStats:
    """Progress after one epoch (``epoch`` counts from 1)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None


class History(list[EpochStats]):
    """The :class:`EpochStats` of every epoch run, and how the run ended.

    ``best_epoch`` is the epoch with the lowest validation loss (None
    without validation data), ``stopped_early`` whether early stopping ended
    the run before its last epoch, ``restored`` whether the network holds
    the best epoch's weights rather than the last epoch's.
    """

    best_epoch: int | None = None
    stopped_early: bool = False
    restored: bool = False


def evaluate(
    net: Network, x: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` in inference mode.

    The loss is the training loss: with ``label_smoothing`` against the
    smoothed targets.
    """
    if len(x) == 0:
        return float("nan"), float("nan")
    z = net.predict_logits(x)
    loss, _, p = softmax_cross_entropy(z, y, label_smoothing)
    return loss, float(np.mean(p.argmax(axis=1) == y))


class WeightAverage:
    """The exponential moving average of the weights, bias-corrected like Adam's moments.

    After t updates with weights w_1 .. w_t it is
    ``sum_i (1 - d) d**(t - i) w_i / (1 - d**t)`` for the decay d.
    """

    def __init__(self, params: dict[str, np.ndarray], decay: float) -> None:
        self.decay = decay
        self.sums = {k: np.zeros(v.shape, np.float64) for k, v in params.items()}
        self.steps = 0

    def update(self, params: dict[str, np.ndarray]) -> None:
        self.steps += 1
        for key, acc in self.sums.items():
            acc *= self.decay
            acc += (1.0 - self.decay) * params[key]

    def weights(self, dtype: np.dtype) -> dict[str, np.ndarray]:
        corr = 1.0 - self.decay**self.steps
        return {k: (a / corr).astype(dtype) for k, a in self.sums.items()}


@dataclass
class _Run:
    """One call of :func:`fit`: what every epoch needs."""

    net: Network
    opt: Optimizer
    options: TrainOptions
    x: np.ndarray
    y: np.ndarray
    rng: np.random.Generator
    average: WeightAverage | None
    on_batch: BatchCallback | None

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """The samples ``idx``, augmented as the options ask."""
        o = self.options
        if o.rotate or o.zoom:
            return random_affine(self.x[idx], o.augment, o.rotate, o.zoom, self.rng)
        if o.augment:
            return random_shift(self.x[idx], o.augment, self.rng)
        return self.x[idx]

    def epoch(self, epoch: int, base_lr: float) -> EpochStats:
        """One pass over the shuffled samples; training loss and accuracy as running means."""
        o, n = self.options, len(self.x)
        batches = -(-n // o.batch_size)
        order = self.rng.permutation(n)
        total_loss = 0.0
        correct = 0
        for b in range(batches):
            idx = order[b * o.batch_size : (b + 1) * o.batch_size]
            xb = self.batch(idx)
            loss, z, grads = self.net.loss_and_grads(xb, self.y[idx], self.rng, o.label_smoothing)
            if not math.isfinite(loss):
                raise UsageError(
                    f"the loss became {loss} in epoch {epoch}; lower the learning rate"
                )
            if o.schedule != "constant" or o.warmup:
                step, total = (epoch - 1) * batches + b, o.epochs * batches
                warmup = min(o.warmup * batches, total - 1)
                self.opt.lr = scheduled_lr(base_lr, o.schedule, step, total, warmup)
            self.opt.step(self.net.params, grads)
            if self.average is not None:
                self.average.update(self.net.params)
            total_loss += loss * len(idx)
            correct += int(np.sum(z.argmax(axis=1) == self.y[idx]))
            if self.on_batch is not None:
                self.on_batch(epoch, b + 1, batches, loss)
        return EpochStats(epoch, o.epochs, total_loss / n, correct / n)


def fit(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: str | Optimizer = "adam",
    lr: float | None = None,
    weight_decay: float = 0.0,
    seed: int | None = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    augment: int = 0,
    rotate: float = 0.0,
    zoom: float = 0.0,
    schedule: str = "cosine",
    single_thread_blas: bool = True,
    ema: float = 0.0,
    label_smoothing: float = 0.0,
    warmup: int = 0,
    patience: int = 0,
    min_epochs: int = 0,
) -> History:
    """Train ``net`` in place on prepared (N, C, H, W) ``x`` and integer labels ``y``.

    Mini-batches of ``batch_size`` in an order reshuffled every epoch by a
    generator seeded with ``seed``. ``on_batch(epoch, batch, batches, loss)``
    is called after every step, ``on_epoch(epoch, stats)`` after every
    epoch. ``augment`` > 0 shifts every training image by a random number
    of pixels (up to ``augment`` each way, edge pixels repeated). Returns the
    per-epoch statistics (training loss/accuracy as the running mean over
    the epoch's batches, validation in inference mode). ``rotate``
    (degrees) and ``zoom`` (fraction) add random rotations and scalings
    (with sub-pixel shifts up to ``augment``, bilinear). ``schedule``
    "cosine" decays the learning rate along a half cosine to zero over the
    run (per step), "constant" keeps it, "onecycle" raises it from a 25th
    to ``lr`` over the first 30 % of the run, then decays it along a half
    cosine (:func:`~imgkernel.nn.train.schedule.scheduled_lr`); ``warmup``
    > 0 raises it linearly over that many first epochs before "cosine" or
    "constant". The schedule spans all ``epochs``, also when the run stops
    early.

    With validation data (``x_val``, ``y_val``) every epoch is validated
    (the validation loss is the training loss, with ``label_smoothing``) and
    the best epoch recorded: the one with the lowest validation loss
    (:class:`~imgkernel.nn.train.stopping.EarlyStopping`). ``patience``
    = P > 0 stops the run after P epochs in a row without a better one (not
    before ``min_epochs``) and puts the best epoch's weights back in
    ``net``; 0 trains all ``epochs`` and keeps the last weights. Without
    validation data every epoch is run. The returned :class:`History`
    tells the best epoch, whether the run stopped early and whether the
    weights were restored.

    ``ema`` = d > 0 keeps an exponential moving average of the weights,
    updated after every optimizer step and bias-corrected like Adam's
    moments (:class:`WeightAverage`). The per-epoch validation figures use
    the averaged weights, and at the end they replace the trained weights
    in ``net`` (the best epoch's average, when restored). ``label_smoothing`` as in
    :func:`imgkernel.nn.train.loss.softmax_cross_entropy`. The options are
    checked by :meth:`TrainOptions.check`.
    """
    options = TrainOptions.pick(locals()).check()  # the keyword arguments above
    return fit_options(
        net, x, y, options, x_val, y_val, on_epoch, on_batch, single_thread_blas=single_thread_blas
    )


def fit_options(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    options: TrainOptions,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    *,
    single_thread_blas: bool = True,
) -> History:
    """:func:`fit` with options already checked (see :class:`TrainOptions`)."""
    opt = options.make_optimizer()
    x = np.asarray(x, dtype=net.dtype)
    y = np.asarray(y, dtype=np.int64)
    if len(x) == 0:
        raise UsageError("there are no training samples")
    average = WeightAverage(net.params, options.ema) if options.ema else None
    run = _Run(net, opt, options, x, y, np.random.default_rng(options.seed), average, on_batch)
    validate = x_val is not None and y_val is not None and len(x_val) > 0
    stop = EarlyStopping(options.patience if validate else 0, options.min_epochs)
    base_lr = opt.lr
    history = History()
    ctx = blas_single_thread() if single_thread_blas else contextlib.nullcontext()
    with ctx:
        for epoch in range(1, options.epochs + 1):
            t0 = time.perf_counter()
            stats = run.epoch(epoch, base_lr)
            if validate:
                assert x_val is not None and y_val is not None
                _validate(run, stats, stop, x_val, y_val)
            stats.seconds = time.perf_counter() - t0
            history.append(stats)
            if on_epoch is not None:
                on_epoch(epoch, stats)
            if stop.should_stop(epoch):
                history.stopped_early = epoch < options.epochs
                break
    history.best_epoch = stop.best_epoch
    if stop.best_params is not None and stop.best_epoch != len(history):
        net.params = stop.best_params
        history.restored = True
    elif average is not None:
        net.params = average.weights(net.dtype)
    return history


def _validate(
    run: _Run, stats: EpochStats, stop: EarlyStopping, x_val: np.ndarray, y_val: np.ndarray
) -> None:
    """The validation figures of the epoch just run (with the averaged weights, if any)."""
    net, average = run.net, run.average
    params = net.params if average is None else average.weights(net.dtype)
    raw = net.params
    net.params = params
    try:
        smoothing = run.options.label_smoothing
        stats.val_loss, stats.val_accuracy = evaluate(net, x_val, y_val, smoothing)
    finally:
        net.params = raw
    stop.update(stats.epoch, stats.val_loss, stats.val_accuracy, params)
    stats.best_epoch = stop.best_epoch
    stats.best_val_loss, stats.best_val_accuracy = stop.best_loss, stop.best_accuracy
