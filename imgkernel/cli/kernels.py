"""``imgkernel kernels`` and ``kernels show``: the named kernels."""

from __future__ import annotations

import click

from imgkernel.cli.params import KERNEL_LIBRARIES


@click.group("kernels", invoke_without_command=True)
@KERNEL_LIBRARIES
@click.pass_context
def kernels_command(ctx: click.Context, kernel_files: tuple[str, ...]) -> None:
    """List the named kernels, or show one with 'kernels show NAME'."""
    ctx.obj = kernel_files
    if ctx.invoked_subcommand is None:
        from imgkernel.kernels import load_library

        library = load_library(kernel_files)
        names = library.names()
        width = max(len(n) for n in names)
        for name in names:
            click.echo(f"{name:<{width}}  {library.describe(name)}")


@kernels_command.command("show")
@click.argument("spec", metavar="NAME[:key=value,...]")
@KERNEL_LIBRARIES
@click.pass_obj
def kernels_show(group_files: tuple[str, ...], spec: str, kernel_files: tuple[str, ...]) -> None:
    """Print a kernel's matrix and properties (sum, separable or not).

    --kernels may come before 'show' or after it, as for 'filter'.
    """
    from imgkernel.kernels import describe_kernel, load_library

    libraries = (*(group_files or ()), *kernel_files)
    click.echo(describe_kernel(load_library(libraries).resolve(spec)))
