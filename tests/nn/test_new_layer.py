"""A new layer type is one class (plus, for ONNX import, one operator function).

The ``channel_scale`` layer below is defined here, in the test, and nowhere
else: registering it makes the model file format, training (its own
backward pass), architecture lists and ONNX import know it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.nn import Model, load_model, save_model
from imgkernel.nn.layers import LAYER_TYPES, Dense, Flatten, Layer, LayerError, Softmax
from imgkernel.nn.layers.base import Backward, BuildContext, Forward, Params, Rng, Shape
from imgkernel.nn.spec import InputSpec
from imgkernel.nn.train import fit
from imgkernel.nn.train.arch import build_network
from imgkernel.nn.train.loss import softmax_cross_entropy
from imgkernel.nn.train.network import Network


def define_channel_scale() -> type[Layer]:
    class ChannelScale(Layer):
        """``y[:, c] = x[:, c] * weight[c]``: one learned factor per channel."""

        type = "channel_scale"
        ARRAYS = ("weight",)

        def configure(self) -> None:
            if self.arrays["weight"].ndim != 1:
                raise LayerError("weight must be 1-D")
            self.weight = self.arrays["weight"]

        def output_shape(self, shape: Shape) -> Shape:
            if len(shape) != 4 or shape[1] != len(self.weight):
                raise LayerError(f"expects {len(self.weight)} channels")
            return shape

        def __call__(self, x: np.ndarray) -> np.ndarray:
            return x * self.weight[:, None, None]

        def forward_train(self, p: Params, x: np.ndarray, training: bool, rng: Rng) -> Forward:
            return x * p["weight"][:, None, None], x

        def backward(self, p: Params, cache: Any, dy: np.ndarray, need_input: bool) -> Backward:
            dx = dy * p["weight"][:, None, None] if need_input else None
            return dx, {"weight": (dy * cache).sum(axis=(0, 2, 3))}

        @classmethod
        def from_arch(cls, name: str, spec: dict, shape: Shape, ctx: BuildContext) -> Layer:
            return cls(name, weight=np.ones(int(shape[1] or 0), np.float32))

    return ChannelScale


@pytest.fixture
def channel_scale() -> Iterator[type[Layer]]:
    cls = define_channel_scale()
    try:
        yield cls
    finally:
        LAYER_TYPES.pop("channel_scale", None)
        try:
            from imgkernel.nn.onnx.graph import OPS
        except ImportError:  # pragma: no cover
            return
        OPS.pop("Scale", None)


def small_model(cls: type[Layer]) -> Model:
    rng = np.random.default_rng(0)
    layers = [
        cls("scale", weight=np.array([0.5, 2.0, -1.0], np.float32)),
        Flatten("flat"),
        Dense("fc", rng.standard_normal((3, 3 * 3 * 3)), np.zeros(3)),
        Softmax("sm"),
    ]
    return Model(layers, ["a", "b", "c"], InputSpec(channels=3, height=3, width=3))


def test_registered_by_being_defined(channel_scale):
    assert LAYER_TYPES["channel_scale"] is channel_scale
    assert channel_scale.trainable()
    with pytest.raises(TypeError, match="already"):

        class Impostor(Layer):
            type = "channel_scale"


def test_forward_and_file_round_trip(channel_scale, tmp_path):
    x = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    model = small_model(channel_scale)
    want = x * np.array([0.5, 2.0, -1.0], np.float32)[:, None, None]
    np.testing.assert_array_equal(model.forward(x, until="scale"), want)
    with pytest.raises(UsageError, match="expects 2 channels"):
        Model([channel_scale("s", weight=np.ones(2))], input_spec=InputSpec(3, 3, 3))
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert type(loaded.layers[0]) is channel_scale
    assert loaded.to_json() == model.to_json()
    np.testing.assert_array_equal(loaded(x), model(x))


def test_own_backward_trains(channel_scale):
    rng = np.random.default_rng(2)
    layers = small_model(channel_scale).layers
    net = Network(layers, (3, 3, 3), dtype=np.float64)
    x = rng.standard_normal((5, 3, 3, 3))
    y = rng.integers(0, 3, 5)

    def loss() -> float:
        return softmax_cross_entropy(net.forward(x)[0], y)[0]

    _, _, grads = net.loss_and_grads(x, y)
    w = net.params["scale.weight"]
    numeric = np.zeros_like(w)
    for i in range(len(w)):
        old = w[i]
        w[i] = old + 1e-6
        up = loss()
        w[i] = old - 1e-6
        down = loss()
        w[i] = old
        numeric[i] = (up - down) / 2e-6
    np.testing.assert_allclose(grads["scale.weight"], numeric, rtol=1e-6)
    before = w.copy()
    fit(net, x, y, epochs=1, batch_size=5, lr=0.1)
    assert not np.array_equal(net.params["scale.weight"], before)
    trained = net.to_model(["a", "b", "c"])
    assert type(trained.layers[0]) is channel_scale


def test_architecture_files_know_it(channel_scale):
    specs = [{"type": "channel_scale"}, {"type": "flatten"}, {"type": "dense"}]
    net = build_network(specs, (1, 4, 4), 2)
    assert [layer.type for layer in net.layers] == ["channel_scale", "flatten", "dense", "softmax"]
    with pytest.raises(UsageError, match="unknown key"):
        build_network([{"type": "channel_scale", "size": 3}, *specs[1:]], (1, 4, 4), 2)


def test_onnx_operator_function(channel_scale):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from imgkernel.nn.onnx import convert_onnx
    from imgkernel.nn.onnx.graph import OPS, op
    from imgkernel.nn.onnx.step import Step

    assert "Scale" not in OPS

    @op("Scale")
    def mul(step: Step) -> None:
        factor = np.asarray(step.required(1, "B")).reshape(-1)
        step.add(channel_scale(step.name(), weight=factor))

    scale = np.array([[[3.0]], [[-1.0]], [[0.5]]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Scale", ["x", "s"], ["y"], name="mul")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(scale, "s")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = convert_onnx(proto)
    assert [type(layer) for layer in model.layers] == [channel_scale]
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    np.testing.assert_array_equal(model(x), x * scale)
