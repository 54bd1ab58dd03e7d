"""Building upstream binaries: a failed build says why in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_failed_build_names_the_cause(tmp_path: Path) -> None:
    env = dict(os.environ, VC_CACHE_DIR=str(tmp_path), VC_KUBE_VERSION="v1.36.999")
    proc = subprocess.run(
        [sys.executable, "-m", "vcluster.binaries", "build"], env=env, capture_output=True, text=True,
        check=False, timeout=300,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    error = [line for line in lines if line.startswith("error:")]
    assert len(error) == 1, lines
    assert "failed" in error[0]
    assert "full log:" in error[0]
    assert "Traceback" not in proc.stderr
