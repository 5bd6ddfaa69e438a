"""Single kernel files: a TOML table, a ``.npy`` array or a text matrix.

``--kernel-file`` names one of these; the file's suffix says which it is.
Reading goes through :mod:`imgkernel.errors`' user-file helpers, so a
missing or unreadable file is a one-line message naming it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from imgkernel.errors import UsageError, read_user_bytes, read_user_text
from imgkernel.kernels.checks import quote
from imgkernel.kernels.definitions import parse_definitions
from imgkernel.kernels.library import library_of
from imgkernel.kernels.matrix import kernel_from_matrix, parse_matrix
from imgkernel.kernels.record import Kernel

__all__ = ["load_kernel_file"]


def load_kernel_file(
    path: str | Path, *, scale: float | None = None, offset: float = 0.0
) -> Kernel:
    """Load one kernel from a file.

    * ``.toml``: a single kernel table (``rows = ...`` at top level), or a file
      of ``[kernels.NAME]`` tables, of which the first is used.  It may use
      generators and refer to built-in kernels.  ``scale``/``offset`` are
      ignored (the file has its own).
    * ``.npy``: a 2-D numeric array (loaded with ``allow_pickle=False``).
    * anything else: a text matrix for :func:`parse_matrix` (whitespace or
      CSV, one row per line).

    For ``.npy`` and text, ``scale`` defaults to the absolute sum of the
    weights (1 for zero-sum kernels) as in :func:`kernel_from_matrix`.
    """
    name = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        return _toml_kernel(name)
    if suffix == ".npy":
        matrix = _npy_matrix(name)
    else:
        text = read_user_text(name)
        try:
            matrix = parse_matrix(text)
        except UsageError as exc:
            raise UsageError(f"kernel file {quote(name, 0)}: {exc}") from None
    return kernel_from_matrix(matrix, name=name, scale=scale, offset=offset)


def _toml_kernel(name: str) -> Kernel:
    """The first kernel a TOML file defines, built against the built-in library."""
    definitions = parse_definitions(read_user_text(name), name)
    if not definitions:
        raise UsageError(f"kernel file {quote(name, 0)} defines no kernel")
    return library_of(definitions).resolve(next(iter(definitions)))


def _npy_matrix(name: str) -> np.ndarray:
    """A 2-D numeric array from a ``.npy`` file (no pickles)."""
    try:
        array = np.load(io.BytesIO(read_user_bytes(name)), allow_pickle=False)
    except ValueError as exc:
        raise UsageError(f"kernel file {quote(name, 0)} is not a readable .npy ({exc})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise UsageError(
            f"kernel file {quote(name, 0)}: expected a 2-D array, got shape "
            f"{getattr(array, 'shape', '?')}"
        )
    if array.dtype.kind not in "biuf":
        raise UsageError(f"kernel file {quote(name, 0)}: dtype {array.dtype} is not numeric")
    return array.astype(np.float64)
