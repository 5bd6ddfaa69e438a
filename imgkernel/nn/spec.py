"""The input spec: how an image becomes a model's input tensor (stored in the model file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imgkernel.errors import UsageError, check_float, check_int

RESIZE_MODES = ("stretch", "fit", "crop", "none")
#: Largest input height/width a model may declare (a sanity limit on file contents).
MAX_INPUT_SIDE = 16384

_KEYS = ("channels", "color", "height", "width", "resize", "scale", "mean", "std")


@dataclass
class InputSpec:
    """How an image becomes the network's input.

    ``value = (pixel_0_255 * scale - mean[c]) / std[c]`` after converting to
    ``color`` and resizing to ``height`` x ``width``.
    """

    channels: int = 3
    height: int = 224
    width: int = 224
    color: str | None = None
    resize: str = "stretch"
    scale: float = 1 / 255
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.channels = check_int(self.channels, "input channels")
        if self.channels not in (1, 3):
            raise UsageError(f"input channels must be 1 or 3, got {self.channels}")
        expected = "L" if self.channels == 1 else "RGB"
        if self.color is None:
            self.color = expected
        if self.color != expected:
            raise UsageError(
                f"input color {self.color!r} does not match {self.channels} channel(s)"
                f" (expected {expected!r})"
            )
        self.height = check_int(self.height, "input height", minimum=1, maximum=MAX_INPUT_SIDE)
        self.width = check_int(self.width, "input width", minimum=1, maximum=MAX_INPUT_SIDE)
        if self.resize not in RESIZE_MODES:
            raise UsageError(
                f"input resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )
        self.scale = check_float(self.scale, "input scale")
        for key, default in (("mean", 0.0), ("std", 1.0)):
            vals = getattr(self, key)
            if vals is None or (isinstance(vals, list) and not vals):
                vals = [default] * self.channels
            if isinstance(vals, (int, float)):
                vals = [vals] * self.channels
            if not isinstance(vals, (list, tuple)) or len(vals) != self.channels:
                raise UsageError(f"input {key} must list {self.channels} number(s), got {vals!r}")
            setattr(self, key, [check_float(v, f"input {key}") for v in vals])
        if any(s == 0 for s in self.std):
            raise UsageError("input std must not be zero")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one prepared image."""
        return (self.channels, self.height, self.width)

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "color": self.color,
            "height": self.height,
            "width": self.width,
            "resize": self.resize,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_json(cls, data: Any) -> InputSpec:
        if not isinstance(data, dict):
            raise UsageError(f"model input spec must be an object, got {data!r}")
        unknown = set(data) - set(_KEYS)
        if unknown:
            raise UsageError(f"unknown input spec key(s): {', '.join(sorted(unknown))}")
        for key in ("channels", "height", "width"):
            if key not in data:
                raise UsageError(f"model input spec lacks {key!r}")
        return cls(**data)
