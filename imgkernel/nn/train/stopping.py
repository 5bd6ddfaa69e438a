"""Early stopping: the best epoch on the validation split, its weights, and when to stop.

The best epoch is the one with the lowest validation loss: the loss
being trained (the mean cross-entropy, against the smoothed targets when
training with label smoothing) on the validation split. The loss, unlike
the accuracy, still moves when a small validation split is classified all
right (or the same number wrong) epoch after epoch; measured like the
training loss, it keeps falling while the decaying learning rate settles
the network and rises when the network overfits. ``patience`` = P > 0
stops the run once P epochs in a row were not better (never before
``min_epochs``) and restores the best epoch's weights; 0 only records the
best epoch.

>>> stop = EarlyStopping(patience=2)
>>> [stop.update(e, loss, 0.9, {}) for e, loss in [(1, 0.5), (2, 0.4), (3, 0.45)]]
[True, True, False]
>>> stop.best_epoch, stop.should_stop(3), stop.should_stop(4)
(2, False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EarlyStopping:
    """The best epoch so far and, when it may stop the run, its weights."""

    patience: int = 0
    min_epochs: int = 0
    best_epoch: int | None = None
    best_loss: float = math.inf
    best_accuracy: float = math.nan
    best_params: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        """Whether the run may stop early and the best weights are restored."""
        return self.patience > 0

    def update(
        self, epoch: int, loss: float, accuracy: float, params: dict[str, np.ndarray]
    ) -> bool:
        """Record ``epoch``'s validation figures; whether the epoch is the best so far.

        When it is and the stopping is active, a copy of ``params`` (the
        weights that were validated) is kept.
        """
        if self.best_epoch is not None and not loss < self.best_loss:
            return False
        self.best_epoch, self.best_loss, self.best_accuracy = epoch, loss, accuracy
        if self.active:
            self.best_params = {k: v.copy() for k, v in params.items()}
        return True

    def should_stop(self, epoch: int) -> bool:
        """Whether to stop after ``epoch``: ``patience`` epochs without a better one."""
        if not self.active or self.best_epoch is None or epoch < self.min_epochs:
            return False
        return epoch - self.best_epoch >= self.patience
