"""cli.target.explain: every API failure of a verb becomes one line; a 404 says which thing is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vcluster.cli.target import explain
from vcluster.kube.errors import error_from_status
from vcluster.kubeconfig import render_kubeconfig, write_kubeconfig


@pytest.mark.parametrize(
    ("status", "body", "missing", "expected"),
    [
        pytest.param(404, {"details": {"name": "alpha"}, "message": 'tenants "alpha" not found'},
                     'tenant "alpha" not found', 'tenant "alpha" not found', id="object-missing"),
        pytest.param(404, {"details": {"name": "alpha"}, "message": 'tenants "alpha" not found'}, None,
                     'getting tenant "alpha": tenants "alpha" not found', id="object-missing-no-text"),
        pytest.param(404, {"message": "the server could not find the requested resource"},
                     'tenant "alpha" not found', "CRDs not installed", id="type-missing"),
        pytest.param(403, {"message": "forbidden"}, 'tenant "alpha" not found',
                     'getting tenant "alpha": forbidden', id="other-status"),
    ],
)
def test_explain(status: int, body: dict[str, Any], missing: str | None, expected: str) -> None:
    err = explain(error_from_status(status, body), what='getting tenant "alpha"', missing=missing)
    assert "\n" not in str(err)
    assert expected in str(err)


@pytest.mark.parametrize(
    ("plugin_body", "expected"),
    [
        pytest.param("echo 'error: refresh token expired; run: vc-login' >&2; exit 3",
                     r"failed \(exit status 3\): error: refresh token expired; run: vc-login", id="fails"),
        pytest.param("echo 'Please open https://login.example and paste the code'",
                     "printed 'Please open https://login.example and paste the code', not an ExecCredential",
                     id="garbage"),
        pytest.param(None, "was not found: install vc-auth from your cloud", id="missing"),
    ],
)
def test_kubectl_vc_says_what_is_wrong_with_an_exec_plugin(
    tmp_path: Path, plugin_body: str | None, expected: str
) -> None:
    """A real ``kubectl vc list`` process: one ``error:`` line naming the plugin, exit code 1, no traceback.

    The server is never reached (the credential comes first), so no apiserver is needed.
    """
    command = str(tmp_path / "vc-auth")
    if plugin_body is not None:
        script = tmp_path / "vc-auth"
        script.write_text(f"#!/bin/sh\n{plugin_body}\n")
        script.chmod(0o755)
    config = render_kubeconfig(server="https://127.0.0.1:1", ca_pem=None, token="x")
    config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command,
                                           "interactiveMode": "Never",
                                           "installHint": "install vc-auth from your cloud"}}
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", config)
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
    proc = subprocess.run([sys.executable, "-m", "vcluster", "list", f"--kubeconfig={kubeconfig}"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: listing tenants: exec credential plugin")
    assert re.search(expected, lines[0]), lines[0]
