"""Learning-rate schedules: the rate of every optimizer step as a fraction of the given one.

The schedule spans the whole run as planned (``epochs`` x batches), also
when early stopping ends it sooner. A linear warm-up over the first
``warmup`` epochs may precede ``cosine`` and ``constant``; ``onecycle`` has
its own.

>>> [round(scheduled_lr(1.0, "cosine", s, 4), 3) for s in range(4)]
[1.0, 0.854, 0.5, 0.146]
>>> [round(scheduled_lr(1.0, "cosine", s, 6, warmup_steps=2), 3) for s in range(4)]
[0.5, 1.0, 1.0, 0.854]
>>> [round(scheduled_lr(1.0, "onecycle", s, 10), 3) for s in (0, 3, 9)]
[0.04, 1.0, 0.05]
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "constant", "onecycle")

#: ``onecycle``: the share of the run spent rising, and where the rise starts
#: (as ``torch.optim.lr_scheduler.OneCycleLR``'s ``pct_start`` and ``div_factor``).
ONECYCLE_RISE = 0.3
ONECYCLE_START = 1 / 25


def scheduled_lr(base: float, schedule: str, step: int, total: int, warmup_steps: int = 0) -> float:
    """The learning rate at ``step`` (0-based) of ``total`` steps for the base rate ``base``.

    * ``cosine``: a half cosine from ``base`` down towards 0 over the run
      (``base * 0.5 * (1 + cos(pi * step / total))``);
    * ``constant``: ``base``;
    * ``onecycle``: up from ``base / 25`` to ``base`` along a half cosine over
      the first 30 % of the run, then down along a half cosine towards 0
      (as ``torch.optim.lr_scheduler.OneCycleLR`` with ``anneal_strategy="cos"``).

    ``warmup_steps`` > 0 (``cosine`` and ``constant``) rises linearly over the
    first steps, ``base * (step + 1) / warmup_steps``, then follows the
    schedule over the steps left.
    """
    if schedule == "onecycle":
        rise = max(1, round(ONECYCLE_RISE * total))
        if step < rise:
            up = 0.5 * (1 - math.cos(math.pi * step / rise))
            return base * (ONECYCLE_START + (1 - ONECYCLE_START) * up)
        return base * 0.5 * (1 + math.cos(math.pi * (step - rise) / max(1, total - rise)))
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if schedule == "constant":
        return base
    # the same arithmetic as before warm-ups existed: runs stay bit-for-bit reproducible
    step, total = step - warmup_steps, max(1, total - warmup_steps)
    return base * 0.5 * (1 + math.cos(math.pi * step / total))
