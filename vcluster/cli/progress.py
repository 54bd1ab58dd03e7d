"""Progress lines for ``up``/``down``: what is happening now, and how long each step took.

Why: ``up`` can take minutes on a fresh machine (building Kubernetes) and
seconds otherwise; a newcomer must see which step runs and which failed.
Lines go to stderr so stdout stays for results.  On a terminal a step shows
``…`` while it runs and is rewritten to ``✓``/``✗``; elsewhere (CI logs)
each state is its own line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints steps to ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open: str | None = None

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _close_open(self) -> None:
        if self._open is not None and self.tty:
            self._write("\n")
        self._open = None

    def note(self, message: str) -> None:
        """A detail inside the current step (e.g. a build stage)."""
        self._close_open()
        self._write(f"    {message}\n")

    def info(self, message: str) -> None:
        self._close_open()
        self._write(f"{message}\n")

    def warn(self, message: str) -> None:
        self._close_open()
        self._write(f"  ! {message}\n")

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """``… title`` while the block runs, then ``✓ title (1.2s)`` or ``✗ title``."""
        self._close_open()
        started = time.monotonic()
        if self.tty:
            self._write(f"  … {title}")
            self._open = title
        else:
            self._write(f"  … {title}\n")
        try:
            yield
        except BaseException:
            self._finish("✗", title, started)
            raise
        self._finish("✓", title, started)

    def _finish(self, mark: str, title: str, started: float) -> None:
        elapsed = time.monotonic() - started
        if self.tty and self._open == title:
            self._write(f"\r\033[K  {mark} {title} ({elapsed:.1f}s)\n")
        else:
            self._write(f"  {mark} {title} ({elapsed:.1f}s)\n")
        self._open = None
