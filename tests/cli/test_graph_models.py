"""Graph models on the command line: convert, summary, classify, run (any rank, stdin, layers)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgkernel.cli import cli
from imgkernel.nn import Model, load_model, save_model
from imgkernel.nn.graph import Node, TensorSpec
from imgkernel.nn.layers import Add, Conv2D, Dense, Flatten, GlobalAvgPool, ReLU, Softmax
from imgkernel.nn.spec import InputSpec

RNG = np.random.default_rng(5)


def invoke(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def rand(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def residual_model() -> Model:
    """conv -> relu -> conv, added to the relu's output, -> pool -> dense -> softmax."""
    nodes = [
        Node(Conv2D("conv1", rand(4, 3, 3, 3), rand(4), padding=1), ("image",), ("conv1",)),
        Node(ReLU("relu1"), ("conv1",), ("relu1",)),
        Node(Conv2D("conv2", rand(4, 4, 3, 3), rand(4), padding=1), ("relu1",), ("conv2",)),
        Node(Add("add"), ("conv2", "relu1"), ("add",)),
        Node(GlobalAvgPool("gap"), ("add",), ("gap",)),
        Node(Flatten("flat"), ("gap",), ("flat",)),
        Node(Dense("fc", rand(3, 4), rand(3)), ("flat",), ("fc",)),
        Node(Softmax("softmax"), ("fc",), ("softmax",)),
    ]
    spec = InputSpec(channels=3, height=12, width=12, mean=[0.5] * 3, std=[0.25] * 3)
    inputs = [TensorSpec("image", (None, 3, 12, 12))]
    return Model.from_graph(inputs, nodes, ["softmax"], ["a", "b", "c"], spec)


def mlp_model() -> Model:
    """A model of 64-feature vectors: (N, 64) -> (N, 10) logits, and a second output."""
    nodes = [
        Node(Dense("fc1", rand(16, 64), rand(16)), ("x",), ("fc1",)),
        Node(ReLU("relu"), ("fc1",), ("relu",)),
        Node(Dense("fc2", rand(10, 16), rand(10)), ("relu",), ("logits",)),
        Node(Softmax("probs"), ("logits",), ("probs",)),
    ]
    return Model.from_graph([TensorSpec("x", (None, 64))], nodes, ["logits", "probs"])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"res": tmp_path / "res.npz", "mlp": tmp_path / "mlp.npz"}
    save_model(residual_model(), out["res"])
    save_model(mlp_model(), out["mlp"])
    img = tmp_path / "photo.png"
    Image.fromarray(RNG.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(img)
    out["img"] = img
    np.save(tmp_path / "feats.npy", rand(5, 64))
    out["feats"] = tmp_path / "feats.npy"
    np.save(tmp_path / "x.npy", rand(2, 3, 12, 12))
    out["x"] = tmp_path / "x.npy"
    return out


def npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def test_summary_shows_the_graph_and_the_input_spec(files):
    result = invoke("summary", files["res"])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "input: image  N x 3 x 12 x 12" in text
    assert "RGB 12x12" in text and "mean [0.5, 0.5, 0.5]" in text and "std [0.25" in text
    assert "N x C x H x W" in text
    assert "conv2, relu1" in text  # the inputs column of a non-chain graph
    assert "output: softmax  N x 3 (probabilities)" in text
    text = invoke("summary", files["mlp"]).stdout
    assert "input: x  N x 64" in text and "image:" not in text
    assert "output: logits  N x 10 (raw outputs)" in text


def test_classify_with_a_graph_model(files):
    result = invoke("classify", files["res"], files["img"], "--top", "3")
    assert result.exit_code == 0, result.stderr
    row = result.stdout.strip().split("\t")
    assert len(row) == 7 and sorted(row[1::2]) == ["a", "b", "c"]


def test_run_rank2_input_from_stdin_and_outputs(files, tmp_path):
    x = np.load(files["feats"])
    model = load_model(files["mlp"])
    result = invoke(
        "run", files["mlp"], "-", "--layer", "logits", input=files["feats"].read_bytes()
    )
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(npy(result.stdout_bytes), model.run(x, ["logits"])[0], rtol=1e-6)
    # both outputs by name in a .npz
    out = tmp_path / "both.npz"
    assert invoke("run", files["mlp"], files["feats"], "-o", out).exit_code == 0
    with np.load(out) as z:
        assert sorted(z.files) == ["logits", "probs"]
        np.testing.assert_allclose(z["probs"].sum(axis=1), 1, rtol=1e-5)
    # a single feature vector gets a batch axis
    np.save(tmp_path / "one.npy", x[0])
    result = invoke("run", files["mlp"], tmp_path / "one.npy", "--layer", "probs")
    assert npy(result.stdout_bytes).shape == (1, 10)


def test_run_from_a_layer_continues_the_graph(files, tmp_path):
    x = np.load(files["x"])
    model = load_model(files["res"])
    mid = invoke("run", files["res"], files["x"], "--layer", "relu1")
    assert mid.exit_code == 0, mid.stderr
    # relu1 feeds conv2 and the addition: fed there, the rest runs from it
    end = invoke("run", files["res"], "--from-layer", "conv2", input=mid.stdout_bytes)
    assert end.exit_code == 0, end.stderr
    np.testing.assert_allclose(npy(end.stdout_bytes), model(x), rtol=1e-5, atol=1e-6)


def test_pipeline_through_pool(tmp_path):
    """run --layer | pool | run --from-layer: the digits model's first pooling done by pool."""
    model = load_model("digits")
    x = np.random.default_rng(0).random((2, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    maps = invoke("run", "digits", tmp_path / "x.npy", "--layer", "relu1")
    pooled = invoke("pool", "--size", "2", "--format", "npy", input=maps.stdout_bytes)
    assert pooled.exit_code == 0, pooled.stderr
    assert npy(pooled.stdout_bytes).shape == (2, 32, 8, 8)
    out = invoke("run", "digits", "--from-layer", "conv2d2", input=pooled.stdout_bytes)
    assert out.exit_code == 0, out.stderr
    np.testing.assert_allclose(npy(out.stdout_bytes), model(x), rtol=1e-5, atol=1e-6)


def test_convert_and_classify_an_onnx_graph(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = rand(3, 3, 1, 1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["s"], name="skip"),
        helper.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph), tmp_path / "g.onnx")
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\n")
    result = invoke(
        "convert",
        tmp_path / "g.onnx",
        "-o",
        tmp_path / "g.npz",
        "--labels",
        tmp_path / "labels.txt",
    )
    assert result.exit_code == 0, result.stderr
    assert "5 nodes" in result.stderr
    img = tmp_path / "red.png"
    Image.fromarray(np.full((8, 8, 3), (255, 0, 0), np.uint8)).save(img)
    result = invoke("classify", tmp_path / "g.npz", img)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\t")[1] == "red"


BAD = [
    (["run", "{mlp}", "{x}"], "expected a tensor of shape (n, 64)"),
    (["run", "{mlp}", "{feats}", "{feats}"], "takes 1 input tensor"),
    (["run", "{mlp}", "{feats}"], "has 2 outputs"),
    (["run", "{mlp}", "{feats}", "--from-layer", "nosuch"], "nosuch"),
    (["run", "{res}", "{x}", "--from-layer", "conv2"], "expected a tensor of shape (n, 4, 12, 12)"),
    (["run", "{res}", "{x}", "--from-layer", "99"], "99"),
    (["run", "{res}", "{x}", "--layer", "nosuch"], "nosuch"),
    (["run", "{res}", "{x}", "-o", "{tmp}/out.png"], "*.npy"),
    (["run", "{res}", "-", "-"], "only once"),
    (["classify", "{mlp}", "{img}"], "not images"),
    (["convert", "{mlp}", "-o", "{tmp}/m.npz", "--input-shape", "3,x,y"], "dims"),
    (["convert", "{mlp}", "-o", "{tmp}/m.npz", "--input-shape", "0,3"], "dims"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD)
def test_bad_input_is_one_line_exit_2(files, tmp_path, args, fragment):
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    result = invoke(*[a.format(**names) for a in args], input=b"")
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert fragment.lower() in lines[-1].lower(), result.stderr
    if args[0] == "run" or "--input-shape" not in args:
        assert len(lines) == 1, result.stderr


def test_convert_input_shape_for_dynamic_dims(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph), tmp_path / "d.onnx")
    bad = invoke("convert", tmp_path / "d.onnx", "-o", tmp_path / "d.npz")
    assert bad.exit_code == 2 and "input_shape" in bad.stderr
    ok = invoke("convert", tmp_path / "d.onnx", "-o", tmp_path / "d.npz", "--input-shape", "3,5,7")
    assert ok.exit_code == 0, ok.stderr
    assert load_model(tmp_path / "d.npz").input_shape == (None, 3, 5, 7)
