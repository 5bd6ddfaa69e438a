"""Architectures: the named defaults, TOML layer lists, and building a fresh network from them.

An architecture is a list of layer specs: ``{"type": ..., "name": ...}`` plus
the keys the layer class allows (its ``ARCH_KEYS``; conv2d and dense create
their weights from ``filters``/``units``, ``size``, ``bias`` and ``init``).
A TOML file holds them as ``[[layer]]`` tables (``docs/training.md``).
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError, read_user_text
from imgkernel.nn.layers import LAYER_TYPES, BuildContext, Layer, Shape, arch_types, make_layer
from imgkernel.nn.layers.attrs import fmt_shape
from imgkernel.nn.train.network import Network

#: Named architectures: ``default`` (a small CNN scaled by the input size),
#: ``tiny`` (one conv block, for tests and quick experiments), ``mlp``.
ARCHITECTURES = ("default", "tiny", "mlp")

Spec = dict[str, Any]


def _conv_block(filters: int) -> list[Spec]:
    return [
        {"type": "conv2d", "filters": filters, "size": 3, "padding": "same"},
        {"type": "relu"},
    ]


def default_specs(name: str, shape: tuple[int, int, int]) -> list[Spec]:
    """The layer specs of a named architecture for a (C, H, W) input."""
    c, h, w = shape
    side = min(h, w)
    if name == "mlp":
        return [
            {"type": "flatten"},
            {"type": "dense", "units": 128},
            {"type": "relu"},
            {"type": "dense"},
        ]
    if name == "tiny":
        specs = _conv_block(8)
        if side >= 4:
            specs.append({"type": "maxpool", "size": 2})
        return [*specs, {"type": "flatten"}, {"type": "dense"}]
    if side < 4:
        raise UsageError(
            f"the input {h}x{w} is too small for the default architecture (at least 4x4); "
            "use --input-size or --arch mlp"
        )
    # conv 3x3 x16 -> relu -> maxpool 2 -> conv 3x3 x32 -> relu, then
    # (maxpool 2 -> conv doubling the width, at most 128) while the maps are
    # 8+ pixels across; flatten small maps, global-average larger ones.
    specs = [*_conv_block(16), {"type": "maxpool", "size": 2}, *_conv_block(32)]
    h, w, filters = h // 2, w // 2, 32
    while min(h, w) >= 8:
        specs.append({"type": "maxpool", "size": 2})
        h, w = h // 2, w // 2
        if min(h, w) < 8 or filters >= 128:
            break
        filters *= 2
        specs += _conv_block(filters)
    if h * w * filters <= 4096:
        specs += [{"type": "flatten"}]  # small maps: keep where things are
    else:
        specs += [{"type": "global_avgpool"}, {"type": "flatten"}]
    specs += [{"type": "dense", "units": 64}, {"type": "relu"}, {"type": "dense"}]
    return specs


def load_arch(path: str | os.PathLike[str]) -> tuple[list[Spec], str]:
    """Read a TOML architecture: ``[[layer]]`` tables -> (layer specs, description)."""
    source = os.fspath(path)
    try:
        data = tomllib.loads(read_user_text(source))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML ({exc})") from None
    unknown = set(data) - {"layer", "description"}
    if unknown:
        raise UsageError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            "expected [[layer]] tables and an optional description"
        )
    layers = data.get("layer")
    if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
        raise UsageError(f"{source}: no [[layer]] tables")
    desc = data.get("description", "")
    return [dict(x) for x in layers], str(desc)


def is_arch_file(arch: str | os.PathLike[str]) -> bool:
    """Whether ``arch`` names a TOML file (else it must be one of :data:`ARCHITECTURES`)."""
    text = os.fspath(arch)
    if text in ARCHITECTURES:
        return False
    if text.lower().endswith(".toml") or os.path.exists(text):
        return True
    raise UsageError(
        f"unknown architecture {text!r}; use {', '.join(ARCHITECTURES)} or a .toml file"
    )


def _next_is_relu(specs: Sequence[Spec], i: int) -> bool:
    nxt = specs[i + 1].get("type") if i + 1 < len(specs) else None
    return nxt in ("relu", "leaky_relu")


def _spec_layer(
    spec: Spec, label: str, names: set[str], counts: Counter[str]
) -> tuple[type[Layer], str]:
    """The layer class and name of an entry; pops ``type`` and ``name``, checks the keys left."""
    kind = spec.pop("type", None)
    if not isinstance(kind, str):
        raise UsageError(f"{label}: missing 'type'")
    kind = kind.strip().lower()
    if kind not in arch_types():
        known = ", ".join(arch_types())
        raise UsageError(f"{label}: cannot train a {kind!r} layer; use one of {known}")
    counts[kind] += 1
    name = spec.pop("name", None) or f"{kind}{counts[kind]}"
    if not isinstance(name, str) or name in names:
        raise UsageError(f"{label}: bad or duplicate name {name!r}")
    names.add(name)
    cls = LAYER_TYPES[kind]
    allowed = cls.ARCH_KEYS or frozenset()
    unknown = set(spec) - allowed
    if unknown:
        raise UsageError(
            f"{label} ({kind}): unknown key(s) {', '.join(sorted(unknown))}"
            f"{'; allowed: ' + ', '.join(sorted(allowed)) if allowed else ''}"
        )
    return cls, name


def build_layers(
    specs: Sequence[Spec], shape: tuple[int, int, int], n_classes: int, rng: np.random.Generator
) -> list[Layer]:
    """Layers (with initialised weights) from layer specs, ending in a softmax over the classes."""
    layers: list[Layer] = []
    cur: Shape = (None, *shape)
    counts: Counter[str] = Counter()
    names: set[str] = set()
    dense = [i for i, s in enumerate(specs) if s.get("type") == "dense"]
    for i, raw in enumerate(specs):
        spec = dict(raw)
        cls, name = _spec_layer(spec, f"layer {i}", names, counts)
        init = spec.pop("init", None) or ("he" if _next_is_relu(specs, i) else "xavier")
        ctx = BuildContext(rng, n_classes, init, bool(dense) and i == dense[-1])
        try:
            layer = cls.from_arch(name, spec, cur, ctx)
            cur = layer.output_shape(cur)
        except UsageError as exc:
            raise UsageError(f"layer {i} ({cls.type} {name!r}): {exc}") from None
        layers.append(layer)
    if not layers or layers[-1].type != "softmax":
        name = "softmax"
        while name in names:
            name += "_"
        layers.append(make_layer("softmax", name))
        cur = layers[-1].output_shape(cur)
    if len(cur) != 2 or cur[1] != n_classes:
        raise UsageError(
            f"the network's output is {fmt_shape(cur)}; it must be N x {n_classes} "
            "(end with a flatten and a dense layer giving one value per class)"
        )
    return layers


def build_network(
    arch: str | os.PathLike[str] | Sequence[Spec],
    input_shape: tuple[int, int, int],
    n_classes: int,
    *,
    seed: int | None = 0,
    rng: np.random.Generator | None = None,
) -> Network:
    """A freshly initialised :class:`Network` for a named architecture, a TOML file or specs."""
    gen = rng if rng is not None else np.random.default_rng(seed)
    where = ""
    if isinstance(arch, (str, os.PathLike)):
        if is_arch_file(arch):
            specs, _ = load_arch(arch)
            where = f"{os.fspath(arch)}: "
        else:
            specs = default_specs(os.fspath(arch), input_shape)
    else:
        specs = [dict(s) for s in arch]
    c, h, w = input_shape
    try:
        layers = build_layers(specs, input_shape, n_classes, gen)
    except UsageError as exc:
        raise UsageError(f"input {h}x{w}x{c}: {where}{exc}") from None
    return Network(layers, input_shape)
