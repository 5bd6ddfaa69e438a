"""The numeric core: sliding-window geometry, tiles and threads, correlation, pooling.

Imports nothing of imgkernel but :mod:`imgkernel.errors`. Arrays: images
``(H, W, C)`` channels-last, CNN tensors ``(N, C, H, W)``, conv weights
``(K, C/groups, kh, kw)``.
"""

from imgkernel.core.conv import conv2d, filter2d
from imgkernel.core.pool import global_pool, pool2d
from imgkernel.core.tiles import TilePlan, plan_filter, plan_pool

__all__ = ["TilePlan", "conv2d", "filter2d", "global_pool", "plan_filter", "plan_pool", "pool2d"]
