"""Random option combinations for every subcommand, drawn from each click command's params.

Option names come from the commands themselves (a new option is fuzzed with
no change here); values come from pools by parameter type and name: integers
huge, negative and zero, floats nan, inf, 1e308 and 5e-324, strings, paths
that do not exist or are directories, outputs over the inputs. Every run must
keep the promise of :func:`fuzz.harness.check`.
"""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np
import pytest
from fuzz.corpus import good_files
from fuzz.harness import FUZZ, check, invoke, snapshot, workdir
from hypothesis import given, settings
from hypothesis import strategies as st

from imgkernel.cli import cli

pytestmark = pytest.mark.fuzz

# Each pool is (good values, bad values); a value is good nine times in ten, so
# most lines get past the parser into the library. Sizes stay tiny or
# astronomic: a middling dilation of a tiny image may legitimately ask for
# gigabytes of padding, which is slow, not wrong.
Pool = tuple[list[str], list[str]]

INTS: Pool = (
    ["1", "2", "3"],
    ["0", "7", "-1", "-7", "", "abc", "2.5", "1e3", "0x10", " 2", "9223372036854775807",
     "9223372036854775808", "4611686018427387904", "99999999999", "9" * 4400],
)  # fmt: skip
FLOATS: Pool = (
    ["0", "1", "0.5", "-2", "1.5"],
    ["-0", "nan", "-nan", "inf", "-inf", "1e308", "1e309", "-1e308", "5e-324", "-5e-324",
     "1e-300", "abc", "", "1,2", "50%", "1e308%"],
)  # fmt: skip
PAIRS: Pool = (
    [*INTS[0], "2,3", "1,2"],
    [*INTS[1], "0,1", "3x4", "1,2,3", "-1,2", "9223372036854775808,1", "1,99999999999"],
)
PADDINGS: Pool = (
    ["same", "valid", "full", "0", "1", "2,3", "1,2,3,4"],
    ["SAME", "-1", "1,2,3", "bogus", "", "9223372036854775807", "99999999999,0",
     "1,1,1,99999999999", "4611686018427387904"],
)  # fmt: skip
OUTPUTS: Pool = (
    ["{d}/out.png", "{d}/out.npy", "{d}/out.jpg", "{d}/out.gif", "{d}/out.tif", "{d}/out.webp",
     "{d}/out.bmp", "{d}/out.ppm", "{d}/sub/", "{d}/{{stem}}-x.png", "-"],
    ["{d}/out.json", "{d}/out.txt", "{d}/out.PNG", "{d}/out.xyz", "{d}/out", "{d}/out.npz",
     "{d}/missing/out.png", "{d}/{{nope}}.png", "{d}/{{stem", "{good}", "{npy}", "{d}",
     "/dev/null", "/dev/full"],
)  # fmt: skip
FORMATS: Pool = (
    ["png", "jpeg", "npy", "tiff", "bmp", "webp", "gif", "ppm", "json", "txt"],
    ["PNG", "jpg", "xyz", "", ".png"],
)
MATRICES: Pool = (
    ["1,0,-1", "1 2 1;2 4 2;1 2 1", "1", "1 2\n3 4", "-1 -1;1 1"],
    ["0", "nan", "inf", "1e308", "-1e308 1e308", "5e-324", "1,2;3", "", ";", ";;",
     "[[1,2],[3,4]]", "a b", " ".join(["1"] * 1002), "1e308 1e308;1e308 1e308"],
)  # fmt: skip
BORDERS: Pool = (
    ["zero", "constant", "constant:0.5", "reflect", "symmetric", "edge", "wrap", "replicate",
     "mirror", "reflect101", "circular"],
    ["constant:nan", "constant:1e308", "constant:", "bogus", ""],
)  # fmt: skip
KERNEL_FILES: Pool = (
    ["{d}/k.toml:soft", "{d}/k.toml:edge", "{d}/k.npy", "{d}/k.txt"],
    ["{d}/k.toml", "{d}/missing.npy", "{d}", "{d}/k.toml:nope", "{good}", "{d}/junk.npy"],
)
LIBRARIES: Pool = (["{d}/k.toml"], ["{d}/missing.toml", "{d}", "{good}", "{d}/junk.toml"])
MODELS: Pool = (
    ["digits", "stripes"],
    ["{d}/missing.npz", "{good}", "{d}/junk.npz", "bogus", "{d}"],
)
IMAGES: Pool = (
    ["{good}", "{rgba}", "{g16}", "{npy}", "{npy4}", "{gif}", "-"],
    ["{d}/missing.png", "{d}", "{junk}"],
)
TENSORS: Pool = (["{tensor}", "-"], ["{npy}", "{npy4}", "{good}", "{d}/missing.npy", "{junk}"])
LAYERS: Pool = (
    ["0", "-1", "3", "conv2d1", "relu1"],
    ["99", "-99", "bogus", "9223372036854775808", ""],
)

#: Values for options named so (by click destination name), else by parameter type.
BY_NAME: dict[str, Pool] = {
    "output": OUTPUTS,
    "format": FORMATS,
    "matrix": MATRICES,
    "kernel_file": KERNEL_FILES,
    "kernel_files": LIBRARIES,
    "border": BORDERS,
    "method": (["auto", "direct", "fft", "separable"], ["bogus", ""]),
    "padding": PADDINGS,
    "offset": FLOATS,
    "labels_file": (["{d}/labels.txt"], ["{d}/missing.txt", "{d}", "{junk}"]),
    "arch": (["default", "tiny", "mlp"], ["{d}/k.toml", "{d}/missing.toml", "bogus"]),
    "input_size": (["8x8", "16x16"], ["0x0", "9223372036854775808x1", "axb", "", "28"]),
    "mean": (["0.5", "0.5,0.5,0.5"], ["nan", "inf", "", "a", "0,0,0,0"]),
    "std": (["0.5", "0.5,0.5,0.5"], ["nan", "0", "", "a", "0,0,0"]),
    "layer": LAYERS,
    "epochs": (["1"], INTS[1]),
    # list.txt names good images and a bad one: the rule for one bad file among many.
    "files_from": (
        ["{d}/list.txt", "{d}/list.txt", "{d}/goodlist.txt"],
        ["{d}/missing", "{d}", "{good}", "-", "", "{junk}"],
    ),
    # No good value: a cluster takes seconds to start (tests/cli/test_batch.py starts them).
    "scheduler": ([], ["x", "", "local:0", "local:x", "local:99999", "tcp://", "{d}", "é"]),
}

#: Values of each command's positional arguments, by destination name.
ARGUMENTS: dict[str, Pool] = {
    "inputs": IMAGES,
    "images": IMAGES,
    "image": IMAGES,
    "model_path": MODELS,
    "tensor": TENSORS,
    "source": ([], ["{d}/junk.onnx", "{d}/missing.onnx", "{good}", "{d}"]),
    # train only ever sees data it must refuse: a real run takes seconds.
    "data_dir": ([], ["{d}/missing", "{good}", "{d}/empty", "{d}/oneclass", "{d}/junkclasses"]),
}


def pick(pool: Pool) -> st.SearchStrategy[str]:
    """A good value nine times in ten, else a bad one."""
    good, bad = pool
    if not good or not bad:
        return st.sampled_from(good or bad)
    return st.integers(0, 9).flatmap(lambda n: st.sampled_from(good if n else bad))


#: The kernels of the library and their parameters.
KERNEL_PARAMS = {
    "sobel": [], "emboss": [], "laplacian": [], "sharpen": [], "Edge_Enhance": [],
    "gaussian": ["sigma", "size", "truncate"], "log": ["sigma", "size", "truncate"],
    "unsharp": ["amount", "sigma", "size", "truncate"], "box": ["size"],
    "binomial": ["size"], "dilated": ["base", "rate"], "motion": ["length", "angle"],
}  # fmt: skip
GARBAGE_SPECS = ["bogus", "", ":", "a:b", "sobel:", "gaussian:sigma", "gaussian:sigma=1;x"]


@st.composite
def kernel_specs(draw: st.DrawFn) -> str:
    """Kernel names with their parameters (any values, sometimes a wrong key), or garbage."""
    if not draw(st.integers(0, 19)):
        return draw(st.sampled_from(GARBAGE_SPECS))
    name = draw(st.sampled_from(sorted(KERNEL_PARAMS)))
    keys = KERNEL_PARAMS[name] + (["bogus"] if not draw(st.integers(0, 9)) else [])
    if not keys:
        return name
    good = [*INTS[0], *FLOATS[0], "sobel", "laplacian", "5"]
    values = pick((good, [*INTS[1], *FLOATS[1], "dilated", "a=b", "gaussian:sigma=1"]))
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
    params = [f"{key}={draw(values)}" for key in chosen]
    return f"{name}:{','.join(params)}" if params else name


def values_for(param: click.Parameter) -> st.SearchStrategy[str]:
    """Values for one option or argument, from its name and then its click type."""
    if param.name in ARGUMENTS and isinstance(param, click.Argument):
        return pick(ARGUMENTS[param.name])
    if param.name in ("kernel_spec", "spec"):
        return kernel_specs()
    if param.name in BY_NAME:
        return pick(BY_NAME[param.name])
    kind = param.type
    if isinstance(kind, click.Choice):
        choices = [str(c) for c in kind.choices]
        return pick((choices, [*(c.upper() for c in choices), "bogus", ""]))
    if "Float" in type(kind).__name__ or kind.name == "NUMBER":
        return pick(FLOATS)
    if "Pair" in type(kind).__name__:
        return pick(PAIRS)
    if kind.name == "N|sum":
        return pick((["sum", "2", "-4"], ["0", *INTS[1]]))
    if isinstance(kind, (click.types.IntParamType, click.IntRange)):
        return pick(INTS)
    return pick((["x"], ["", "{d}/missing", "{d}", "{good}", "-", "é", "a" * 300]))


@st.composite
def command_lines(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """``path`` (e.g. ``("kernels", "show")``) with random options and arguments."""
    command: click.Command = cli
    for name in path:
        # get_command, not .commands: the group loads its commands lazily
        found = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
        assert found is not None, name
        command = found
    argv = list(path)
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    chosen = draw(st.lists(st.sampled_from(options), unique_by=id, max_size=4)) if options else []
    for option in chosen:
        flag = draw(st.sampled_from(option.opts))
        if option.is_flag:
            argv.append(flag)
        else:
            argv += [flag, draw(values_for(option))]
    for argument in (p for p in command.params if isinstance(p, click.Argument)):
        count = 1 if draw(st.integers(0, 9)) else draw(st.sampled_from([0, 2]))
        if argument.nargs == 1:
            count = min(count, 1) if not argument.required else 1
        argv += [draw(values_for(argument)) for _ in range(count)]
    return argv


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def populate(folder: Path) -> dict[str, str]:
    """The inputs a command line may name, written into ``folder``; their placeholders."""
    rng = np.random.default_rng(5)
    files = {
        "good": ("good.png", good_files()["png"]),
        "rgba": ("rgba.png", good_files()["png-rgba"]),
        "g16": ("g16.png", good_files()["png-16"]),
        "gif": ("anim.gif", good_files()["gif"]),
        "npy": ("data.npy", good_files()["npy"]),
        "npy4": ("maps.npy", _npy(rng.random((2, 3, 6, 5), dtype=np.float32))),
        "tensor": ("digit.npy", _npy(rng.random((1, 1, 16, 16), dtype=np.float32))),
        "junk": ("junk.bin", b"\x00junk\xff" * 9),
    }
    names = {key: str(folder / name) for key, (name, _) in files.items()}
    for name, data in files.values():
        (folder / name).write_bytes(data)
    extra = {
        "k.toml": "[kernels.soft]\ngenerator = 'gaussian'\nparams = { sigma = 1.5 }\n"
        "[kernels.edge]\nrows = [[1, 0, -1]]\n",
        "k.txt": "1 2 1\n0 0 0\n-1 -2 -1\n",
        "junk.toml": "[kernels.x\nrows = = 1",
        "junk.npz": "PK\x03\x04 not really",
        "junk.npy": "\x93NUMPY\x01\x00{",
        "junk.onnx": "\x08\x07\x12\x04junk",
        "labels.txt": "a\nb\n",
    }
    for name, text in extra.items():
        (folder / name).write_text(text, encoding="latin1")
    listed = [names[key] for key in ("good", "rgba", "junk", "g16", "npy")]
    (folder / "list.txt").write_text("\n".join(listed) + "\n", encoding="utf-8")
    (folder / "goodlist.txt").write_text("\n".join(listed[:2]) + "\n", encoding="utf-8")
    (folder / "k.npy").write_bytes(_npy(np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])))
    (folder / "empty").mkdir()
    (folder / "oneclass" / "cat").mkdir(parents=True)
    (folder / "oneclass" / "cat" / "a.png").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    for label in ("x", "y"):
        (folder / "junkclasses" / label).mkdir(parents=True)
        (folder / "junkclasses" / label / "a.png").write_bytes(b"\x89PNG broken")
    return {**names, "d": str(folder)}


def run_line(argv: list[str], kind: str) -> None:
    with workdir() as folder:
        names = populate(folder)
        line = [a.format(**names) if "{" in a else a for a in argv]
        stdin = good_files()["png"] if "-" in line else b""
        before = snapshot(folder)
        outcome = invoke(line, stdin=stdin, kind=kind)
        check(outcome, folder, before, what=line, several="--fail-fast" in line)
        # check() holds the whole rule; the one promise above all, stated here too:
        assert "Traceback" not in outcome.stderr, (line, outcome.stderr)


def _fuzz(path: tuple[str, ...], examples: int):  # noqa: ANN202 - a test factory
    @settings(FUZZ, max_examples=examples)
    @given(argv=command_lines(path))
    def test(argv: list[str]) -> None:
        run_line(argv, "options " + " ".join(path))

    test.__name__ = f"test_options_{'_'.join(path)}"
    return test


#: Examples per command: the image commands get most; train only ever sees bad data.
test_options_filter = _fuzz(("filter",), 1500)
test_options_pool = _fuzz(("pool",), 700)
test_options_kernels = _fuzz(("kernels",), 100)
test_options_kernels_show = _fuzz(("kernels", "show"), 400)
test_options_classify = _fuzz(("classify",), 150)
test_options_run = _fuzz(("run",), 150)
test_options_summary = _fuzz(("summary",), 40)
test_options_features = _fuzz(("features",), 200)
test_options_convert = _fuzz(("convert",), 100)
test_options_models = _fuzz(("models",), 5)
test_options_train = _fuzz(("train",), 150)
