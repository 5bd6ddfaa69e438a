"""Pooling: ``pool2d`` (max, average, min) and ``global_pool``.

Semantics are those of the ONNX ``MaxPool`` and ``AveragePool`` operators
(opset 19+), which is what PyTorch exports and what a CNN forward pass must
reproduce; the places where PyTorch differs are listed in :func:`pool2d`.
Window geometry (padding, output sizes) comes from :mod:`imgkernel.core.windows`.

How it is computed
------------------
Max, min and sum over a rectangular window are separable, so the window is
reduced in two passes per tile of output rows: first down the ``kh`` rows of
each window (strided row slices, contiguous along the row, so the channels of
a channels-last image ride along for free), then across its ``kw`` columns.
That is ``kh + kw`` vectorised ``np.maximum``/``np.minimum``/``np.add`` calls
per tile instead of ``kh * kw`` (or one strided ``(..., kh, kw)``
reduction). Tiles are sized to stay in cache and are spread over threads with
:func:`imgkernel.core.parallel.run_tiles`; numpy releases the GIL in its loops.

Examples
--------
The lecture notes' max pooling of a 5x5 feature map, 2x2 window, stride 2.
The notes keep the partial windows at the right and bottom edges, which is
``ceil_mode=True``:

>>> fmap = np.array([[0, 1, 0, 0, 0],
...                  [0, 1, 1, 1, 0],
...                  [1, 0, 1, 2, 1],
...                  [1, 4, 2, 1, 0],
...                  [0, 0, 1, 2, 1]])
>>> pool2d(fmap, 2, ceil_mode=True)
array([[1, 1, 0],
       [4, 2, 1],
       [0, 2, 1]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from imgkernel.core.geometry import pool_geometry
from imgkernel.core.parallel import TILE_BYTES, run_tiles
from imgkernel.core.windows import Border, pad
from imgkernel.errors import UsageError

Padding = str | int | Sequence[int]

#: Accepted mode names and their canonical form.
MODES: dict[str, str] = {
    "max": "max",
    "maximum": "max",
    "avg": "avg",
    "mean": "avg",
    "average": "avg",
    "min": "min",
    "minimum": "min",
}

GLOBAL_MODES = ("max", "avg", "min")
LAYOUTS = ("image", "tensor")

#: Below this many channels a channels-last image is reduced channel by
#: channel in the horizontal pass when the stride skips columns, so numpy's
#: inner loops run along the row instead of over 3 channels.
RIDE_ALONG_CHANNELS = 16


def _parse_mode(mode: str, allowed: Sequence[str]) -> str:
    key = str(mode).strip().lower()
    canon = MODES.get(key)
    if canon is None or canon not in allowed:
        names = ", ".join(k for k, v in MODES.items() if v in allowed)
        raise UsageError(f"unknown pooling mode {mode!r}; choose one of {names}")
    return canon


def _as_planes(x: np.ndarray, layout: str, what: str) -> np.ndarray:
    """View ``x`` as ``(P, H, W, Q)``: P planes, channels-last Q."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; choose image or tensor")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise UsageError(f"{what} input must hold real numbers, got dtype {x.dtype}")
    if layout == "image":
        if x.ndim not in (2, 3):
            raise UsageError(
                f"{what} image must be (H, W) or (H, W, C), got shape {x.shape}; "
                "use layout='tensor' for (C, H, W) or (N, C, H, W)"
            )
        planes = x.reshape(1, x.shape[0], x.shape[1], -1) if x.ndim == 3 else x[None, :, :, None]
    else:
        if x.ndim not in (3, 4):
            raise UsageError(
                f"{what} tensor must be (C, H, W) or (N, C, H, W), got shape {x.shape}; "
                "use layout='image' for (H, W) or (H, W, C)"
            )
        planes = x.reshape(-1, x.shape[-2], x.shape[-1], 1)
    if planes.shape[1] == 0 or planes.shape[2] == 0 or planes.shape[0] == 0 or planes.shape[3] == 0:
        raise UsageError(f"{what} input is empty, shape {x.shape}")
    return planes


def _fill_value(dtype: np.dtype, mode: str) -> float | int | bool:
    """The identity of ``mode``: padded cells can never win a max or a min."""
    if mode == "avg":
        return 0
    if dtype == np.bool_:
        return mode == "min"
    if np.issubdtype(dtype, np.floating):
        return -np.inf if mode == "max" else np.inf
    info = np.iinfo(dtype)
    return int(info.min) if mode == "max" else int(info.max)


def _reduce(
    src: np.ndarray,
    out: np.ndarray,
    k_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    op: Callable,
    divisor: np.ndarray | float | None,
) -> None:
    """Separable tap-by-tap reduction of padded ``src`` (P, Hp, Wp, Q) into ``out``."""
    kh, kw = k_hw
    sh, sw = stride
    dh, dw = dilation
    p_all, oh, ow, q = out.shape
    wp = src.shape[2]
    acc_dtype = out.dtype
    per_channel = q > 1 and sw > 1 and q < RIDE_ALONG_CHANNELS
    units = _work_units(p_all, oh, max(wp * q * np.dtype(acc_dtype).itemsize, 1))

    def task(a: int, b: int) -> None:
        for p0, p1, y0, y1 in units[a:b]:
            n = y1 - y0
            # Vertical pass: kh strided row slices; rows are contiguous.
            rows = [
                src[p0:p1, y0 * sh + i * dh : y0 * sh + i * dh + (n - 1) * sh + 1 : sh]
                for i in range(kh)
            ]
            if kh == 1:
                v = rows[0]
            else:
                v = np.empty((p1 - p0, n, wp, q), dtype=acc_dtype)
                op(rows[0], rows[1], out=v)
                for r in rows[2:]:
                    op(v, r, out=v)
            # Horizontal pass: kw strided column slices.
            dst = out[p0:p1, y0:y1]
            span = (ow - 1) * sw + 1
            if per_channel:
                for c in range(q):
                    cols = [v[:, :, j * dw : j * dw + span : sw, c] for j in range(kw)]
                    _accumulate(dst[..., c], cols, op)
            else:
                cols = [v[:, :, j * dw : j * dw + span : sw] for j in range(kw)]
                _accumulate(dst, cols, op)
            if divisor is not None:
                d = divisor if np.isscalar(divisor) else divisor[y0:y1]  # type: ignore[index]
                np.divide(dst, d, out=dst)

    run_tiles(len(units), task, 1 if len(units) <= 64 else max(1, len(units) // 64))


def _work_units(planes: int, oh: int, row_bytes: int) -> list[tuple[int, int, int, int]]:
    """``(p0, p1, y0, y1)`` tiles of about :data:`TILE_BYTES`: output rows of one
    plane, or whole planes when planes are small (CNN feature maps).

    >>> _work_units(2, 3, TILE_BYTES)  # a tile a row
    [(0, 1, 0, 1), (0, 1, 1, 2), (0, 1, 2, 3), (1, 2, 0, 1), (1, 2, 1, 2), (1, 2, 2, 3)]
    >>> _work_units(5, 4, TILE_BYTES // 8)  # two planes a tile
    [(0, 2, 0, 4), (2, 4, 0, 4), (4, 5, 0, 4)]
    """
    rows_per_tile = max(1, TILE_BYTES // row_bytes)
    if rows_per_tile >= oh:
        per_tile = max(1, rows_per_tile // oh)
        return [(p, min(p + per_tile, planes), 0, oh) for p in range(0, planes, per_tile)]
    return [
        (p, p + 1, y, min(y + rows_per_tile, oh))
        for p in range(planes)
        for y in range(0, oh, rows_per_tile)
    ]


def _accumulate(dst: np.ndarray, terms: list[np.ndarray], op: Callable) -> None:
    if len(terms) == 1:
        np.copyto(dst, terms[0], casting="unsafe")
        return
    op(terms[0], terms[1], out=dst)
    for t in terms[2:]:
        op(dst, t, out=dst)


def pool2d(
    x: np.ndarray,
    size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    *,
    mode: str = "max",
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    layout: str = "image",
) -> np.ndarray:
    """Max, average or min pooling over sliding windows (ONNX semantics).

    Parameters
    ----------
    x : ndarray
        ``layout="image"``: ``(H, W)`` or ``(H, W, C)``, channels last.
        ``layout="tensor"``: ``(C, H, W)`` or ``(N, C, H, W)``.
        Every channel is pooled on its own; the result keeps the layout.
    size : int or (h, w)
        Window size (ONNX ``kernel_shape``).
    stride : int or (h, w), optional
        Defaults to ``size`` (non-overlapping windows, as PyTorch and the
        lecture notes' 2x2 window with stride 2).
    mode : {"max", "avg", "min"}
        ``"mean"`` and ``"average"`` are aliases of ``"avg"``.
    padding : int, (ph, pw), (top, bottom, left, right), "valid" or "same"
        ``"same"`` gives ``ceil(H / stride)`` rows with an odd extra pad at the
        end (ONNX ``SAME_UPPER``). Each pad must be smaller than the window
        size on its axis (ONNX Runtime enforces ``pad < kernel``). Padded
        cells never win a max or a min; an average ignores them unless
        ``count_include_pad``.
    dilation : int or (h, w)
        Spacing of the window's taps.
    ceil_mode : bool
        Round the output size up, keeping partial windows at the bottom/right
        edge; a window that would start beyond the input and its leading pad
        is dropped (:func:`imgkernel.core.windows.output_size`).
    count_include_pad : bool
        For ``"avg"``: divide by the number of window cells inside the input
        *or its explicit padding* instead of by the number of input cells.
        Cells that a ``ceil_mode`` window hangs beyond the explicit padding
        are never counted (as the ONNX reference evaluator and PyTorch do;
        ONNX Runtime before the fix of onnx issue 5276 divided by the whole
        window).
    layout : {"image", "tensor"}

    Returns
    -------
    ndarray
        ``(H', W')``/``(H', W', C)`` or ``(C, H', W')``/``(N, C, H', W')``.
        Max and min keep the input dtype (uint8 and uint16 stay exact);
        average is float32, or float64 for a float64 input. A window that
        holds no input cell at all (possible only with dilation) averages
        to NaN and maxes to the padding value.

    Notes
    -----
    Where PyTorch (``torch.nn.functional.max_pool2d``/``avg_pool2d``) differs:

    * ``avg_pool2d``'s ``count_include_pad`` defaults to True; here, as in
      ONNX ``AveragePool``, it defaults to False.
    * Under ``ceil_mode`` the last window of an axis may hang beyond the
      explicit padding. With ``count_include_pad=True`` PyTorch divides that
      window by the cells inside input + padding (not by the full window);
      so do this function and the ONNX reference evaluator, while ONNX
      Runtime before the fix of onnx issue 5276 divided by ``kh * kw``.
      PyTorch drops the window that would start in the trailing padding, as
      here.
    * PyTorch only accepts symmetric pads with ``pad <= size / 2`` (also for
      dilated max pooling, where ONNX allows any ``pad < size``) and has no
      dilation for average pooling; asymmetric pads, ``"same"`` at any stride
      and dilated averages are ONNX-only. Here, as in ONNX Runtime, each pad
      must be smaller than the window size.
    * PyTorch's ``avg_pool2d`` refuses integer tensors; here the average of a
      uint8 image is float32.

    Examples
    --------
    >>> fmap = np.array([[0, 1, 0, 0, 0],
    ...                  [0, 1, 1, 1, 0],
    ...                  [1, 0, 1, 2, 1],
    ...                  [1, 4, 2, 1, 0],
    ...                  [0, 0, 1, 2, 1]], dtype=np.uint8)
    >>> pool2d(fmap, 2)
    array([[1, 1],
           [4, 2]], dtype=uint8)
    >>> pool2d(fmap, 2, ceil_mode=True, mode="avg")
    array([[0.5, 0.5, 0. ],
           [1.5, 1.5, 0.5],
           [0. , 1.5, 1. ]], dtype=float32)
    >>> pool2d(fmap, 3, 2, padding=1, mode="min")
    array([[0, 0, 0],
           [0, 0, 0],
           [0, 0, 0]], dtype=uint8)
    >>> pool2d(np.arange(16.0).reshape(4, 4), 2, 1, mode="avg", padding=1,
    ...        count_include_pad=True)[0]
    array([0.  , 0.25, 0.75, 1.25, 0.75])
    """
    arr = np.asarray(x)
    canon = _parse_mode(mode, ("max", "avg", "min"))
    planes = _as_planes(arr, layout, "pool2d")
    _, h, w, q = planes.shape
    geometry = pool_geometry((h, w), size, stride, padding, dilation, ceil_mode=ceil_mode)
    k2, s2, d2 = geometry.size, geometry.stride, geometry.dilation
    oh, ow = geometry.out_hw
    all_pads = geometry.all_pads

    if canon == "avg":
        acc_dtype = np.dtype(np.float64 if arr.dtype == np.float64 else np.float32)
        op = partial(np.add, dtype=acc_dtype)  # integer inputs must not wrap
    else:
        acc_dtype = arr.dtype
        op = np.maximum if canon == "max" else np.minimum  # type: ignore[assignment]

    if any(all_pads):
        fill = _fill_value(acc_dtype, canon)
        if canon == "avg":
            src = pad(planes, all_pads, Border("constant", 0.0), axes=(1, 2), dtype=acc_dtype)
        else:
            src = np.pad(
                planes,
                ((0, 0), (all_pads[0], all_pads[1]), (all_pads[2], all_pads[3]), (0, 0)),
                mode="constant",
                constant_values=fill,
            )
    else:
        src = planes

    divisor: np.ndarray | float | None = None
    if canon == "avg":
        ch, cw = geometry.counts(count_include_pad)
        if ch.min() == ch.max() == k2[0] and cw.min() == cw.max() == k2[1]:
            divisor = float(k2[0] * k2[1])
        else:
            divisor = (ch[:, None] * cw[None, :]).astype(acc_dtype)[:, :, None]

    out = np.empty((planes.shape[0], oh, ow, q), dtype=acc_dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        _reduce(src, out, k2, s2, d2, op, divisor)

    if layout == "image":
        return out[0] if arr.ndim == 3 else out[0, :, :, 0]
    return out.reshape(*arr.shape[:-2], oh, ow)


def global_pool(x: np.ndarray, mode: str = "avg", *, layout: str = "image") -> np.ndarray:
    """Pool each channel over all of its pixels (ONNX ``GlobalAveragePool``).

    Parameters
    ----------
    x : ndarray
        ``(H, W)``/``(H, W, C)`` for ``layout="image"``, ``(C, H, W)``/
        ``(N, C, H, W)`` for ``layout="tensor"``.
    mode : {"avg", "max", "min"}
    layout : {"image", "tensor"}

    Returns
    -------
    ndarray
        The spatial axes are kept with length 1: ``(1, 1)``/``(1, 1, C)`` for
        images, ``(C, 1, 1)``/``(N, C, 1, 1)`` for tensors. Average is float32
        (float64 for a float64 input), accumulated in float64; max and min
        keep the input dtype.

    Examples
    --------
    >>> global_pool(np.arange(12).reshape(2, 2, 3))
    array([[[4.5, 5.5, 6.5]]], dtype=float32)
    >>> global_pool(np.arange(8, dtype=np.uint8).reshape(1, 2, 2, 2), "max", layout="tensor")
    array([[[[3]],
    <BLANKLINE>
            [[7]]]], dtype=uint8)
    """
    arr = np.asarray(x)
    canon = _parse_mode(mode, GLOBAL_MODES)
    _as_planes(arr, layout, "global_pool")
    axes = (0, 1) if layout == "image" else (-2, -1)
    if canon == "avg":
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
        return np.asarray(np.mean(arr, axis=axes, dtype=np.float64, keepdims=True)).astype(dtype)
    reducer = np.max if canon == "max" else np.min
    return reducer(arr, axis=axes, keepdims=True)
