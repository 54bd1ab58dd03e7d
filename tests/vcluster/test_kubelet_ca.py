"""The shared kubelet-proxy CA Secret: made once, read by everyone, namespaces touched only when missing."""

from __future__ import annotations

from typing import Any, cast

from tests.syncer.fakeapi import FakeApi, FakeServer
from vcluster import kubelet_ca, naming
from vcluster.kube import ApiClient, Forbidden, resources
from vcluster.kube.resources import Resource


class NoNamespaceReads(FakeApi):
    """The kubelet proxy's RBAC in a pod: it may not read namespaces."""

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        if resource == resources.NAMESPACES:
            raise Forbidden(403, "Forbidden", f"namespaces {name!r} is forbidden")
        return await super().get(resource, name, namespace=namespace)


async def test_proxy_in_its_namespace_creates_the_ca_without_reading_namespaces() -> None:
    server = FakeServer()
    server.put(resources.NAMESPACES, {"metadata": {"name": naming.SYSTEM_NAMESPACE}})
    api = cast(ApiClient, NoNamespaceReads(server))
    ca = await kubelet_ca.ensure_ca_secret(api)
    stored = server.get(resources.SECRETS, naming.KUBELET_PROXY_CA_SECRET, naming.SYSTEM_NAMESPACE)
    assert stored is not None
    assert ("create", "namespaces") not in {w[:2] for w in server.writes}
    again = await kubelet_ca.ensure_ca_secret(api)
    assert again.cert_pem == ca.cert_pem


async def test_a_fresh_cluster_gets_the_namespace_and_the_secret() -> None:
    server = FakeServer()
    ca = await kubelet_ca.ensure_ca_secret(cast(ApiClient, FakeApi(server)))
    assert server.get(resources.NAMESPACES, naming.SYSTEM_NAMESPACE) is not None
    stored = server.get(resources.SECRETS, naming.KUBELET_PROXY_CA_SECRET, naming.SYSTEM_NAMESPACE)
    assert stored is not None
    assert kubelet_ca._decode(stored).cert_pem == ca.cert_pem
