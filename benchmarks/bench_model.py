"""Benchmark: imgkernel.nn model forward passes against torch (and onnxruntime if installed).

Cases
-----
* LeNet-5-like network on 1x28x28 at batch 1 and batch 256;
* one conv layer of 64 filters 3x3 (padding 1) on 3x224x224, batch 1;
* ResNet-18 (random weights, exported from torch with ``torch.onnx.export``
  and converted) on 3x224x224 at batch 1 and batch 8.

* the whole process of ``imgkernel classify MODEL image.png`` against a
  Python script doing the same with torch (import, load the weights from an
  .npz, prepare the image, forward, print the label), for LeNet and for
  ResNet-18, with each process's peak resident memory.

Targets: within 2x of torch at batch 256 and for the 224 layer; faster than
torch at batch 1 (LeNet); ResNet-18 within 1.5x of torch; the whole classify
process at least 3x faster than the torch script. Times are the median of
``--repeat`` runs taken in turns (imgkernel, torch, onnxruntime), so a busy
machine slows all alike; ``--threads`` sets torch's and onnxruntime's
threads (imgkernel's: ``IMGKERNEL_THREADS``). Run::

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


def in_turns(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (a busy machine slows all alike)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


TESTS_NN = Path(__file__).resolve().parents[1] / "tests" / "nn"


def resnet18(torch):  # type: ignore[no-untyped-def]
    """(torch ResNet-18 with random weights, its ONNX export with a dynamic batch, the model)."""
    from imgkernel.nn.onnx import convert_onnx

    sys.path.insert(0, str(TESTS_NN))
    import torch_nets  # type: ignore[import-not-found]

    torch.manual_seed(0)
    net = torch_nets.randomised(torch_nets.ResNet18())
    data = torch_nets.export(net, torch.randn(1, 3, 224, 224), dynamic_batch=True)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "r18.onnx").write_bytes(data)
        model = convert_onnx(
            Path(tmp, "r18.onnx"),
            [f"class{i}" for i in range(1000)],
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
        )
    return net, data, model


def forward_cases(args: argparse.Namespace, torch, ort) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    cases = [
        ("LeNet-5 1x28x28, batch 1", lenet(rng), None, (1, 1, 28, 28), "faster"),
        ("LeNet-5 1x28x28, batch 256", lenet(rng), None, (256, 1, 28, 28), "2x"),
        ("conv 64@3x3, 3x224x224, batch 1", conv224(rng), None, (1, 3, 224, 224), "2x"),
    ]
    if torch is not None:
        net, data, model = resnet18(torch)
        for batch in (1, 8):
            cases.append((f"ResNet-18 3x224x224, batch {batch}", model, (net, data),
                          (batch, 3, 224, 224), "1.5x"))  # fmt: skip
    header = f"{'case':34s} {'imgkernel':>11s} {'torch':>11s} {'ratio':>7s}"
    print(header + (f" {'onnxruntime':>12s}" if ort is not None else "") + "  verdict")
    for title, model, exported, shape, target in cases:
        repeat = max(3, args.repeat // (4 if shape[0] > 1 and shape[2] > 100 else 1))
        print(forward_line(title, model, exported, shape, target, repeat, torch, ort), flush=True)


def forward_line(title, model, exported, shape, target, repeat, torch, ort) -> str:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    fns: dict[str, Callable[[], object]] = {"imgkernel": lambda: model(x)}
    if torch is None:
        return f"{title:34s} {in_turns(fns, repeat)['imgkernel'] * 1e3:9.3f}ms  n/a (no torch)"
    net = exported[0] if exported else to_torch(model)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        want = net(xt).numpy()
    got = model(x)
    assert np.abs(got - want).max() <= 1e-3 * max(np.abs(want).max(), 1e-3), title
    fns["torch"] = lambda: net(xt)
    if ort is not None:
        if exported:
            data = exported[1]
        else:
            buf = io.BytesIO()
            torch.onnx.export(net, (xt,), buf, dynamo=False, input_names=["x"])
            data = buf.getvalue()
        options = ort.SessionOptions()
        if torch.get_num_threads():
            options.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        fns["onnxruntime"] = lambda: sess.run(None, {"x": x})
    with torch.no_grad():
        t = in_turns(fns, repeat)
    ratio = t["imgkernel"] / t["torch"]
    line = f"{title:34s} {t['imgkernel'] * 1e3:9.3f}ms {t['torch'] * 1e3:9.3f}ms {ratio:6.2f}x"
    if "onnxruntime" in t:
        line += f" {t['onnxruntime'] * 1e3:10.3f}ms"
    limit = {"faster": 1.0, "2x": 2.0, "1.5x": 1.5}[target]
    goal = "faster than torch" if target == "faster" else f"within {target} of torch"
    return f"{line}  {'PASS' if ratio <= limit else 'FAIL'} ({goal})"


LENET_SCRIPT = """
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

RESNET_SCRIPT = """
import sys, numpy as np, torch
from PIL import Image
sys.path.insert(0, sys.argv[3])
import torch_nets
net = torch_nets.ResNet18().eval()
with np.load(sys.argv[1], allow_pickle=False) as w:
    net.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
img = Image.open(sys.argv[2]).convert("RGB").resize((224, 224), Image.BILINEAR)
x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255)
mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
with torch.no_grad():
    p = torch.softmax(net(((x - mean) / std)[None]), dim=1)[0]
print(sys.argv[2], "class%d" % int(p.argmax()), float(p.max()), sep="\t")
"""


#: Runs argv[1:] and reports its wall time, peak RSS and exit code on stderr. A small
#: process forks it, so the peak is the command's own (a fork of this benchmark would
#: count this process's memory too).
MEASURE = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t0, usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def run_process(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak resident KiB, stdout) of one process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=False
    )
    wall, peak, code = done.stderr.strip().splitlines()[-1].split()
    if int(code):
        raise RuntimeError(f"{cmd[:4]} failed: {done.stderr.strip()}")
    return float(wall), int(peak), done.stdout.strip()


def compare_processes(title: str, ours: list[str], theirs: list[str] | None, repeat: int) -> None:
    """Whole-process wall time and peak memory: imgkernel classify vs the torch script."""
    runs: dict[str, list[tuple[float, int, str]]] = {"imgkernel": [], "torch": []}
    for _ in range(repeat):
        runs["imgkernel"].append(run_process(ours))
        if theirs is not None:
            runs["torch"].append(run_process(theirs))
    times = {}
    for name, rs in runs.items():
        if not rs:
            continue
        times[name] = float(np.median([r[0] for r in rs]))
        peak = max(r[1] for r in rs) / 1024
        print(f"process {title}: {name:10s} {times[name] * 1e3:8.1f} ms  peak RSS {peak:7.1f} MiB"
              f"  -> {rs[-1][2]}")  # fmt: skip
    if theirs is None:
        print(f"process {title}: torch not installed; no comparison")
        return
    ratio = times["torch"] / times["imgkernel"]
    same = runs["imgkernel"][-1][2].split("\t")[1] == runs["torch"][-1][2].split("\t")[1]
    verdict = "PASS" if ratio >= 3 else "FAIL"
    print(f"process {title}: torch/imgkernel {ratio:.2f}x  {verdict} (target >= 3x); "
          f"same label: {same}")  # fmt: skip


def time_processes(repeat: int, torch) -> None:  # type: ignore[no-untyped-def]
    """LeNet and ResNet-18: ``imgkernel classify`` against a torch script doing the same."""
    from PIL import Image

    from imgkernel.nn import save_model

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        lenet_path = Path(tmp, "lenet.npz")
        save_model(lenet(rng), lenet_path)
        digit = Path(tmp, "digit.png")
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(digit)
        ours = [sys.executable, "-m", "imgkernel", "classify", str(lenet_path), str(digit)]
        theirs = [sys.executable, "-c", LENET_SCRIPT, str(lenet_path), str(digit)]
        compare_processes("LeNet", ours, theirs if torch else None, repeat)
        if torch is None:
            return
        net, _, model = resnet18(torch)
        r18_path, weights = Path(tmp, "resnet18.npz"), Path(tmp, "resnet18-torch.npz")
        save_model(model, r18_path)
        np.savez(weights, **{k: v.numpy() for k, v in net.state_dict().items()})
        photo = Path(tmp, "photo.png")
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)
        ours = [sys.executable, "-m", "imgkernel", "classify", str(r18_path), str(photo)]
        theirs = [sys.executable, "-c", RESNET_SCRIPT, str(weights), str(photo), str(TESTS_NN)]
        compare_processes("ResNet-18", ours, theirs, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process timing")
    args = ap.parse_args()
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
    forward_cases(args, torch, ort)
    if not args.no_process:
        time_processes(max(3, min(args.repeat, 7)), torch)


if __name__ == "__main__":
    main()
