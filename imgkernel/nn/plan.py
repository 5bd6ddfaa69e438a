"""Running a graph: which nodes compute the wanted tensors, fused, in order, releasing as they go.

A :class:`Plan` is made once for a set of wanted tensors and a set of given
ones (the graph inputs, or tensors fed in the middle of the graph) and then
run on arrays. Making it:

* keeps only the nodes the wanted tensors depend on, stopping at the given ones;
* folds a batchnorm into the conv before it when the conv's output is read by
  nothing else (nor wanted);
* notes, for every node, the tensors read for the last time there, which are
  released after it runs (a tensor's memory is freed when its last consumer
  has run).

A batch of several samples is split over threads (each with single-threaded
BLAS, :func:`imgkernel.core.parallel.blas_single_thread`) when every node
keeps the samples apart (:meth:`~imgkernel.nn.layers.base.Layer.per_sample`).
Running lets an elementwise layer (``INPLACE``) overwrite its first input
when that input is an array the plan itself made, is read for the last time
there and shares memory with nothing else alive (never an array of the
caller's, a constant or a view of either). A failing node is named in the error.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgkernel.core.conv import PARALLEL_MACS
from imgkernel.core.parallel import blas_single_thread, run_tiles, workers
from imgkernel.errors import UsageError
from imgkernel.nn.graph import Graph
from imgkernel.nn.layers import BatchNorm, Conv2D, Layer


@dataclass
class Step:
    """One node (or fused nodes) of a plan: what it reads and writes, what it releases."""

    index: int
    layer: Layer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    release: tuple[str, ...] = ()
    #: the first input, if the layer may overwrite it (elementwise, read once here)
    overwrite: str | None = None
    single: bool = True


def fold_batchnorm(conv: Conv2D, bn: BatchNorm) -> Conv2D:
    """``conv`` followed by ``bn`` as one convolution (its weights scaled, its bias shifted)."""
    mul = bn.multiplier.astype(np.float64)
    weight = conv.weight.astype(np.float64) * mul[:, None, None, None]
    bias = np.zeros(len(mul)) if conv.bias is None else conv.bias.astype(np.float64)
    attrs = conv.attributes()
    return Conv2D(conv.name, weight, bias * mul + bn.shift, **attrs)


class Plan:
    """The steps computing ``outputs`` of ``graph`` from the tensors ``given``."""

    def __init__(self, graph: Graph, outputs: Sequence[str], given: Sequence[str]) -> None:
        self.graph = graph
        self.outputs = list(outputs)
        self.given = list(given)
        needed = self._needed()
        steps = [
            Step(i, node.layer, node.inputs, node.outputs)
            for i, node in enumerate(graph.nodes)
            if i in needed
        ]
        self.steps = self._fuse(steps)
        self._note_releases()
        self.separable = self._separable()
        self.macs, self.largest = self._work()

    def _needed(self) -> set[int]:
        """Indices of the nodes the outputs depend on, stopping at the given tensors."""
        g, given = self.graph, set(self.given)
        needed: set[int] = set()
        stack = [t for t in self.outputs if t not in given]
        seen = set(stack)
        while stack:
            t = stack.pop()
            i = g.producer[t]
            if i < 0:
                raise UsageError(f"computing {self.outputs} needs the graph input {t!r}")
            needed.add(i)
            for s in g.nodes[i].inputs:
                if s not in seen and s not in given:
                    seen.add(s)
                    stack.append(s)
        return needed

    def _fuse(self, steps: list[Step]) -> list[Step]:
        """Fold batchnorms into the convs before them where no one else reads the conv's output."""
        readers: dict[str, int] = {}
        for st in steps:
            for t in st.inputs:
                readers[t] = readers.get(t, 0) + 1
        keep = set(self.outputs)
        out: list[Step] = []
        for st in steps:
            prev = out[-1] if out else None
            if (
                isinstance(st.layer, BatchNorm)
                and prev is not None
                and isinstance(prev.layer, Conv2D)
                and st.inputs == prev.outputs
                and readers.get(prev.outputs[0]) == 1
                and prev.outputs[0] not in keep
                and st.layer.n_outputs() == 1
            ):
                prev.layer = fold_batchnorm(prev.layer, st.layer)
                prev.outputs = st.outputs
                continue
            out.append(Step(st.index, st.layer, st.inputs, st.outputs))
        return out

    def _note_releases(self) -> None:
        last: dict[str, int] = {}
        for k, st in enumerate(self.steps):
            for t in st.inputs:
                last[t] = k
        keep = set(self.outputs)
        for k, st in enumerate(self.steps):
            st.release = tuple(
                t for t in dict.fromkeys(st.inputs) if last[t] == k and t not in keep
            )
            first = st.inputs[0] if st.inputs else None
            if st.layer.INPLACE and first in st.release and st.inputs.count(first) == 1:
                st.overwrite = first
            st.single = st.layer.n_outputs() == 1

    def _work(self) -> tuple[int, int]:
        """Multiply-adds per sample of the convolutions and dense layers: total and largest."""
        total = largest = 0
        for st in self.steps:
            weight = getattr(st.layer, "weight", None)
            if not isinstance(weight, np.ndarray):
                continue
            out = self.graph.shapes[st.outputs[0]]
            cells = 1
            for d in out[2:] if weight.ndim > 2 else out[1:-1]:
                cells *= d or 1
            total += weight.size * cells
            largest = max(largest, weight.size * cells)
        return total, largest

    def _separable(self) -> bool:
        """Whether every sample runs on its own: a batch may be split."""
        shapes = self.graph.shapes
        if any(shapes[t][:1] != (None,) for t in [*self.given, *self.outputs]):
            return False
        for st in self.steps:
            inputs = [shapes[t] for t in st.inputs]
            outputs_batched = all(shapes[t][:1] == (None,) for t in st.outputs)
            if not st.layer.per_sample(inputs) or (inputs and not outputs_batched):
                return False
        return True

    def __call__(self, values: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The wanted tensors from the given ones (``values`` by tensor name).

        A batch of several samples runs in parts on the threads of
        :mod:`imgkernel.core.parallel` when the plan is separable.
        """
        n = min((len(v) for v in values.values()), default=0) if self.separable else 0
        split = n > 1 and n * self.macs >= PARALLEL_MACS
        if not split and self.largest < PARALLEL_MACS:
            return self._run(values)  # too little work to pay for threads
        threads = workers()
        if threads <= 1 or threading.current_thread().name.startswith("imgkernel"):
            return self._run(values)
        parts = min(threads, n) if split else 1
        if parts <= 1:
            # one sample: the big convolutions split their rows over the threads
            with blas_single_thread():
                return self._run(values)
        size = -(-n // parts)
        results: dict[int, list[np.ndarray]] = {}

        def task(a: int, b: int) -> None:
            results[a] = self._run({t: v[a * size : b * size] for t, v in values.items()})

        with blas_single_thread():
            run_tiles(parts, task, 1)
        ordered = [results[k] for k in sorted(results)]
        return [np.concatenate(outs) for outs in zip(*ordered, strict=True)]

    def _run(self, values: dict[str, np.ndarray]) -> list[np.ndarray]:
        env = dict(values)
        owned: set[str] = set()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for st in self.steps:
                xs = [env[t] for t in st.inputs]
                try:
                    if st.overwrite is not None and st.overwrite in owned:
                        ys = [st.layer.inplace(*xs)]
                    elif st.single:
                        ys = [st.layer(*xs)]
                    else:
                        ys = list(st.layer(*xs))
                except (UsageError, ValueError, IndexError, MemoryError) as exc:
                    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise UsageError(f"{self.graph.where(st.index)}: {detail}") from None
                if st.single and ys[0].base is None and not any(x is ys[0] for x in xs):
                    # the common case: one new array
                    env[st.outputs[0]] = ys[0]
                    owned.add(st.outputs[0])
                    for t in st.release:
                        del env[t]
                        owned.discard(t)
                else:
                    _account(st, xs, ys, env, owned)
        return [env[t] for t in self.outputs]


def _account(
    st: Step, xs: list[np.ndarray], ys: list[np.ndarray], env: dict, owned: set[str]
) -> None:
    """Release the step's last reads; mark its outputs owned if they alias nothing alive.

    A new array (no base) is owned; an input passed on (or written in place) stays
    owned only if it was and is released here; a view owns nothing, and the
    inputs that stay alive lose their ownership (the view may alias them).
    """
    release = st.release
    for t, y in zip(st.outputs, ys, strict=True):
        env[t] = y
        if y.base is not None:
            owned.difference_update([s for s in st.inputs if s not in release])
            continue
        for s, x in zip(st.inputs, xs, strict=True):
            if x is y and not (s in owned and s in release):
                break
        else:
            owned.add(t)
    for t in release:
        del env[t]
        owned.discard(t)
