"""Benchmark: imgkernel.nn model forward passes against torch (and onnxruntime if installed).

Cases
-----
* LeNet-5-like network on 1x28x28 at batch 1 and batch 256;
* one conv layer of 64 filters 3x3 (padding 1) on 3x224x224, batch 1.

* the whole process of ``imgkernel classify MODEL image.png`` against a
  Python script doing the same with torch (import, load the weights from the
  same .npz, prepare the image, forward, print the label).

Targets: within 2x of torch at batch 256 and for the 224 layer; faster than
torch at batch 1; the whole classify process at least 3x faster than the torch
script. Run::

    python benchmarks/bench_model.py [--repeat 20] [--threads N] [--no-process]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgkernel.nn import Model
from imgkernel.nn.layers import Conv2D, Dense, Flatten, MaxPool, ReLU, Softmax
from imgkernel.nn.spec import InputSpec


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


TORCH_SCRIPT = """
import sys, numpy as np, torch
from PIL import Image
w = np.load(sys.argv[1], allow_pickle=False)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
    torch.nn.Linear(84, 10), torch.nn.Softmax(dim=1)).eval()
names = ["conv1", "conv2", "fc1", "fc2", "fc3"]
mods = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
with torch.no_grad():
    for name, m in zip(names, mods):
        m.weight.copy_(torch.from_numpy(w[name + ".weight"]))
        m.bias.copy_(torch.from_numpy(w[name + ".bias"]))
    img = Image.open(sys.argv[2]).convert("L").resize((28, 28), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)[None, None]
    p = net(x)[0]
print(sys.argv[2], int(p.argmax()), float(p.max()), sep="\t")
"""


def time_processes(repeat: int) -> None:
    """Whole-process wall time: imgkernel classify vs the same job in a torch script."""
    from PIL import Image

    from imgkernel.nn import save_model

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp, "lenet.npz")
        save_model(lenet(rng), model_path)
        image = Path(tmp, "digit.png")
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(image)
        ours = [sys.executable, "-m", "imgkernel", "classify", str(model_path), str(image)]
        theirs = [sys.executable, "-c", TORCH_SCRIPT, str(model_path), str(image)]

        def wall(cmd: list[str]) -> tuple[float, str]:
            times, out = [], ""
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                times.append(time.perf_counter() - t0)
            return float(np.median(times)), out.strip()

        t_ours, out_ours = wall(ours)
        print(f"process: imgkernel classify       {t_ours * 1e3:8.1f} ms  -> {out_ours}")
        try:
            import torch  # noqa: F401
        except ImportError:
            print("process: torch not installed; no comparison")
            return
        t_torch, out_torch = wall(theirs)
        ratio = t_torch / t_ours
        print(f"process: torch script             {t_torch * 1e3:8.1f} ms  -> {out_torch}")
        same = out_ours.split("\t")[1] == out_torch.split("\t")[1]
        verdict = "PASS" if ratio >= 3 else "FAIL"
        print(
            f"process: torch/imgkernel {ratio:.2f}x  {verdict} (target >= 3x); same label: {same}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process timing")
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
    if not args.no_process:
        time_processes(max(3, min(args.repeat, 7)))


if __name__ == "__main__":
    main()
