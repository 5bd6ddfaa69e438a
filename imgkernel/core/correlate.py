"""Valid cross-correlation of padded planes: the compute paths of the core.

Every path here has one contract: ``xp`` is a C-contiguous float32 array
``(P, Hp, Wp)`` of P independent planes, already padded, or a
:class:`~imgkernel.core.padding.PaddedPlanes` source that pads row bands on
demand (then no path makes a padded full-size copy); ``kernel`` is a
float64 ``(kh, kw)`` array; the result is the float32 ``(P, Ho, Wo)`` valid
cross-correlation (no flip) at the given stride and dilation::

    out[p, y, x] = sum_ij kernel[i, j] * xp[p, y*sh + i*dh, x*sw + j*dw]

Paths
-----
``direct``
    one multiply-accumulate per kernel tap over cache-sized row tiles;
``gemm``
    a few output rows at a time as banded (Toeplitz) sgemms, one per kernel
    column (:mod:`imgkernel.core.direct`);
``separable``
    rank-1 kernels as a vertical then a horizontal 1-D pass, each either a
    tap loop (short kernels) or banded Toeplitz matrices applied with sgemm;
``box``
    constant kernels by running sums down the columns and doubling along the
    rows (:mod:`imgkernel.core.box`), at a cost independent of the kernel size;
``fft``
    large kernels by overlap-save FFT tiles (``scipy.fft``, float32).

:func:`choose_method` is the ``auto`` rule; :func:`correlate_planes` applies it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imgkernel.core.box import correlate_box, is_box
from imgkernel.core.direct import (
    GEMM_ROWS,
    correlate_direct,
    correlate_gemm,
    is_dense,
)
from imgkernel.core.fft import correlate_fft
from imgkernel.core.padding import PaddedPlanes
from imgkernel.core.separable import (
    SEPARABLE_TAPS_MAX,
    correlate_separable,
    rank1_factors,
)
from imgkernel.errors import UsageError

METHODS = ("auto", "direct", "gemm", "separable", "box", "fft")

#: Paths that read their input band by band (a PaddedPlanes source is never
#: padded in full for them).
BANDED = ("direct", "gemm", "separable", "box", "fft")


# ---------------------------------------------------------------------------
# dispatch

#: Kernels with fewer non-zero taps never take the fft path.
FFT_MIN_TAPS = 25

#: Rough costs in ns per output value beyond what every path pays (reading
#: the input, writing the output), fitted to interleaved runs on a quiet
#: machine, 4000x3000 RGB, uint8 and float32 alike (ms, 2 threads): dense
#: einsum 3x3 59, 5x5 92, 7x7 124 (a fixed part plus a cost per tap, zeros
#: included); tap loop 76, 143, 255 (per non-zero tap); banded GEMM 78, 98,
#: 156 (per element of its Toeplitz matrices); FFT about 8 whatever the
#: kernel, level with the einsum near 12x12; a Python-level numpy call.
#: So dense kernels take the einsum up to about 11x11, sparse ones the tap
#: loop or the GEMMs, and the FFT the larger ones.
COST_DENSE = 1.2
COST_DENSE_TAP = 0.046
COST_DIRECT = 1.1
COST_TAP = 0.12
COST_GEMM_CELL = 0.039
COST_GEMM = 1.45
COST_CALL = 1500.0
COST_FFT = 8.0


def _small_kernel_costs(
    k: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    plane_shape: tuple[int, int] | None,
) -> dict[str, float]:
    """Estimated ns per output of the direct, gemm and fft paths for kernel ``k``."""
    kh, kw = k.shape
    hp, wp = plane_shape if plane_shape is not None else (4096, 4096)
    span_h, span_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    ow = max(1, (wp - span_w) // stride[1] + 1)
    oh = max(1, (hp - span_h) // stride[0] + 1)
    taps = int(np.count_nonzero(k))
    cols = int(np.count_nonzero(k.any(axis=0)))
    rows = min(GEMM_ROWS, oh)
    inner = (rows - 1) * stride[0] + span_h
    if is_dense(k):
        costs = {
            "direct": COST_DENSE + k.size * COST_DENSE_TAP + 3 * COST_CALL / min(oh * ow, 1 << 18)
        }
    else:
        costs = {"direct": COST_DIRECT + taps * (COST_TAP + 2 * COST_CALL / min(oh * ow, 1 << 18))}
    if stride[1] == 1:
        costs["gemm"] = COST_GEMM + cols * (COST_GEMM_CELL * inner + 2 * COST_CALL / (rows * ow))
    if taps >= FFT_MIN_TAPS and stride == (1, 1) and min(hp, wp) >= max(span_h, span_w):
        costs["fft"] = COST_FFT + 20 * COST_CALL / (oh * ow)
    return costs


def choose_method(
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    plane_shape: tuple[int, int] | None = None,
) -> str:
    """The path ``method="auto"`` takes for this kernel and geometry.

    Box and rank-1 kernels take their own paths; any other kernel the
    cheapest of direct, gemm and fft by :func:`_small_kernel_costs`.

    >>> choose_method(np.ones((7, 7)))
    'box'
    >>> choose_method(np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]))
    'separable'
    >>> choose_method(np.outer([1, 2, 1], [1, 0, -1]))  # 6 taps: direct is as cheap
    'direct'
    >>> choose_method(np.random.default_rng(0).random((5, 5)))  # dense: one einsum
    'direct'
    >>> choose_method(np.random.default_rng(0).random((15, 15)))
    'fft'
    >>> choose_method(np.random.default_rng(0).random((15, 15)), stride=(2, 2))
    'direct'
    >>> choose_method(np.random.default_rng(0).random((15, 15)), stride=(2, 1))
    'direct'
    >>> choose_method(np.eye(3))
    'direct'
    """
    k = np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    if kh * kw == 1:
        return "direct"
    if is_box(k):
        return "box"
    nonzero = int(np.count_nonzero(k))
    if kh > 1 and kw > 1 and rank1_factors(k) is not None:
        if nonzero > kh + kw:
            return "separable"
        return "direct"
    if (kh == 1 or kw == 1) and nonzero > 2 * SEPARABLE_TAPS_MAX:
        return "separable"
    costs = _small_kernel_costs(k, stride, dilation, plane_shape)
    return min(costs, key=costs.__getitem__)


PATHS: dict[str, Callable[..., np.ndarray]] = {
    "direct": correlate_direct,
    "gemm": correlate_gemm,
    "separable": correlate_separable,
    "box": correlate_box,
    "fft": correlate_fft,
}


def correlate_planes(
    xp: np.ndarray | PaddedPlanes,
    kernel: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    method: str = "auto",
) -> np.ndarray:
    """Valid cross-correlation of every plane of ``xp`` with ``kernel``.

    ``xp`` is an array ``(P, Hp, Wp)`` or a :class:`PaddedPlanes` source,
    which the paths pad band by band. ``method`` is ``"auto"`` (see
    :func:`choose_method`) or one of the paths in :data:`PATHS`; a path that
    cannot take the kernel raises UsageError.

    >>> xp = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    >>> correlate_planes(xp, np.array([[1.0, 0.0], [0.0, -1.0]]))
    array([[[-5., -5., -5.],
            [-5., -5., -5.]]], dtype=float32)
    """
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    kernel = np.asarray(kernel, dtype=np.float64)
    if method == "auto":
        method = choose_method(kernel, stride, dilation, xp.shape[1:])
        if method != "direct" and not _all_finite(xp):
            # FFT and BLAS paths would smear a NaN/inf far beyond its windows.
            method = "direct"
    if isinstance(xp, PaddedPlanes):
        if method not in BANDED:
            xp = xp.array()
    else:
        xp = np.ascontiguousarray(xp, dtype=np.float32)
    return PATHS[method](xp, kernel, stride, dilation)


def _all_finite(xp: np.ndarray | PaddedPlanes) -> bool:
    """Whether the planes hold no NaN or inf, also once in float32 (integer pictures
    never do; float64 beyond float32's range becomes inf there)."""
    data = xp.x if isinstance(xp, PaddedPlanes) else xp
    if data.dtype.kind not in "fc":
        return True
    if data.dtype.itemsize > 4:
        with np.errstate(over="ignore"):
            return bool(np.isfinite(data.astype(np.float32)).all())
    return bool(np.isfinite(data).all())
