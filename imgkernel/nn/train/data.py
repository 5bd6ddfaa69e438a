"""Training data: image folders (one sub-folder per label), the validation split, augmentation."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.prepare import prepare_image
from imgkernel.nn.spec import InputSpec

_COLORS = {"gray": 1, "grey": 1, "l": 1, "rgb": 3, "color": 3, "colour": 3}


@dataclass
class Dataset:
    """Images of an image folder prepared for a network."""

    x: np.ndarray  # (N, C, H, W) float32, before mean/std normalisation
    y: np.ndarray  # (N,) int64
    labels: list[str]
    paths: list[str]
    spec: InputSpec
    skipped: list[str] = field(default_factory=list)


def parse_size(value: str | int | Sequence[int] | None) -> tuple[int, int] | None:
    """``"HxW"``, ``"N"``, N or (H, W) -> (H, W).

    >>> parse_size("28x32"), parse_size(8)
    ((28, 32), (8, 8))
    """
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = value.lower().replace(",", "x").split("x")
            dims = tuple(int(p) for p in parts)
        elif isinstance(value, int):
            dims = (value, value)
        else:
            dims = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"input size must be HxW (e.g. 28x28), got {value!r}") from None
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) != 2 or min(dims) < 1:
        raise UsageError(f"input size must be HxW with positive sizes, got {value!r}")
    if dims[0] * dims[1] > 4096 * 4096:
        raise UsageError(f"input size {dims[0]}x{dims[1]} is too large")
    return (dims[0], dims[1])


def _label_dirs(root: str, warn: Callable[[str], None]) -> list[str]:
    if not os.path.exists(root):
        raise UsageError(f"{root}: no such data folder")
    if not os.path.isdir(root):
        raise UsageError(f"{root}: not a folder (expected one sub-folder per label)")
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    label_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    stray = [e for e in entries if e not in label_dirs]
    if stray:
        warn(
            f"{root}: ignoring {len(stray)} file(s) outside label folders "
            f"(e.g. {stray[0]}); images go in one sub-folder per label"
        )
    if not label_dirs:
        raise UsageError(f"{root}: no label sub-folders (expected one sub-folder per label)")
    return label_dirs


@dataclass
class _Found:
    """The raw images of a folder, by label, before preparing them."""

    pixels: list[np.ndarray] = field(default_factory=list)
    ys: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _read_folder(root: str, warn: Callable[[str], None]) -> _Found:
    """Every readable image of every label folder; unreadable files are skipped, with a warning."""
    from imgkernel.images import read_image

    found = _Found()
    for label in _label_dirs(root, warn):
        folder = os.path.join(root, label)
        count = 0
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            if fname.startswith(".") or os.path.isdir(path):
                continue
            try:
                img = read_image(path)
            except UsageError as exc:
                found.skipped.append(path)
                warn(f"skipping {exc}")
                continue
            found.pixels.append(img.pixels)
            found.ys.append(len(found.labels))
            found.paths.append(path)
            count += 1
        if count == 0:
            warn(f"{folder}: no images; label {label!r} left out")
            continue
        found.labels.append(label)
    if not found.pixels:
        raise UsageError(f"{root}: no images found in the label sub-folders")
    if len(found.labels) < 2:
        raise UsageError(
            f"{root}: only one label ({found.labels[0]!r}) has images; training needs at least two"
        )
    return found


def load_image_folder(
    data_dir: str | os.PathLike[str],
    *,
    input_size: str | int | Sequence[int] | None = None,
    color: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Dataset:
    """Read an image folder: one sub-folder per label (sorted), images inside.

    Files that are not images (or cannot be read) are skipped with a warning
    through ``on_warning``; hidden files are ignored. Images are prepared the
    way :func:`imgkernel.nn.predict.classify` prepares them: converted to ``color``
    ("gray" or "rgb"; default gray when every image is grey), stretched to
    ``input_size`` (default: the most common size), scaled to 0..1.
    """
    root = os.fspath(data_dir)
    found = _read_folder(root, on_warning or (lambda message: None))
    images = found.pixels
    size = parse_size(input_size)
    if size is None:
        counted = Counter((int(p.shape[0]), int(p.shape[1])) for p in images)
        size = counted.most_common(1)[0][0]
    if color is None:
        gray = all(p.ndim == 2 or p.shape[2] <= 2 for p in images)
        channels = 1 if gray else 3
    else:
        key = color.strip().lower()
        if key not in _COLORS:
            raise UsageError(f"color must be gray or rgb, got {color!r}")
        channels = _COLORS[key]
    spec = InputSpec(channels=channels, height=size[0], width=size[1], scale=1 / 255)
    x = np.empty((len(images), channels, size[0], size[1]), np.float32)
    for i, pixels in enumerate(images):
        x[i] = prepare_image(spec, pixels)
    ys = np.asarray(found.ys, np.int64)
    return Dataset(x, ys, found.labels, found.paths, spec, found.skipped)


def stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``fraction`` of every class, rounded."""
    if not 0 <= fraction < 1:
        raise UsageError(f"validation split must be in [0, 1), got {fraction!r}")
    train, val = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Every (C, H, W) sample of ``x`` shifted by up to ``max_shift`` pixels, edges repeated."""
    s = int(max_shift)
    n, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(offsets):
        out[i] = xp[i, :, dy : dy + h, dx : dx + w]
    return out


def random_affine(
    x: np.ndarray, shift: float, rotate: float, zoom: float, rng: np.random.Generator
) -> np.ndarray:
    """Every sample of ``x`` (N, C, H, W) moved by a random small affine map (bilinear).

    Shifts up to ``shift`` pixels, rotations up to ``rotate`` degrees, scales
    within ``1 / (1 + zoom)`` .. ``1 + zoom``; edge pixels are repeated.
    """
    n, c, h, w = x.shape
    ang = np.deg2rad(rng.uniform(-rotate, rotate, n))
    scale = np.exp(rng.uniform(-math.log1p(zoom), math.log1p(zoom), n))
    t = rng.uniform(-shift, shift, (n, 2))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy = (np.arange(h) - cy)[None, :, None]
    xx = (np.arange(w) - cx)[None, None, :]
    cos = (np.cos(ang) / scale)[:, None, None]
    sin = (np.sin(ang) / scale)[:, None, None]
    sy = cos * yy - sin * xx + cy - t[:, 0, None, None]
    sx = sin * yy + cos * xx + cx - t[:, 1, None, None]
    y0 = np.floor(sy)
    x0 = np.floor(sx)
    wy = (sy - y0).astype(x.dtype)[..., None]
    wx = (sx - x0).astype(x.dtype)[..., None]
    y0i = np.clip(y0.astype(np.intp), 0, h - 1)
    y1i = np.clip(y0.astype(np.intp) + 1, 0, h - 1)
    x0i = np.clip(x0.astype(np.intp), 0, w - 1)
    x1i = np.clip(x0.astype(np.intp) + 1, 0, w - 1)
    hwc = x.transpose(0, 2, 3, 1)
    ni = np.arange(n)[:, None, None]
    top = hwc[ni, y0i, x0i] * (1 - wx) + hwc[ni, y0i, x1i] * wx
    bottom = hwc[ni, y1i, x0i] * (1 - wx) + hwc[ni, y1i, x1i] * wx
    out = top * (1 - wy) + bottom * wy
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
