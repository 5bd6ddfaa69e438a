"""Benchmark: imgkernel.model forward passes against torch (and onnxruntime if installed).

Cases
-----
* LeNet-5-like network on 1x28x28 at batch 1 and batch 256;
* one conv layer of 64 filters 3x3 (padding 1) on 3x224x224, batch 1.

Targets: within 2x of torch at batch 256 and for the 224 layer; faster than
torch at batch 1. Run::

    python benchmarks/bench_model.py [--repeat 20] [--threads N]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np

from imgkernel.model import (
    Conv2D,
    Dense,
    Flatten,
    InputSpec,
    MaxPool,
    Model,
    ReLU,
    Softmax,
)


def lenet(rng: np.random.Generator) -> Model:
    def r(*s: int) -> np.ndarray:
        return (rng.standard_normal(s) * 0.1).astype(np.float32)

    return Model(
        [
            Conv2D("conv1", r(6, 1, 5, 5), r(6), padding=2),
            ReLU("relu1"),
            MaxPool("pool1", size=2),
            Conv2D("conv2", r(16, 6, 5, 5), r(16)),
            ReLU("relu2"),
            MaxPool("pool2", size=2),
            Flatten("flatten"),
            Dense("fc1", r(120, 400), r(120)),
            ReLU("relu3"),
            Dense("fc2", r(84, 120), r(84)),
            ReLU("relu4"),
            Dense("fc3", r(10, 84), r(10)),
            Softmax("softmax"),
        ],
        [str(i) for i in range(10)],
        InputSpec(channels=1, height=28, width=28),
    )


def conv224(rng: np.random.Generator) -> Model:
    w = (rng.standard_normal((64, 3, 3, 3)) * 0.1).astype(np.float32)
    return Model(
        [Conv2D("conv", w, np.zeros(64, np.float32), padding=1)],
        input_spec=InputSpec(channels=3, height=224, width=224),
    )


def to_torch(model: Model):  # type: ignore[no-untyped-def]
    import torch

    mods = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            k, cg, kh, kw = layer.weight.shape
            pad = layer.padding
            conv = torch.nn.Conv2d(
                cg * layer.groups,
                k,
                (kh, kw),
                layer.stride,
                pad[0] if not isinstance(pad, str) else pad,
                layer.dilation,
                layer.groups,
                layer.bias is not None,
            )
            conv.weight.data = torch.from_numpy(layer.weight.copy())
            if layer.bias is not None:
                conv.bias.data = torch.from_numpy(layer.bias.copy())
            mods.append(conv)
        elif isinstance(layer, ReLU):
            mods.append(torch.nn.ReLU())
        elif isinstance(layer, MaxPool):
            mods.append(torch.nn.MaxPool2d(layer.size, layer.stride))
        elif isinstance(layer, Flatten):
            mods.append(torch.nn.Flatten())
        elif isinstance(layer, Dense):
            lin = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
            lin.weight.data = torch.from_numpy(layer.weight.copy())
            lin.bias.data = torch.from_numpy(layer.bias.copy())  # type: ignore[union-attr]
            mods.append(lin)
        elif isinstance(layer, Softmax):
            mods.append(torch.nn.Softmax(dim=layer.axis))
        else:
            raise NotImplementedError(layer.type)
    return torch.nn.Sequential(*mods).eval()


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    try:
        import onnxruntime as ort  # type: ignore[import-not-found]
    except ImportError:
        ort = None

    cases = [
        ("LeNet-5 1x28x28, batch 1", lenet(rng), (1, 1, 28, 28), "faster"),
        ("LeNet-5 1x28x28, batch 256", lenet(rng), (256, 1, 28, 28), "2x"),
        ("conv 64@3x3, 3x224x224, batch 1", conv224(rng), (1, 3, 224, 224), "2x"),
    ]
    header = f"{'case':34s} {'imgkernel':>11s} {'torch':>11s} {'ratio':>7s}"
    if ort is not None:
        header += f" {'onnxruntime':>12s}"
    print(header + "  verdict")
    for title, model, shape, target in cases:
        x = rng.standard_normal(shape).astype(np.float32)
        ours = best_time(lambda m=model, x=x: m(x), args.repeat)
        line = f"{title:34s} {ours * 1e3:9.3f}ms"
        verdict = "n/a (no torch)"
        if torch is not None:
            net = to_torch(model)
            xt = torch.from_numpy(x)
            with torch.no_grad():
                np.testing.assert_allclose(model(x), net(xt).numpy(), rtol=1e-3, atol=1e-4)
                theirs = best_time(lambda n=net, xt=xt: n(xt), args.repeat)
            ratio = ours / theirs
            line += f" {theirs * 1e3:9.3f}ms {ratio:6.2f}x"
            ok = ratio < 1.0 if target == "faster" else ratio <= 2.0
            goal = "faster than torch" if target == "faster" else "within 2x of torch"
            verdict = f"{'PASS' if ok else 'FAIL'} ({goal})"
            if ort is not None:
                buf = io.BytesIO()
                torch.onnx.export(net, (xt,), buf, dynamo=False, input_names=["x"])
                sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
                t_ort = best_time(lambda s=sess, x=x: s.run(None, {"x": x}), args.repeat)
                line += f" {t_ort * 1e3:10.3f}ms"
        print(f"{line}  {verdict}")


if __name__ == "__main__":
    main()
