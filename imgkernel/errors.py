"""Errors raised by the library, the one family of argument checks, and user files.

Every error a user can cause derives from :class:`ImgkernelError`, so the CLI
can catch exactly these and let genuine bugs surface as tracebacks.

The ``check_*`` functions validate one plain value (from a CLI option, a
kernel's TOML parameters, a model file's JSON header or a Python caller) and
raise ``error`` (:class:`UsageError` unless a subclass is asked for) with a
message that names the value: ``sigma must be > 0, got -1.0``. Opening a
file the user named goes through :func:`open_user_file`, the one place where
an ``OSError`` becomes a one-line message.

Examples
--------
>>> check_int(3.0, "size", minimum=1)
3
>>> check_float("0.5", "amount", minimum=0)
0.5
>>> check_int(0, "size", minimum=1)
Traceback (most recent call last):
...
imgkernel.errors.UsageError: size must be at least 1, got 0
>>> check_float(float("nan"), "sigma")
Traceback (most recent call last):
...
imgkernel.errors.UsageError: sigma must be a finite number, got nan
"""

from __future__ import annotations

import errno
import math
from collections.abc import Iterable
from typing import IO, Any


class ImgkernelError(Exception):
    """A failure the user should read about, not debug (exit status 1)."""

    exit_code = 1


class UsageError(ImgkernelError, ValueError):
    """A bad argument, option value, file name or file content (exit status 2).

    It is also a ``ValueError`` so library callers can catch it the usual way.
    """

    exit_code = 2


class BatchFailed(ImgkernelError):
    """Some inputs of a batch failed (the others were done): exit status 2 when every
    failure was a usage error, else 1; ``failures`` holds ``(message, status)`` per input."""

    def __init__(
        self, message: str, exit_code: int = 1, failures: Iterable[tuple[str, int]] = ()
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.failures = list(failures)


class ImgkernelWarning(UserWarning):
    """Something the user should know that did not stop the work (one line on stderr)."""


# ---------------------------------------------------------------------------
# argument checks


def _is_number(value: Any) -> bool:
    # numpy scalars are numbers.Number too, but importing numpy here is not
    # needed: anything float() accepts that is not a bool or a string counts.
    return not isinstance(value, (bool, str, bytes)) and hasattr(value, "__float__")


def check_int(
    value: Any,
    what: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[UsageError] = UsageError,
) -> int:
    """``value`` as an int (integral floats and numeric strings accepted), within bounds."""
    number: int | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        number = value
    elif hasattr(value, "__index__") and not isinstance(value, str):
        number = int(value.__index__())  # numpy integers
    elif isinstance(value, str) or _is_number(value):
        try:
            number = int(value)  # exact for long digit strings
        except (TypeError, ValueError, OverflowError):
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                as_float = math.nan
            if math.isfinite(as_float) and as_float.is_integer():
                number = int(as_float)
        if not isinstance(value, str) and number is not None and value != number:
            number = None  # 2.5 is not an integer even though int() truncates it
    if number is None:
        raise error(f"{what} must be an integer, got {value!r}")
    _check_bounds(number, what, minimum, maximum, error)
    return number


def check_float(
    value: Any,
    what: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    error: type[UsageError] = UsageError,
) -> float:
    """``value`` as a finite float, within ``[minimum, maximum]`` (or open ends)."""
    try:
        if not (isinstance(value, str) or _is_number(value)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise error(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and (number <= minimum if min_open else number < minimum):
        raise error(f"{what} must be {'>' if min_open else '>='} {minimum:g}, got {value!r}")
    if maximum is not None and (number >= maximum if max_open else number > maximum):
        raise error(f"{what} must be {'<' if max_open else '<='} {maximum:g}, got {value!r}")
    return number


def check_bool(value: Any, what: str, *, error: type[UsageError] = UsageError) -> bool:
    """``value`` as a bool: True/False, or the integers 1/0 (JSON files often hold those)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise error(f"{what} must be true or false, got {value!r}")


def check_choice(
    value: Any, what: str, choices: Iterable[str], *, error: type[UsageError] = UsageError
) -> str:
    """``value`` (case-insensitive, trimmed) if it is one of ``choices``."""
    options = list(choices)
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in options:
        raise error(f"{what} must be one of {', '.join(options)}, got {value!r}")
    return key


def _check_bounds(
    number: int, what: str, minimum: int | None, maximum: int | None, error: type[UsageError]
) -> None:
    if minimum is not None and number < minimum:
        raise error(f"{what} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise error(f"{what} must be at most {maximum}, got {number}")


# ---------------------------------------------------------------------------
# files the user names


def os_error_message(exc: OSError, path: str) -> str:
    """One line for an ``OSError`` on ``path``: ``photo.png: no such file``.

    >>> os_error_message(FileNotFoundError(2, "No such file or directory"), "a.png")
    'a.png: no such file'
    """
    reasons = {
        errno.ENOENT: "no such file",
        errno.EISDIR: "is a directory",
        errno.ENOTDIR: "a parent is not a directory",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "no space left on the device",
        errno.EFBIG: "file too large",
        errno.EROFS: "read-only file system",
    }
    reason = reasons.get(exc.errno or -1) or (exc.strerror or str(exc)).lower()
    return f"{path}: {reason}"


def open_user_file(path: str, mode: str = "rb", *, encoding: str | None = None) -> IO[Any]:
    """Open a file the user named; an ``OSError`` becomes a one-line :class:`UsageError`."""
    try:
        return open(path, mode, encoding=encoding)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise UsageError(os_error_message(exc, path)) from None


def read_user_bytes(path: str) -> bytes:
    """The bytes of a file the user named (see :func:`open_user_file`)."""
    with open_user_file(path) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise UsageError(os_error_message(exc, path)) from None


def read_user_text(path: str) -> str:
    """A UTF-8 text file the user named; undecodable bytes are a usage error."""
    data = read_user_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 text file") from None
