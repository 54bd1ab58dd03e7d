"""The pods backend's tenant DNS answers ``kubernetes.default`` with the tenant's own apiserver.

Why: a tenant pod's ``kubernetes.default`` must be its tenant's apiserver (the apiserver Service in
the root namespace), never the super cluster's; the embedded backend's Corefile had the ``hosts``
entry and the pods backend's had none (issue 11), so the name did not resolve at all there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vcluster import naming
from vcluster.controlplane import dns, pods
from vcluster.controlplane.local import LocalBackend
from vcluster.kube import resources as r
from vcluster.operator.reconcile import Reconciler
from vcluster.settings import BinarySettings

KEY = "acme-1a2b3c"


class FakeApi:
    """Serves the apiserver Service (when given) and the DNS Service; records applied objects."""

    def __init__(self, apiserver_ip: str | None) -> None:
        self.apiserver_ip = apiserver_ip
        self.applied: dict[tuple[str, str], dict[str, Any]] = {}

    async def get_or_none(self, resource: r.Resource, name: str, *, namespace: str | None = None) -> Any:
        if (resource, name, namespace) == (r.SERVICES, pods.APISERVER_SERVICE, KEY) and self.apiserver_ip:
            return {"spec": {"clusterIP": self.apiserver_ip}}
        return None  # no apiserver Service yet, no super kube-dns

    async def get(self, resource: r.Resource, name: str, *, namespace: str | None = None) -> Any:
        assert (resource, name) == (r.SERVICES, naming.TENANT_DNS_SERVICE)
        return {"spec": {"clusterIP": "10.96.0.53"}}

    async def list_all(self, resource: r.Resource, **_: Any) -> tuple[list[Any], str]:
        return [], "1"

    async def patch(self, resource: r.Resource, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.applied[(body["kind"], name)] = body
        return body


async def _corefile(tmp_path: Path, apiserver_ip: str | None) -> str:
    api = FakeApi(apiserver_ip)
    reconciler = Reconciler(api=api,  # type: ignore[arg-type]
                            local=LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings()))
    status = await reconciler.ensure_dns(KEY, "acme", "pods")
    assert status == {"clusterIP": "10.96.0.53"}
    config = api.applied[("ConfigMap", naming.TENANT_DNS_SERVICE)]
    return str(config["data"][dns.COREFILE_KEY])


async def test_kubernetes_default_answers_the_apiserver_service(tmp_path: Path) -> None:
    text = await _corefile(tmp_path, "10.96.7.7")
    # the question arrives rewritten into the tenant's super namespace form (see dns.corefile)
    assert f"10.96.7.7 kubernetes.{naming.super_namespace(KEY, 'default')}.svc.cluster.local" in text


async def test_the_apiserver_name_tenant_pods_are_given_answers_too(tmp_path: Path) -> None:
    """The syncer gives tenant pods the host of the tenant's endpoint as ``KUBERNETES_SERVICE_HOST``:
    ``apiserver.<key>.svc``, outside the tenant's zone, which the super resolver never answers for a
    tenant (in-cluster clients of a pods-backend tenant could not reach their own apiserver)."""
    text = await _corefile(tmp_path, "10.96.7.7")
    (line,) = [x for x in text.splitlines() if x.strip().startswith("10.96.7.7 ")]
    assert f"{pods.APISERVER_SERVICE}.{KEY}.svc" in line.split()
    assert pods.layout(KEY).internal_endpoint == f"https://{pods.APISERVER_SERVICE}.{KEY}.svc:{pods.APISERVER_PORT}"


async def test_no_hosts_entry_before_the_apiserver_service_has_an_ip(tmp_path: Path) -> None:
    assert "hosts" not in await _corefile(tmp_path, None)
