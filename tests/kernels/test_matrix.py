"""Matrices the user writes (imgkernel.kernels.matrix): text forms, scale and offset."""

from __future__ import annotations

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.kernels import kernel_from_matrix, parse_matrix


@pytest.mark.parametrize(
    "text",
    [
        "1,0,-1;2,0,-2;1,0,-1",
        "1 0 -1; 2 0 -2; 1 0 -1",
        "1, 0, -1\n2, 0, -2\n1, 0, -1\n",
        "\n  1 0 -1   # row one\n\n  2 0 -2\n  1 0 -1\n",
        "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]",
        "1,0,-1;2,0,-2;1,0,-1;",
        "2/2 0 -1;4/2 0 -2;1 0 -1",
    ],
)
def test_parse_matrix_forms(text):
    m = parse_matrix(text)
    assert m.dtype == np.float64
    assert np.array_equal(m, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("1,2;3", "row 2"),
        ("1,2;3,x", "'x'"),
        ("", "is empty"),
        ("  ;  ", "is empty"),
        ("# nothing\n", "is empty"),
        ("1,,2", "empty value"),
        ("1,nan", "'nan'"),
        ("1,inf", "'inf'"),
        ("1/0", "'1/0'"),
    ],
)
def test_parse_matrix_rejects(text, quoted):
    with pytest.raises(UsageError) as info:
        parse_matrix(text)
    msg = str(info.value)
    assert quoted in msg and "\n" not in msg


def test_parse_matrix_size_limit():
    with pytest.raises(UsageError, match="1002"):
        parse_matrix(" ".join(["1"] * 1002))


def test_kernel_from_matrix_scale_and_offset():
    k = kernel_from_matrix("1 2 1; 2 4 2; 1 2 1")
    assert k.total == pytest.approx(16.0)  # weights as written
    assert kernel_from_matrix("1 2 1; 2 4 2; 1 2 1", scale="sum").total == pytest.approx(1.0)
    assert np.array_equal(kernel_from_matrix([[1, 1]], scale=1).weights, [[1, 1]])
    assert np.array_equal(kernel_from_matrix([[1, 1]], scale=4).weights, [[0.25, 0.25]])
    edge = kernel_from_matrix("-1 0 1", scale="sum")
    assert np.array_equal(edge.weights, [[-1, 0, 1]])  # zero-sum: not divided
    neg = kernel_from_matrix("-1 -1", scale="sum")
    assert np.array_equal(neg.weights, [[-0.5, -0.5]])  # |sum|: sign kept
    assert kernel_from_matrix("1", offset=0.5).offset == 0.5
    with pytest.raises(UsageError, match="got 128"):
        kernel_from_matrix("1", offset=128)
    with pytest.raises(UsageError, match="got 0"):
        kernel_from_matrix("1", scale=0)
    with pytest.raises(UsageError):
        kernel_from_matrix([[1, 2], [3]])
    with pytest.raises(UsageError):
        kernel_from_matrix(np.ones((2, 2, 2)))
