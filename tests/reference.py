"""An independent, deliberately naive reference for 2-D convolution.

Written from the definition only (PyTorch/ONNX ``Conv`` semantics: a
cross-correlation, no kernel flip) and used as the test oracle. It must not
import :mod:`imgkernel`: the point is to be a second, simple implementation.

Definitions
-----------
With ``xp`` the input padded by ``(top, bottom, left, right)`` cells whose
values come from ``numpy.pad`` in the border's mode, a filter ``k`` of group
``g`` (``cpg = C / groups`` input channels per group) gives::

    out[n, k, i, j] = b[k] + sum_{c < cpg} sum_{u < kh} sum_{v < kw}
        xp[n, g*cpg + c, i*sh + u*dh, j*sw + v*dw] * w[k, c, u, v]

for ``0 <= i < OH``, ``0 <= j < OW`` with::

    OH = floor((H + top + bottom - dh*(kh-1) - 1) / sh) + 1

Everything is computed in float64.
"""

from __future__ import annotations

import math

import numpy as np

#: Our border names and the aliases the spec accepts -> numpy.pad mode.
#: (scipy's "reflect" is NOT here: it means numpy's "symmetric".)
BORDER_TO_NUMPY: dict[str, str] = {
    "zero": "constant",
    "zeros": "constant",
    "black": "constant",
    "constant": "constant",
    "edge": "edge",
    "replicate": "edge",
    "nearest": "edge",
    "reflect": "reflect",
    "mirror": "reflect",
    "reflect101": "reflect",
    "reflect_101": "reflect",
    "default": "reflect",
    "symmetric": "symmetric",
    "wrap": "wrap",
    "circular": "wrap",
    "tile": "wrap",
    "grid-wrap": "wrap",
}


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def same_pads(n: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """ONNX SAME_UPPER: output ceil(n / stride); the odd extra pad at the end."""
    out = -(-n // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def resolve_pads(padding, in_hw, k_hw, stride=1, dilation=1) -> tuple[int, int, int, int]:
    """Padding spec -> explicit ``(top, bottom, left, right)``."""
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    (h, w), (kh, kw) = in_hw, k_hw
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "full":
            return (dh * (kh - 1), dh * (kh - 1), dw * (kw - 1), dw * (kw - 1))
        if padding == "same":
            return same_pads(h, kh, sh, dh) + same_pads(w, kw, sw, dw)
        raise ValueError(padding)
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return (p, p, p, p)
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(padding)


def out_size(n: int, k: int, stride: int, dilation: int, before: int, after: int) -> int:
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


def pad_hw(x: np.ndarray, pads, border: str = "zero", cval: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` with ``numpy.pad``."""
    t, b, l, r = pads  # noqa: E741
    mode = BORDER_TO_NUMPY[border]
    width = [(0, 0)] * (x.ndim - 2) + [(t, b), (l, r)]
    if mode == "constant":
        value = 0.0 if border in ("zero", "zeros", "black") else cval
        return np.pad(x, width, mode="constant", constant_values=value)
    return np.pad(x, width, mode=mode)


def naive_conv2d(
    x,
    w,
    b=None,
    stride=1,
    pads=(0, 0, 0, 0),
    dilation=1,
    groups: int = 1,
    border: str = "zero",
    cval: float = 0.0,
) -> np.ndarray:
    """Grouped cross-correlation of ``x`` (C,H,W) or (N,C,H,W) with ``w`` (K,C/g,kh,kw).

    Loops over filters, input channels and kernel taps; each tap adds a strided
    slice of the padded input times the weight to every output position.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    n, c, _, _ = x.shape
    k, cpg, kh, kw = w.shape
    assert c == cpg * groups and k % groups == 0, (x.shape, w.shape, groups)
    kpg = k // groups
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    xp = pad_hw(x, pads, border, cval)
    hp, wp = xp.shape[-2:]
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    assert oh > 0 and ow > 0, (oh, ow)
    out = np.zeros((n, k, oh, ow), dtype=np.float64)
    for f in range(k):
        g = f // kpg
        if b is not None:
            out[:, f] += float(np.asarray(b, dtype=np.float64)[f])
        for ci in range(cpg):
            for u in range(kh):
                for v in range(kw):
                    y0, x0 = u * dh, v * dw
                    sl = xp[
                        :,
                        g * cpg + ci,
                        y0 : y0 + (oh - 1) * sh + 1 : sh,
                        x0 : x0 + (ow - 1) * sw + 1 : sw,
                    ]
                    out[:, f] += w[f, ci, u, v] * sl
    return out[0] if squeeze else out


def scalar_conv2d(
    x, w, b=None, stride=1, pads=(0, 0, 0, 0), dilation=1, groups=1, border="zero", cval=0.0
) -> np.ndarray:
    """The same thing with one explicit Python loop per output value (tiny inputs only)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    n, c, _, _ = x.shape
    k, cpg, kh, kw = w.shape
    kpg = k // groups
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    xp = pad_hw(x, pads, border, cval)
    oh = (xp.shape[-2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[-1] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, k, oh, ow))
    for ni in range(n):
        for f in range(k):
            g = f // kpg
            for i in range(oh):
                for j in range(ow):
                    s = 0.0 if b is None else float(b[f])
                    for ci in range(cpg):
                        for u in range(kh):
                            for v in range(kw):
                                s += (
                                    xp[ni, g * cpg + ci, i * sh + u * dh, j * sw + v * dw]
                                    * w[f, ci, u, v]
                                )
                    out[ni, f, i, j] = s
    return out[0] if squeeze else out


def naive_filter2d(
    image,
    kernel,
    bias: float = 0.0,
    stride=1,
    padding="same",
    dilation=1,
    border: str = "reflect",
    cval: float = 0.0,
    convolve: bool = False,
) -> np.ndarray:
    """Apply a 2-D kernel to each channel of an (H,W) or (H,W,C) image (float64 result)."""
    img = np.asarray(image, dtype=np.float64)
    ker = np.asarray(kernel, dtype=np.float64)
    if convolve:
        ker = ker[::-1, ::-1]
    gray = img.ndim == 2
    chw = img[None] if gray else np.moveaxis(img, -1, 0)
    c = chw.shape[0]
    pads = resolve_pads(padding, chw.shape[-2:], ker.shape, stride, dilation)
    weight = np.broadcast_to(ker, (c, 1) + ker.shape)
    out = naive_conv2d(
        chw,
        weight,
        np.full(c, float(bias)),
        stride,
        pads,
        dilation,
        groups=c,
        border=border,
        cval=cval,
    )
    return out[0] if gray else np.moveaxis(out, 0, -1)


def expected_filter_shape(in_hw, k_hw, stride=1, dilation=1, padding="same") -> tuple[int, int]:
    pads = resolve_pads(padding, in_hw, k_hw, stride, dilation)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    return (
        out_size(in_hw[0], k_hw[0], sh, dh, pads[0], pads[1]),
        out_size(in_hw[1], k_hw[1], sw, dw, pads[2], pads[3]),
    )


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar ``f()`` with respect to ``x`` (changed in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_close(a, b, rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
