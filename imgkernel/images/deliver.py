"""Atomic delivery of encoded data to a file, or to standard output.

The data goes to a hidden temporary file next to the target, which then
replaces the target with :func:`os.replace`. If anything fails, the temporary
file is removed and an existing target is left untouched. (Not fsync'ed:
atomic against failures of this process, not against power loss.) An existing
target that is not a regular file, such as ``/dev/null`` or a FIFO, is written
directly instead. A symlink target is followed; the new file keeps the old
one's permissions. Images, arrays, text and model files all arrive this way.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import stat
import sys
from collections.abc import Callable
from io import BytesIO
from typing import IO

from imgkernel.errors import ImgkernelError, UsageError

_TTY_REFUSAL = "refusing to write binary image data to a terminal; use -o FILE or a pipe"


def check_target(target: str) -> str:
    """Refuse a target in a missing directory or naming a directory; return the real path."""
    dest = os.path.realpath(target) if os.path.islink(target) else target
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise UsageError(f"{target}: directory {os.path.dirname(target) or '.'} does not exist")
    if os.path.isdir(dest):
        raise UsageError(f"{target}: is a directory")
    return dest


def deliver(target: str, encode: Callable[[IO[bytes]], None], *, binary: bool = True) -> None:
    """Run ``encode(file)`` into ``target`` atomically (``"-"``: standard output).

    The data goes to a hidden temporary file beside the target, which then
    replaces it; on any failure the temporary file is removed and an existing
    target is left untouched. Binary data is refused on a terminal.
    """
    if target == "-":
        _to_stdout(encode, binary)
        return
    dest = check_target(target)
    try:
        special = not stat.S_ISREG(os.stat(dest).st_mode)
    except OSError:
        special = False
    if special:
        # /dev/null, a FIFO, a terminal device...: write straight into it; replacing
        # it with a regular file would be wrong (and, as root, destructive).
        buf = BytesIO()
        encode(buf)
        try:
            with open(dest, "wb") as f:
                write_all(f, buf.getvalue())
        except OSError as exc:
            raise _cannot_write(target, exc) from None
        return
    _replace(target, dest, encode)


def _to_stdout(encode: Callable[[IO[bytes]], None], binary: bool) -> None:
    stdout = sys.stdout
    if stdout is None:
        raise UsageError("no standard output to write to")
    isatty = getattr(stdout, "isatty", None)
    if binary and isatty is not None and isatty():
        raise UsageError(_TTY_REFUSAL)
    buf = BytesIO()
    encode(buf)  # all of it, so a failing encoder writes nothing
    out = getattr(stdout, "buffer", None)
    if out is None:
        raise UsageError("standard output is a text stream; cannot write binary data")
    write_all(out, buf.getvalue())


def write_all(out: IO[bytes], data: bytes) -> None:
    """Write all of ``data`` and flush, or raise: a short write is not success.

    After a pipe's reader has gone, a buffered write may return fewer bytes
    than asked instead of raising; writing the rest raises ``BrokenPipeError``
    (the CLI then stops with the SIGPIPE status), so truncated output never
    passes for a finished one.
    """
    view = memoryview(data)
    while view:
        written = out.write(view)
        if not written:
            raise BrokenPipeError(errno.EPIPE, "short write: the reader went away")
        view = view[written:]
    out.flush()


#: Temporary files being written: removed at exit if an exception (Ctrl-C,
#: SIGTERM) arrives before their own cleanup is in place (see :func:`_replace`).
_PENDING: set[str] = set()


def remove_pending() -> None:
    """Remove every temporary file still being written (at exit, or on a signal)."""
    for name in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(name)


atexit.register(remove_pending)


def _replace(target: str, dest: str, encode: Callable[[IO[bytes]], None]) -> None:
    directory = os.path.dirname(os.path.abspath(dest))
    # The name is recorded before the file exists, so a signal at any moment
    # leaves nothing behind: before the try below, the exit hook removes it.
    name = _fresh_name(directory, os.path.basename(dest))
    _PENDING.add(name)
    try:
        os.close(_create(name, target, directory))
        with open(name, "r+b") as tmp:  # by name, so encoders see the path in tmp.name
            encode(tmp)
        _set_mode(name, dest)
        os.replace(name, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        if isinstance(exc, OSError) and not isinstance(exc, UsageError):
            raise _cannot_write(target, exc) from None
        raise
    finally:
        _PENDING.discard(name)


def _fresh_name(directory: str, base: str) -> str:
    """A hidden name beside the target that no file has: ``.NAME.RANDOM.tmp``."""
    while True:
        name = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        if not os.path.lexists(name):
            return name


def _create(name: str, target: str, directory: str) -> int:
    """Create ``name`` (exclusively, owner-only until :func:`_set_mode`); its descriptor."""
    try:
        return os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600
        )
    except PermissionError:
        raise UsageError(
            f"{target}: permission denied (cannot create files in {directory})"
        ) from None


def _cannot_write(target: str, exc: OSError) -> ImgkernelError:
    return ImgkernelError(f"{target}: cannot write ({exc.strerror or exc})")


def _set_mode(tmp_path: str, dest: str) -> None:
    """Give the new file the old file's permissions, or the umask default (not 0600)."""
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp_path, mode)
