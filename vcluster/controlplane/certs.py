"""Complete a tenant's PKI: keep what exists and is still right, issue only what is missing.

Why: the PKI is generated once and stored in a Secret in the root namespace;
every later reconcile (after an operator restart, a spec change) must reuse it,
or the admin kubeconfig handed out earlier and the service-account tokens
issued by the tenant apiserver would stop working.  A certificate is reissued
only when it is missing, not signed by its CA any more, or names other
subjects/SANs than the builder now asks for (e.g. ``expose.host`` changed).
Certificates come from :mod:`vcluster.pki`; this module only decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from vcluster import pki
from vcluster.controlplane import spec as cp


def _pair(files: Mapping[str, bytes], name: str) -> pki.CertKeyPair | None:
    cert, key = files.get(cp.crt(name)), files.get(cp.key(name))
    if not cert or not key:
        return None
    return pki.CertKeyPair(cert_pem=cert, key_pem=key)


def _still_good(pair: pki.CertKeyPair, req: cp.CertRequest, ca_pem: bytes) -> bool:
    try:
        if not pki.verify_signed_by(pair.cert_pem, ca_pem):
            return False
        cn, orgs = pki.subject_identity(pair.cert_pem)
        if cn != req.common_name or sorted(orgs) != sorted(req.organizations):
            return False
        if req.server:
            dns, ips = pki.subject_alt_names(pair.cert_pem)
            return set(dns) == set(req.dns_names) and set(ips) == set(req.ips)
    except pki.PKIError:
        return False
    return True


def complete_pki(
    existing: Mapping[str, bytes],
    requests: tuple[cp.CertRequest, ...],
    *,
    kubelet_ca: pki.CertKeyPair,
    tenant_name: str,
) -> tuple[dict[str, bytes], list[str]]:
    """The full set of PKI files, and the names of those that were (re)generated."""
    files = dict(existing)
    changed: list[str] = []
    cas: dict[str, pki.CertKeyPair] = {}
    for name, cn in ((cp.CA, f"{tenant_name}-ca"), (cp.ETCD_CA, f"{tenant_name}-etcd-ca")):
        pair = _pair(files, name)
        if pair is None:
            pair = pki.generate_ca(common_name=cn)
            files[cp.crt(name)], files[cp.key(name)] = pair.cert_pem, pair.key_pem
            changed.append(name)
        cas[name] = pair
    cas[cp.KUBELET_CA] = kubelet_ca
    if files.get(cp.crt(cp.KUBELET_CA)) != kubelet_ca.cert_pem:
        files[cp.crt(cp.KUBELET_CA)] = kubelet_ca.cert_pem
        changed.append(cp.KUBELET_CA)
    if not files.get(cp.SA_KEY_FILE) or not files.get(cp.SA_PUB_FILE):
        sa = pki.service_account_key_pair()
        files[cp.SA_KEY_FILE], files[cp.SA_PUB_FILE] = sa.private_pem, sa.public_pem
        changed.append("sa")
    for req in requests:
        ca = cas[req.ca]
        pair = _pair(files, req.name)
        if pair is not None and _still_good(pair, req, ca.cert_pem):
            continue
        if req.server:
            pair = pki.issue_server_cert(
                ca, common_name=req.common_name, dns_names=req.dns_names, ips=req.ips, client_auth=False
            )
        else:
            pair = pki.issue_client_cert(ca, common_name=req.common_name, organizations=req.organizations)
        files[cp.crt(req.name)], files[cp.key(req.name)] = pair.cert_pem, pair.key_pem
        changed.append(req.name)
    return files, changed


def kubeconfig_for(
    identity: str, *, server: str, files: Mapping[str, bytes], cluster_name: str
) -> str:
    """A kubeconfig (YAML) for ``server`` with the client certificate ``identity`` of ``files``."""
    from vcluster.kubeconfig import dump_kubeconfig, render_kubeconfig

    return dump_kubeconfig(
        render_kubeconfig(
            server=server,
            ca_pem=files[cp.crt(cp.CA)],
            client_cert_pem=files[cp.crt(identity)],
            client_key_pem=files[cp.key(identity)],
            cluster_name=cluster_name,
            user_name=identity,
            context_name=cluster_name,
        )
    )
