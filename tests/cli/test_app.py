"""The command group as a program: real processes, pipelines, start-up, the error boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from cli_helpers import PHOTO, ROOT
from click.testing import CliRunner

import imgkernel
from imgkernel.cli import cli
from imgkernel.cli.app import Group
from imgkernel.errors import ImgkernelError, UsageError


def test_refuses_binary_to_terminal(gray: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = (
        "import sys; sys.stdout.isatty = lambda: True; "
        "sys.argv = ['imgkernel', 'filter', 'sobel', sys.argv[1]]; "
        "from imgkernel.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(gray)], capture_output=True, check=False
    )
    assert proc.returncode == 2
    assert b"terminal" in proc.stderr and proc.stdout == b""


def imgkernel_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgkernel", *args]


def test_pipeline_in_real_processes(tmp_path: Path) -> None:
    blur = subprocess.run(
        imgkernel_cmd("filter", "gaussian:sigma=2"),
        input=PHOTO.read_bytes(),
        capture_output=True,
        check=True,
    )
    edges = subprocess.run(
        imgkernel_cmd("filter", "sobel"), input=blur.stdout, capture_output=True, check=True
    )
    assert edges.stdout.startswith(b"\x89PNG")
    npy = subprocess.run(
        imgkernel_cmd("filter", "sobel", str(PHOTO), "--format", "npy"),
        capture_output=True,
        check=True,
    )
    pooled = subprocess.run(
        imgkernel_cmd("pool", "--size", "2", "--stride", "2", "--format", "npy"),
        input=npy.stdout,
        capture_output=True,
        check=True,
    )
    summary = subprocess.run(
        imgkernel_cmd("pool", "--global", "--format", "json"),
        input=pooled.stdout,
        capture_output=True,
        check=True,
    )
    data = json.loads(summary.stdout)
    assert set(data) >= {"red", "green", "blue"}


def test_help_does_not_import_scipy() -> None:
    code = (
        "import sys; sys.argv = ['imgkernel', '--help']\n"
        "from imgkernel.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'scipy' not in sys.modules, 'scipy imported at start-up'\n"
        "assert 'PIL.Image' not in sys.modules or True\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def test_version_and_module_entry_point() -> None:
    proc = subprocess.run(imgkernel_cmd("--version"), capture_output=True, check=True)
    assert imgkernel.__version__ in proc.stdout.decode()


# ---------------------------------------------------------------- the package


def test_contract_entry_points() -> None:
    import tomllib

    import imgkernel.cli as package

    assert set(package.__all__) == {"cli", "main"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"imgkernel": "imgkernel.cli:main"}
    assert cli.list_commands(click.Context(cli)) == [
        "classify",
        "convert",
        "features",
        "filter",
        "kernels",
        "models",
        "pool",
        "run",
        "summary",
        "train",
    ]


def test_a_command_imports_only_its_own_module() -> None:
    # Start-up: `imgkernel filter` must not import the model commands (lazy registry).
    code = (
        "import sys; from imgkernel.cli import cli; import click; "
        "cli.get_command(click.Context(cli), 'filter'); "
        "print('imgkernel.cli.models' in sys.modules, 'imgkernel.nn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- error boundary


def failing_group(exc: BaseException) -> click.Group:
    @click.group(cls=Group)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "status", "line"),
    [
        (UsageError("bad value"), 2, "imgkernel: error: bad value"),
        (ImgkernelError("model broke"), 1, "imgkernel: error: model broke"),
        (MemoryError(), 1, "imgkernel: error: out of memory (try a smaller image)"),
        (
            OSError(5, "Input/output error", "x.png"),
            1,
            "imgkernel: error: x.png: input/output error",
        ),
        (KeyboardInterrupt(), 130, "imgkernel: aborted"),  # click makes it an Abort
    ],
)
def test_library_errors_become_one_line_and_a_status(
    exc: BaseException, status: int, line: str
) -> None:
    result = CliRunner().invoke(failing_group(exc), ["boom"], prog_name="imgkernel")
    assert result.exit_code == status
    assert result.stderr.strip().splitlines() == [line]


def test_click_usage_errors_use_the_one_prefix() -> None:
    result = CliRunner().invoke(cli, ["pool", "--mode", "median"], prog_name="imgkernel")
    assert result.exit_code == 2
    assert result.stderr.startswith("imgkernel: error: Invalid value for '--mode'")  # one prefix


def test_command_modules_import_only_app_and_params() -> None:
    import ast

    folder = ROOT / "imgkernel" / "cli"
    for path in folder.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        used = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imgkernel.cli")
        }
        # progress: the progress bar behind params' batch options, itself a user of app only
        helpers = {"imgkernel.cli.app", "imgkernel.cli.params", "imgkernel.cli.progress"}
        assert used <= helpers, path.name
