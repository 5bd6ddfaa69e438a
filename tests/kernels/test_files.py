"""Single kernel files (imgkernel.kernels.files): .txt/.csv matrices, .npy arrays, TOML tables."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.kernels import load_kernel_file


def test_load_kernel_file_formats(tmp_path):
    txt = tmp_path / "k.txt"
    txt.write_text("1 2 1\n2 4 2\n1 2 1\n")
    assert load_kernel_file(txt).total == pytest.approx(16.0)  # as written
    assert load_kernel_file(txt, scale="sum").total == pytest.approx(1.0)
    csv = tmp_path / "k.csv"
    csv.write_text("-1,0,1\n-2,0,2\n-1,0,1\n")
    assert np.array_equal(load_kernel_file(csv).weights, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    npy = tmp_path / "k.npy"
    np.save(npy, np.array([[0, 1], [1, 0]], dtype=np.int16))
    assert np.array_equal(load_kernel_file(npy, scale=1).weights, [[0, 1], [1, 0]])
    one = tmp_path / "one.toml"
    one.write_text("rows = [[1, 1], [1, 1]]\nscale = 4\ndisplay = 'clip'\n")
    k = load_kernel_file(one)
    assert k.name == "one" and np.allclose(k.weights, 0.25)
    many = tmp_path / "many.toml"
    many.write_text(
        "[kernels.first]\ngenerator = 'gaussian'\nparams = { sigma = 0.5 }\n"
        "[kernels.second]\nrows = [[1]]\n"
    )
    # several kernels: the file names them and asks for one
    with pytest.raises(UsageError, match=r"defines 2 kernels \(first, second\); choose one as"):
        load_kernel_file(many)
    assert load_kernel_file(f"{many}:first").name == "first"
    assert load_kernel_file(f"{many}:first").total == pytest.approx(1.0)
    assert np.array_equal(load_kernel_file(f"{many}:second").weights, [[1]])
    with pytest.raises(UsageError, match="has no kernel 'third'"):
        load_kernel_file(f"{many}:third")
    with pytest.raises(UsageError, match="k.npy:x: no such file"):
        load_kernel_file(f"{npy}:x")  # only a .toml path is split at its colon


def test_load_kernel_file_errors(tmp_path):
    with pytest.raises(UsageError, match="missing.txt: no such file"):
        load_kernel_file(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3\n")
    with pytest.raises(UsageError, match="bad.txt"):
        load_kernel_file(bad)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="obj.npy"):
        load_kernel_file(pickled)
    three = tmp_path / "three.npy"
    np.save(three, np.ones((2, 2, 2)))
    with pytest.raises(UsageError, match="2-D"):
        load_kernel_file(three)
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n")
    with pytest.raises(UsageError, match="no kernel"):
        load_kernel_file(empty)
