"""2-D convolution: the ``conv2d`` layer and its training forward/backward pass.

Inference runs :func:`imgkernel.core.conv.conv2d`. Training uses im2col on the
same sliding-window primitive (:func:`imgkernel.core.windows.window_view`):
the forward pass keeps its im2col columns; the weight gradient is one matmul
of the output gradient with those columns, the input gradient a matmul with
the weights followed by *col2im*, which adds the column gradients back over
the windows with one strided slice-add per kernel tap (``kh * kw`` vectorised
adds, no loop over pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgkernel.core.conv import conv2d
from imgkernel.core.windows import Border, output_size, pad, resolve_padding, window_view
from imgkernel.errors import UsageError
from imgkernel.nn.layers import attrs
from imgkernel.nn.layers.base import Backward, Forward, Layer, LayerError, Params, Rng, Shape
from imgkernel.nn.layers.build import BuildContext, positive_int


@dataclass
class ConvCache:
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`."""

    x_shape: tuple[int, ...]
    pads: tuple[int, int, int, int]
    padded_hw: tuple[int, int]
    out_hw: tuple[int, int]
    cols: np.ndarray  # (groups, cg*kh*kw, N*oh*ow)
    weight: np.ndarray
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    has_bias: bool


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: Any = 0,
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """Convolution (as :func:`imgkernel.core.conv.conv2d`, zero padding) keeping its im2col columns.

    ``x`` is (N, C, H, W), ``weight`` (K, C/groups, kh, kw). Works in the
    dtype of ``x`` (float64 for gradient checks). Returns the output
    (N, K, oh, ow) and a cache for :func:`conv2d_backward`.
    """
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    if cg * groups != c or k % groups:
        raise UsageError(
            f"conv2d weight {weight.shape} with groups={groups} does not fit {c} input channels"
        )
    stride = (int(stride[0]), int(stride[1]))
    dilation = (int(dilation[0]), int(dilation[1]))
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    xp = pad(x, pads, Border("zero"), dtype=x.dtype)
    hp, wp = xp.shape[2:]
    oh = output_size(hp, kh, stride[0], dilation[0])
    ow = output_size(wp, kw, stride[1], dilation[1])
    if oh < 1 or ow < 1:
        raise UsageError(f"the {kh}x{kw} kernel does not fit the padded {hp}x{wp} input")
    win = window_view(xp, (kh, kw), stride, dilation, (oh, ow))  # (n, c, oh, ow, kh, kw)
    cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(groups, cg * kh * kw, n * oh * ow)
    wmat = weight.astype(x.dtype, copy=False).reshape(groups, k // groups, cg * kh * kw)
    out = np.matmul(wmat, cols).reshape(k, n, oh, ow)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False).reshape(k, 1, 1, 1)
    y = np.ascontiguousarray(out.transpose(1, 0, 2, 3))
    cache = ConvCache(
        x.shape, pads, (hp, wp), (oh, ow), cols, weight, stride, dilation, groups, bias is not None
    )
    return y, cache


def _col2im_add(
    dxp: np.ndarray,
    dcols: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> None:
    """Add window gradients ``dcols`` (N, C, kh, kw, oh, ow) back into padded ``dxp``."""
    kh, kw = dcols.shape[2:4]
    oh, ow = out_hw
    sh, sw = stride
    dh, dw = dilation
    for i in range(kh):
        r0 = i * dh
        rows = slice(r0, r0 + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            c0 = j * dw
            dxp[:, :, rows, c0 : c0 + sw * (ow - 1) + 1 : sw] += dcols[:, :, i, j]


def conv2d_backward(
    cache: ConvCache, dy: np.ndarray, *, need_input: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients ``(dx, dweight, dbias)`` of a convolution from the output gradient ``dy``.

    ``dweight = dy_cols @ cols.T`` (one matmul per group); ``dx`` is
    ``weight.T @ dy_cols`` scattered back over the windows (col2im).
    ``dx`` is None when ``need_input`` is false (the first layer).
    """
    n, c, h, w = cache.x_shape
    k, cg, kh, kw = cache.weight.shape
    g = cache.groups
    oh, ow = cache.out_hw
    dyc = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(g, k // g, n * oh * ow)
    dw = np.matmul(dyc, cache.cols.transpose(0, 2, 1)).reshape(k, cg, kh, kw)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    if not need_input:
        return None, dw, db
    wmat = cache.weight.astype(dy.dtype, copy=False).reshape(g, k // g, cg * kh * kw)
    dcols = np.matmul(wmat.transpose(0, 2, 1), dyc)  # (g, cg*kh*kw, n*oh*ow)
    dcols = dcols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
    top, _, left, _ = cache.pads
    dxp = np.zeros((n, c, *cache.padded_hw), dtype=dy.dtype)
    _col2im_add(dxp, dcols, (oh, ow), cache.stride, cache.dilation)
    dx = np.ascontiguousarray(dxp[:, :, top : top + h, left : left + w])
    return dx, dw, db


class Conv2D(Layer):
    """2-D convolution (PyTorch ``Conv2d`` / ONNX ``Conv``) via :func:`conv2d`."""

    PER_SAMPLE = True

    type = "conv2d"
    ATTRS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    ARRAYS = ("weight", "bias")
    OPTIONAL = ("bias",)
    ARCH_KEYS = frozenset(
        {"filters", "size", "stride", "padding", "dilation", "groups", "bias", "init"}
    )

    def configure(self, stride: Any, padding: Any, dilation: Any, groups: Any) -> None:
        w = self.arrays["weight"]
        if w.ndim != 4:
            raise LayerError(f"weight must be 4-D (K, C/groups, kh, kw), got shape {w.shape}")
        if min(w.shape) < 1:
            raise LayerError(f"weight shape {w.shape} has an empty axis")
        self.stride = attrs.pair(stride, "stride")
        self.dilation = attrs.pair(dilation, "dilation")
        self.padding = attrs.padding(padding)
        self.groups = attrs.integer(groups, "groups", 1)
        if w.shape[0] % self.groups:
            raise LayerError(f"groups={self.groups} must divide the {w.shape[0]} filters")
        b = self.arrays.get("bias")
        if b is not None and b.shape != (w.shape[0],):
            raise LayerError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
        self.weight, self.bias = w, b
        self._kw = {
            "stride": attrs.simple(self.stride),
            "padding": attrs.simple(self.padding),
            "dilation": attrs.simple(self.dilation),
            "groups": self.groups,
        }

    def attributes(self) -> dict[str, Any]:
        return {
            "stride": list(self.stride),
            "padding": attrs.jsonable_padding(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
        }

    def output_shape(self, shape: Shape) -> Shape:
        h, w = attrs.spatial(shape, "conv2d")
        k, cg, kh, kw = self.weight.shape
        if shape[1] != cg * self.groups:
            raise LayerError(
                f"weight expects {cg * self.groups} input channels "
                f"({cg} per group x {self.groups}), got {shape[1]}"
            )
        pads = resolve_padding(self.padding, (h, w), (kh, kw), self.stride, self.dilation)
        oh = output_size(h, kh, self.stride[0], self.dilation[0], pads[0], pads[1])
        ow = output_size(w, kw, self.stride[1], self.dilation[1], pads[2], pads[3])
        if oh < 1 or ow < 1:
            raise LayerError(f"the {kh}x{kw} kernel does not fit the padded {h}x{w} input")
        return (shape[0], k, oh, ow)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return conv2d(x, self.weight, self.bias, **self._kw)

    def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
        return conv2d_forward(
            x,
            p["weight"],
            p.get("bias"),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
        dx, dw, db = conv2d_backward(cache, dy, need_input=need_input)
        grads = {"weight": dw}
        if db is not None:
            grads["bias"] = db
        return dx, grads

    @classmethod
    def from_arch(cls, name: str, spec: dict[str, Any], shape: Shape, ctx: BuildContext) -> Layer:
        """``filters`` (required), ``size`` (3), ``bias`` (true) and the layer's attributes."""
        if len(shape) != 4:
            raise UsageError("conv2d needs an (N, C, H, W) input; is there a flatten before it?")
        filters = positive_int(spec.pop("filters", None), "filters")
        size = spec.pop("size", 3)
        kh, kw = (size, size) if isinstance(size, int) else tuple(size)
        groups = spec.get("groups", 1)
        c_in = int(shape[1] or 0)
        if not isinstance(groups, int) or groups < 1 or c_in % groups or filters % groups:
            raise UsageError(
                f"groups={groups!r} must divide the {c_in} input channels and {filters} filters"
            )
        bias = spec.pop("bias", True)
        arrays = {"weight": ctx.weight((filters, c_in // groups, int(kh), int(kw)), groups)}
        if bias:
            arrays["bias"] = np.zeros(filters, np.float32)
        spec.setdefault("padding", "valid")
        return cls(name, **spec, **arrays)
