"""Real exports round-trip: ResNet-18-, MobileNetV2- and U-Net-shaped torch models.

Random weights (nothing downloaded), exported with ``torch.onnx.export``,
converted, saved and loaded, and run: the result matches torch within 1e-4
of its largest magnitude. Skipped without torch (not in the ``test`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from imgkernel.nn import load_model, save_model  # noqa: E402
from imgkernel.nn.onnx import convert_onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import torch_nets  # noqa: E402


def round_trip(net, x, tmp_path, **kwargs):
    try:
        data = torch_nets.export(net, x, **kwargs)
    except Exception as exc:  # exporter missing pieces offline
        pytest.skip(f"torch.onnx.export failed: {type(exc).__name__}: {exc}")
    (tmp_path / "net.onnx").write_bytes(data)
    model = convert_onnx(tmp_path / "net.onnx")
    save_model(model, tmp_path / "net.npz")
    return load_model(tmp_path / "net.npz")


def assert_close(got, want, rel=1e-4):
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= rel * np.abs(want).max()


@pytest.mark.parametrize("batch", [1, 3])
def test_resnet18(tmp_path, batch):
    torch.manual_seed(0)
    net = torch_nets.randomised(torch_nets.ResNet18())
    x = torch.randn(batch, 3, 224, 224)
    model = round_trip(net, x, tmp_path)
    assert not model.is_sequential and model.input_spec is not None
    assert [n.type for n in model.nodes].count("add") == 8  # the residual connections
    assert "batchnorm" not in [n.type for n in model.nodes]  # folded into the convs
    with torch.no_grad():
        assert_close(model(x.numpy()), net(x).numpy())
        # exported with one batch size, run with another
        x2 = torch.randn(2, 3, 224, 224)
        assert_close(model(x2.numpy()), net(x2).numpy())


def test_mobilenet_v2(tmp_path):
    torch.manual_seed(1)
    net = torch_nets.randomised(torch_nets.MobileNetV2(classes=10), seed=1)
    x = torch.randn(2, 3, 96, 96)
    model = round_trip(net, x, tmp_path, dynamic_batch=True)
    types = [n.type for n in model.nodes]
    assert "clip" in types and types.count("add") == 10
    assert any(n.type == "conv2d" and n.layer.groups > 1 for n in model.nodes)  # depthwise
    with torch.no_grad():
        assert_close(model(x.numpy()), net(x).numpy())


def test_unet(tmp_path):
    torch.manual_seed(2)
    net = torch_nets.randomised(torch_nets.UNet(), seed=2)
    x = torch.randn(2, 3, 64, 48)
    model = round_trip(net, x, tmp_path)
    types = set(n.type for n in model.nodes)
    assert {"concat", "conv_transpose", "resize", "sigmoid"} <= types
    assert model.output_shape == (None, 2, 64, 48)
    with torch.no_grad():
        assert_close(model(x.numpy()), net(x).numpy())
        # a feature map in the middle, and running on from it
        middle = model.forward(x.numpy(), until=model.nodes[10].name)
        rest = model.run({model.nodes[10].outputs[0]: middle, "x": x.numpy()})[0]
        assert_close(rest, net(x).numpy())


def test_mlp_on_feature_vectors(tmp_path):
    """A plain MLP on 64 features: a rank-2 input, no image spec; run takes (N, 64)."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10), torch.nn.Softmax(dim=1)
    ).eval()
    x = torch.randn(5, 64)
    model = round_trip(net, x, tmp_path, dynamic_batch=True)
    assert model.input_spec is None and model.input_shape == (None, 64)
    assert model.ends_in_softmax()
    with torch.no_grad():
        assert_close(model(x.numpy()), net(x).numpy())
