"""The shared kubelet-proxy CA Secret: made once, read by everyone, namespaces touched only when missing."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from tests.syncer.fakeapi import FakeApi, FakeServer
from vcluster import kubelet_ca, naming, pki
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


# ---- renewal (issue 12, item 6): the operator renews the shared CA by the one window rule -------

def _seed(server: FakeServer, ca: pki.CertKeyPair) -> None:
    server.put(resources.NAMESPACES, {"metadata": {"name": naming.SYSTEM_NAMESPACE}})
    server.put(resources.SECRETS, kubelet_ca._body(ca))


def _stored(server: FakeServer) -> pki.CertKeyPair:
    stored = server.get(resources.SECRETS, naming.KUBELET_PROXY_CA_SECRET, naming.SYSTEM_NAMESPACE)
    assert stored is not None
    return kubelet_ca._decode(stored)


async def test_the_operator_renews_a_due_ca_with_its_key_and_subject() -> None:
    server = FakeServer()
    old = pki.generate_ca(common_name=kubelet_ca.CA_COMMON_NAME, validity=dt.timedelta(days=10))
    leaf = kubelet_ca.issue_tenant_client_cert(old, "tenant-0a1b2c")
    _seed(server, old)
    got = await kubelet_ca.ensure_ca_secret(cast(ApiClient, FakeApi(server)), validity=dt.timedelta(days=30),
                                            renew_before=dt.timedelta(days=20))
    stored = _stored(server)
    assert stored.cert_pem == got.cert_pem != old.cert_pem
    assert pki.serial_of(stored.cert_pem) != pki.serial_of(old.cert_pem)
    assert stored.key_pem == old.key_pem
    assert stored.cert.subject == old.cert.subject
    before, after = pki.validity_of(stored.cert_pem)
    assert after - before == dt.timedelta(days=30, minutes=5)  # 5 min backdated
    # trust holds both ways: a leaf of the old CA verifies against the new one, a new leaf against the old
    assert pki.verify_signed_by(leaf.cert_pem, stored.cert_pem)
    assert pki.verify_signed_by(kubelet_ca.issue_tenant_client_cert(stored, "t").cert_pem, old.cert_pem)


async def test_a_ca_outside_its_window_is_kept() -> None:
    server = FakeServer()
    old = pki.generate_ca(common_name=kubelet_ca.CA_COMMON_NAME, validity=dt.timedelta(days=10))
    _seed(server, old)
    got = await kubelet_ca.ensure_ca_secret(cast(ApiClient, FakeApi(server)), validity=dt.timedelta(days=30),
                                            renew_before=dt.timedelta(days=2))
    assert got.cert_pem == old.cert_pem == _stored(server).cert_pem
    assert ("replace", "secrets") not in {w[:2] for w in server.writes}


async def test_the_proxy_only_reads_a_due_ca() -> None:
    """Without a window (the kubelet proxy) nothing is renewed: one owner of the CA's lifetime."""
    server = FakeServer()
    old = pki.generate_ca(common_name=kubelet_ca.CA_COMMON_NAME, validity=dt.timedelta(minutes=1))
    _seed(server, old)
    got = await kubelet_ca.ensure_ca_secret(cast(ApiClient, FakeApi(server)))
    assert got.cert_pem == old.cert_pem == _stored(server).cert_pem


def test_renewed_follows_the_window() -> None:
    ca = pki.generate_ca(common_name="c", validity=dt.timedelta(days=10))
    _, not_after = pki.validity_of(ca.cert_pem)
    window = dt.timedelta(days=3)
    assert kubelet_ca.renewed(ca, validity=dt.timedelta(days=10), renew_before=window,
                              now=not_after - window - dt.timedelta(seconds=1)) is None
    fresh = kubelet_ca.renewed(ca, validity=dt.timedelta(days=10), renew_before=window, now=not_after - window)
    assert fresh is not None
    assert fresh.key_pem == ca.key_pem
