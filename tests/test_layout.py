"""The package's shape: imports run one way, and no module, class or function grows too big.

Layers, bottom to top: ``errors`` ← ``core`` ← ``images`` ← ``kernels`` ← ``nn`` ← ``cli``
(kernels may use images: applying a kernel record to an image file's pixels
maps the result for display).
A module may import from its own layer and the layers below it, never above;
nothing imports ``cli``. Checked on the source with ``ast`` (lazy imports
inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imgkernel"

#: What each layer may import (besides itself and the standard library).
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "images": {"errors", "core"},
    "kernels": {"errors", "core", "images"},
    "nn": {"errors", "core", "images", "kernels"},
    "cli": {"errors", "core", "images", "kernels", "nn"},
    "": {"errors", "core", "images", "kernels", "nn", "cli"},  # imgkernel/__init__, __main__
}

MAX_MODULE_LINES = 500
MAX_FUNCTION_CODE_LINES = 60
MAX_CLASS_LINES = 250

MODULES = sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:  # errors and lazy are the base every layer may use
        return "errors" if parts[0] in ("errors.py", "lazy.py") else ""
    return parts[0]


def imported_layers(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "imgkernel":
                names += [f"imgkernel.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "imgkernel" and len(parts) > 1:
                found.add("errors" if parts[1] == "lazy" else parts[1])
    return found & set(ALLOWED)


def code_lines(node: ast.AST, source_lines: list[str]) -> int:
    """Lines of a function that hold code: no blank lines, comments or docstring."""
    body = node.body  # type: ignore[attr-defined]
    skip: set[int] = set()
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            skip = set(range(first.lineno, first.end_lineno + 1))  # type: ignore[operator]
    count = 0
    for number in range(body[0].lineno, node.end_lineno + 1):  # type: ignore[attr-defined]
        text = source_lines[number - 1].strip()
        if number in skip or not text or text.startswith("#"):
            continue
        count += 1
    return count


def rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_imports_run_one_way(path: Path) -> None:
    layer = layer_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = imported_layers(tree) - ALLOWED[layer] - {layer}
    assert not wrong, f"{rel(path)} (layer {layer or 'top'}) imports {sorted(wrong)}"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_sizes(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    problems = []
    if len(lines) > MAX_MODULE_LINES:
        problems.append(f"module has {len(lines)} lines (limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if size > MAX_CLASS_LINES:
                problems.append(f"class {node.name} has {size} lines (limit {MAX_CLASS_LINES})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = code_lines(node, lines)
            if size > MAX_FUNCTION_CODE_LINES:
                problems.append(
                    f"function {node.name} (line {node.lineno}) has {size} lines of code "
                    f"(limit {MAX_FUNCTION_CODE_LINES})"
                )
    assert not problems, f"{rel(path)}: " + "; ".join(problems)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    # The checks above must be able to fail: a core module importing cli.
    tree = ast.parse("def f():\n    from imgkernel.cli import main\n")
    assert imported_layers(tree) == {"cli"}
    source = "def f():\n    '''doc'''\n" + "    x = 1\n" * 61
    node = ast.parse(source).body[0]
    assert code_lines(node, source.splitlines()) == 61
