"""Epoch time of imgkernel's training loop vs PyTorch on the same network.

The network is imgkernel's ``default`` architecture for the input size (for
16x16 grey: conv 3x3 x16 -> relu -> maxpool 2 -> conv 3x3 x32 -> relu ->
maxpool 2 -> flatten -> dense 64 -> relu -> dense 10 -> softmax), copied
layer by layer into a ``torch.nn.Sequential`` with the same initial weights.
Both train on the same data (scikit-learn's digits upscaled to the input
size when scikit-learn is installed, else random images) with the same batch
size, Adam, learning rate and label smoothing (default 0.1, as ``imgkernel
train``), no augmentation, for a few epochs; the median epoch time is printed
with the ratio imgkernel / torch, and the time imgkernel's validation pass
over a tenth of the images adds to an epoch (early stopping validates every
epoch).

    python benchmarks/bench_train.py [--size 16] [--batch-size 32] [--epochs 3] [--threads 1]
                                     [--label-smoothing 0.1]

imgkernel trains with single-threaded BLAS (for reproducibility); torch is
timed with ``--threads`` intra-op threads (default 1, the fair comparison;
0 leaves torch's default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imgkernel.nn import prepare_images  # noqa: E402
from imgkernel.nn.spec import InputSpec  # noqa: E402
from imgkernel.nn.train import fit  # noqa: E402
from imgkernel.nn.train.arch import build_network  # noqa: E402
from imgkernel.nn.train.loop import evaluate  # noqa: E402


def data(size: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((n, 1, size, size), dtype=np.float32), rng.integers(0, 10, n)
    d = load_digits()
    u8 = np.rint(d.images[:n] * 255 / 16).astype(np.uint8)
    x = prepare_images(InputSpec(channels=1, height=size, width=size), list(u8))
    return (x - x.mean()) / x.std(), d.target[:n]


def torch_net(net, torch):
    nn = torch.nn
    mods = []
    for layer in net.layers:
        p = net.layer_params(layer)
        if layer.type == "conv2d":
            k, cg, kh, kw = p["weight"].shape
            pads = layer.padding
            if isinstance(pads, str):
                pads = pads  # "same"/"valid" (stride 1 here)
            else:
                pads = (pads[0], pads[2])
            m = nn.Conv2d(
                cg * layer.groups,
                k,
                (kh, kw),
                stride=layer.stride,
                padding=pads,
                dilation=layer.dilation,
                groups=layer.groups,
            )
            m.weight.data = torch.tensor(p["weight"])
            m.bias.data = torch.tensor(p["bias"])
        elif layer.type == "dense":
            out_f, in_f = p["weight"].shape
            m = nn.Linear(in_f, out_f)
            m.weight.data = torch.tensor(p["weight"])
            m.bias.data = torch.tensor(p["bias"])
        elif layer.type == "relu":
            m = nn.ReLU()
        elif layer.type == "maxpool":
            m = nn.MaxPool2d(layer.size, layer.stride)
        elif layer.type == "global_avgpool":
            m = nn.AdaptiveAvgPool2d(1)
        elif layer.type == "flatten":
            m = nn.Flatten()
        elif layer.type == "softmax":
            continue  # fused into the loss, as in imgkernel
        else:
            raise SystemExit(f"no torch equivalent for {layer.type}")
        mods.append(m)
    return nn.Sequential(*mods)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    args = ap.parse_args()

    x, y = data(args.size)
    net = build_network("default", (1, args.size, args.size), 10, seed=0)
    hist = fit(
        net,
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule="constant",
        seed=0,
        label_smoothing=args.label_smoothing,
    )
    ours = statistics.median(h.seconds for h in hist)
    n_val = len(x) // 10
    val_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        evaluate(net, x[:n_val], y[:n_val], args.label_smoothing)
        val_times.append(time.perf_counter() - t0)
    val_ms = statistics.median(val_times) * 1000
    print(
        f"imgkernel: {len(x)} images {args.size}x{args.size}, batch {args.batch_size}, "
        f"{net.to_model().param_count:,} params; median epoch {ours * 1000:.0f} ms "
        f"(final loss {hist[-1].loss:.3f}); validating {n_val} images adds {val_ms:.0f} ms"
    )
    try:
        import torch
    except ImportError:
        print("torch is not installed; no comparison")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    net0 = build_network("default", (1, args.size, args.size), 10, seed=0)
    model = torch_net(net0, torch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    tx, ty = torch.tensor(x), torch.tensor(y, dtype=torch.long)
    gen = np.random.default_rng(0)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        order = torch.tensor(gen.permutation(len(x)))
        total = 0.0
        for b in range(0, len(x), args.batch_size):
            idx = order[b : b + args.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(tx[idx]), ty[idx], label_smoothing=args.label_smoothing
            )
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        times.append(time.perf_counter() - t0)
    theirs = statistics.median(times)
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} thread(s)): median epoch "
        f"{theirs * 1000:.0f} ms (final loss {total / len(x):.3f})"
    )
    print(f"ratio imgkernel / torch: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
