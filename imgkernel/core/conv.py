"""Convolution: ``filter2d`` for images and ``conv2d`` for CNN tensors.

Array conventions (used throughout imgkernel):

* images are ``(H, W)`` or ``(H, W, C)``, channels last;
* CNN tensors are ``(N, C, H, W)`` (or ``(C, H, W)`` for one sample);
* conv weights are ``(K, C/groups, kh, kw)``.

Both functions compute **cross-correlation** (the kernel is not flipped), as
PyTorch, ONNX, OpenCV's ``filter2D`` and GIMP do; ``filter2d(...,
convolve=True)`` flips the kernel for a true convolution, as ImageMagick's
``-morphology Convolve`` and ``scipy.ndimage.convolve`` do.

Examples
--------
The first worked example of the lecture notes: a 5x5 binary image, a 3x3
kernel and a bias of 1, without padding.

>>> image = np.array([[1, 1, 1, 0, 0],
...                   [0, 1, 1, 1, 0],
...                   [0, 0, 1, 1, 1],
...                   [0, 0, 1, 1, 0],
...                   [0, 1, 1, 0, 0]])
>>> kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
>>> filter2d(image, kernel, bias=1, padding="valid")
array([[5., 4., 5.],
       [3., 5., 4.],
       [3., 4., 5.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgkernel.core.correlate import correlate_planes
from imgkernel.core.geometry import WindowGeometry, window_geometry
from imgkernel.core.padding import PaddedPlanes
from imgkernel.core.parallel import blas_single_thread, run_tiles, workers
from imgkernel.core.windows import Border, pad, parse_border, window_view
from imgkernel.errors import UsageError

Padding = str | int | Sequence[int]

#: Bytes of im2col columns built at once by :func:`conv2d`: a few images at a time,
#: so the columns are still in cache when the matrix product reads them.
IM2COL_BYTES = 1 << 23
#: Bytes of output a depthwise convolution sums at once.
CHUNK_BYTES = 1 << 20
#: Multiply-adds of one image's convolution above which it is split over threads.
PARALLEL_MACS = 1 << 22

#: Multiply-adds above which a kernel larger than its input is refused
#: (:func:`conv_geometry`): about a second of work, all but spent on padding.
KERNEL_WORK_LIMIT = 1 << 27


def _check_kernel(kernel: np.ndarray | Sequence) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise UsageError(f"kernel must be a non-empty 2-D matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise UsageError("kernel contains NaN or infinite values")
    return k


def filter2d(
    image: np.ndarray,
    kernel: np.ndarray | Sequence,
    *,
    bias: float = 0.0,
    stride: int | Sequence[int] = 1,
    padding: Padding = "same",
    dilation: int | Sequence[int] = 1,
    border: str | Border | tuple[str, float] = "reflect",
    cval: float = 0.0,
    convolve: bool = False,
    method: str = "auto",
) -> np.ndarray:
    """Apply one 2-D kernel to every channel of an image.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C)
        Any real dtype; channels are filtered independently.
    kernel : array_like, (kh, kw)
        Weights, applied by cross-correlation unless ``convolve`` is true.
        Any size, even or odd; with ``padding="same"`` an even kernel's extra
        pad goes at the bottom/right, so its anchor is at index ``(k-1)//2``.
    bias : float
        Added to every output value.
    stride, dilation : int or (h, w)
    padding : "same", "valid", "full", int, (ph, pw) or (top, bottom, left, right)
    border : str
        What fills the padding: zero, constant (``cval``, or ``"constant:V"``),
        reflect, symmetric, edge, wrap, or an alias (see
        :data:`imgkernel.core.windows.BORDER_ALIASES`).
    convolve : bool
        Flip the kernel by 180 degrees first (true convolution).
    method : str
        ``"auto"`` or a specific compute path (for testing and benchmarks).

    Returns
    -------
    ndarray, float32, (H', W') or (H', W', C)

    Examples
    --------
    >>> filter2d(np.arange(9).reshape(3, 3), [[1, 0, -1]], border="zero")
    array([[-1., -2.,  1.],
           [-4., -2.,  4.],
           [-7., -2.,  7.]], dtype=float32)
    >>> filter2d(np.arange(9).reshape(3, 3), [[1, 0, -1]], border="zero", convolve=True)
    array([[ 1.,  2., -1.],
           [ 4.,  2., -4.],
           [ 7.,  2., -7.]], dtype=float32)
    """
    x = np.asarray(image)
    if x.ndim not in (2, 3) or x.shape[0] == 0 or x.shape[1] == 0:
        raise UsageError(f"image must be (H, W) or (H, W, C), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise UsageError(f"image must hold real numbers, got dtype {x.dtype}")
    k = _check_kernel(kernel)
    if convolve:
        k = k[::-1, ::-1]
    brd = parse_border(border, cval)
    channels = x.shape[2] if x.ndim == 3 else 1
    geometry = conv_geometry(x.shape[:2], k.shape, stride, dilation, padding, channels=channels)
    pads, stride2, dilation2 = geometry.pads, geometry.stride, geometry.dilation
    if x.ndim == 2 or channels == 1 or stride2[1] == 1:
        # Channels-last rows are planes whose columns interleave the channels:
        # a horizontal tap j of channel c sits j*C columns away, so the whole
        # image is one plane with horizontal dilation dw*C. No transpose.
        # Padded band by band inside the paths: no padded full-size copy.
        plane = PaddedPlanes(x, pads, brd, channels_last=True)
        out = correlate_planes(
            plane, k, (stride2[0], 1), (dilation2[0], dilation2[1] * channels), method
        )
        result = out.reshape(out.shape[1], -1, channels)
        if stride2[1] != 1:  # only when channels == 1
            result = np.ascontiguousarray(result[:, :: stride2[1]])
    else:
        planes = PaddedPlanes(np.moveaxis(x, 2, 0), pads, brd)
        out = correlate_planes(planes, k, stride2, dilation2, method)
        result = np.ascontiguousarray(np.moveaxis(out, 0, 2))
    if bias:
        result += np.float32(bias)
    return result if x.ndim == 3 else result[:, :, 0]


def conv_geometry(
    in_hw: tuple[int, ...],
    k_hw: tuple[int, ...],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    padding: Padding = "same",
    *,
    channels: int = 1,
    out_channels: int | None = None,
    itemsize: int = 4,
) -> WindowGeometry:
    """:func:`~imgkernel.core.geometry.window_geometry` for a kernel, checked before any work.

    Besides the window rules (it must fit the padded input; the padded input
    and the output must fit in memory), a kernel taller or wider than the
    input itself, whose windows read mostly padding, is refused when that
    would take more than :data:`KERNEL_WORK_LIMIT` multiply-adds; the
    message names both sizes.

    >>> conv_geometry((24, 32), (1001, 1001)).out_hw  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: the 1001x1001 kernel is far larger than the 24x32 input...
    """
    kh, kw = int(k_hw[0]), int(k_hw[1])
    geometry = window_geometry(
        (int(in_hw[0]), int(in_hw[1])),
        (kh, kw),
        stride,
        dilation,
        padding,
        channels=channels,
        out_channels=out_channels,
        itemsize=itemsize,
        what=f"the {kh}x{kw} kernel",
    )
    h, w = geometry.in_hw
    outputs = geometry.out_hw[0] * geometry.out_hw[1] * (out_channels or channels)
    work = outputs * kh * kw
    if (kh > h or kw > w) and work > KERNEL_WORK_LIMIT:
        raise UsageError(
            f"the {kh}x{kw} kernel is far larger than the {h}x{w} input: {float(work):.2g} "
            "multiply-adds, nearly all of them on padding; use a kernel at most as large "
            "as the image"
        )
    return geometry


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    border: str | Border | tuple[str, float] = "zero",
    cval: float = 0.0,
) -> np.ndarray:
    """Multi-channel, multi-filter 2-D convolution layer (PyTorch/ONNX ``Conv``).

    Parameters
    ----------
    x : ndarray, (C, H, W) or (N, C, H, W)
    weight : ndarray, (K, C/groups, kh, kw)
        Filter k spans the channels of its group; the products over all of
        them are summed, plus ``bias[k]``. Not flipped (cross-correlation).
    bias : ndarray (K,) or None
    stride, dilation : int or (h, w)
    padding : as for :func:`filter2d`; the default is no padding.
    groups : int
        Splits the C input channels and the K filters into equal groups
        (``groups == C`` is a depthwise convolution).
    border : str
        What fills the padding; ``"zero"`` as in CNNs.

    Returns
    -------
    ndarray, float32 (float64 if ``x`` and ``weight`` are float64), (N, K, H', W')
    (or (K, H', W') for a 3-D input).

    Examples
    --------
    Three input channels, one filter, as in the lecture notes' RGB example.

    >>> x = np.ones((3, 4, 4))
    >>> w = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 2.0), np.full((3, 3), -1.0)])[None]
    >>> conv2d(x, w, np.array([1.0]))
    array([[[19., 19.],
            [19., 19.]]])
    """
    arr = np.asarray(x)
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[None]
    w = np.asarray(weight)
    bias = _check_conv_args(arr, w, bias, groups)
    n, c, h, wd = arr.shape
    k, cg, kh, kw = w.shape
    dtype = np.float64 if (arr.dtype == np.float64 and w.dtype == np.float64) else np.float32
    brd = parse_border(border, cval)
    geometry = conv_geometry(
        (h, wd),
        (kh, kw),
        stride,
        dilation,
        padding,
        channels=n * c,
        out_channels=n * k,
        itemsize=np.dtype(dtype).itemsize,
    )
    pads, stride2, dilation2 = geometry.pads, geometry.stride, geometry.dilation
    if any(pads) or arr.dtype != dtype:
        xp = pad(arr, pads, brd, dtype=dtype)
    else:
        xp = arr  # nothing to pad or convert: window views read the input directly
    oh, ow = geometry.out_hw
    out = np.empty((n, k, oh, ow), dtype=dtype)
    if cg == 1 and k == groups:
        _depthwise(xp, w.astype(dtype, copy=False), stride2, dilation2, out)
    else:
        _im2col_matmul(xp, w.astype(dtype, copy=False), groups, stride2, dilation2, out)
    if bias is not None:
        out += bias.astype(dtype).reshape(1, k, 1, 1)
    return out[0] if squeeze else out


def _taps(
    k_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], o_hw: tuple[int, int]
) -> list[tuple[int, int, slice, slice]]:
    """(i, j, rows, cols): the cells kernel tap (i, j) meets, as slices of the padded input."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = k_hw, stride, dilation, o_hw
    return [
        (
            i,
            j,
            slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw),
        )
        for i in range(kh)
        for j in range(kw)
    ]


def _depthwise(
    xp: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: np.ndarray,
) -> None:
    """Each output plane is one input plane filtered by its own kernel: one multiply-add per tap.

    Images are taken in cache-sized chunks so the running sum stays in cache.
    """
    n, c = out.shape[:2]
    taps = _taps(w.shape[2:], stride, dilation, out.shape[2:])
    plane = out.shape[2] * out.shape[3] * out.dtype.itemsize
    per_image = c * plane
    images = max(1, CHUNK_BYTES // max(per_image, 1))
    channels = c if images > 1 else max(1, min(c, CHUNK_BYTES // max(plane, 1)))
    for b0 in range(0, n, images):
        for c0 in range(0, c, channels):
            block = (slice(b0, b0 + images), slice(c0, c0 + channels))
            dst, src = out[block], xp[block]
            tmp = np.empty_like(dst)
            for t, (i, j, rows, cols) in enumerate(taps):
                weight = w[c0 : c0 + channels, 0, i, j].reshape(1, -1, 1, 1)
                if t == 0:
                    np.multiply(src[:, :, rows, cols], weight, out=dst)
                else:
                    np.multiply(src[:, :, rows, cols], weight, out=tmp)
                    dst += tmp


def _check_conv_args(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, groups: int
) -> np.ndarray | None:
    """Validate conv2d's shapes (x already 4-D or not); return the bias as an array."""
    if x.ndim != 4:
        raise UsageError(f"conv2d input must be (C, H, W) or (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise UsageError(f"conv2d weight must be (K, C/groups, kh, kw), got shape {w.shape}")
    c, k, cg = x.shape[1], w.shape[0], w.shape[1]
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise UsageError(f"groups must be a positive integer, got {groups!r}")
    if c % groups or k % groups:
        raise UsageError(
            f"groups={groups} must divide both the {c} input channels and the {k} filters"
        )
    if cg != c // groups:
        raise UsageError(
            f"weight has {cg} channels per filter but the input has {c} channels "
            f"in {groups} group(s) (expected {c // groups})"
        )
    if bias is None:
        return None
    bias = np.asarray(bias)
    if bias.shape != (k,):
        raise UsageError(f"bias must have shape ({k},), got {bias.shape}")
    return bias


def _im2col_matmul(
    xp: np.ndarray,
    w: np.ndarray,
    groups: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: np.ndarray,
) -> None:
    """``out[n, k] = sum over its group's windows`` by im2col columns and BLAS, images in chunks.

    One image: columns (cg*kh*kw, oh*ow) and one product straight into the output.
    Several (small maps): columns (cg*kh*kw, images*oh*ow), so one wide product
    serves them all, whose (k, images, ...) result is then put in place.
    """
    n = xp.shape[0]
    k, cg, kh, kw = w.shape
    oh, ow = out.shape[2:]
    kg = k // groups
    weights = w.reshape(groups, kg, cg * kh * kw)
    windows = window_view(xp, (kh, kw), stride, dilation, (oh, ow))
    per_image = cg * kh * kw * oh * ow * out.dtype.itemsize
    batch = max(1, IM2COL_BYTES // max(per_image, 1))
    for g in range(groups):
        group_windows = windows[:, g * cg : (g + 1) * cg]
        for b0 in range(0, n, batch):
            b = min(batch, n - b0)
            dst = out[b0 : b0 + b, g * kg : (g + 1) * kg]
            if b == 1:
                _image_product(group_windows[b0], weights[g], dst[0])
                continue
            # (b, cg, oh, ow, kh, kw) -> columns (cg*kh*kw, b*oh*ow)
            cols = group_windows[b0 : b0 + b].transpose(1, 4, 5, 0, 2, 3)
            product = np.matmul(weights[g], cols.reshape(cg * kh * kw, b * oh * ow))
            dst[...] = product.reshape(kg, b, oh, ow).transpose(1, 0, 2, 3)


def _image_product(windows: np.ndarray, weights: np.ndarray, dst: np.ndarray) -> None:
    """One image: columns (cg*kh*kw, rows*ow) and a product into ``dst`` (kg, oh, ow).

    A large one is split into bands of output rows over the threads of
    :mod:`imgkernel.core.parallel`, each with single-threaded BLAS (which here
    beats one multi-threaded product: OpenBLAS's threads spin for the cores).
    """
    cg, oh, ow, kh, kw = windows.shape
    kg = weights.shape[0]
    if kg * cg * kh * kw * oh * ow < PARALLEL_MACS or workers() <= 1 or oh < 4:
        cols = windows.transpose(0, 3, 4, 1, 2).reshape(cg * kh * kw, oh * ow)
        target = dst.reshape(kg, oh * ow)
        if np.shares_memory(target, dst):
            np.matmul(weights, cols, out=target)
        else:
            dst[...] = np.matmul(weights, cols).reshape(kg, oh, ow)
        return

    def band(a: int, b: int) -> None:
        # (cg, rows, ow, kh, kw) -> columns (cg*kh*kw, rows*ow)
        cols = windows[:, a:b].transpose(0, 3, 4, 1, 2).reshape(cg * kh * kw, (b - a) * ow)
        dst[:, a:b] = np.matmul(weights, cols).reshape(kg, b - a, ow)

    with blas_single_thread():
        run_tiles(oh, band, -(-oh // workers()))
