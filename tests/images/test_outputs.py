"""imgkernel.images.outputs: output names for batches (files, directories, templates)."""

from __future__ import annotations

import os

import pytest

from imgkernel.errors import UsageError
from imgkernel.images import expand_outputs


def test_expand_single(tmp_path):
    assert expand_outputs(["a.png"], None, default_ext=None) == ["-"]
    assert expand_outputs(["a.png"], "-", default_ext=None) == ["-"]
    assert expand_outputs(["-"], None, default_ext=None) == ["-"]
    out = str(tmp_path / "x.png")
    assert expand_outputs(["a.png"], out, default_ext=".npy") == [out]


def test_expand_directory(tmp_path):
    d = str(tmp_path) + "/"
    assert expand_outputs(["in/a.png", "b.jpg"], d, default_ext=None) == [
        d + "a.png",
        d + "b.jpg",
    ]
    assert expand_outputs(["in/a.png", "b.jpg"], d, default_ext="npy") == [
        d + "a.npy",
        d + "b.npy",
    ]
    # existing directory without the trailing slash
    assert expand_outputs(["a.png"], str(tmp_path), default_ext=None) == [
        os.path.join(str(tmp_path), "a.png")
    ]
    assert expand_outputs(["-"], d, default_ext=None) == [d + "stdin.png"]


def test_expand_template(tmp_path):
    t = str(tmp_path) + "/{stem}-edges.png"
    assert expand_outputs(["x/a.png", "y/b.jpg"], t, default_ext=None) == [
        str(tmp_path) + "/a-edges.png",
        str(tmp_path) + "/b-edges.png",
    ]
    t2 = str(tmp_path) + "/{index:03d}_{name}"
    assert expand_outputs(["a.png", "b.jpg"], t2, default_ext=None) == [
        str(tmp_path) + "/001_a.png",
        str(tmp_path) + "/002_b.jpg",
    ]
    t3 = str(tmp_path) + "/{stem}.{ext}"
    assert expand_outputs(["a.png", "b.jpg"], t3, default_ext=".tif") == [
        str(tmp_path) + "/a.tif",
        str(tmp_path) + "/b.tif",
    ]
    sub = tmp_path / "in"
    sub.mkdir()
    assert expand_outputs([str(sub / "a.png")], "{dir}/{stem}.out.png", default_ext=None) == [
        str(sub / "a.out.png")
    ]


def test_expand_errors(tmp_path):
    with pytest.raises(UsageError, match="standard output"):
        expand_outputs(["a.png", "b.png"], None, default_ext=None)
    with pytest.raises(UsageError, match="standard output"):
        expand_outputs(["a.png", "b.png"], "-", default_ext=None)
    with pytest.raises(UsageError, match="directory ending in '/' or a template"):
        expand_outputs(["a.png", "b.png"], str(tmp_path / "out.png"), default_ext=None)
    with pytest.raises(UsageError, match="both be written"):
        expand_outputs(["x/a.png", "y/a.png"], str(tmp_path) + "/", default_ext=None)
    with pytest.raises(UsageError, match="both be written"):
        expand_outputs(["a.png", "b.png"], str(tmp_path) + "/same-{ext}.png", default_ext=None)
    with pytest.raises(UsageError, match=r"unknown field \{bogus\}"):
        expand_outputs(["a.png"], "{bogus}.png", default_ext=None)
    with pytest.raises(UsageError, match="malformed"):
        expand_outputs(["a.png"], "{stem.png", default_ext=None)
    with pytest.raises(UsageError, match="does not exist"):
        expand_outputs(["a.png", "b.png"], str(tmp_path / "nodir") + "/", default_ext=None)
    with pytest.raises(UsageError, match="only once"):
        expand_outputs(["-", "-"], str(tmp_path) + "/", default_ext=None)
    with pytest.raises(UsageError, match="no input"):
        expand_outputs([], None, default_ext=None)
