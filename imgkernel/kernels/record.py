"""The kernel record: a ready-to-apply kernel and the checks that keep it valid.

A 2-D kernel is a float64 array ``(kh, kw)`` applied by **cross-correlation**
(no flip): ``weights[0, 0]`` multiplies the pixel above-left of the output
pixel.  A record also carries what applying it needs besides the weights: an
offset, a dilation, how its signed result is shown by default, and whether it
is a stack of components combined by magnitude.  Records are made by the
generators, the matrix parser and the TOML library; the checks here run for
every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from imgkernel.core.windows import as_pair
from imgkernel.errors import UsageError, check_choice, check_float, check_int
from imgkernel.images import POINTWISE_DISPLAY_MODES
from imgkernel.kernels.checks import quote

__all__ = ["ARITHMETIC_MODES", "COMBINE_MODES", "KERNEL_DISPLAY_MODES", "Kernel"]

#: How a record's signed result may be shown by default: the shared display
#: modes except ``normalize``, which depends on a whole image's range and is
#: only ever asked for on the command line.
KERNEL_DISPLAY_MODES = POINTWISE_DISPLAY_MODES

#: ``single``: one 2-D kernel; ``magnitude``: the root of the summed squared
#: responses of a stack of components.
COMBINE_MODES = ("single", "magnitude")
#: ``core``: the convolution core's fastest path; ``pillow``: Pillow's float32
#: order of operations, so 8-bit results equal ``PIL.ImageFilter``'s pixel for pixel.
ARITHMETIC_MODES = ("core", "pillow")


@dataclass(frozen=True, eq=False)
class Kernel:
    """A ready-to-apply kernel.

    Attributes
    ----------
    name : str
        Canonical spec, e.g. ``"gaussian:sigma=2.5"``, ``"sobel"``, or the
        file name / ``"matrix"`` for user matrices.
    weights : numpy.ndarray
        float64 ``(kh, kw)``, already divided by the scale; read-only.  For
        ``combine="magnitude"`` a stack ``(n, kh, kw)`` of components.
    offset : float
        Added after correlation, as a fraction of full scale (0.5 = mid-grey:
        128 in 8-bit, 32768 in 16-bit, 0.5 in float images).
    description : str
        One line for listings.
    display : {"clip", "abs", "offset"}
        How a signed result is shown in an 8/16-bit image by default.
    dilation : tuple of int
        ``(dy, dx)`` spacing between taps; the core applies it, see
        :meth:`expanded` for the equivalent dense matrix.
    combine : {"single", "magnitude"}
        ``"magnitude"``: the output is ``sqrt(sum_i (image ⋆ weights[i])**2)``.
    arithmetic : {"core", "pillow"}
        ``"pillow"`` (Pillow's built-in filters) sums the taps in float32 in
        Pillow's order, with the offset and the rounding half first, so a
        result rounded to 8 bits ties where Pillow's does (see
        :func:`imgkernel.kernels.apply.apply_kernel`).

    Examples
    --------
    >>> k = Kernel("ones", np.ones((3, 3)), dilation=(2, 2))
    >>> k.shape, k.extent
    ((3, 3), (5, 5))
    >>> k.expanded()
    array([[1., 0., 1., 0., 1.],
           [0., 0., 0., 0., 0.],
           [1., 0., 1., 0., 1.],
           [0., 0., 0., 0., 0.],
           [1., 0., 1., 0., 1.]])
    >>> Kernel("ones", np.ones((3, 3)), display="normalize")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: kernel 'ones': display must be one of clip, abs, offset, \
got 'normalize'
    """

    name: str
    weights: np.ndarray
    offset: float = 0.0
    description: str = ""
    display: str = "clip"
    dilation: tuple[int, int] = (1, 1)
    combine: str = "single"
    arithmetic: str = "core"

    def __post_init__(self) -> None:
        what = f"kernel {quote(self.name)}"
        combine = check_choice(self.combine, f"{what}: combine", COMBINE_MODES)
        checked = {
            "weights": _checked_weights(self.weights, combine, what),
            "display": check_choice(self.display, f"{what}: display", KERNEL_DISPLAY_MODES),
            "offset": check_float(self.offset, f"{what}: offset"),
            "dilation": _checked_dilation(self.dilation, what),
            "combine": combine,
            "arithmetic": check_choice(self.arithmetic, f"{what}: arithmetic", ARITHMETIC_MODES),
        }
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @property
    def shape(self) -> tuple[int, int]:
        """Spatial size ``(kh, kw)`` of the taps (also for magnitude stacks)."""
        kh, kw = self.weights.shape[-2:]
        return int(kh), int(kw)

    @property
    def extent(self) -> tuple[int, int]:
        """Footprint ``((kh-1)*dy+1, (kw-1)*dx+1)`` including the dilation holes."""
        (kh, kw), (dy, dx) = self.shape, self.dilation
        return (kh - 1) * dy + 1, (kw - 1) * dx + 1

    @property
    def components(self) -> tuple[np.ndarray, ...]:
        """The 2-D kernels: ``(weights,)`` or the magnitude's components."""
        if self.combine == "single":
            return (self.weights,)
        return tuple(self.weights)

    @property
    def total(self) -> float:
        """Sum of the weights (for a magnitude stack: of all components)."""
        return float(self.weights.sum())

    @property
    def is_zero_sum(self) -> bool:
        """True if every component sums to 0 (up to rounding).

        Examples
        --------
        >>> Kernel("dx", [[-1, 0, 1]]).is_zero_sum, Kernel("box", np.ones((2, 2)) / 4).is_zero_sum
        (True, False)
        """
        return all(
            abs(float(c.sum())) <= 1e-9 * max(1.0, float(np.abs(c).sum())) for c in self.components
        )

    def spacing(self, dilation: Any = 1) -> tuple[int, int]:
        """The taps' spacing when a caller asks for ``dilation``: it times the record's own.

        >>> Kernel("k", np.ones((3, 3)), dilation=(2, 1)).spacing(3)
        (6, 3)
        """
        ask = as_pair(dilation, "dilation")
        return ask[0] * self.dilation[0], ask[1] * self.dilation[1]

    def divided(self, divisor: float) -> Kernel:
        """This kernel with its weights divided by ``divisor`` (a non-zero finite number).

        >>> Kernel("k", [[2.0, 4.0]]).divided(2).weights
        array([[1., 2.]])
        """
        what = f"kernel {quote(self.name)}: divisor"
        number = check_float(divisor, what)
        if number == 0:
            raise UsageError(f"{what} must not be 0")
        return replace(self, weights=self.weights / number)

    def expanded(self) -> np.ndarray:
        """Dense weights with the dilation holes filled with zeros.

        Shape ``extent`` (prefixed by ``n`` for a magnitude stack).  Applying
        it with dilation 1 gives the same result as ``weights`` at
        ``dilation``.
        """
        dy, dx = self.dilation
        out = np.zeros(self.weights.shape[:-2] + self.extent, dtype=np.float64)
        out[..., ::dy, ::dx] = self.weights
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return (
            self.name == other.name
            and self.offset == other.offset
            and self.description == other.description
            and self.display == other.display
            and self.dilation == other.dilation
            and self.combine == other.combine
            and self.arithmetic == other.arithmetic
            and self.weights.shape == other.weights.shape
            and bool(np.array_equal(self.weights, other.weights))
        )

    def __hash__(self) -> int:
        return hash((self.name, self.weights.shape, self.offset, self.dilation, self.combine))


def _checked_weights(weights: Any, combine: str, what: str) -> np.ndarray:
    """A read-only float64 copy: 2-D (3-D for a magnitude stack), not empty, finite."""
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what}: weights are not numeric ({exc})") from None
    want = 2 if combine == "single" else 3
    if w.ndim != want:
        raise UsageError(
            f"{what}: weights must be {want}-D for combine={combine!r}, got shape {w.shape}"
        )
    if w.size == 0:
        raise UsageError(f"{what}: weights are empty")
    if not np.all(np.isfinite(w)):
        raise UsageError(f"{what}: weights contain NaN or infinity")
    w.setflags(write=False)
    return w


def _checked_dilation(dilation: Any, what: str) -> tuple[int, int]:
    """A pair of integers >= 1."""
    try:
        dy, dx = dilation
    except (TypeError, ValueError):
        raise UsageError(f"{what}: dilation must be a pair of integers, got {dilation!r}") from None
    return (
        check_int(dy, f"{what}: dilation", minimum=1),
        check_int(dx, f"{what}: dilation", minimum=1),
    )
