"""The numeric core: sliding-window geometry, tiles and threads, correlation, pooling.

Imports nothing of imgkernel but :mod:`imgkernel.errors`. Arrays: images
``(H, W, C)`` channels-last, CNN tensors ``(N, C, H, W)``, conv weights
``(K, C/groups, kh, kw)``.
"""

from typing import TYPE_CHECKING

from imgkernel.core.conv import conv2d, filter2d
from imgkernel.core.pool import global_pool, pool2d
from imgkernel.lazy import lazy_exports

if TYPE_CHECKING:  # the lazily loaded names below, for type checkers
    from imgkernel.core.tiles import TilePlan, plan_filter, plan_pool

__all__ = ["TilePlan", "conv2d", "filter2d", "global_pool", "plan_filter", "plan_pool", "pool2d"]

#: Names loaded on first use: what only some commands need stays out of start-up.
_LAZY = {
    "TilePlan": "imgkernel.core.tiles",
    "plan_filter": "imgkernel.core.tiles",
    "plan_pool": "imgkernel.core.tiles",
}


__getattr__ = lazy_exports(__name__, _LAZY)
