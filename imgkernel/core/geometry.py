"""The one check of a sliding window against its input, before any work.

:func:`window_geometry` checks a window's size, stride, dilation and padding
(:mod:`imgkernel.core.windows` computes them) against an ``(H, W)`` input,
for convolution (:func:`imgkernel.core.conv.conv_geometry`), pooling
(:func:`imgkernel.core.geometry.pool_geometry`) and model layers alike. The
arithmetic is exact (Python integers), so ``--dilation 99999999999`` is a
size to refuse, not an overflow: a padded input or an output larger than the
machine's memory is a usage error that says so, and so is a window far
larger than its input whose padding alone would be large. Strides and
dilations that would overflow index arithmetic are tamed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgkernel.core.windows import as_pair, output_size, resolve_padding
from imgkernel.errors import UsageError

__all__ = [
    "PADDING_BYTES_LIMIT",
    "WindowGeometry",
    "byte_size",
    "check_allocatable",
    "memory_limit",
    "window_geometry",
]

#: Bytes of padded input above which a window larger than its input is refused
#: (:func:`window_geometry`): the padding would be nearly all of it.
PADDING_BYTES_LIMIT = 1 << 28


def memory_limit() -> int:
    """Bytes of the largest array a window may need: the machine's physical memory.

    No array larger than this can ever be allocated, so a geometry that needs
    one is refused up front (:func:`window_geometry`) instead of failing
    half-way, or swapping, once the work has started.
    """
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 1 << 40
    return pages * page if pages > 0 and page > 0 else 1 << 40


def byte_size(count: int) -> str:
    """``1.5 GiB``, ``2.1e+23 bytes``: a size for a one-line message."""
    if count >= 1 << 50:
        return f"{float(count):.3g} bytes" if count < 1 << 1000 else "over 1e+300 bytes"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.3g} {unit}"
    return f"{count} bytes"


def check_allocatable(shape: Sequence[int], itemsize: int, what: str, cause: str) -> None:
    """Refuse an array of ``shape`` that could never be allocated; ``cause`` names why.

    >>> check_allocatable((10**6, 10**6), 4, "the padded input", "padding 10**6")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: padding 10**6 would make the padded input 1000000x1000000 ...
    """
    count = math.prod(int(n) for n in shape) * int(itemsize)
    limit = min(memory_limit(), np.iinfo(np.intp).max)
    if count > limit:
        dims = "x".join(str(int(n)) for n in shape[:2])
        extra = f" x {math.prod(shape[2:])} channels" if math.prod(shape[2:]) > 1 else ""
        raise UsageError(
            f"{cause} would make {what} {dims} pixels{extra} ({byte_size(count)}), more than this "
            f"machine's {byte_size(limit)} of memory; use a smaller stride, dilation, padding "
            "or kernel"
        )


@dataclass(frozen=True)
class WindowGeometry:
    """A sliding window checked against an ``(H, W)`` input (see :func:`window_geometry`).

    ``stride`` and ``dilation`` are the effective ones: a stride longer than
    the padded input is shortened to it (one window either way), and an axis
    with a single tap has dilation 1, so no compute path meets a number that
    overflows its index arithmetic.
    """

    in_hw: tuple[int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]

    @property
    def padded_hw(self) -> tuple[int, int]:
        """The input's size with its padding."""
        top, bottom, left, right = self.pads
        return self.in_hw[0] + top + bottom, self.in_hw[1] + left + right

    @property
    def span(self) -> tuple[int, int]:
        """Cells the dilated window covers along H and W."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.size, strict=True))  # type: ignore[return-value]


def window_geometry(
    in_hw: tuple[int, int],
    size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    padding: str | int | Sequence[int] = 0,
    *,
    channels: int = 1,
    out_channels: int | None = None,
    itemsize: int = 4,
    ceil_mode: bool = False,
    what: str | None = None,
) -> WindowGeometry:
    """Check a window's parameters against an ``(H, W)`` input and place its windows.

    The one geometry check of filtering, pooling and model layers. Refused,
    as a :class:`~imgkernel.errors.UsageError` naming the values: sizes,
    strides and dilations that are not integers >= 1, negative or unknown
    padding, a padded input or an output (``channels``/``out_channels`` of
    ``itemsize`` bytes each) larger than memory could ever hold, a window
    that fits nowhere (``what`` names it, e.g. ``"the 3x3 kernel"``), and a
    window taller or wider than the input whose padded input would take more
    than :data:`PADDING_BYTES_LIMIT` bytes.
    Python integers of any size are fine: the arithmetic here is exact.

    >>> g = window_geometry((5, 5), 3, stride=2**62, padding="same")
    >>> g.out_hw, g.stride, g.pads
    ((1, 1), (5, 5), (0, 0, 0, 0))
    >>> window_geometry((5, 5), 3, dilation=2**62, padding="same")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: dilation 4611686018427387904 and padding same would make ...
    """
    k2 = as_pair(size, "window size")
    s2 = as_pair(stride, "stride")
    d2 = as_pair(dilation, "dilation")
    pads = resolve_padding(padding, in_hw, k2, s2, d2)
    h, w = (int(n) for n in in_hw)
    padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
    cause = _cause(s2, d2, padding)
    check_allocatable((*padded, channels), itemsize, "the padded input", cause)
    oh = output_size(h, k2[0], s2[0], d2[0], pads[0], pads[1], ceil_mode=ceil_mode)
    ow = output_size(w, k2[1], s2[1], d2[1], pads[2], pads[3], ceil_mode=ceil_mode)
    if oh <= 0 or ow <= 0:
        span_h, span_w = (d * (k - 1) + 1 for d, k in zip(d2, k2, strict=True))
        raise UsageError(
            f"{what or f'the {k2[0]}x{k2[1]} window'} (dilation {d2[0]},{d2[1]}) spans "
            f"{span_h}x{span_w} cells but the padded input is only {padded[0]}x{padded[1]}; "
            "use more padding or a smaller window"
        )
    outs = out_channels if out_channels is not None else channels
    check_allocatable((oh, ow, outs), itemsize, "the output", cause)
    _check_mostly_padding((h, w), k2, d2, padded[0] * padded[1] * channels * itemsize, what)
    step = (min(s2[0], max(padded[0], 1)), min(s2[1], max(padded[1], 1)))
    rate = (d2[0] if k2[0] > 1 else 1, d2[1] if k2[1] > 1 else 1)
    return WindowGeometry((h, w), k2, step, rate, pads, (oh, ow))


def _check_mostly_padding(
    in_hw: tuple[int, int],
    size: tuple[int, int],
    dilation: tuple[int, int],
    padded_bytes: int,
    what: str | None,
) -> None:
    """Refuse a window wider or taller than the input whose padding alone is large.

    ``gaussian --dilation 3000`` on a 24x32 image would pad it to gigabytes
    to read one real pixel per window; a legitimately large padded input
    belongs to a large image (or to padding asked for explicitly).
    """
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, size, strict=True)]
    if (spans[0] > in_hw[0] or spans[1] > in_hw[1]) and padded_bytes > PADDING_BYTES_LIMIT:
        raise UsageError(
            f"{what or f'the {size[0]}x{size[1]} window'} (dilation {dilation[0]},{dilation[1]}) "
            f"spans {spans[0]}x{spans[1]} pixels, far larger than the {in_hw[0]}x{in_hw[1]} "
            f"input: its padded input would take {byte_size(padded_bytes)}, nearly all of it "
            "padding; use a smaller window or dilation"
        )


def _cause(
    stride: tuple[int, int], dilation: tuple[int, int], padding: str | int | Sequence[int]
) -> str:
    """``dilation 9 with padding same``: the settings that make a size, for a message."""

    def text(values: Sequence[int]) -> str:
        return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))

    named = [f"{name} {text(pair)}" for name, pair in (("stride", stride), ("dilation", dilation))]
    named = [n for n, pair in zip(named, (stride, dilation), strict=True) if pair != (1, 1)]
    if isinstance(padding, str):
        pads = padding
    elif isinstance(padding, (int, np.integer)):
        pads = str(int(padding))
    else:
        pads = text([int(v) for v in padding])
    return " and ".join([*named, f"padding {pads}"])


@dataclass(frozen=True)
class PoolGeometry(WindowGeometry):
    """Where the windows of a pooling fall (ONNX MaxPool/AveragePool rules).

    ``pads`` are the explicit ``(top, bottom, left, right)`` pads;
    ``overhang`` the cells a ``ceil_mode`` window hangs beyond the bottom and
    right padding (they never count, see :meth:`counts`).
    """

    @property
    def overhang(self) -> tuple[int, int]:
        def axis(i: int) -> int:
            end = (self.out_hw[i] - 1) * self.stride[i] + self.dilation[i] * (self.size[i] - 1) + 1
            return max(0, end - (self.in_hw[i] + self.pads[2 * i] + self.pads[2 * i + 1]))

        return axis(0), axis(1)

    @property
    def all_pads(self) -> tuple[int, int, int, int]:
        """Explicit pads plus the ``ceil_mode`` overhang: what the source is padded by."""
        top, bottom, left, right = self.pads
        extra_h, extra_w = self.overhang
        return (top, bottom + extra_h, left, right + extra_w)

    def counts(self, include_pad: bool) -> tuple[np.ndarray, np.ndarray]:
        """Cells each window counts along H and along W (an average's divisor factors).

        Real input cells, plus the explicit pads when ``include_pad``; cells
        of the ``ceil_mode`` overhang never count (as the ONNX reference
        evaluator and PyTorch do).

        >>> g = pool_geometry((5, 5), (2, 2), ceil_mode=True)
        >>> g.out_hw, g.all_pads, g.counts(False)[0]
        ((3, 3), (0, 1, 0, 1), array([2, 2, 1]))
        """
        axes = []
        for axis in (0, 1):
            n, k, s, d = self.in_hw[axis], self.size[axis], self.stride[axis], self.dilation[axis]
            before, after = self.pads[2 * axis], self.pads[2 * axis + 1]
            taps = np.arange(self.out_hw[axis])[:, None] * s - before + np.arange(k) * d
            lo, hi = (-before, n + after) if include_pad else (0, n)
            axes.append(((taps >= lo) & (taps < hi)).sum(axis=1))
        return axes[0], axes[1]


def pool_geometry(
    in_hw: tuple[int, int],
    size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    *,
    ceil_mode: bool = False,
    channels: int = 1,
    itemsize: int = 4,
) -> PoolGeometry:
    """Check a pooling's parameters against an ``(H, W)`` input and place its windows.

    The stride defaults to the window size. Each pad must be smaller than the
    window on its axis (ONNX Runtime's rule); the rest is
    :func:`window_geometry` (``channels`` planes of ``itemsize`` bytes).

    >>> pool_geometry((6, 6), 3, 2, padding=1).out_hw
    (3, 3)
    >>> pool_geometry((2, 2), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: the 3x3 pooling window ... the padded input is only 2x2; ...
    """
    k2 = as_pair(size, "size")
    s2 = k2 if stride is None else as_pair(stride, "stride")
    d2 = as_pair(dilation, "dilation")
    pads = resolve_padding(padding, in_hw, k2, s2, d2)
    top, bottom, left, right = pads
    if max(top, bottom) >= k2[0] or max(left, right) >= k2[1]:
        raise UsageError(
            f"padding {padding!r} must be smaller than the window {k2[0]}x{k2[1]} "
            f"on each axis (resolved to top, bottom, left, right = {pads})"
        )
    g = window_geometry(
        in_hw,
        k2,
        s2,
        d2,
        padding,
        channels=channels,
        itemsize=itemsize,
        ceil_mode=ceil_mode,
        what=f"the {k2[0]}x{k2[1]} pooling window",
    )
    return PoolGeometry(g.in_hw, g.size, g.stride, g.dilation, g.pads, g.out_hw)
