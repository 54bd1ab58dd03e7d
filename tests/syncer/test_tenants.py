"""When a Tenant object may be served (the CONTRACTS' readiness rule)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from syncer.tenants import CrdTenantSource, TenantInfo, TenantUp, readiness
from tenant_crd.models import TenantStatus
from tests.syncer.fakeapi import FakeServer
from vcluster import naming
from vcluster.kube import resources


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


#: A kubeconfig the client can use (the syncer refuses anything else: ``Synced=False KubeconfigUnreadable``).
KC = """apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: t, user: {token: abc}}]
contexts: [{name: t, context: {cluster: t, user: t}}]
current-context: t
"""


def _served_tenant(spec: dict[str, Any]) -> tuple[CrdTenantSource, dict[str, Any]]:
    server = FakeServer()
    server.put(resources.NAMESPACES, {"metadata": {"name": "t-abc123"}})
    server.put(resources.SECRETS, {"metadata": {"name": "admin-kubeconfig", "namespace": "t-abc123"},
                                   "data": {naming.KUBECONFIG_SECRET_KEY: base64.b64encode(KC.encode()).decode()}})
    source = CrdTenantSource(server.api())  # type: ignore[arg-type]
    obj = {**tenant(), "spec": spec}
    return source, obj


@pytest.mark.parametrize(("spec", "domain"), [
    pytest.param({}, "cluster.local", id="default"),
    pytest.param({"dns": {"clusterDomain": "corp.example"}}, "corp.example", id="own-domain"),
    # a spec that does not read is served with the safe defaults (the operator reports it)
    pytest.param({"dns": {"clusterDomain": "in-addr.arpa"}}, "cluster.local", id="bad-spec"),
])
async def test_the_tenants_cluster_domain_reaches_the_syncer(spec: dict[str, Any], domain: str) -> None:
    source, obj = _served_tenant(spec)
    status = TenantStatus.from_dict(obj["status"])
    info = await source._load(obj, "t-abc123", status)
    assert isinstance(info, TenantInfo)
    assert info.kubeconfig == KC
    assert info.cluster_domain == domain


async def test_renewed_certificates_make_the_syncer_read_the_kubeconfig_again() -> None:
    """The operator writes the renewed kubeconfig Secret, then ``status.certificates``: the new status alone
    (same generation, key and Secret name) makes the source read the Secret again and serve its content."""
    source, obj = _served_tenant({})
    obj["status"]["certificates"] = {"notAfter": "2026-01-01T00:02:00Z", "renewAfter": "2026-01-01T00:01:00Z"}
    first = await source._evaluate("ADDED", obj)
    assert isinstance(first, TenantUp)
    assert first.info.kubeconfig == KC
    assert await source._evaluate("MODIFIED", obj) is None  # nothing new: not read again
    renewed_kc = KC.replace("token: abc", "token: renewed")
    secret = await source._api.get(resources.SECRETS, "admin-kubeconfig", namespace="t-abc123")
    secret["data"] = {naming.KUBECONFIG_SECRET_KEY: base64.b64encode(renewed_kc.encode()).decode()}
    await source._api.replace(resources.SECRETS, secret, namespace="t-abc123")
    renewed = {**obj, "status": {**obj["status"], "certificates": {
        "notAfter": "2026-01-01T00:03:00Z", "renewAfter": "2026-01-01T00:02:00Z"}}}
    change = await source._evaluate("MODIFIED", renewed)
    assert isinstance(change, TenantUp)
    assert change.info.kubeconfig == renewed_kc
