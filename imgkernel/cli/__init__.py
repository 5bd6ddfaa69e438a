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
the messages of ``app``; this package adds them to the group, so ``app``
knows no command and no command module imports another.
"""

from imgkernel.cli import filter, kernels, models, pool, train
from imgkernel.cli.app import cli, main

for _command in (
    filter.filter_command,
    kernels.kernels_command,
    pool.pool_command,
    models.classify_command,
    models.run_command,
    models.summary_command,
    models.features_command,
    models.convert_command,
    models.models_command,
    train.train_command,
):
    cli.add_command(_command)

__all__ = ["cli", "main"]
