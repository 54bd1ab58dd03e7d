"""When a Tenant object may be served (the CONTRACTS' readiness rule)."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.tenants import readiness


def tenant(ready: str = "True", key: str | None = "t-abc123", secret: bool = True,
           deleting: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": ready, "reason": "R"}]}
    if key:
        status["clusterKey"] = key
    if secret:
        status["kubeconfigSecret"] = {"namespace": "t-abc123", "name": "admin-kubeconfig"}
    meta: dict[str, Any] = {"name": "t", "uid": "u"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("obj", "ok", "why"),
    [
        pytest.param(tenant(), True, "", id="ready"),
        pytest.param(tenant(ready="False"), False, "not Ready", id="not-ready"),
        pytest.param(tenant(key=None), False, "clusterKey", id="no-key"),
        pytest.param(tenant(secret=False), False, "kubeconfigSecret", id="no-secret"),
        pytest.param(tenant(deleting=True), False, "deleted", id="deleting"),
        pytest.param({"metadata": {"name": "t"}}, False, "no Ready condition", id="no-status"),
    ],
)
def test_readiness(obj: dict[str, Any], ok: bool, why: str) -> None:
    got_ok, got_why = readiness(obj)
    assert got_ok is ok
    assert why in got_why
