"""The ``imgkernel`` command line (see :mod:`imgkernel.cli.app`)."""

from imgkernel.cli.app import cli, main

__all__ = ["cli", "main"]
