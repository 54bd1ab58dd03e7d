"""Complete a tenant's PKI: keep what exists and is still right, issue only what is missing or due.

Why: the PKI is generated once and stored in a Secret in the root namespace;
every later reconcile (after an operator restart, a spec change) must reuse it,
or the admin kubeconfig handed out earlier and the service-account tokens
issued by the tenant apiserver would stop working.  A certificate is reissued
only when it is missing, not signed by its CA any more, names other
subjects/SANs than the builder now asks for (e.g. ``expose.host`` changed), or
is *due*: within its renewal window of expiry (:class:`Lifetimes`,
``renew_before``; by default the last third of a one-year lifetime).  A CA
that is due is renewed with its own key and subject
(:func:`vcluster.pki.renew_ca`), so every leaf keeps verifying against it and
no bundle of old and new CA is needed; leaves are never issued past their CA's
expiry, so after a CA renewal they come due in turn.  :func:`renewal` tells
the operator when the next certificate comes due (``status.certificates``).
Certificates come from :mod:`vcluster.pki`; this module only decides.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vcluster import clock, pki
from vcluster.controlplane import spec as cp

#: Name of the service-account key pair in ``changed`` (not a certificate: never due, see docs).
SA = "sa"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long the operator's certificates live, and how long before expiry they are renewed.

    Read from ``VC_OPERATOR_CERT_*`` by :class:`vcluster.operator.settings.OperatorSettings`.
    """

    #: Lifetime of every leaf certificate (serving, client) the operator issues.
    validity: _dt.timedelta = pki.CERT_VALIDITY
    #: A leaf is reissued once it expires within this (default: the last third of ``validity``).
    renew_before: _dt.timedelta = pki.CERT_VALIDITY / 3
    #: Lifetime of the tenant's CAs (``ca``, ``etcd-ca``) and their renewal window.
    ca_validity: _dt.timedelta = pki.CA_VALIDITY
    ca_renew_before: _dt.timedelta = _dt.timedelta(days=365)

    def problems(self) -> list[str]:
        """What makes these lifetimes unusable (pure): a window as long as the lifetime renews forever."""
        out = []
        for what, life, window in (("certificate", self.validity, self.renew_before),
                                   ("CA", self.ca_validity, self.ca_renew_before)):
            if life <= _dt.timedelta(0) or window <= _dt.timedelta(0):
                out.append(f"{what} validity and renewal window must be positive")
            elif window >= life:
                out.append(f"{what} renewal window {window} must be shorter than its validity {life}")
        if self.ca_validity < self.validity:
            out.append(f"CA validity {self.ca_validity} must be at least the certificate validity {self.validity}")
        return out


#: The renewal rule (:func:`vcluster.pki.due`; in the foundation so the kubelet proxy shares it).
due = pki.due


@dataclass(frozen=True, slots=True)
class Renewal:
    """When the tenant's next certificate expires and when it comes due (``status.certificates``)."""

    #: The earliest expiry of any certificate of the PKI.
    not_after: _dt.datetime
    #: The earliest time one of them comes due: the operator reconciles then, without a spec change.
    renew_after: _dt.datetime
    #: The certificate that comes due first.
    first: str

    def to_status(self) -> dict[str, str]:
        return {"notAfter": clock.timestamp(self.not_after), "renewAfter": clock.timestamp(self.renew_after),
                "next": self.first}


def renewal(files: Mapping[str, bytes], requests: Iterable[cp.CertRequest], lifetimes: Lifetimes) -> Renewal:
    """The tenant's next renewal (pure): over its CAs (with their window) and every requested leaf.

    The shared kubelet-proxy CA counts with the CA window: the operator renews it
    (:func:`vcluster.kubelet_ca.ensure_ca_secret`) on the reconcile this plan triggers.
    """
    entries = [(name, files[cp.crt(name)], lifetimes.ca_renew_before) for name in (cp.CA, cp.ETCD_CA)]
    if files.get(cp.crt(cp.KUBELET_CA)):
        entries.append((cp.KUBELET_CA, files[cp.crt(cp.KUBELET_CA)], lifetimes.ca_renew_before))
    entries += [(req.name, files[cp.crt(req.name)], lifetimes.renew_before) for req in requests]
    expiries = [(pki.validity_of(pem)[1], window, name) for name, pem, window in entries]
    not_after = min(when for when, _, _ in expiries)
    renew_after, first = min((when - window, name) for when, window, name in expiries)
    return Renewal(not_after=not_after, renew_after=renew_after, first=first)


def _pair(files: Mapping[str, bytes], name: str) -> pki.CertKeyPair | None:
    cert, key = files.get(cp.crt(name)), files.get(cp.key(name))
    if not cert or not key:
        return None
    return pki.CertKeyPair(cert_pem=cert, key_pem=key)


def _usable_ca(pair: pki.CertKeyPair) -> bool:
    try:
        return pair.cert is not None and pair.key is not None
    except pki.PKIError:
        return False


def _still_good(
    pair: pki.CertKeyPair, req: cp.CertRequest, ca_pem: bytes, renew_before: _dt.timedelta, now: _dt.datetime
) -> bool:
    try:
        if due(pair.cert_pem, renew_before, now=now):
            return False
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
    lifetimes: Lifetimes = Lifetimes(),
    now: _dt.datetime | None = None,
) -> tuple[dict[str, bytes], list[str]]:
    """The full set of PKI files, and the names of those that were (re)generated or renewed."""
    now = now or clock.now()
    files = dict(existing)
    changed: list[str] = []
    cas: dict[str, pki.CertKeyPair] = {}
    for name, cn in ((cp.CA, f"{tenant_name}-ca"), (cp.ETCD_CA, f"{tenant_name}-etcd-ca")):
        pair = _pair(files, name)
        if pair is None or not _usable_ca(pair):
            pair = pki.generate_ca(common_name=cn, validity=lifetimes.ca_validity)
        elif due(pair.cert_pem, lifetimes.ca_renew_before, now=now):
            pair = pki.renew_ca(pair, validity=lifetimes.ca_validity)
        else:
            cas[name] = pair
            continue
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
        changed.append(SA)
    for req in requests:
        ca = cas[req.ca]
        pair = _pair(files, req.name)
        if pair is not None and _still_good(pair, req, ca.cert_pem, lifetimes.renew_before, now):
            continue
        if req.server:
            pair = pki.issue_server_cert(
                ca, common_name=req.common_name, dns_names=req.dns_names, ips=req.ips, client_auth=req.client_auth,
                validity=lifetimes.validity,
            )
        else:
            pair = pki.issue_client_cert(ca, common_name=req.common_name, organizations=req.organizations,
                                         validity=lifetimes.validity)
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
