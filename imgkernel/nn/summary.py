"""A model's summary: its inputs (and how an image becomes one), every node's shape and size.

``str(summary)`` is the text ``imgkernel summary`` prints: the graph inputs
with their shapes and the image preprocessing (size, colour mode, resize,
scale, mean/std, layout), a table of nodes (index, name, type, the tensors it
reads when the model is not a plain chain, output shape, parameter count) and
the outputs with what they hold (probabilities when the model ends in a
softmax, else raw outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgkernel.nn.layers import Shape
from imgkernel.nn.layers.attrs import fmt_shape
from imgkernel.nn.spec import InputSpec


@dataclass
class SummaryRow:
    index: int
    name: str
    type: str
    output_shape: Shape
    params: int
    inputs: tuple[str, ...] = ()


def shape_text(s: Shape) -> str:
    """A shape without its leading any-size (batch) axis: ``64 x 254 x 254``."""
    return fmt_shape(s[1:] if s and s[0] is None else s)


def spec_lines(spec: InputSpec) -> list[str]:
    """How an image becomes the model's input, in two lines."""
    mean = ", ".join(f"{v:g}" for v in spec.mean)
    std = ", ".join(f"{v:g}" for v in spec.std)
    return [
        f"image: {spec.color} {spec.width}x{spec.height} (W x H), resize {spec.resize}, "
        f"layout N x C x H x W (channels first), float32",
        f"       value = (pixel_0_255 * {spec.scale:.8g} - mean) / std; mean [{mean}], std [{std}]",
    ]


@dataclass
class Summary:
    """Rows of (index, name, type, output shape, parameter count) and the total.

    ``str(summary)`` is a text table; shapes omit the batch axis when it is
    the leading (any-size) axis. ``inputs`` and ``outputs`` are
    ``(name, shape)`` pairs; ``spec`` the image preprocessing (None: the
    model takes tensors, not images).
    """

    input_shape: tuple[int, ...]
    rows: list[SummaryRow]
    total_params: int
    inputs: list[tuple[str, Shape]] = field(default_factory=list)
    outputs: list[tuple[str, Shape]] = field(default_factory=list)
    spec: InputSpec | None = None
    output_kind: str = ""
    show_inputs: bool = False

    def _table(self) -> list[str]:
        head = ["#", "name", "type"] + (["inputs"] if self.show_inputs else [])
        table = [[*head, "output shape", "params"]]
        for r in self.rows:
            reads = [", ".join(r.inputs)] if self.show_inputs else []
            cells = [str(r.index), r.name, r.type, *reads, shape_text(r.output_shape)]
            table.append([*cells, f"{r.params:,}"])
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = []
        for row in table:
            cells = [row[0].rjust(widths[0])]
            cells += [c.ljust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
            cells.append(row[-1].rjust(widths[-1]))
            lines.append("  " + "  ".join(cells).rstrip())
        return lines

    def header_lines(self) -> list[str]:
        lines = [f"input: {name}  {fmt_shape(shape)}" for name, shape in self.inputs]
        if self.spec is not None:
            lines += spec_lines(self.spec)
        return lines

    def footer_lines(self) -> list[str]:
        kind = f" ({self.output_kind})" if self.output_kind else ""
        return [f"output: {name}  {fmt_shape(shape)}{kind}" for name, shape in self.outputs]

    def __str__(self) -> str:
        lines = self.header_lines() + self._table()
        lines.append(f"total parameters: {self.total_params:,}")
        return "\n".join(lines + self.footer_lines())
