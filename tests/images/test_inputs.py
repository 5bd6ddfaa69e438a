"""Input lists: arguments, quoted globs and --files-from."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgkernel.errors import UsageError
from imgkernel.images.inputs import list_inputs


def test_files_from_skips_blank_lines_and_keeps_the_order(tmp_path: Path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"b.png\r\n\n   \n a c.png\n\ta.png\n")
    assert list_inputs([], str(listing)) == ["b.png", " a c.png", "\ta.png"]


def test_files_from_refuses_nul_bytes_and_folders(tmp_path: Path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.png\nb\0.png\n")
    with pytest.raises(UsageError, match="line 2 holds a NUL byte"):
        list_inputs([], str(listing))
    with pytest.raises(UsageError, match="is a directory"):
        list_inputs([], str(tmp_path))
