"""The CA shared by the kubelet proxy and the tenant apiservers' kubelet client certificates.

Why: a tenant apiserver must trust the proxy's serving certificate
(``--kubelet-certificate-authority``) and the proxy must trust, and identify
the tenant from, the apiserver's client certificate.  Both sides are signed by
one CA kept in the Secret ``vc-system/kubelet-proxy-ca``.  Whoever needs it
first (the operator provisioning a tenant, or the proxy starting) creates it;
a race between two creators ends with both reading the winner's Secret.

Renewal: only the operator renews the CA (it passes its CA lifetime and
window, ``VC_OPERATOR_CA_*``; the proxy only reads), by the one rule of
:func:`vcluster.pki.due`, and with the CA's own key and subject
(:func:`vcluster.pki.renew_ca`): every certificate the old CA signed (the
proxy's serving certificate, the tenant apiservers' kubelet client
certificates) verifies against the renewed one and the other way round, so a
tenant apiserver still holding the old CA file and a proxy holding the new one
keep trusting each other while the renewal rolls out.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
from typing import Any

import structlog

from vcluster import naming, pki
from vcluster.kube import AlreadyExists, ApiClient, Conflict, NotFound
from vcluster.kube import resources as r

log = structlog.get_logger(__name__)

CA_COMMON_NAME = "virtualcluster-kubelet-proxy-ca"


def _decode(secret: dict[str, object]) -> pki.CertKeyPair:
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        data = {}
    try:
        cert = base64.b64decode(str(data["tls.crt"]))
        key = base64.b64decode(str(data["tls.key"]))
    except (KeyError, ValueError) as exc:
        raise pki.PKIError(
            f"Secret {naming.SYSTEM_NAMESPACE}/{naming.KUBELET_PROXY_CA_SECRET} lacks tls.crt/tls.key"
        ) from exc
    return pki.CertKeyPair(cert_pem=cert, key_pem=key)


def renewed(ca: pki.CertKeyPair, *, validity: _dt.timedelta, renew_before: _dt.timedelta,
            now: _dt.datetime | None = None) -> pki.CertKeyPair | None:
    """The CA renewed (same key and subject, ``validity`` from now) if it is due, else ``None`` (pure)."""
    if not pki.due(ca.cert_pem, renew_before, now=now):
        return None
    return pki.renew_ca(ca, validity=validity)


def _body(ca: pki.CertKeyPair) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": naming.KUBELET_PROXY_CA_SECRET, "namespace": naming.SYSTEM_NAMESPACE,
                     "labels": {naming.LABEL_MANAGED_BY: "vc-kubelet-proxy"}},
        "data": {"tls.crt": base64.b64encode(ca.cert_pem).decode(), "tls.key": base64.b64encode(ca.key_pem).decode()},
    }


async def ensure_ca_secret(super_client: ApiClient, *, validity: _dt.timedelta = pki.CA_VALIDITY,
                           renew_before: _dt.timedelta | None = None) -> pki.CertKeyPair:
    """Read the shared kubelet-proxy CA, creating namespace and Secret if absent (idempotent).

    A new CA lives ``validity``.  With ``renew_before`` (the operator), a CA within that window of its
    expiry is renewed (:func:`renewed`) and stored; a writer that loses the race reads the winner's.
    """
    name, namespace = naming.KUBELET_PROXY_CA_SECRET, naming.SYSTEM_NAMESPACE
    for _ in range(3):
        existing = await super_client.get_or_none(r.SECRETS, name, namespace=namespace)
        if existing is None:
            break
        ca = _decode(existing)
        fresh = renewed(ca, validity=validity, renew_before=renew_before) if renew_before is not None else None
        if fresh is None:
            return ca
        body = _body(fresh)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        try:
            await super_client.replace(r.SECRETS, body, namespace=namespace)
        except Conflict:
            continue  # renewed (or changed) meanwhile: read it again
        _, not_after = pki.validity_of(fresh.cert_pem)
        log.info("kubelet_proxy.ca.renewed", secret=f"{namespace}/{name}", not_after=not_after.isoformat())
        return fresh
    else:
        return _decode(await super_client.get(r.SECRETS, name, namespace=namespace))
    ca = pki.generate_ca(common_name=CA_COMMON_NAME, validity=validity)
    body = _body(ca)
    try:
        try:
            await super_client.create(r.SECRETS, body, namespace=namespace)
        except NotFound:
            # no vc-system yet (the operator or a local proxy first on a fresh cluster). The namespace is
            # only touched then: the proxy in a pod runs in vc-system and may not read namespaces at all.
            with contextlib.suppress(AlreadyExists):
                await super_client.create(r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": namespace}})
            await super_client.create(r.SECRETS, body, namespace=namespace)
    except AlreadyExists:
        log.info("kubelet_proxy.ca.lost_race")
        return _decode(await super_client.get(r.SECRETS, name, namespace=namespace))
    log.info("kubelet_proxy.ca.created", secret=f"{namespace}/{name}")
    return ca


def issue_tenant_client_cert(ca: pki.CertKeyPair, key: str) -> pki.CertKeyPair:
    """The kubelet client certificate of tenant ``key``'s apiserver (CN = key, O = tenants group)."""
    return pki.issue_client_cert(ca, common_name=key, organizations=(naming.KUBELET_CLIENT_GROUP,))
