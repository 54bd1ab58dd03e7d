"""The CA shared by the kubelet proxy and the tenant apiservers' kubelet client certificates.

Why: a tenant apiserver must trust the proxy's serving certificate
(``--kubelet-certificate-authority``) and the proxy must trust, and identify
the tenant from, the apiserver's client certificate.  Both sides are signed by
one CA kept in the Secret ``vc-system/kubelet-proxy-ca``.  Whoever needs it
first (the operator provisioning a tenant, or the proxy starting) creates it;
a race between two creators ends with both reading the winner's Secret.
"""

from __future__ import annotations

import base64
import contextlib

import structlog

from vcluster import naming, pki
from vcluster.kube import AlreadyExists, ApiClient, NotFound
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


async def ensure_ca_secret(super_client: ApiClient) -> pki.CertKeyPair:
    """Read the shared kubelet-proxy CA, creating namespace and Secret if absent (idempotent)."""
    name, namespace = naming.KUBELET_PROXY_CA_SECRET, naming.SYSTEM_NAMESPACE
    existing = await super_client.get_or_none(r.SECRETS, name, namespace=namespace)
    if existing is not None:
        return _decode(existing)
    ca = pki.generate_ca(common_name=CA_COMMON_NAME)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {naming.LABEL_MANAGED_BY: "vc-kubelet-proxy"}},
        "data": {"tls.crt": base64.b64encode(ca.cert_pem).decode(), "tls.key": base64.b64encode(ca.key_pem).decode()},
    }
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
