"""Graph models: building, file format version 2, validation naming the node, running plans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.nn import Model, load_model, save_model
from imgkernel.nn.graph import Node, TensorSpec
from imgkernel.nn.layers import (
    Add,
    BatchNorm,
    Concat,
    Constant,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
)
from imgkernel.nn.spec import InputSpec

RNG = np.random.default_rng(11)


def rand(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def branchy() -> Model:
    """Two branches from one relu (one overwritten in place), joined by add and concat."""
    nodes = [
        Node(Conv2D("c1", rand(4, 3, 3, 3), rand(4), padding=1), ("x",), ("c1",)),
        Node(ReLU("r1"), ("c1",), ("r1",)),
        Node(Sigmoid("s"), ("r1",), ("s",)),  # may overwrite nothing: r1 is read again
        Node(Conv2D("c2", rand(4, 4, 1, 1)), ("r1",), ("c2",)),
        Node(Add("add"), ("c2", "s"), ("add",)),
        Node(Concat("cat", axis=1), ("add", "r1"), ("cat",)),
        Node(MaxPool("pool", size=2), ("cat",), ("pool",)),
        Node(GlobalAvgPool("gap"), ("pool",), ("gap",)),
        Node(Flatten("flat"), ("gap",), ("flat",)),
        Node(Dense("fc", rand(5, 8), rand(5)), ("flat",), ("fc",)),
        Node(Softmax("sm"), ("fc",), ("sm",)),
    ]
    return Model.from_graph([TensorSpec("x", (None, 3, 6, 6))], nodes, ["sm", "c1"])


def reference(x: np.ndarray, m: Model) -> dict[str, np.ndarray]:
    """Every tensor computed node by node, without plans, in-place work or splitting."""
    env = {"x": x}
    for node in m.nodes:
        outs = node.layer.run([np.array(env[t]) for t in node.inputs])
        env.update(zip(node.outputs, outs, strict=True))
    return env


def test_graph_runs_like_node_by_node_and_keeps_inputs():
    m = branchy()
    x = rand(3, 3, 6, 6)
    kept = x.copy()
    want = reference(x, m)
    sm, c1 = m.run(x)
    np.testing.assert_allclose(sm, want["sm"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c1, want["c1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, kept)  # the caller's array is never overwritten
    assert not m.is_sequential and m.output_shape == (None, 5)
    # any tensor on the way, and from any tensor on
    np.testing.assert_allclose(m.forward(x, until="s"), want["s"], rtol=1e-6)
    r1 = want["r1"].copy()
    got = m.run({"r1": r1}, ["sm"])[0]
    np.testing.assert_allclose(got, want["sm"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r1, want["r1"])
    with pytest.raises(UsageError, match="needs the graph input 'x'"):
        m.run({"r1": r1}, ["c1"])


def test_batches_split_over_threads_match(monkeypatch):
    m = branchy()
    x = rand(5, 3, 6, 6)
    whole = m.run(x)[0]
    assert next(iter(m._plans.values())).separable
    monkeypatch.setattr("imgkernel.nn.plan.PARALLEL_MACS", 0)  # split even this small model
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("IMGKERNEL_THREADS", threads)
        np.testing.assert_allclose(m.run(x)[0], whole, rtol=1e-6)
    one = [m.run(x[i : i + 1])[0] for i in range(5)]
    np.testing.assert_allclose(np.concatenate(one), whole, rtol=1e-5, atol=1e-7)


def test_a_batch_mixing_node_is_not_split():
    nodes = [
        Node(Reshape("r", shape=[-1]), ("x",), ("r",)),  # folds the batch into one axis
        Node(Softmax("sm", axis=0), ("r",), ("sm",)),
    ]
    m = Model.from_graph([TensorSpec("x", (None, 3))], nodes, ["sm"])
    x = rand(4, 3)
    m(x)
    assert not next(iter(m._plans.values())).separable
    e = np.exp(x.reshape(-1) - x.max())
    np.testing.assert_allclose(m(x), e / e.sum(), rtol=1e-6)


def test_batchnorm_after_conv_is_folded_in_the_plan_only():
    conv = Conv2D("c", rand(2, 1, 3, 3), rand(2))
    bn = BatchNorm("bn", rand(2) + 1, rand(2), rand(2), np.abs(rand(2)) + 0.5)
    m = Model([conv, bn, ReLU("r")], input_spec=InputSpec(1, 5, 5))
    x = rand(2, 1, 5, 5)
    want = np.maximum(bn(conv(x)), 0)
    np.testing.assert_allclose(m(x), want, rtol=1e-5, atol=1e-6)
    plan = next(iter(m._plans.values()))
    assert [st.layer.type for st in plan.steps] == ["conv2d", "relu"]
    # the conv's own output is still there when asked for
    np.testing.assert_allclose(m.forward(x, until="c"), conv(x), rtol=1e-6)
    assert [n.type for n in m.nodes] == ["conv2d", "batchnorm", "relu"]


def test_constant_operands_are_never_overwritten():
    c = Constant("bias", value=np.ones((1, 3), np.float32))
    nodes = [
        Node(c, (), ("bias",)),
        Node(Add("a1"), ("bias", "x"), ("a1",)),  # the constant first: never written
        Node(ReLU("r"), ("a1",), ("r",)),
    ]
    m = Model.from_graph([TensorSpec("x", (None, 3))], nodes, ["r"])
    x = rand(4, 3)
    for _ in range(2):
        np.testing.assert_allclose(m(x), np.maximum(x + 1, 0), rtol=1e-6)
    np.testing.assert_array_equal(c.value, 1)


def test_file_round_trip_of_a_graph(tmp_path: Path):
    m = branchy()
    save_model(m, tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz") as z:
        header = json.loads(str(z["__model__"]))
    assert header["version"] == 2 and header["outputs"] == ["sm", "c1"]
    assert header["inputs"] == [{"name": "x", "shape": [None, 3, 6, 6]}]
    assert header["nodes"][4]["inputs"] == ["c2", "s"]
    loaded = load_model(tmp_path / "g.npz")
    assert loaded.to_json() == m.to_json()
    x = rand(2, 3, 6, 6)
    for a, b in zip(loaded.run(x), m.run(x), strict=True):
        np.testing.assert_array_equal(a, b)


def write(path: Path, header: dict, **arrays: np.ndarray) -> Path:
    np.savez(path, __model__=np.array(json.dumps(header)), **arrays)
    return path


def v2(nodes: list, **extra) -> dict:
    h = {
        "format": "imgkernel-model",
        "version": 2,
        "inputs": [{"name": "x", "shape": [None, 4]}],
        "nodes": nodes,
    }
    h.update(extra)
    return h


def test_handwritten_sequential_v2_needs_no_tensor_names(tmp_path: Path):
    header = v2(
        [
            {"type": "dense", "name": "fc", "weight": "w"},
            {"type": "relu", "name": "relu"},
            {"type": "softmax", "name": "sm"},
        ],
        labels=["a", "b"],
    )
    m = load_model(write(tmp_path / "s.npz", header, w=rand(2, 4)))
    assert m.is_sequential and m.output_shape == (None, 2) and m.input_spec is None
    assert m.ends_in_softmax()


FC = {"type": "dense", "name": "fc", "weight": "w"}


@pytest.mark.parametrize(
    "header,match",
    [
        (v2([{**FC, "inputs": ["nope"]}]), r"node 0 \('fc', dense\): input 'nope' is neither"),
        (
            v2([FC, {**FC, "name": "fc2", "inputs": ["x"], "outputs": ["fc"]}]),
            r"node 1 .*'fc' is already defined",
        ),
        (v2([FC], outputs=["zz"]), "graph output 'zz' is not a tensor"),
        (v2([FC], outputs="fc"), "'outputs' must be a list"),
        (v2([{**FC, "inputs": "x"}]), r"node 0 \('fc', dense\): inputs must be a list"),
        (
            v2([FC], inputs=[{"name": "x"}]),
            "graph input 0 must be an object with 'name' and 'shape'",
        ),
        (v2([FC], inputs=[{"name": "x", "shape": [None, -4]}]), "dims must be integers >= 0"),
        (v2([FC], inputs=[{"name": "x", "shape": [None, 5]}]), r"node 0.*expects 4 input features"),
        (v2([FC], inputs=[]), "non-empty list"),
        (v2([FC], layers=[]), "unknown model header key"),
        (
            v2([{"type": "add", "name": "a", "inputs": ["x"]}]),
            r"node 0 \('a', add\): takes 2 input",
        ),
        (
            v2([{"type": "resize", "name": "r", "scales": [1, 2e9]}]),
            r"node 0 \('r', resize\): output .* is too large",
        ),
        (
            v2([FC], input={"channels": 3, "height": 2, "width": 2}),
            "does not match graph input 'x'",
        ),
    ],
)
def test_v2_validation_names_the_node(tmp_path: Path, header: dict, match: str):
    with pytest.raises(UsageError, match=match) as exc:
        load_model(write(tmp_path / "bad.npz", header, w=rand(2, 4)))
    assert str(exc.value).startswith(str(tmp_path / "bad.npz"))


def test_v1_files_still_load(tmp_path: Path):
    header = {
        "format": "imgkernel-model",
        "version": 1,
        "input": {"channels": 1, "height": 4, "width": 4},
        "layers": [
            {"type": "flatten", "name": "f"},
            {"type": "dense", "name": "fc", "weight": "w"},
        ],
    }
    m = load_model(write(tmp_path / "v1.npz", header, w=rand(3, 16)))
    assert m.is_sequential and m.output_shape == (None, 3)
    bad = dict(header, layers=[{"type": "relu", "name": "r", "inputs": ["x"]}])
    with pytest.raises(UsageError, match=r"layer 0 \('r', relu\): unknown attribute"):
        load_model(write(tmp_path / "v1bad.npz", bad))
    for name in ("digits", "stripes"):  # the bundled version-1 files
        assert load_model(name).is_sequential


def test_handwritten_graph_with_a_constant(tmp_path: Path):
    header = v2(
        [
            {"type": "constant", "name": "shift", "value": "shift"},
            {"type": "add", "name": "plus", "inputs": ["x", "shift"]},
            {"type": "relu", "name": "relu"},
        ]
    )
    m = load_model(write(tmp_path / "c.npz", header, shift=np.arange(4, dtype=np.float32)))
    x = rand(3, 4)
    np.testing.assert_allclose(m(x), np.maximum(x + np.arange(4), 0), rtol=1e-6)
    assert [n.inputs for n in m.nodes] == [(), ("x", "shift"), ("plus",)]
