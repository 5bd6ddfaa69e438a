"""Regenerate the bundled sample images (deterministic), or benchmark PNG encoding.

    python sample_images/make_samples.py            # synthetic cards only (numpy + Pillow)
    python sample_images/make_samples.py --photos   # also re-export the photos (needs scikit-image)
    python sample_images/make_samples.py --bench-png [--repeat N]

The synthetic test cards in ``cards/`` are made by this script and are CC0
(see LICENSES.md).  The photos come from scikit-image's bundled data; their
licences are listed in LICENSES.md.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CARDS = HERE / "cards"

# Photos taken from skimage.data: (function name, output name, max side in px).
PHOTOS = [
    ("camera", "camera.png", 512),  # 512x512 grayscale
    ("astronaut", "astronaut.png", 384),  # 512x512 RGB -> 384x384
    ("chelsea", "chelsea.png", 451),  # 451x300 RGB, kept at full size
    ("coffee", "coffee.png", 384),  # 600x400 RGB -> 384x256
]


def _save_png(img: Image.Image, path: Path) -> None:
    # Level 9 + optimize: the repository copies should be small; speed is irrelevant here.
    img.save(path, format="PNG", optimize=True)


def stripes(size: int = 32, period: int = 8, vertical: bool = True) -> np.ndarray:
    """0/255 stripes, ``period`` pixels per black+white pair."""
    ramp = ((np.arange(size) // (period // 2)) % 2 * 255).astype(np.uint8)
    return np.tile(ramp, (size, 1)) if vertical else np.tile(ramp[:, None], (1, size))


def make_cards() -> list[Path]:
    CARDS.mkdir(exist_ok=True)
    written: list[Path] = []

    def save(name: str, img: Image.Image) -> None:
        path = CARDS / name
        if name.endswith(".png"):
            _save_png(img, path)
        else:
            img.save(path)
        written.append(path)

    # 32x32 stripes (8-bit gray), 4 px black / 4 px white; a CNN test classifies orientation.
    save("stripes-vertical.png", Image.fromarray(stripes(vertical=True)))
    save("stripes-horizontal.png", Image.fromarray(stripes(vertical=False)))

    # 64x64 checkerboard of 8x8 squares, top-left square black.
    yy, xx = np.mgrid[0:64, 0:64]
    checker = (((yy // 8) + (xx // 8)) % 2 * 255).astype(np.uint8)
    save("checkerboard.png", Image.fromarray(checker))

    # 32x32 vertical step edge: left half 0, right half 255.
    step = np.zeros((32, 32), np.uint8)
    step[:, 16:] = 255
    save("step-edge.png", Image.fromarray(step))

    # 15x15 single white pixel in the centre: convolving it shows the (flipped) kernel.
    impulse = np.zeros((15, 15), np.uint8)
    impulse[7, 7] = 255
    save("impulse.png", Image.fromarray(impulse))

    # 16-bit grayscale gradient, 256 wide x 64 high: column x holds x * 257 (0..65535),
    # plus a fine ramp down the rows (+0..63) so the low byte is not constant.
    cols = np.arange(256, dtype=np.uint32) * 257
    ramp = cols[None, :] + np.arange(64, dtype=np.uint32)[:, None]
    gradient = np.minimum(ramp, 65535).astype(np.uint16)
    save("gradient-16bit.png", Image.fromarray(gradient))

    # 64x64 RGBA: an opaque orange disc, a half-transparent blue ring, transparent elsewhere.
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(yy - 31.5, xx - 31.5)
    rgba = np.zeros((64, 64, 4), np.uint8)
    disc = r < 18
    ring = (r >= 22) & (r < 28)
    rgba[disc] = (255, 140, 0, 255)
    rgba[ring] = (0, 90, 255, 128)
    save("rgba-disc.png", Image.fromarray(rgba))

    # 64x48 palette (P mode) GIF: four horizontal colour bands.
    bands = (np.arange(48) // 12)[:, None].repeat(64, axis=1).astype(np.uint8)
    pal = Image.fromarray(bands).convert("P")
    palette = [255, 0, 0, 0, 160, 0, 0, 0, 255, 255, 255, 255]
    pal.putpalette(palette + [0] * (768 - len(palette)))
    save("palette-bands.gif", pal)

    # 16x16 float32 feature map with signed values: a difference of Gaussians.
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    d2 = (yy - 7.5) ** 2 + (xx - 7.5) ** 2
    dog = np.exp(-d2 / (2 * 2.0**2)) - 0.5 * np.exp(-d2 / (2 * 4.0**2))
    path = CARDS / "feature-map.npy"
    np.save(path, dog.astype(np.float32), allow_pickle=False)
    written.append(path)
    return written


def make_photos() -> list[Path]:
    from skimage import data

    written = []
    for func, name, max_side in PHOTOS:
        arr = getattr(data, func)()
        img = Image.fromarray(arr)
        if max(img.size) > max_side:
            factor = max_side / max(img.size)
            size = (round(img.width * factor), round(img.height * factor))
            img = img.resize(size, Image.Resampling.LANCZOS)
        path = HERE / name
        _save_png(img, path)
        written.append(path)
    return written


def bench_photo(width: int = 4000, height: int = 3000, seed: int = 0) -> np.ndarray:
    """A 12-megapixel "photo": six real photos upscaled (Lanczos) to tiles, plus noise.

    Upscaling alone gives unrealistically smooth data; sigma-2 Gaussian noise
    stands in for camera sensor noise so deflate sees photo-like entropy.
    """
    from skimage import data

    sources = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.retina(),
        data.hubble_deep_field(),
    ]
    tile_w, tile_h = width // 3, height // 2
    canvas = np.zeros((height, width, 3), np.uint8)
    for i, arr in enumerate(sources):
        tile = Image.fromarray(arr[:, :, :3]).resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        y, x = (i // 3) * tile_h, (i % 3) * tile_w
        canvas[y : y + tile_h, x : x + tile_w] = np.asarray(tile)
    rng = np.random.default_rng(seed)
    noisy = canvas.astype(np.float32) + rng.normal(0, 2.0, canvas.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def bench_png(repeat: int) -> None:
    from skimage import data

    cases = {"12MP photo": bench_photo(), "astronaut 512": data.astronaut()}
    for label, arr in cases.items():
        img = Image.fromarray(arr)
        print(f"{label}: {arr.shape}, raw {arr.nbytes / 1e6:.1f} MB")
        base = None
        settings = [(lvl, False) for lvl in range(0, 10)] + [(9, True)]
        for level, optimize in settings:
            best = float("inf")
            for _ in range(repeat):
                buf = io.BytesIO()
                t0 = time.perf_counter()
                img.save(buf, format="PNG", compress_level=level, optimize=optimize)
                best = min(best, time.perf_counter() - t0)
            size = buf.tell()
            if level == 1 and not optimize:
                base = size
            rel = f"{100 * size / base:5.1f} %" if base else "      "
            tag = "optimize" if optimize else f"level {level}"
            print(f"  {tag:9s} {best * 1000:8.0f} ms  {size / 1e6:7.2f} MB  {rel}")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", action="store_true", help="also re-export the photos")
    parser.add_argument("--bench-png", action="store_true", help="time PNG compress levels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.bench_png:
        bench_png(args.repeat)
        return
    paths = make_cards()
    if args.photos:
        paths += make_photos()
    for p in paths:
        print(f"{p.relative_to(HERE)}  {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
