"""The progress bar of a command over many inputs, and its one line per bad input.

The bar is drawn on stderr only when stderr is a terminal (and not with
``--quiet``): done/total, the rate and the time left, redrawn at most a few
times a second on one line, and erased at the end. A bad input's line
(``imgkernel: error: PATH: reason``) and warnings are printed above it.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import IO, Any

import click

from imgkernel.cli.app import PROG, one_line
from imgkernel.errors import ImgkernelWarning
from imgkernel.images import Reporter

#: Seconds between two redraws of the bar.
REDRAW = 0.2


def stderr_is_terminal() -> bool:
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class Progress(Reporter):
    """A :class:`~imgkernel.images.Reporter` for the command line."""

    def __init__(self, label: str, *, show: bool = True) -> None:
        self.label = f"{PROG} {label}"
        self.show = show and stderr_is_terminal()
        self.total = self.done = self.skipped = 0
        self.began = self.drawn_at = 0.0
        self.visible = False

    def start(self, total: int, skipped: int = 0) -> None:
        self.total, self.skipped, self.done = total, skipped, 0
        self.began = time.monotonic()
        self.show = self.show and total > 1
        self._draw()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn_at >= REDRAW or self.done >= self.total:
            self._draw()

    def failed(self, message: str) -> None:
        self._clear()
        click.echo(one_line(f"{PROG}: error: {message}"), err=True)
        self._draw()

    def warn(self, message: str) -> None:
        self._clear()
        warnings.warn(message, ImgkernelWarning, stacklevel=2)
        self._draw()

    def close(self) -> None:
        self._clear()

    def line(self, now: float | None = None) -> str:
        """The bar's text, e.g. ``imgkernel filter: 430/1000 43% 125.0/s 0:05 left``.

        >>> p = Progress("filter", show=False)
        >>> p.start(1000); p.began -= 4.0; p.done = 500
        >>> p.line(p.began + 4.0)
        'imgkernel filter: [##########..........] 500/1000  50%  125.0/s  0:04 left'
        """
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.began, 1e-9)
        share = self.done / self.total if self.total else 1.0
        filled = int(share * 20)
        text = f"{self.label}: [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}"
        text += f" {share:4.0%}"
        if self.done:
            rate = self.done / elapsed
            left = (self.total - self.done) / rate
            text += f"  {rate:.1f}/s  {int(left) // 60}:{int(left) % 60:02d} left"
        if self.skipped:
            text += f"  ({self.skipped} skipped)"
        return text

    def _stream(self) -> IO[str]:
        return sys.stderr

    def _draw(self) -> None:
        if not self.show:
            return
        import shutil  # here: it imports bz2 and lzma, 2 ms of every command's start

        self.drawn_at = time.monotonic()
        width = shutil.get_terminal_size((80, 24)).columns - 1
        self._write("\r" + self.line(self.drawn_at)[:width] + "\033[K")
        self.visible = True

    def _clear(self) -> None:
        if self.visible:
            self._write("\r\033[K")
            self.visible = False

    def _write(self, text: str) -> None:
        stream: Any = self._stream()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a terminal that went away: no bar, no failure
            self.show = self.visible = False
