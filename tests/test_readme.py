"""The README's tour runs as written: every shell line of it, in one shell, in order.

The lines run in a scratch directory holding the files they name (a photo,
a kernel file, feature maps, a model copy, ...). Lines that need data this
test cannot make quickly (a training folder, an ONNX export, the digits
rebuild) are listed in SKIPPED and left out; everything else must exit 0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

#: Tour lines needing what a test cannot make in a second or two.
SKIPPED = (
    "imgkernel train ",
    "exported.onnx",
    "scripts/make_digits.py",
    "digits.npz some-digit",
    "resnet18",  # needs torchvision and the ImageNet labels
)


def tour_lines() -> list[str]:
    """The commands of the README's Tour section (continuations joined, comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text.split("\n## Tour", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", tour, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def fixtures(work: Path) -> None:
    shutil.copy(ROOT / "sample_images" / "astronaut.png", work / "photo.png")
    (work / "sample_images").symlink_to(ROOT / "sample_images")
    (work / "my.toml").write_text(
        'rows = [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]]\ndisplay = "abs"\n'
    )
    rng = np.random.default_rng(0)
    np.save(work / "maps.npy", rng.random((32, 32, 8), dtype=np.float32))
    np.save(work / "x.npy", rng.random((1, 1, 16, 16), dtype=np.float32))
    np.save(work / "batch.npy", rng.random((2, 1, 16, 16), dtype=np.float32))
    shutil.copy(ROOT / "imgkernel" / "nn" / "models" / "digits.npz", work / "model.npz")
    (work / "photos").mkdir()
    for i in range(2):
        pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(work / "photos" / f"p{i}.jpg")


def test_tour_lines_are_found() -> None:
    lines = tour_lines()
    assert len(lines) > 25
    assert any(line.startswith("imgkernel filter --matrix") for line in lines)


def test_tour_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("bash") is None:  # pragma: no cover
        pytest.skip("needs bash")
    fixtures(tmp_path)
    lines = [line for line in tour_lines() if not any(skip in line for skip in SKIPPED)]
    script = "\n".join(
        [
            "set -euo pipefail",
            f'imgkernel() {{ "{sys.executable}" -m imgkernel "$@"; }}',
            f'python() {{ "{sys.executable}" "$@"; }}',
            *(f"echo '+ {line.replace(chr(39), '')[:60]}' >&2; {line}" for line in lines),
        ]
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # The lecture notes' example prints the hand-computed map.
    assert "[[5. 4. 5.]\n [3. 5. 4.]\n [3. 4. 5.]]" in proc.stdout
    for made in ("edges.png", "soft.png", "boxed.png", "crisp.jpg", "half.png", "pooled.npy"):
        assert (tmp_path / made).stat().st_size > 0, made
    assert np.load(tmp_path / "maps.npy").ndim == 4  # feature maps stay (N, C, H, W)
