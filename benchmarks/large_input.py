"""A large photo-like tiled TIFF made tile by tile (never held whole): bench_large.py's input.

The sample photo (``sample_images/astronaut.png``, 512x512) is upscaled 4x
with Pillow's Lanczos filter once (2048x2048) and repeated across the image;
each tile gets its own seeded Gaussian noise (sigma 2), so the data compress
like a photograph rather than like a repeated pattern.

Usage::

    python benchmarks/large_input.py OUT.tif [--size 16384] [--tile 256] [--level 6]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "sample_images" / "astronaut.png"


def photo(scale: int = 4) -> np.ndarray:
    """The sample photo upscaled ``scale`` times (uint8 RGB)."""
    from PIL import Image

    with Image.open(SAMPLE) as im:
        rgb = im.convert("RGB")
        return np.asarray(rgb.resize((rgb.width * scale, rgb.height * scale), Image.LANCZOS))


def photo_tiles(size: tuple[int, int], tile: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The tiles of a ``size`` (H, W) RGB image in TIFF order (rows of tiles, left to right)."""
    base = photo()
    bh, bw = base.shape[:2]
    h, w = size
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            rows = np.arange(r0, min(h, r0 + tile)) % bh
            cols = np.arange(c0, min(w, c0 + tile)) % bw
            block = base[np.ix_(rows, cols)].astype(np.int16)
            rng = np.random.default_rng((seed, r0, c0))
            block += rng.normal(0, 2, block.shape).astype(np.int16)
            yield np.clip(block, 0, 255).astype(np.uint8)


def write_photo_tiff(
    path: str | Path, size: tuple[int, int], *, tile: int = 256, level: int = 6
) -> None:
    """Write the photo-like image as a tiled, zlib-compressed BigTIFF, tile by tile."""
    import tifffile

    h, w = size
    tifffile.imwrite(
        path,
        photo_tiles(size, tile),
        shape=(h, w, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        photometric="rgb",
        compression="zlib",
        compressionargs={"level": level},
        bigtiff=True,
        maxworkers=2,
        buffersize=16 << 20,  # tifffile's default holds 512 MB of tiles before encoding
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--level", type=int, default=6)
    args = parser.parse_args()
    write_photo_tiff(args.out, (args.size, args.size), tile=args.tile, level=args.level)


if __name__ == "__main__":
    main()
