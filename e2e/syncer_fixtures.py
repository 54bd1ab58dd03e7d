"""Run the real syncer (``python -m syncer``) as a child process for e2e tests.

Why a subprocess: the crash test kills it with SIGKILL mid-flight, exactly as
a crashed pod would die, and restarts it; a syncer inside the test process
could not be killed that way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from e2e.child import ChildProcess

REPO = Path(__file__).resolve().parent.parent


class SyncerProcess(ChildProcess):
    """The syncer as a child process against the super cluster; ``kill()`` and ``start()`` at will."""

    def __init__(self, super_cluster: Any, *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.super_cluster = super_cluster
        self.log_path = log_path
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.setdefault("VC_SYNCER_PATROL_PERIOD", "20")
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==> syncer start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncer", f"--kubeconfig={self.super_cluster.kubeconfig}"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
