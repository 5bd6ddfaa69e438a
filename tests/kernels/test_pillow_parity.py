"""Pillow's built-in filters, pixel for pixel, on the interior of every sample photo.

Pillow leaves its outer 1-2 pixels unfiltered (it copies them), so only the
interior is compared; there, every classic must give Pillow's 8-bit result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage
from PIL import ImageFilter

from imgkernel.cli import cli
from imgkernel.images import Display, Image
from imgkernel.kernels import choose_kernel, filter_image

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"
PHOTOS = ["camera", "astronaut", "chelsea", "coffee"]
CLASSICS = {
    "blur": "BLUR",
    "contour": "CONTOUR",
    "detail": "DETAIL",
    "edge-enhance": "EDGE_ENHANCE",
    "edge-enhance-more": "EDGE_ENHANCE_MORE",
    "emboss": "EMBOSS",
    "find-edges": "FIND_EDGES",
    "smooth": "SMOOTH",
    "smooth-more": "SMOOTH_MORE",
    "sharpen-pillow": "SHARPEN",
}


def interior_differences(ours: np.ndarray, theirs: np.ndarray, margin: int) -> int:
    inner = (slice(margin, -margin), slice(margin, -margin))
    return int((ours[inner].astype(int) != theirs[inner].astype(int)).sum())


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("name", CLASSICS)
def test_classic_matches_pillow(name: str, photo: str) -> None:
    pil_filter = getattr(ImageFilter, CLASSICS[name])
    with PILImage.open(SAMPLES / f"{photo}.png") as im:
        pixels = np.asarray(im)
        theirs = np.asarray(im.filter(pil_filter))
    # Pillow clips FIND_EDGES; our find-edges shows |v| unless --clip is asked for.
    display = Display(mode="clip") if name == "find-edges" else None
    ours, _ = filter_image(Image(pixels, None, "PNG", photo), choose_kernel(name), "PNG",
                           display=display)  # fmt: skip
    margin = pil_filter.filterargs[0][0] // 2
    assert interior_differences(ours, theirs, margin) == 0


def test_classics_through_the_command_line(tmp_path: Path) -> None:
    with PILImage.open(SAMPLES / "chelsea.png") as im:
        theirs = {name: np.asarray(im.filter(getattr(ImageFilter, CLASSICS[name])))
                  for name in ("detail", "smooth-more", "emboss")}  # fmt: skip
    for name, expected in theirs.items():
        out = tmp_path / f"{name}.png"
        result = CliRunner().invoke(cli, ["filter", name, str(SAMPLES / "chelsea.png"), "-o",
                                          str(out)])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        margin = 2 if name == "smooth-more" else 1
        assert interior_differences(np.asarray(PILImage.open(out)), expected, margin) == 0


def test_without_pillows_order_only_the_ties_differ() -> None:
    # The same weights on the core path: DETAIL divides by 6, so wherever the
    # integer sum is 3 mod 6 the exact value is a tie (x.5) that float32 noise
    # rounds either way. Off Pillow's order some ties go the other way; no
    # other pixel may differ, and none by more than one level.
    with PILImage.open(SAMPLES / "camera.png") as im:
        pixels = np.asarray(im)
        theirs = np.asarray(im.filter(ImageFilter.DETAIL))
    exact = choose_kernel(matrix="0 -1 0; -1 10 -1; 0 -1 0", divisor=6)
    assert choose_kernel("detail").arithmetic == "pillow" and exact.arithmetic == "core"
    ours, _ = filter_image(Image(pixels, None, "PNG", "camera"), exact, "PNG")
    p = pixels.astype(int)
    sums = 10 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    differ = ours[1:-1, 1:-1].astype(int) != theirs[1:-1, 1:-1].astype(int)
    assert differ.any()
    assert (sums[differ] % 6 == 3).all()
    assert np.abs(ours[1:-1, 1:-1].astype(int) - theirs[1:-1, 1:-1]).max() == 1
