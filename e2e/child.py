"""One child-process handle for the components the e2e tests run (operator, syncer).

Why: the operator and syncer fixtures both start ``python -m ...`` and need the
same kill (a crash), stop (SIGTERM, then SIGKILL), liveness and log tail; one
base keeps those the same everywhere.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class ChildProcess:
    """A started ``subprocess.Popen`` with its log file; subclasses implement ``start()``."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash would be."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
