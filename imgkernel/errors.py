"""Errors raised by the library; the CLI turns them into one line on stderr.

Every error a user can cause derives from :class:`ImgkernelError`, so the CLI
can catch exactly these and let genuine bugs surface as tracebacks.
"""

from __future__ import annotations


class ImgkernelError(Exception):
    """A failure the user should read about, not debug (exit status 1)."""

    exit_code = 1


class UsageError(ImgkernelError, ValueError):
    """A bad argument, option value, file name or file content (exit status 2).

    It is also a ``ValueError`` so library callers can catch it the usual way.
    """

    exit_code = 2
