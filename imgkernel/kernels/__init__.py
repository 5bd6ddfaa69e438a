"""Kernels as data: the kernel record, its generators, the TOML library, applying it to images.

Modules, bottom to top: ``checks`` (validation only kernels need), ``record``
(the :class:`Kernel` record), ``generators`` (the registry of weight
builders), ``matrix`` (matrices the user writes), ``definitions`` (tables of
a kernels TOML file), ``library`` (named kernels and specs), ``files``
(single kernel files), ``apply`` and ``describe`` (using a record), ``filter_image`` (a record
applied to image files: alpha, band by band, display mapping).
"""

from typing import TYPE_CHECKING

from imgkernel.kernels.apply import apply_kernel, iter_kernel_bands
from imgkernel.kernels.files import load_kernel_file
from imgkernel.kernels.filter_image import choose_kernel, filter_files, filter_image
from imgkernel.kernels.library import load_library, parse_spec
from imgkernel.kernels.matrix import kernel_from_matrix, parse_matrix
from imgkernel.kernels.record import Kernel
from imgkernel.lazy import lazy_exports

if TYPE_CHECKING:  # the lazily loaded names below, for type checkers
    from imgkernel.kernels.describe import describe_kernel
    from imgkernel.kernels.large import filter_large

__all__ = [
    "Kernel",
    "apply_kernel",
    "choose_kernel",
    "describe_kernel",
    "filter_files",
    "filter_image",
    "filter_large",
    "iter_kernel_bands",
    "kernel_from_matrix",
    "load_kernel_file",
    "load_library",
    "parse_matrix",
    "parse_spec",
]

#: Names loaded on first use: what only some commands need stays out of start-up.
_LAZY = {
    "describe_kernel": "imgkernel.kernels.describe",
    "filter_large": "imgkernel.kernels.large",
}


__getattr__ = lazy_exports(__name__, _LAZY)
