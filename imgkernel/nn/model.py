"""The sequential model: layers in order, class labels and an input spec.

A :class:`Model` applies its layers (:mod:`imgkernel.nn.layers`) in order to an
``(N, C, H, W)`` float32 batch. It validates itself when built: shapes are
propagated from the input spec through every layer, so a model that exists
also runs. Layer indices are 0-based everywhere (summary rows, error
messages, ``until``). Files: :mod:`imgkernel.nn.fileformat`; images in and
classes out: :mod:`imgkernel.nn.prepare`, :mod:`imgkernel.nn.predict`.

Examples
--------
The lecture notes' example: 64 filters of 3x3 over a 256x256 RGB image.

>>> rng = np.random.default_rng(0)
>>> m = Model.from_layers(
...     [Conv2D("conv1", rng.standard_normal((64, 3, 3, 3)), np.zeros(64))],
...     input_spec=InputSpec(channels=3, height=256, width=256))
>>> print(m.summary())
  #  name   type    output shape    params
  0  conv1  conv2d  64 x 254 x 254   1,792
total parameters: 1,792
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import Conv2D, Layer, Shape
from imgkernel.nn.layers.attrs import fmt_shape
from imgkernel.nn.spec import InputSpec

__all__ = ["Conv2D", "InputSpec", "Model", "Summary", "SummaryRow"]

FORMAT = "imgkernel-model"
VERSION = 1


@dataclass
class SummaryRow:
    index: int
    name: str
    type: str
    output_shape: Shape
    params: int


@dataclass
class Summary:
    """Rows of (index, name, type, output shape, parameter count) and the total.

    ``str(summary)`` is a text table; shapes omit the batch axis when it is
    the leading (any-size) axis.
    """

    input_shape: tuple[int, int, int]
    rows: list[SummaryRow]
    total_params: int

    def __str__(self) -> str:
        def shape_text(s: Shape) -> str:
            return fmt_shape(s[1:] if s and s[0] is None else s)

        table = [("#", "name", "type", "output shape", "params")]
        for r in self.rows:
            table.append(
                (str(r.index), r.name, r.type, shape_text(r.output_shape), f"{r.params:,}")
            )
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines = []
        for row in table:
            cells = [
                row[0].rjust(widths[0]),
                row[1].ljust(widths[1]),
                row[2].ljust(widths[2]),
                row[3].ljust(widths[3]),
                row[4].rjust(widths[4]),
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append(f"total parameters: {self.total_params:,}")
        return "\n".join(lines)


class Model:
    """A sequential CNN: layers, class labels and an input spec.

    Build with :meth:`from_layers` (validates shapes) or
    :func:`imgkernel.nn.fileformat.load_model`. Call ``model(x)`` or
    ``model.forward(x, until=...)`` on (N, C, H, W) input.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> None:
        self.layers = list(layers)
        self.labels = [str(s) for s in (labels or [])]
        self.input_spec = input_spec or InputSpec()
        self.description = str(description)
        self.shapes = self._validate()

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[Layer],
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
        description: str = "",
    ) -> Model:
        return cls(layers, labels, input_spec, description)

    # -- validation -----------------------------------------------------
    def _validate(self) -> list[Shape]:
        shapes: list[Shape] = []
        shape: Shape = (None, *self.input_spec.shape)
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise UsageError(f"layer {i} is not a Layer: {layer!r}")
            if layer.name in seen:
                raise UsageError(f"layer {i} ({layer.name!r}): duplicate layer name")
            seen.add(layer.name)
            try:
                shape = layer.output_shape(shape)
            except UsageError as exc:
                raise UsageError(f"layer {i} ({layer.name!r}, {layer.type}): {exc}") from None
            shapes.append(shape)
        if self.labels:
            out = shapes[-1] if shapes else (None, *self.input_spec.shape)
            if len(out) != 2 or out[1] != len(self.labels):
                raise UsageError(
                    f"the model has {len(self.labels)} labels but its output is "
                    f"{fmt_shape(out)}; expected N x {len(self.labels)}"
                )
        return shapes

    # -- queries --------------------------------------------------------
    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1] if self.shapes else (None, *self.input_spec.shape)

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def layer_index(self, key: int | str) -> int:
        """Index of a layer given by index (negative counts from the end) or name."""
        n = len(self.layers)
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            for i, layer in enumerate(self.layers):
                if layer.name == key:
                    return i
            names = ", ".join(layer.name for layer in self.layers)
            raise UsageError(f"no layer named {key!r}; layers: {names}")
        idx = int(key)
        if not -n <= idx < n:
            raise UsageError(
                f"layer index {idx} out of range: the model has {n} layers (0-{n - 1})"
            )
        return idx % n

    def layer(self, key: int | str) -> Layer:
        return self.layers[self.layer_index(key)]

    def summary(self) -> Summary:
        rows = [
            SummaryRow(i, layer.name, layer.type, shape, layer.param_count)
            for i, (layer, shape) in enumerate(zip(self.layers, self.shapes, strict=True))
        ]
        return Summary(self.input_spec.shape, rows, self.param_count)

    # -- inference ----------------------------------------------------------
    def forward(self, x: np.ndarray, until: int | str | None = None) -> np.ndarray:
        """Run the layers on ``x`` (N, C, H, W); stop after layer ``until`` if given.

        An empty batch (N = 0) gives an empty float32 result of the inferred shape.
        """
        x = np.asarray(x)
        expect = self.input_spec.shape
        if x.ndim != 4 or x.shape[1:] != expect:
            raise UsageError(
                f"model input must be N x {fmt_shape(expect)}, got {fmt_shape(x.shape)}"
            )
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        stop = len(self.layers) if until is None else self.layer_index(until) + 1
        if x.shape[0] == 0:
            # an empty batch: every unknown dim of the inferred shape is a
            # multiple of the batch size, so 0
            shape = self.shapes[stop - 1] if stop else (None, *expect)
            return np.zeros(tuple(0 if d is None else d for d in shape), np.float32)
        given = x
        for layer in self.layers[:stop]:
            # elementwise layers overwrite intermediate results, never the caller's array
            if (
                layer.INPLACE
                and x.dtype == np.float32
                and x.flags.writeable
                and not np.may_share_memory(x, given)
            ):
                x = layer.inplace(x)
            else:
                x = layer(x)
        return x

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"Model({len(self.layers)} layers, {self.param_count:,} params, "
            f"input {fmt_shape(self.input_spec.shape)}, {len(self.labels)} labels)"
        )

    # -- serialisation ------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The model file's JSON header (see ``docs/model-format.md``)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "input": self.input_spec.to_json(),
            "labels": list(self.labels),
            "layers": [layer.spec() for layer in self.layers],
        }
        if self.description:
            out["description"] = self.description
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The model file's weight entries: ``"layer.key"`` -> array."""
        return {
            f"{layer.name}.{key}": arr
            for layer in self.layers
            for key, arr in layer.parameters().items()
        }
