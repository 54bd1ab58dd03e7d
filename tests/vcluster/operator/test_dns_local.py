"""The local backend's tenant apiserver is reached on 443, as a cluster's ``kubernetes`` Service is.

Why: the local apiserver process listens on a port of its own on the host address, and the tenant
DNS answered ``kubernetes.default`` with that bare address, so ``https://kubernetes.default.svc``
without a port (curl, some tools) went to port 443 there, where nothing listens.  The operator now
puts a super Service (443 and 6443) with an EndpointSlice naming the process in front of it, and
the Corefile answers the Service's ClusterIP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vcluster import naming
from vcluster.controlplane import dns
from vcluster.controlplane.local import DnsPorts, LocalBackend, LocalPorts
from vcluster.kube import ClientConfig
from vcluster.kube import resources as r
from vcluster.operator.reconcile import Reconciler
from vcluster.settings import BinarySettings

KEY = "acme-1a2b3c"
HOST = "10.245.0.1"
API_PORT = 41443


class FakeApi:
    """Applied objects by (kind, name); the apiserver Service gets a ClusterIP once applied."""

    def __init__(self) -> None:
        self.config = ClientConfig(server="https://127.0.0.1:1")
        self.applied: dict[tuple[str, str], dict[str, Any]] = {}

    async def get_or_none(self, resource: r.Resource, name: str, *, namespace: str | None = None) -> Any:
        if (resource, name, namespace) == (r.SERVICES, naming.TENANT_APISERVER_SERVICE, KEY) \
                and ("Service", name) in self.applied:
            return {"spec": {"clusterIP": "10.96.4.43"}}
        return None

    async def get(self, resource: r.Resource, name: str, *, namespace: str | None = None) -> Any:
        assert (resource, name) == (r.SERVICES, naming.TENANT_DNS_SERVICE)
        return {"spec": {"clusterIP": "10.96.0.53"}}

    async def list_all(self, resource: r.Resource, **_: Any) -> tuple[list[Any], str]:
        return [], "1"

    async def patch(self, resource: r.Resource, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.applied[(body["kind"], name)] = body
        return body


async def test_kubernetes_default_answers_the_apiserver_service_which_listens_on_443(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    local = LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings(), host=HOST)
    corefiles: list[str] = []
    monkeypatch.setattr(local, "ports", lambda key: LocalPorts(API_PORT, 1, 2))
    monkeypatch.setattr(local, "dns_ports", lambda key: DnsPorts(40053, 40054))
    monkeypatch.setattr(local, "dns_token_age", lambda key: 0.0)
    monkeypatch.setattr(local, "apply_dns", lambda key, *, corefile, kubeconfig, token: corefiles.append(corefile))
    reconciler = Reconciler(api=api, local=local)  # type: ignore[arg-type]

    status = await reconciler.ensure_dns(KEY, "acme", "local")

    assert status == {"endpoint": f"{HOST}:40053", "clusterIP": "10.96.0.53"}
    svc = api.applied[("Service", naming.TENANT_APISERVER_SERVICE)]
    assert svc["metadata"]["namespace"] == naming.root_namespace(KEY)
    assert "selector" not in svc["spec"]
    assert {p["port"] for p in svc["spec"]["ports"]} == {443, 6443}
    eps = api.applied[("EndpointSlice", naming.TENANT_APISERVER_SERVICE)]
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == naming.TENANT_APISERVER_SERVICE
    assert eps["endpoints"][0]["addresses"] == [HOST]
    # every Service port finds a slice port of its name, and each is the process's own port
    assert {(p["name"], p["port"]) for p in eps["ports"]} == {(p["name"], API_PORT) for p in svc["spec"]["ports"]}
    (corefile,) = corefiles
    assert f"10.96.4.43 kubernetes.{naming.super_namespace(KEY, 'default')}.svc.cluster.local" in corefile
    assert f"{HOST} kubernetes." not in corefile


def test_the_service_ports_are_443_and_6443() -> None:
    assert {p["port"] for p in dns.apiserver_service(KEY, "acme")["spec"]["ports"]} == {443, 6443}
