"""The ``imgkernel`` command group and the one boundary where errors become messages.

Each command parses options, calls the library and writes the result. Errors
the user can fix (:class:`~imgkernel.errors.ImgkernelError`) become one line
on stderr and an exit status (2 for usage errors, 1 for other failures).
The commands live in one module per family and are added to :data:`cli` by
:mod:`imgkernel.cli`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import numpy as np

from imgkernel.errors import ImgkernelError, ImgkernelWarning, UsageError, os_error_message

PROG = "imgkernel"


class Group(click.Group):
    """Turns library errors into one line on stderr and an exit status.

    Commands may be registered lazily (``lazy``: name -> (module, attribute)):
    a command's module is imported only when that command runs or help lists
    it, so ``imgkernel filter`` does not pay for the model commands' imports.
    """

    lazy: dict[str, tuple[str, str]] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attribute = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if sys.stdout is None:  # started with file descriptor 1 closed (`imgkernel ... >&-`)
            sys.stdout = _ClosedStdout()
        try:
            # Overflow to inf in float32 is clipped at display time; numpy's
            # warnings would only add noise to stderr. imgkernel's own
            # warnings are one line each; other libraries' (Pillow's notes on
            # odd EXIF data, say) are not the user's business.
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    with one_line_warnings(), c_stderr_silenced():
                        return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
            finally:
                # Text written with click.echo may still sit in the buffer: a reader
                # that left shows here, not as a traceback at interpreter exit.
                _flush_stdout()
        except click.exceptions.NoArgsIsHelpError as exc:
            # `imgkernel` alone asks for help, as `git` does: to stdout, status 0.
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted", 130, prefix="")
        except click.UsageError as exc:
            fail(exc.format_message(), 2)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except ImgkernelError as exc:
            fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            # The reader went away (`| head`) after the command: stop quietly
            # with status 1, as click does when it happens during the command.
            _silence_stdout()
            sys.exit(1)
        except MemoryError:
            fail("out of memory (try a smaller image)", 1)
        except OSError as exc:
            fail(os_error_message(exc, exc.filename or "standard output"), 1)
        except KeyboardInterrupt:
            fail("interrupted", 130, prefix="")


class _ClosedStdout(io.TextIOBase):
    """Standard output of a process started without one: writing to it is a usage error."""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        raise UsageError("standard output is closed; use -o FILE")

    @property
    def buffer(self) -> Any:
        raise UsageError("standard output is closed; use -o FILE")


def _flush_stdout() -> None:
    with contextlib.suppress(ValueError, AttributeError):  # closed or replaced stream
        if sys.stdout is not None:
            sys.stdout.flush()


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the exit-time flush has nowhere to fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def fail(message: str, status: int, *, where: str = PROG, prefix: str = "error: ") -> NoReturn:
    """Print ``where: error: message`` on stderr and exit with ``status``."""
    click.echo(one_line(f"{where}: {prefix}{message}"), err=True)
    sys.exit(status)


def warn(message: str) -> None:
    """Print ``imgkernel: warning: message`` on stderr."""
    click.echo(one_line(f"{PROG}: warning: {message}"), err=True)


def one_line(message: str) -> str:
    r"""``message`` with control characters shown as escapes, so it stays one line.

    A file name or a kernel spec may hold a newline or a vertical tab.

    >>> one_line("a\nb.png: no such file\x0b")
    'a\\nb.png: no such file\\x0b'
    """
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message
    )


@contextlib.contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to /dev/null for the command.

    libtiff prints ``Fax3SetupState: ...`` for a damaged TIFF straight to the
    descriptor, beside imgkernel's one line; Python's ``sys.stderr`` keeps the
    real stderr (a duplicate of the descriptor), so imgkernel's own warnings,
    click's messages and tracebacks of genuine bugs still show.
    """
    stream = sys.stderr
    try:
        real = stream is not None and stream.fileno() == 2
    except (AttributeError, ValueError, OSError):  # replaced (tests) or closed
        real = False
    if not real:
        yield
        return
    stream.flush()
    keep = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    encoding, errors = stream.encoding, stream.errors
    sys.stderr = open(keep, "w", encoding=encoding, errors=errors, buffering=1, closefd=False)  # noqa: SIM115
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        sys.stderr = stream
        os.dup2(keep, 2)
        os.close(keep)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show :class:`~imgkernel.errors.ImgkernelWarning` as one line each; drop other warnings.

    Other libraries' log records go too: Pillow logs ``logger.error(...)`` about
    damaged TIFF headers, and without a handler Python's last-resort handler
    would print them on stderr beside imgkernel's one line.
    """

    def show(message: Any, category: type, *_: Any, **__: Any) -> None:
        if issubclass(category, ImgkernelWarning):
            warn(str(message))

    root = logging.getLogger()
    quiet = logging.NullHandler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", ImgkernelWarning)
        warnings.showwarning = show
        root.addHandler(quiet)  # a handler is found, so the last resort never prints
        try:
            yield
        finally:
            root.removeHandler(quiet)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgkernel", prog_name="imgkernel")
def cli() -> None:
    """Image convolution, pooling and small-CNN inference.

    Every command reads images from files or standard input ('-') and writes
    to a file (-o) or standard output, so commands chain in pipelines:

    \b
      imgkernel filter gaussian:sigma=2 photo.png | imgkernel filter sobel > edges.png
    """


def main() -> None:
    """The console script: run :data:`cli` as ``imgkernel``.

    Ctrl-C and SIGTERM (``kill``, a CI timeout) stop the process at once: a
    file being written is removed (its target is left as it was), one line
    says so for Ctrl-C, and the status is a killed process's (130, 143).
    Stopping at once, rather than raising an exception wherever Python
    happens to be, never leaves a half-unwound interpreter to print
    "Exception ignored" from an import lock or a pool thread.
    """
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _stopped)
        signal.signal(signal.SIGINT, _stopped)
    cli.main(prog_name=PROG)


def _stopped(signum: int, _frame: Any) -> NoReturn:
    from imgkernel.images.deliver import remove_pending

    many = sys.modules.get("imgkernel.images.many")  # worker processes only if it ran
    if many is not None:
        many.stop_workers()
    remove_pending()
    if signum == signal.SIGINT:
        # sys.stderr, not descriptor 2: c_stderr_silenced() points 2 at /dev/null
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"{PROG}: interrupted\n")
            sys.stderr.flush()
    os._exit(128 + signum)
