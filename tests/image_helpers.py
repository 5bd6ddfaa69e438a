"""Helpers for the image tests: random pixels, fake standard streams, PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
RNG = np.random.default_rng(1234)


def rand(shape, dtype=np.uint8):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


class FakeStream:
    """Stands in for sys.stdin / sys.stdout: a text stream with a binary ``.buffer``."""

    def __init__(self, data: bytes = b"", tty: bool = False):
        self.buffer = io.BytesIO(data)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())
