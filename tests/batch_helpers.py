"""Jobs for imgkernel.images.run_many that worker processes can unpickle (tests/ is on
their sys.path), and a way to make many small images of mixed formats."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgkernel.errors import ImgkernelError, UsageError
from imgkernel.images import Outcome, attempt


def _where(item: int) -> tuple[int, int, str | None]:
    if item < 0:
        raise UsageError(f"item {item}: negative")
    if item >= 1000:
        raise ImgkernelError(f"item {item}: too big")
    return item, os.getpid(), os.environ.get("IMGKERNEL_THREADS")


@dataclass(frozen=True)
class WhereJob:
    """Each item: ``(item, pid, IMGKERNEL_THREADS)``; negative items are usage errors,
    items from 1000 on other failures."""

    def __call__(self, items: list[int]) -> list[Outcome]:
        return [attempt(lambda i=i: _where(i), f"item{i}") for i in items]


def mixed_images(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` small images of mixed formats, types and channels in ``folder``."""
    rng = np.random.default_rng(seed)
    kinds = [
        ("png", (13, 17), np.uint8),
        ("png", (12, 9, 3), np.uint8),
        ("png", (10, 11, 4), np.uint8),
        ("png", (9, 14), np.uint16),
        ("jpg", (16, 16, 3), np.uint8),
        ("tif", (11, 12, 3), np.uint8),
        ("bmp", (8, 10, 3), np.uint8),
        ("npy", (9, 9, 3), np.float32),
    ]
    paths = []
    for index in range(count):
        ext, shape, dtype = kinds[index % len(kinds)]
        path = folder / f"im{index:03d}.{ext}"
        if dtype == np.float32:
            np.save(path, rng.random(shape, dtype=np.float32))
        else:
            top = 65535 if dtype == np.uint16 else 255
            Image.fromarray(rng.integers(0, top + 1, shape).astype(dtype)).save(path)
        paths.append(str(path))
    return paths
