"""The ``imgkernel`` command line: one group, one module per command family.

================  ==========================================================
module            commands
================  ==========================================================
``app``           the group (:data:`cli`), :func:`main`, the error boundary
``params``        parameter types and the shared output options
``filter``        ``filter``
``kernels``       ``kernels``, ``kernels show``
``pool``          ``pool``
``models``        ``classify``, ``run``, ``summary``, ``features``,
                  ``convert``, ``models``
``train``         ``train``
================  ==========================================================

The command modules define their commands with the types of ``params`` and
the messages of ``app``; this package names them to the group, which imports
a command's module when it is used, so ``app`` knows no command and no
command module imports another.
"""

from imgkernel.cli.app import cli, main

# Each command's module is imported when the command is used (see Group.lazy).
cli.lazy = {
    "filter": ("imgkernel.cli.filter", "filter_command"),
    "kernels": ("imgkernel.cli.kernels", "kernels_command"),
    "pool": ("imgkernel.cli.pool", "pool_command"),
    "classify": ("imgkernel.cli.models", "classify_command"),
    "run": ("imgkernel.cli.models", "run_command"),
    "summary": ("imgkernel.cli.models", "summary_command"),
    "features": ("imgkernel.cli.models", "features_command"),
    "convert": ("imgkernel.cli.models", "convert_command"),
    "models": ("imgkernel.cli.models", "models_command"),
    "train": ("imgkernel.cli.train", "train_command"),
}

__all__ = ["cli", "main"]
