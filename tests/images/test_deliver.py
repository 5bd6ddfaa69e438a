"""imgkernel.images.deliver: atomic writes, permissions, special files, symlinks."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from image_helpers import FakeStream, listing, rand
from PIL import Image as PILImage

from imgkernel.errors import ImgkernelError, UsageError
from imgkernel.images import deliver, read_image, write_image, write_text


def test_failing_encoder_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.tif"  # encoded by Pillow
    target.write_bytes(b"precious")

    def boom(self, fp, format=None, **params):
        fp.write(b"partial data")
        raise OSError("encoder exploded")

    monkeypatch.setattr(PILImage.Image, "save", boom)
    with pytest.raises(ImgkernelError):
        write_image(str(target), rand((4, 4)))
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.tif"]


def test_failing_png_writer_is_atomic(tmp_path, monkeypatch):
    import imgkernel.images.write as write_module

    target = tmp_path / "out.png"  # encoded by imgkernel's own PNG writer
    target.write_bytes(b"precious")

    def boom(f, array, level=1, **kwargs):
        f.write(b"partial data")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write_module, "write_png", boom)
    with pytest.raises(ImgkernelError, match="out.png: cannot write"):
        write_image(str(target), rand((4, 4)))
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.png"]


def test_interrupt_during_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(str(tmp_path / "x.npy"), rand((2, 2)))
    assert listing(tmp_path) == []


def test_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    write_image(str(target), rand((3, 3)))
    assert read_image(str(target)).pixels.shape == (3, 3)
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert listing(tmp_path) == ["out.png"]


def test_new_file_not_private(tmp_path):
    old = os.umask(0o022)
    try:
        write_image(str(tmp_path / "new.png"), rand((3, 3)))
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "new.png").st_mode & 0o777) == 0o644


def test_nonexistent_directory(tmp_path):
    target = tmp_path / "missing" / "out.png"
    with pytest.raises(UsageError, match="does not exist"):
        write_image(str(target), rand((2, 2)))
    assert not (tmp_path / "missing").exists()
    assert listing(tmp_path) == []


def test_target_is_directory(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_image(str(tmp_path / "d.png"), rand((2, 2)))


def test_dev_null_is_written_not_replaced():
    before = os.stat(os.devnull)
    write_image(os.devnull, rand((3, 3)), format="png")
    after = os.stat(os.devnull)
    assert stat_is_char_device(after.st_mode) and before.st_ino == after.st_ino


def stat_is_char_device(mode: int) -> bool:
    import stat

    return stat.S_ISCHR(mode)


def test_symlink_target_written_through(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    write_image(str(link), rand((2, 2)))
    assert link.is_symlink()
    assert read_image(str(real)).pixels.shape == (2, 2)


def test_deliver_calls_the_encoder_once_and_cleans_up(tmp_path):
    calls = []

    def encode(f):
        calls.append(1)
        f.write(b"data")

    deliver(str(tmp_path / "out.bin"), encode)
    assert calls == [1] and (tmp_path / "out.bin").read_bytes() == b"data"

    def broken(f):
        f.write(b"partial")
        raise UsageError("cannot encode")

    with pytest.raises(UsageError, match="cannot encode"):
        deliver(str(tmp_path / "out.bin"), broken)
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert listing(tmp_path) == ["out.bin"]


def test_text_goes_to_a_terminal_binary_does_not(monkeypatch):
    fake = FakeStream(tty=True)
    monkeypatch.setattr(sys, "stdout", fake)
    write_text("-", "hello\n")
    assert fake.buffer.getvalue() == b"hello\n"
    with pytest.raises(UsageError, match="terminal"):
        deliver("-", lambda f: f.write(b"\x89PNG"))


def test_no_standard_output(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(UsageError, match="no standard output"):
        write_text("-", "x")
