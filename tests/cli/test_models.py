"""The model commands end to end: classify, run, summary, features, convert, models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli
from imgkernel.nn import Model, classify, load_model, save_model
from imgkernel.nn.layers import Conv2D
from imgkernel.nn.spec import InputSpec

CARDS = Path(__file__).resolve().parents[2] / "sample_images" / "cards"


def invoke(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def stripes(tmp_path: Path) -> tuple[Path, Path]:
    size = 32
    cols = (np.arange(size) // 4) % 2 * 255
    vertical = np.tile(cols, (size, 1)).astype(np.uint8)
    paths = []
    for name, pixels in (("v.png", vertical), ("h.png", vertical.T.copy())):
        path = tmp_path / name
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths[0], paths[1]


def seeds_model() -> Model:
    """The lecture notes' question: 256x256x3 through 64 filters of 3x3, stride 1."""
    rng = np.random.default_rng(0)
    layers = [
        Conv2D(
            "conv",
            weight=rng.standard_normal((64, 3, 3, 3)).astype(np.float32),
            bias=np.zeros(64, np.float32),
        ),
    ]
    return Model.from_layers(layers, [], InputSpec(channels=3, height=256, width=256))


def test_classify_stripes_lines_top_and_json(stripes: tuple[Path, Path]) -> None:
    v, h = stripes
    result = invoke("classify", "stripes", v, h)
    assert result.exit_code == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(row[0], row[1]) for row in lines] == [(str(v), "vertical"), (str(h), "horizontal")]
    assert all(float(row[2]) > 0.9 for row in lines)
    result = invoke("classify", "stripes", v, "--top", "2")
    row = result.stdout.strip().split("\t")
    assert len(row) == 5 and {row[1], row[3]} == {"vertical", "horizontal"}
    assert abs(float(row[2]) + float(row[4]) - 1) < 1e-3
    result = invoke("classify", "stripes", h, "--json", "--top", "2")
    data = json.loads(result.stdout)
    assert data["path"] == str(h) and data["label"] == "horizontal"
    assert [t["label"] for t in data["top"]] == ["horizontal", "vertical"]


def test_classify_matches_library_and_reads_stdin(stripes: tuple[Path, Path]) -> None:
    v, _ = stripes
    model = load_model("stripes")
    expected = classify(model, [np.asarray(Image.open(v))], top=1)[0][0]
    result = invoke("classify", "stripes", "-", input=v.read_bytes())
    assert result.exit_code == 0, result.stderr
    path, label, prob = result.stdout.strip().split("\t")
    assert (path, label) == ("-", expected[0])
    assert abs(float(prob) - expected[1]) < 1e-4


def test_classify_bundled_cards() -> None:
    v, h = CARDS / "stripes-vertical.png", CARDS / "stripes-horizontal.png"
    result = invoke("classify", "stripes", v, h, "--batch-size", "1")
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == [
        "vertical",
        "horizontal",
    ]


def test_summary_answers_the_seed_question(tmp_path: Path) -> None:
    path = tmp_path / "seed.npz"
    save_model(seeds_model(), path)
    result = invoke("summary", path)
    assert result.exit_code == 0, result.stderr
    assert "64 x 254 x 254" in result.stdout
    assert "1,792" in result.stdout


def test_run_full_and_until_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert invoke("run", "stripes", tmp_path / "x.npy", "-o", out).exit_code == 0
    model = load_model("stripes")
    np.testing.assert_allclose(np.load(out), model.forward(x), rtol=1e-5, atol=1e-6)
    assert invoke("run", "stripes", tmp_path / "x.npy", "-o", out, "--layer", "relu").exit_code == 0
    np.testing.assert_allclose(np.load(out), model.forward(x, until="relu"), atol=1e-5)
    assert np.load(out).shape == (3, 2, 30, 30)
    assert invoke("run", "stripes", tmp_path / "x.npy", "-o", out, "--layer", "0").exit_code == 0
    assert np.load(out).shape == (3, 2, 30, 30)


def test_features_grid_and_weights(stripes: tuple[Path, Path], tmp_path: Path) -> None:
    v, _ = stripes
    out = tmp_path / "maps.png"
    result = invoke("features", "stripes", v, "--layer", "edges", "-o", out)
    assert result.exit_code == 0, result.stderr
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 2 and grid.shape[1] > grid.shape[0]  # two tiles side by side
    out = tmp_path / "w.png"
    assert invoke("features", "stripes", "--weights", "-o", out).exit_code == 0
    assert Image.open(out).size[0] > 0


def test_models_lists_bundled() -> None:
    result = invoke("models")
    assert result.exit_code == 0
    assert "stripes" in result.stdout


def test_convert_onnx_roundtrip(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((3, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
            helper.make_node("Softmax", ["y"], ["p"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")],
    )
    model_path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    out = tmp_path / "tiny.npz"
    result = invoke("convert", model_path, "-o", out, "--labels", labels)
    assert result.exit_code == 0, result.stderr
    model = load_model(str(out))
    assert model.labels == ["a", "b", "c"]
    from onnx.reference import ReferenceEvaluator

    x = rng.random((1, 1, 8, 8)).astype(np.float32)
    (expected,) = ReferenceEvaluator(onnx.load(model_path)).run(None, {"x": x})
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-6)


def write_bad_models(tmp: Path) -> dict[str, Path]:
    bad: dict[str, Path] = {}
    bad["text"] = tmp / "text.npz"
    bad["text"].write_text("hello")
    bad["pickled"] = tmp / "pickled.npz"
    np.savez(bad["pickled"], __model__=np.array([{"a": 1}], dtype=object))
    bad["foreign"] = tmp / "foreign.npz"
    np.savez(bad["foreign"], weights=np.zeros(3))
    good = tmp / "good.npz"
    save_model(load_model("stripes"), good)
    with np.load(good) as archive:
        entries = dict(archive)
    header = json.loads(str(entries["__model__"]))
    header["nodes"][4]["weight"] = "missing.weight"
    bad["missing"] = tmp / "missing.npz"
    np.savez(bad["missing"], **{**entries, "__model__": np.array(json.dumps(header))})
    wrong = dict(entries)
    fc_name = json.loads(str(entries["__model__"]))["nodes"][4]["weight"]
    wrong[fc_name] = np.zeros((2, 5), np.float32)
    bad["shapes"] = tmp / "shapes.npz"
    np.savez(bad["shapes"], **wrong)
    return bad


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("text", "not an npz"),
        ("pickled", "pickle"),
        ("foreign", "not an imgkernel model"),
        ("missing", "node 4"),
        ("shapes", "node 4"),
    ],
)
@pytest.mark.parametrize("command", ["classify", "summary", "run"])
def test_bad_model_files(
    case: str, fragment: str, command: str, tmp_path: Path, stripes: tuple[Path, Path]
) -> None:
    bad = write_bad_models(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    args = {
        "classify": ["classify", bad[case], stripes[0]],
        "summary": ["summary", bad[case]],
        "run": ["run", bad[case], tmp_path / "x.npy", "-o", tmp_path / "y.npy"],
    }[command]
    result = invoke(*args)
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert fragment in lines[0].lower() or fragment in lines[0]
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["classify", "nosuchmodel", "{img}"], "no model file"),
        (["classify", "stripes", "{missing}"], "no such file"),
        (["classify", "stripes", "{text}"], "not a recognised image"),
        (["classify", "stripes", "{img}", "--top", "0"], "top"),
        (
            ["run", "stripes", "{bad_tensor}", "-o", "{out_npy}"],
            "expected a tensor of shape (n, 1, 32, 32)",
        ),
        (["run", "stripes", "{img}", "-o", "{out_npy}"], "not a .npy"),
        (["run", "stripes", "{tensor}", "-o", "{out_npy}", "--layer", "nosuch"], "nosuch"),
        (["run", "stripes", "{tensor}", "-o", "{out_png}"], "*.npy"),
        (["features", "stripes", "{img}", "-o", "{out_png}"], "--layer"),
        (["features", "stripes", "{img}", "--layer", "99", "-o", "{out_png}"], "99"),
        (["convert", "{missing}", "-o", "{out}"], "missing"),
        (["convert", "{text}", "-o", "{out}"], "onnx"),
    ],
)
def test_bad_model_command_input(
    args: list[str], fragment: str, tmp_path: Path, stripes: tuple[Path, Path]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("plain text\n")
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 5, 5), np.float32))
    np.save(tmp_path / "good.npy", np.zeros((1, 1, 32, 32), np.float32))
    names = {
        "img": str(stripes[0]),
        "missing": str(tmp_path / "missing.png"),
        "text": str(text),
        "bad_tensor": str(tmp_path / "bad.npy"),
        "tensor": str(tmp_path / "good.npy"),
        "out": str(tmp_path / "out.npz"),
        "out_png": str(tmp_path / "out.png"),
        "out_npy": str(tmp_path / "out.npy"),
    }
    result = invoke(*[a.format(**names) for a in args])
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert fragment.lower() in lines[0].lower()
    for name in ("out.npz", "out.png", "out.npy"):
        assert not (tmp_path / name).exists()


def test_features_of_flat_layers_are_visible_and_large_grids_warn(tmp_path: Path) -> None:
    digit = Path(__file__).resolve().parents[2] / "sample_images" / "digits"
    image = sorted(digit.glob("digit-3-*.png"))[0]
    out = tmp_path / "dense.png"
    result = invoke("features", "digits", image, "--layer", "dense1", "-o", out)
    assert result.exit_code == 0, result.stderr
    grid = np.asarray(Image.open(out))
    assert grid.max() == 255 and grid.min() == 0  # not all black: 1x1 maps share one scale
    result = invoke("features", "digits", "--weights", "--layer", "conv2d2", "-o", out)
    assert result.exit_code == 0
    assert "first 256 of 2048" in result.stderr
