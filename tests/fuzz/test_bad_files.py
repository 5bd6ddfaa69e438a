"""Generated bad files through every command that reads one: one clean line, nothing written.

Each example writes one generated file (see :mod:`fuzz.corpus`) under a
chosen name next to a good picture, runs one command on it and checks the
promise (:func:`fuzz.harness.check`); no pickle in any ``.npy`` ever runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fuzz.corpus import PICKLE_SENTINEL, bad_files, good_files, png_bomb
from fuzz.harness import FUZZ, check, invoke, snapshot, workdir
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

NAMES = ["in.png", "in.npy", "in.jpg", "in.gif", "in", "in.toml", "in.txt", "in.npz", "in.onnx"]

#: Commands that read the bad file ``{f}``; ``-`` templates read it from standard input.
TEMPLATES = [
    "filter sobel {f} -o {d}/out.png",
    "filter gaussian:sigma=1 {f} --format npy -o {d}/out.npy",
    "filter box {f} --format png",
    "filter sobel --max-pixels 50 {f} -o {d}/out.png",
    "pool --size 2 {f} -o {d}/out.png",
    "pool --global --format json {f}",
    "pool --size 3 --mode avg --layout chw {f} -o {d}/out.npy",
    "filter --kernel-file {f} {good} -o {d}/out.png",
    "filter sobel --kernels {f} {good} -o {d}/out.png",
    "kernels --kernels {f}",
    "- filter sobel --format png",
    "- pool --size 2 --format npy",
    "classify digits {f}",
    "run digits {f} -o {d}/out.npy",
    "features digits {f} -o {d}/out.png",
    "summary {f}",
    "convert {f} -o {d}/out.npz",
    "classify {f} {good}",
]


def run_template(template: str, data: bytes, name: str, kind: str) -> None:
    with workdir() as folder:
        bad = folder / name
        bad.write_bytes(data)
        good = folder / "good.png"
        good.write_bytes(good_files()["png"])
        stdin = b""
        if template.startswith("- "):
            template, stdin = template[2:], data
        argv = [a.format(f=bad, d=folder, good=good) for a in template.split()]
        before = snapshot(folder)
        outcome = invoke(argv, stdin=stdin, kind=kind)
        check(outcome, folder, before, what=(template, name, data[:40]))
        assert not os.path.exists(PICKLE_SENTINEL), "a pickle in an .npy file was executed"


@settings(FUZZ, max_examples=1800)
@given(data=bad_files, name=st.sampled_from(NAMES), template=st.sampled_from(TEMPLATES))
def test_bad_files_through_every_reader(data: bytes, name: str, template: str) -> None:
    run_template(template, data, name, "bad file")


@settings(FUZZ, max_examples=60)
@given(
    template=st.sampled_from([t for t in TEMPLATES if "{f}" in t and "kernel" not in t]),
    limit=st.sampled_from(["", "--max-pixels 1000", "--max-pixels 0"]),
)
def test_decompression_bomb(template: str, limit: str) -> None:
    """A 12000 x 12000 PNG of 300 KB: over Pillow's limit; with a low limit refused too."""
    bomb = _bomb()
    if limit and template.split()[0] in ("filter", "pool"):
        template = template.replace(" {f}", f" {limit} {{f}}")
        if limit.endswith(" 0"):
            return  # no limit: a trusted 144-megapixel image really is decoded (slow)
    run_template(template, bomb, "bomb.png", "bomb")


def _bomb() -> bytes:
    global _BOMB
    if _BOMB is None:
        _BOMB = png_bomb(12000)
    return _BOMB


_BOMB: bytes | None = None


def test_pickle_trap_works(tmp_path: Path) -> None:
    """The trap is real: numpy with allow_pickle=True does run it (so the checks mean something)."""
    import io

    import numpy as np
    from fuzz.corpus import _npy, _Trap

    array = np.empty(1, dtype=object)
    array[0] = _Trap()
    data = _npy(array)
    try:
        np.load(io.BytesIO(data), allow_pickle=True)
        assert os.path.isdir(PICKLE_SENTINEL)
    finally:
        if os.path.isdir(PICKLE_SENTINEL):
            os.rmdir(PICKLE_SENTINEL)
    for template in ("filter sobel {f} -o {d}/out.png", "run digits {f} -o {d}/out.npy"):
        run_template(template, data, "trap.npy", "pickle")
        run_template("filter --kernel-file {f} {good} -o {d}/o.png", data, "trap.npy", "pickle")
