"""The inputs of a command over many files: arguments, quoted globs, a list in a file.

:func:`list_inputs` puts together the input arguments, each expanded when it
is a glob pattern the shell left alone (quoted, ``'photos/**/*.jpg'``), and
the names listed one a line in a file (``--files-from``), so ten million
names need neither a shell glob nor a command line that long.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO

from imgkernel.errors import UsageError, open_user_file

__all__ = ["expand_glob", "list_inputs", "read_file_list"]

GLOB_CHARACTERS = frozenset("*?[")


def expand_glob(argument: str) -> list[str]:
    """The files a glob pattern matches, sorted (``**`` spans folders); the argument itself
    when it names an existing file, holds no glob character or matches nothing.

    Folders that match are left out: a pattern such as ``photos/**`` means the files.
    """
    if argument == "-" or not GLOB_CHARACTERS & set(argument) or os.path.lexists(argument):
        return [argument]
    import glob  # only for patterns: plain names are most of the inputs

    matches = [m for m in glob.glob(argument, recursive=True) if not os.path.isdir(m)]
    return sorted(matches) or [argument]


def read_file_list(path: str) -> Iterator[str]:
    """The names listed in ``path`` (``-``: standard input), one a line.

    Lines end with ``\\n`` (a ``\\r`` before it is dropped); empty lines are
    skipped; names are decoded as the file system's names are, so any name
    that ``find`` prints can be listed. A NUL byte is refused.
    """
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise UsageError("--files-from -: standard input is not readable")
        yield from _names(stream, "standard input")
        return
    if os.path.isdir(path):
        raise UsageError(f"--files-from {path}: is a directory")
    with open_user_file(path) as handle:
        yield from _names(handle, path)


def _names(stream: IO[bytes], where: str) -> Iterator[str]:
    try:
        for number, line in enumerate(stream, 1):
            name = line.rstrip(b"\n").removesuffix(b"\r")
            if not name.strip():  # blank lines, also of spaces only, name no file
                continue
            if b"\0" in name:
                raise UsageError(f"--files-from {where}: line {number} holds a NUL byte")
            yield os.fsdecode(name)
    except OSError as exc:
        raise UsageError(f"--files-from {where}: cannot read ({exc.strerror or exc})") from None


def list_inputs(arguments: Iterable[str], files_from: str | None = None) -> list[str]:
    """The inputs: each argument (a glob pattern expanded), then the names in ``files_from``.

    With ``files_from`` ``-`` (standard input) no input may be ``-``.
    """
    names = [name for argument in arguments for name in expand_glob(argument)]
    if files_from is None:
        return names
    if not files_from:
        raise UsageError("--files-from needs a file name, or '-' for standard input")
    if files_from == "-" and "-" in names:
        raise UsageError("--files-from - reads standard input; no input can be '-' as well")
    names.extend(read_file_list(files_from))
    return names
