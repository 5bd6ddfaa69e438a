"""Single kernel files: a TOML table, a ``.npy`` array or a text matrix.

``--kernel-file`` names one of these; the file's suffix says which it is.
Reading goes through :mod:`imgkernel.errors`' user-file helpers, so a
missing or unreadable file is a one-line message naming it.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np

from imgkernel.errors import UsageError, read_user_bytes, read_user_text
from imgkernel.kernels.checks import check_shape, quote
from imgkernel.kernels.definitions import parse_definitions
from imgkernel.kernels.library import library_of
from imgkernel.kernels.matrix import kernel_from_matrix, parse_matrix
from imgkernel.kernels.record import Kernel

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_kernel_file"]


def load_kernel_file(
    path: str | Path, *, scale: float | str | None = None, offset: float = 0.0
) -> Kernel:
    """Load one kernel from a file.

    * ``.toml``: a single kernel table (``rows = ...`` at top level), or a file
      of ``[kernels.NAME]`` tables; a file with several names one of them as
      ``FILE.toml:NAME``. It may use generators and refer to built-in kernels,
      and declares its own ``scale`` (divisor, default 1) and ``offset``.
    * ``.npy``: a 2-D numeric array (loaded with ``allow_pickle=False``).
    * anything else: a text matrix for :func:`parse_matrix` (whitespace or
      CSV, one row per line).

    For ``.npy`` and text the weights are used as written unless ``scale``
    (a divisor, or ``"sum"``) is given, as in :func:`kernel_from_matrix`.
    """
    name, chosen = _split_choice(str(path))
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".toml":
        return _toml_kernel(name, chosen)
    if chosen is not None:
        raise UsageError(f"kernel file {quote(name, 0)}: only a .toml file holds named kernels")
    if suffix == ".npy":
        matrix = _npy_matrix(name)
    else:
        text = read_user_text(name)
        try:
            matrix = parse_matrix(text)
        except UsageError as exc:
            raise UsageError(f"kernel file {quote(name, 0)}: {exc}") from None
    return kernel_from_matrix(matrix, name=name, scale=scale, offset=offset)


def _split_choice(path: str) -> tuple[str, str | None]:
    """``"k.toml:ridge"`` -> ``("k.toml", "ridge")``; a plain path (even with a colon) as is."""
    head, sep, tail = path.rpartition(":")
    if sep and head.lower().endswith(".toml") and tail and "/" not in tail:
        return head, tail
    return path, None


def _toml_kernel(name: str, chosen: str | None) -> Kernel:
    """The kernel a TOML file defines (``chosen`` when it has several), against the built-ins."""
    definitions = parse_definitions(read_user_text(name), name)
    if not definitions:
        raise UsageError(f"kernel file {quote(name, 0)} defines no kernel")
    names = list(definitions)
    if chosen is None and len(names) > 1:
        listed = ", ".join(names)
        raise UsageError(
            f"kernel file {quote(name, 0)} defines {len(names)} kernels ({listed}); "
            f"choose one as {name}:{names[0]}"
        )
    key = names[0] if chosen is None else chosen
    if key not in definitions:
        raise UsageError(
            f"kernel file {quote(name, 0)} has no kernel {quote(key)} (it defines "
            f"{', '.join(names)})"
        )
    return library_of(definitions).resolve(key)


def _npy_matrix(name: str) -> np.ndarray:
    """A 2-D numeric array from a ``.npy`` file: the header is checked before any data is read.

    No pickle is ever loaded (``allow_pickle=False``), and a header that
    promises more than :data:`~imgkernel.kernels.checks.MAX_KERNEL_SIZE` taps
    a side is refused without reading on; an empty, truncated or foreign file
    (a ``.npz`` zip, random bytes) is a one-line usage error.
    """
    from numpy.lib import format as npformat

    what = f"kernel file {quote(name, 0)}"
    stream = io.BytesIO(read_user_bytes(name))
    try:
        version = npformat.read_magic(stream)
        read_header = (
            npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        )
        shape, _, dtype = read_header(stream)
    except Exception as exc:  # EOFError, ValueError, ...: not an .npy file at all
        raise UsageError(f"{what} is not a readable .npy ({exc or type(exc).__name__})") from None
    if len(shape) != 2 or 0 in shape:
        raise UsageError(f"{what}: expected a non-empty 2-D array, got shape {tuple(shape)}")
    check_shape(tuple(shape), what)
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise UsageError(f"{what}: dtype {dtype} is not numeric")
    stream.seek(0)
    try:
        array = np.load(stream, allow_pickle=False)
    except Exception as exc:  # truncated data
        raise UsageError(f"{what} is not a readable .npy ({exc or type(exc).__name__})") from None
    return np.asarray(array, dtype=np.float64)
