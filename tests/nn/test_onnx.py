"""ONNX import: parity with onnx.reference.ReferenceEvaluator, op by op and on whole CNNs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from imgkernel.errors import UsageError  # noqa: E402
from imgkernel.nn import load_model, save_model  # noqa: E402
from imgkernel.nn.onnx import convert_onnx  # noqa: E402

RNG = np.random.default_rng(99)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def make_graph(nodes, input_shape, inits=None, opset=17, output="y"):
    """A chain graph: input "x" (N, C, H, W) -> nodes -> output."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(model_proto, x, rtol=1e-4, atol=1e-5, tmp_path: Path | None = None):
    want = ReferenceEvaluator(model_proto).run(None, {"x": x})[0]
    m = convert_onnx(model_proto)
    got = m(x)
    assert got.shape == want.shape
    assert len(m.output_shape) == want.ndim
    assert all(a is None or a == b for a, b in zip(m.output_shape, want.shape, strict=True))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    if tmp_path is not None:  # through a file and the imgkernel format too
        p = tmp_path / "m.onnx"
        onnx.save(model_proto, p)
        m2 = convert_onnx(p)
        save_model(m2, tmp_path / "m.npz")
        np.testing.assert_allclose(load_model(tmp_path / "m.npz")(x), want, rtol=rtol, atol=atol)
    return m


CONV_CASES = [
    {},
    {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"pads": [0, 2, 1, 0]},  # asymmetric: top 0, left 2, bottom 1, right 0
    {"dilations": [2, 1], "pads": [2, 1, 2, 1]},
    {"auto_pad": "SAME_UPPER"},
    {"auto_pad": "SAME_LOWER"},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "VALID", "strides": [1, 2]},
    {"group": 3},
]


@pytest.mark.parametrize("attrs", CONV_CASES)
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4)])
def test_conv(attrs, kernel):
    groups = attrs.get("group", 1)
    w = rand(6, 3 // groups, *kernel)
    b = rand(6)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=list(kernel), **attrs)
    check(make_graph([node], [2, 3, 9, 10], {"w": w, "b": b}), rand(2, 3, 9, 10))


def test_conv_without_bias(tmp_path):
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    check(
        make_graph([node], [1, 1, 6, 6], {"w": rand(4, 1, 3, 3)}),
        rand(1, 1, 6, 6),
        tmp_path=tmp_path,
    )


POOL_CASES = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 0, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 2], "auto_pad": "VALID", "strides": [1, 2]},
    {"kernel_shape": [3, 3]},
]


@pytest.mark.parametrize("attrs", POOL_CASES)
def test_maxpool(attrs):
    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    check(make_graph([node], [2, 3, 9, 8]), rand(2, 3, 9, 8))


def test_maxpool_dilation():
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]
    )
    check(make_graph([node], [1, 3, 9, 8]), rand(1, 3, 9, 8))


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("include", [0, 1])
def test_averagepool(attrs, include):
    node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=include, **attrs)
    check(make_graph([node], [2, 3, 9, 8]), rand(2, 3, 9, 8))


@pytest.mark.parametrize(
    "op,attrs",
    [
        ("Relu", {}),
        ("LeakyRelu", {}),
        ("LeakyRelu", {"alpha": 0.3}),
        ("Sigmoid", {}),
        ("Tanh", {}),
        ("GlobalAveragePool", {}),
        ("GlobalMaxPool", {}),
        ("Identity", {}),
        ("Dropout", {}),
        ("Softmax", {}),
        ("Softmax", {"axis": 1}),
        ("Softmax", {"axis": 2}),
        ("Flatten", {}),
        ("Flatten", {"axis": 0}),
        ("Flatten", {"axis": 3}),
        ("Flatten", {"axis": -2}),
    ],
)
def test_elementwise_and_shape_ops(op, attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    check(make_graph([node], [2, 3, 5, 4]), rand(2, 3, 5, 4) * 3)


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (None, 1.0), (0.0, None), (None, None)])
def test_clip_opset13_inputs(lo, hi):
    inits = {}
    inputs = ["x", "", ""]
    if lo is not None:
        inits["lo"] = np.array(lo, np.float32)
        inputs[1] = "lo"
    if hi is not None:
        inits["hi"] = np.array(hi, np.float32)
        inputs[2] = "hi"
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("Clip", inputs, ["y"])
    check(make_graph([node], [1, 3, 4, 4], inits), rand(1, 3, 4, 4))


def test_clip_opset6_attributes():
    node = helper.make_node("Clip", ["x"], ["y"], min=-0.25, max=0.75)
    check(make_graph([node], [1, 3, 4, 4], opset=6), rand(1, 3, 4, 4))


def test_softmax_opset11():
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Softmax", ["f"], ["y"]),
    ]
    check(make_graph(nodes, [2, 3, 2, 2], opset=11), rand(2, 3, 2, 2))
    # before opset 13 the softmax spans all the axes from `axis` on (the input
    # coerced to 2-D; onnx.reference takes only `axis`, onnxruntime agrees with this)
    x = rand(2, 3, 2, 2)
    for axis in (0, 1, 2, -1):
        a = axis % 4
        flat = x.reshape(int(np.prod(x.shape[:a])), -1)
        e = np.exp(flat - flat.max(axis=1, keepdims=True))
        want = (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)
        for op_type, expect in (("Softmax", want), ("LogSoftmax", np.log(want))):
            node = helper.make_node(op_type, ["x"], ["y"], axis=axis)
            m = convert_onnx(make_graph([node], [2, 3, 2, 2], opset=11))
            np.testing.assert_allclose(m(x), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "attrs,bshape,cshape",
    [
        ({}, (48, 5), (5,)),
        ({"transB": 1}, (5, 48), (5,)),
        ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (5, 48), (1, 5)),
        ({"alpha": 1.5}, (48, 5), None),
        ({"beta": 0.5}, (48, 5), (1,)),
    ],
)
def test_gemm(attrs, bshape, cshape):
    inits = {"b": rand(*bshape)}
    inputs = ["f", "b"]
    if cshape is not None:
        inits["c"] = rand(*cshape)
        inputs.append("c")
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Gemm", inputs, ["y"], **attrs),
    ]
    check(make_graph(nodes, [3, 3, 4, 4], inits), rand(3, 3, 4, 4))


def test_gemm_trans_a():
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=0),  # (1, 48)
        helper.make_node("Gemm", ["f", "b"], ["y"], transA=1),  # A^T is (48, 1)
    ]
    check(make_graph(nodes, [1, 3, 4, 4], {"b": rand(1, 6)}), rand(1, 3, 4, 4))


def test_matmul_add_and_reshape():
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["y"]),
    ]
    inits = {"shape": np.array([0, -1], np.int64), "w": rand(48, 7), "bias": rand(7)}
    m = check(make_graph(nodes, [2, 3, 4, 4], inits), rand(2, 3, 4, 4))
    assert [layer.type for layer in m.layers] == ["reshape", "dense"]
    # -1 first, and the shape from a Constant node
    nodes2 = [
        helper.make_node(
            "Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1, 48], np.int64))
        ),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    check(make_graph(nodes2, [2, 3, 4, 4]), rand(2, 3, 4, 4))


def test_conv_add_bias():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Add", ["c", "bias"], ["y"]),
    ]
    inits = {"w": rand(4, 3, 3, 3), "bias": rand(1, 4, 1, 1)}
    check(make_graph(nodes, [2, 3, 6, 6], inits), rand(2, 3, 6, 6))


@pytest.mark.parametrize("fold", [True, False])
def test_batchnorm(fold):
    nodes = [
        helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "mean", "var"], ["y"], epsilon=1e-3),
    ]
    inits = {
        "w": rand(4, 3, 3, 3),
        "cb": rand(4),
        "s": rand(4),
        "b": rand(4),
        "mean": rand(4),
        "var": np.abs(rand(4)) + 0.5,
    }
    proto = make_graph(nodes, [2, 3, 6, 6], inits)
    x = rand(2, 3, 6, 6)
    want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    m = convert_onnx(proto, fold_batchnorm=fold)
    assert [layer.type for layer in m.layers] == (["conv2d"] if fold else ["conv2d", "batchnorm"])
    np.testing.assert_allclose(m(x), want, rtol=1e-4, atol=1e-4)
    # a BatchNormalization that does not follow a conv stays a layer
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"])
    inits3 = {k: v[:3] for k, v in inits.items() if k in ("s", "b", "mean", "var")}
    check(make_graph([bn], [2, 3, 4, 4], inits3), rand(2, 3, 4, 4))


def random_cnn(seed: int):
    """PyTorch-export-like chain: [Conv act Pool]* -> Flatten (Gemm ... Softmax added later)."""
    rng = np.random.default_rng(seed)
    c = int(rng.choice([1, 3]))
    h, w = int(rng.integers(12, 24)), int(rng.integers(12, 24))
    nodes, inits = [], {}
    cur, name = "x", 0

    def out():
        nonlocal name
        name += 1
        return f"t{name}"

    ch = c
    for i in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, 5))
        filters = int(rng.integers(2, 8))
        inits[f"w{i}"] = rng.standard_normal((filters, ch, k, k)).astype(np.float32) * 0.5
        inits[f"b{i}"] = rng.standard_normal(filters).astype(np.float32)
        attrs = {"kernel_shape": [k, k], "pads": [k // 2] * 4}
        if rng.random() < 0.3:
            attrs = {
                "kernel_shape": [k, k],
                "auto_pad": str(rng.choice(["SAME_UPPER", "SAME_LOWER"])),
            }
        t = out()
        nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [t], **attrs))
        cur = t
        act = str(rng.choice(["Relu", "LeakyRelu", "Tanh", "Sigmoid"]))
        t = out()
        nodes.append(helper.make_node(act, [cur], [t]))
        cur = t
        pool = str(rng.choice(["MaxPool", "AveragePool"]))
        t = out()
        nodes.append(
            helper.make_node(
                pool,
                [cur],
                [t],
                kernel_shape=[2, 2],
                strides=[2, 2],
                ceil_mode=int(rng.integers(0, 2)),
            )
        )
        cur = t
        ch = filters
        h, w = -(-h // 2), -(-w // 2)  # upper bound; exact size read from the model
    t = out()
    nodes.append(helper.make_node("Flatten", [cur], [t]))
    cur = t
    return nodes, inits, cur, c, rng


@pytest.mark.parametrize("seed", range(12))
def test_random_cnn_graphs(seed):
    nodes, inits, cur, c, rng = random_cnn(seed)
    h, w = int(rng.integers(12, 24)), int(rng.integers(12, 24))
    # find the flatten width with the reference evaluator
    probe = make_graph(nodes, [2, c, h, w], inits, output=cur)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    feats = ReferenceEvaluator(probe).run(None, {"x": x})[0].shape[1]
    hidden = int(rng.integers(4, 12))
    inits["fc1"] = rng.standard_normal((hidden, feats)).astype(np.float32) * 0.3
    inits["fb1"] = rng.standard_normal(hidden).astype(np.float32)
    inits["fc2"] = rng.standard_normal((hidden, 5)).astype(np.float32)
    nodes = nodes + [
        helper.make_node("Gemm", [cur, "fc1", "fb1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("Dropout", ["r1"], ["d1"]),
        helper.make_node("Gemm", ["d1", "fc2"], ["g2"]),
        helper.make_node("Softmax", ["g2"], ["y"], axis=1),
    ]
    m = check(make_graph(nodes, [2, c, h, w], inits), x)
    assert m.layers[-1].type == "softmax"
    assert m.input_spec.shape == (c, h, w)


def test_labels_and_input_spec_options():
    node = helper.make_node("Flatten", ["x"], ["y"])
    proto = make_graph([node], [1, 1, 2, 2])
    m = convert_onnx(proto, labels=list("abcd"), mean=[0.5], std=[0.25], resize="crop")
    assert m.labels == list("abcd") and m.input_spec.mean == [0.5]
    assert m.input_spec.resize == "crop" and m.input_spec.color == "L"
    with pytest.raises(UsageError, match="labels"):
        convert_onnx(proto, labels=["a"])


def test_unsupported_operator_names_node_and_op():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="act"),
        helper.make_node("DepthToSpace", ["r"], ["y"], name="norm1", blocksize=2),
    ]
    with pytest.raises(
        UsageError, match=r"node 1 \('norm1', DepthToSpace\): unsupported operator DepthToSpace"
    ):
        convert_onnx(make_graph(nodes, [1, 3, 4, 4]))


def test_branching_graph_converts():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Sigmoid", ["x"], ["b"], name="branch"),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    m = check(make_graph(nodes, [1, 3, 4, 4]), rand(2, 3, 4, 4))
    assert not m.is_sequential and [n.inputs for n in m.nodes][-1] == ("relu0", "branch")


def test_bad_inputs(tmp_path):
    with pytest.raises(UsageError, match="no such ONNX file"):
        convert_onnx(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(UsageError):
        convert_onnx(tmp_path / "junk.onnx")
    node = helper.make_node("Relu", ["x"], ["y"])
    with pytest.raises(UsageError, match="dynamic"):
        convert_onnx(make_graph([node], ["N", 3, "H", "W"]))
    m = convert_onnx(make_graph([node], ["N", 3, "H", "W"]), input_shape=(3, 5, 5))
    assert m.input_spec.shape == (3, 5, 5)
    # four channels: not an image batch, a tensor model (run, not classify)
    assert convert_onnx(make_graph([node], [1, 4, 5, 5])).input_spec is None
    with pytest.raises(UsageError, match="mean and std do not apply"):
        convert_onnx(make_graph([node], [1, 4, 5, 5]), mean=[0.5] * 4)


def test_missing_onnx_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UsageError, match=r"pip install 'imgkernel\[onnx\]'"):
        convert_onnx("whatever.onnx")


def test_torch_export_parity(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=(1, 0)),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
        nn.Dropout(),
        nn.Softmax(dim=1),
    ).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    x = torch.randn(4, 3, 16, 14)
    buf = io.BytesIO()
    try:
        torch.onnx.export(net, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"])
    except Exception as exc:  # exporter missing pieces offline
        pytest.skip(f"torch.onnx.export failed: {type(exc).__name__}: {exc}")
    path = tmp_path / "net.onnx"
    path.write_bytes(buf.getvalue())
    m = convert_onnx(path, labels=[f"c{i}" for i in range(10)])
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(m(x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_oversized_input_is_rejected_naming_the_source():
    node = helper.make_node("Relu", ["x"], ["y"])
    with pytest.raises(UsageError, match=r"^<ModelProto>: input height must be at most 16384"):
        convert_onnx(make_graph([node], [1, 3, 100000, 5]))


def _view_flatten_net(torch, in_ch: int = 1):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, 2, 3)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(2 * 4 * 4, 5)

        def forward(self, x):
            x = self.pool(torch.relu(self.conv(x)))
            x = x.view(x.size(0), -1)  # the most common PyTorch flatten
            return self.fc(x)

    torch.manual_seed(3)
    return Net().eval()


def _export(torch, net, x, **kwargs) -> bytes:
    buf = io.BytesIO()
    try:
        torch.onnx.export(
            net, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"], **kwargs
        )
    except Exception as exc:  # exporter missing pieces offline
        pytest.skip(f"torch.onnx.export failed: {type(exc).__name__}: {exc}")
    return buf.getvalue()


@pytest.mark.parametrize("export_batch", [1, 2])
def test_torch_view_flatten_static_batch(tmp_path, export_batch):
    torch = pytest.importorskip("torch")
    net = _view_flatten_net(torch)
    path = tmp_path / "view.onnx"
    path.write_bytes(_export(torch, net, torch.randn(export_batch, 1, 10, 10)))
    # the exporter folded the flatten into a constant Reshape target [batch, -1]
    proto = onnx.load(path)
    assert "Reshape" in [n.op_type for n in proto.graph.node]
    m = convert_onnx(path)
    assert m.output_shape == (None, 5)
    x = torch.randn(3, 1, 10, 10)  # any batch size runs
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(m(x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_torch_view_flatten_dynamic_batch(tmp_path):
    torch = pytest.importorskip("torch")
    net = _view_flatten_net(torch, in_ch=3)
    data = _export(
        torch,
        net,
        torch.randn(2, 3, 10, 10),
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert "Shape" in ops and "Concat" in ops  # the batch size is computed in the graph
    path = tmp_path / "dyn.onnx"
    path.write_bytes(data)
    m = convert_onnx(path, labels=list("abcde"))
    assert m.output_shape == (None, 5)
    x = torch.randn(4, 3, 10, 10)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(m(x.numpy()), want, rtol=1e-4, atol=1e-5)
    save_model(m, tmp_path / "dyn.npz")
    np.testing.assert_allclose(
        load_model(tmp_path / "dyn.npz")(x.numpy()), want, rtol=1e-4, atol=1e-5
    )


def test_shape_ops_outside_a_flatten_get_a_hint():
    # Gather on the data itself (not on its shape) is not a shape computation
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)]
    proto = make_graph(nodes, [1, 3, 4, 4], {"i": np.array([0], np.int64)})
    with pytest.raises(
        UsageError, match=r"use torch\.flatten\(x, 1\) or export with a static batch"
    ):
        convert_onnx(proto)
    # a shape computation that is not batch x features
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
        helper.make_node("Concat", ["m1", "nu"], ["t"], axis=0),
        helper.make_node("Reshape", ["x", "t"], ["y"]),
    ]
    inits = {
        "i": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "m1": np.array([-1], np.int64),
    }
    with pytest.raises(UsageError, match=r"Reshape.*torch\.flatten\(x, 1\)"):
        convert_onnx(make_graph(nodes, ["N", 3, 4, 4], inits, opset=13), input_shape=(3, 4, 4))


def test_shape_gather_concat_flatten_handbuilt_opset11():
    # opset 11: Unsqueeze takes axes as an attribute; Shape of an earlier tensor
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Gather", ["s", "i"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n"], ["nu"], axes=[0]),
        helper.make_node("Concat", ["nu", "m1"], ["t"], axis=0),
        helper.make_node("Reshape", ["r", "t"], ["y"]),
    ]
    inits = {"i": np.array(0, np.int64), "m1": np.array([-1], np.int64)}
    proto = make_graph(nodes, ["N", 3, 4, 5], inits, opset=11)
    x = rand(2, 3, 4, 5)
    m = convert_onnx(proto, input_shape=(3, 4, 5))
    assert m.output_shape == (None, 60)
    want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    np.testing.assert_allclose(m(x), want)
