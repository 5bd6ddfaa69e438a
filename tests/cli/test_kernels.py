"""`imgkernel kernels` and `kernels show`."""

from __future__ import annotations

import pytest
from cli_helpers import run


def test_kernels_list_and_show() -> None:
    result = run("kernels")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"sobel", "gaussian", "laplacian", "emboss", "dilated", "unsharp"} <= set(names)
    result = run("kernels", "show", "gaussian:sigma=1")
    assert result.exit_code == 0
    assert "9x9" in result.stdout and "separable:  yes" in result.stdout


BAD = [
    (["kernels", "show", "nosuch"], "nosuch"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(args: list[str], fragment: str, refused) -> None:
    refused(args, fragment)
