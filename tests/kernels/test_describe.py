"""describe_kernel (imgkernel.kernels.describe) and the rank-1 test it reports separability with."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgkernel.core.correlate import rank1_factors
from imgkernel.errors import UsageError
from imgkernel.kernels import describe_kernel, load_library

LIBRARY = load_library(include_user=False)


def test_describe_reports_separability_and_zero_sum() -> None:
    text = describe_kernel(LIBRARY.resolve("laplacian"))
    assert "zero-sum:   yes" in text and "separable:  no (rank 2)" in text
    text = describe_kernel(LIBRARY.resolve("gaussian:sigma=1"))
    assert "separable:  yes (rank 1)" in text and "9x9" in text


@settings(max_examples=50, deadline=None)
@given(
    kh=st.integers(1, 9),
    kw=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank1_recovers_outer_products(kh, kw, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=kh), rng.normal(size=kw)
    w = np.outer(a, b)
    factors = rank1_factors(w)
    assert factors is not None
    col, row = factors
    assert col.shape == (kh,) and row.shape == (kw,)
    assert np.allclose(np.outer(col, row), w, atol=1e-12 * np.abs(w).max())


def test_rank1_rejects_rank2():
    rng = np.random.default_rng(0)
    w = np.outer(rng.normal(size=5), rng.normal(size=5)) + np.outer(
        rng.normal(size=5), rng.normal(size=5)
    )
    assert rank1_factors(w) is None
    assert rank1_factors(np.eye(3)) is None
    lib = load_library(include_user=False)
    assert rank1_factors(lib.resolve("laplacian").weights) is None
    assert rank1_factors(lib.resolve("sobel-y").weights) is not None
    with pytest.raises(UsageError):
        rank1_factors(np.ones(3))
