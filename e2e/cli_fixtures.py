"""The embedded default driven as a user drives it: ``python -m vcluster`` (``kubectl vc``).

Why: ``e2e/test_cli.py`` and ``e2e/test_faults.py`` both run the CLI with a
private state folder and no inherited ``KUBECONFIG``/``VC_STATE_DIR``, and read
the super cluster through the admin kubeconfig it writes; one class keeps the
two the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class Cli:
    """``python -m vcluster`` with a private state folder and no inherited KUBECONFIG."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
        self.env["VC_STATE_DIR"] = str(state_dir)
        self.env["VC_NODES"] = "1"

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vcluster", *args], capture_output=True, text=True, timeout=timeout,
            env=env or self.env, check=False,
        )

    def ok(self, *args: str, timeout: float = 300) -> str:
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"kubectl vc {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}"
        return proc.stdout

    def kubectl(self, *args: str) -> str:
        """kubectl against the embedded default's super cluster (admin); fails the test on an error."""
        kubeconfig = self.state_dir.resolve() / "super" / "kubeconfig"
        proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def components(self) -> dict[str, dict[str, Any]]:
        """``status -o json``'s components by name."""
        out = json.loads(self.run("status", "-o", "json").stdout)
        return {c["name"]: c for c in out["components"]}
