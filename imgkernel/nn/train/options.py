"""The options of a training run, checked in one place for :func:`fit` and ``train_folder``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imgkernel.errors import UsageError, check_choice, check_float, check_int
from imgkernel.nn.train.optim import Optimizer, make_optimizer
from imgkernel.nn.train.schedule import SCHEDULES


@dataclass(frozen=True)
class TrainOptions:
    """How to train: see :func:`imgkernel.nn.train.loop.fit` for each option.

    ``optimizer`` is a name ("adam", "sgd") or a ready optimizer object
    (then ``lr`` and ``weight_decay`` are its business). Build one and call
    :meth:`check`, which returns the options with every value validated and
    normalised (ints as int, fractions as float) or raises a ``UsageError``
    naming the bad option.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: str | Optimizer = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    seed: int | None = 0
    augment: int = 0
    rotate: float = 0.0
    zoom: float = 0.0
    schedule: str = "cosine"
    ema: float = 0.0
    label_smoothing: float = 0.0
    warmup: int = 0
    patience: int = 0
    min_epochs: int = 0

    @classmethod
    def pick(cls, values: dict[str, Any]) -> TrainOptions:
        """The options from a mapping holding (at least) one value per field, e.g. ``locals()``."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    def check(self) -> TrainOptions:
        """These options validated and normalised."""
        checked: dict[str, Any] = {
            "epochs": check_int(self.epochs, "epochs", minimum=1),
            "batch_size": check_int(self.batch_size, "batch size", minimum=1),
            "augment": check_int(self.augment, "augment", minimum=0),
            "rotate": check_float(self.rotate, "rotate", minimum=0, maximum=180),
            "zoom": check_float(self.zoom, "zoom", minimum=0, maximum=1, max_open=True),
            "schedule": check_choice(self.schedule, "learning-rate schedule", SCHEDULES),
            "ema": check_float(self.ema, "ema", minimum=0, maximum=1, max_open=True),
            "label_smoothing": check_float(
                self.label_smoothing, "label smoothing", minimum=0, maximum=1, max_open=True
            ),
            "warmup": check_int(self.warmup, "warmup", minimum=0),
            "patience": check_int(self.patience, "patience", minimum=0),
            "min_epochs": check_int(self.min_epochs, "min epochs", minimum=0),
        }
        if checked["min_epochs"] > checked["epochs"]:
            raise UsageError(
                f"min epochs ({checked['min_epochs']}) is more than epochs ({checked['epochs']})"
            )
        if self.seed is not None:
            checked["seed"] = check_int(self.seed, "seed", minimum=0)
        if isinstance(self.optimizer, str):
            self.make_optimizer()  # checks the name, lr and weight decay
        return dataclasses.replace(self, **checked)

    def make_optimizer(self) -> Optimizer:
        """A fresh optimizer (or the given one)."""
        if isinstance(self.optimizer, str):
            return make_optimizer(self.optimizer, self.lr, weight_decay=self.weight_decay)
        return self.optimizer


#: The defaults of :func:`~imgkernel.nn.train.folder.train_folder` and
#: ``imgkernel train`` (those of the plain :class:`TrainOptions` and of ``fit``
#: are a bare run: no smoothing, no early stopping). See docs/training.md for
#: how they were chosen.
FOLDER_DEFAULTS = TrainOptions(
    epochs=100,
    label_smoothing=0.1,
    patience=10,
)
