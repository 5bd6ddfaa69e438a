"""The imgkernel.images package: its facade, light imports, and the old io module's names."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import imgkernel.images as images

MODULES = sorted(Path(images.__file__).parent.glob("*.py"))

#: What nn/, kernels/ and the command line use; the facade keeps exporting these.
CONTRACT = [
    "DISPLAY_MODES",
    "Image",
    "deliver",
    "expand_outputs",
    "format_from_name",
    "max_value_for",
    "probe_image",
    "read_array",
    "read_image",
    "to_display",
    "write_array",
    "write_image",
    "write_text",
]


def test_facade_exports_the_contract():
    assert set(CONTRACT) <= set(images.__all__)
    for name in images.__all__:
        assert getattr(images, name) is not None, name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_are_light(path: Path):
    """Modules import only numpy, stdlib, errors, core and images at module level (PIL lazily)."""
    tree = ast.parse(path.read_text())
    allowed = set(sys.stdlib_module_names) | {"numpy", "imgkernel"}
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, name
            if name.startswith("imgkernel"):
                assert name.split(".")[1] in ("errors", "lazy", "core", "images"), name
    assert "scipy" not in path.read_text()
