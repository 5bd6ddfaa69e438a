"""A kernel record in words: its matrix and properties, for ``imgkernel kernels show``."""

from __future__ import annotations

import numpy as np

from imgkernel.core.correlate import rank1_factors
from imgkernel.kernels.record import Kernel

__all__ = ["describe_kernel"]


def describe_kernel(kernel: Kernel) -> str:
    """A human-readable matrix and its properties, for ``kernels show``.

    >>> from imgkernel.kernels import kernel_from_matrix
    >>> print(describe_kernel(kernel_from_matrix([[1, 2, 1]], name="demo", scale=1)))
    demo
    size:       1x3 (anchor row 0, column 1)
    weights:
             1         2         1
    sum:        4
    zero-sum:   no
    separable:  yes (rank 1)
    display:    clip
    """
    lines = [kernel.name]
    if kernel.description:
        lines.append(kernel.description)
    stack = kernel.weights if kernel.combine == "magnitude" else kernel.weights[None]
    kh, kw = stack.shape[-2:]
    lines.append(f"size:       {kh}x{kw} (anchor row {(kh - 1) // 2}, column {(kw - 1) // 2})")
    if kernel.dilation != (1, 1):
        eh, ew = kernel.extent
        lines.append(f"dilation:   {kernel.dilation[0]},{kernel.dilation[1]} (taps span {eh}x{ew})")
    for index, weights in enumerate(stack):
        title = "weights:" if len(stack) == 1 else f"component {index + 1}:"
        lines.append(title)
        lines.extend("".join(_cell(v) for v in row) for row in weights)
    if kernel.combine == "magnitude":
        lines.append("combine:    magnitude sqrt(sum of squared responses)")
    else:
        total = float(stack[0].sum())
        lines.append(f"sum:        {_cell(total).strip()}")
        lines.append(f"zero-sum:   {'yes' if abs(total) < 1e-9 else 'no'}")
        separable = rank1_factors(stack[0]) is not None
        rank = int(np.linalg.matrix_rank(stack[0]))
        lines.append(f"separable:  {'yes' if separable else 'no'} (rank {rank})")
    if kernel.offset:
        lines.append(f"offset:     {kernel.offset:g} of full scale")
    lines.append(f"display:    {kernel.display}")
    return "\n".join(lines)


def _cell(value: float) -> str:
    return f" {float(value):>9.4g}"
