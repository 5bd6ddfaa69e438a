"""Kernels as data: the kernel record, its generators, the TOML library, applying it to images."""

from imgkernel.kernels.apply import apply_kernel, describe_kernel, iter_kernel_bands
from imgkernel.kernels.library import (
    Kernel,
    kernel_from_matrix,
    load_kernel_file,
    load_library,
    parse_matrix,
    parse_spec,
)

__all__ = [
    "Kernel",
    "apply_kernel",
    "describe_kernel",
    "iter_kernel_bands",
    "kernel_from_matrix",
    "load_kernel_file",
    "load_library",
    "parse_matrix",
    "parse_spec",
]
