"""PKI completion: generate once, reuse, reissue only what changed."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vcluster import pki
from vcluster.controlplane import certs
from vcluster.controlplane import spec as cp

REQS = (
    cp.CertRequest(name=cp.APISERVER, ca=cp.CA, common_name="kube-apiserver", dns_names=("a",), server=True),
    cp.CertRequest(name=cp.ADMIN, ca=cp.CA, common_name="admin", organizations=("system:masters",)),
    cp.CertRequest(name=cp.APISERVER_KUBELET_CLIENT, ca=cp.KUBELET_CA, common_name="k",
                   organizations=("virtualcluster:tenants",)),
)


def test_generate_then_reuse() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, changed = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t")
    assert set(changed) == {cp.CA, cp.ETCD_CA, cp.KUBELET_CA, "sa", cp.APISERVER, cp.ADMIN,
                            cp.APISERVER_KUBELET_CLIENT}
    assert pki.verify_signed_by(files["apiserver-kubelet-client.crt"], kca.cert_pem)
    assert "kubelet-ca.key" not in files
    again, changed = certs.complete_pki(files, REQS, kubelet_ca=kca, tenant_name="t")
    assert changed == []
    assert again == files


def test_changed_sans_reissue_only_the_server_cert() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t")
    wider = (cp.CertRequest(name=cp.APISERVER, ca=cp.CA, common_name="kube-apiserver",
                            dns_names=("a", "b"), server=True), *REQS[1:])
    again, changed = certs.complete_pki(files, wider, kubelet_ca=kca, tenant_name="t")
    assert changed == [cp.APISERVER]
    assert again["ca.crt"] == files["ca.crt"]
    assert pki.subject_alt_names(again["apiserver.crt"])[0] == ["a", "b"]


def test_new_kubelet_ca_reissues_the_kubelet_client_cert() -> None:
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=pki.generate_ca(common_name="one"), tenant_name="t")
    other = pki.generate_ca(common_name="two")
    again, changed = certs.complete_pki(files, REQS, kubelet_ca=other, tenant_name="t")
    assert sorted(changed) == sorted([cp.KUBELET_CA, cp.APISERVER_KUBELET_CLIENT])
    assert pki.verify_signed_by(again["apiserver-kubelet-client.crt"], other.cert_pem)


# ---- renewal (issue 12, item 6) ---------------------------------------------------------------

SHORT = certs.Lifetimes(validity=dt.timedelta(seconds=120), renew_before=dt.timedelta(seconds=60),
                        ca_validity=dt.timedelta(days=10), ca_renew_before=dt.timedelta(days=2))


def _not_after(files: dict[str, bytes], name: str) -> dt.datetime:
    return pki.validity_of(files[cp.crt(name)])[1]


def test_leaf_certificates_get_the_configured_validity() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT)
    for req in REQS:
        before, after = pki.validity_of(files[cp.crt(req.name)])
        assert after - before == dt.timedelta(seconds=120) + dt.timedelta(minutes=5)  # 5 min backdated
    ca_before, ca_after = pki.validity_of(files["ca.crt"])
    assert ca_after - ca_before == dt.timedelta(days=10, minutes=5)


def test_a_leaf_inside_its_renewal_window_is_reissued_and_not_before() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT)
    expiry = _not_after(files, cp.ADMIN)
    outside = expiry - dt.timedelta(seconds=61)
    same, changed = certs.complete_pki(files, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT, now=outside)
    assert changed == []
    assert same == files
    inside = expiry - dt.timedelta(seconds=59)
    renewed, changed = certs.complete_pki(files, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT, now=inside)
    assert sorted(changed) == sorted(r.name for r in REQS)  # every leaf was issued at once: all due
    for req in REQS:
        assert pki.serial_of(renewed[cp.crt(req.name)]) != pki.serial_of(files[cp.crt(req.name)])
        assert renewed[cp.key(req.name)] != files[cp.key(req.name)]  # a new key, not only new dates
    assert renewed["ca.crt"] == files["ca.crt"]
    assert renewed["ca.key"] == files["ca.key"]
    assert renewed["sa.key"] == files["sa.key"]  # tokens signed earlier stay valid
    assert pki.verify_signed_by(renewed["admin.crt"], files["ca.crt"])


def test_an_expired_leaf_is_reissued() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT)
    later = _not_after(files, cp.APISERVER) + dt.timedelta(hours=1)
    _, changed = certs.complete_pki(files, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT, now=later)
    assert cp.APISERVER in changed


def test_a_due_ca_is_renewed_with_its_key_and_old_leaves_still_verify() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT)
    inside = _not_after(files, cp.CA) - dt.timedelta(days=1)
    renewed, changed = certs.complete_pki(files, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT, now=inside)
    assert cp.CA in changed
    assert cp.ETCD_CA in changed
    assert pki.serial_of(renewed["ca.crt"]) != pki.serial_of(files["ca.crt"])
    assert renewed["ca.key"] == files["ca.key"]
    assert pki.load_cert(renewed["ca.crt"]).subject == pki.load_cert(files["ca.crt"]).subject
    # trust both ways: leaves of the old CA verify against the new one and the other way round
    assert pki.verify_signed_by(files["admin.crt"], renewed["ca.crt"])
    assert pki.verify_signed_by(renewed["admin.crt"], files["ca.crt"])


def test_renewal_names_the_first_certificate_due() -> None:
    kca = pki.generate_ca(common_name="kubelet-proxy")
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=SHORT)
    soon = dt.timedelta(seconds=90)
    other = pki.issue_client_cert(pki.CertKeyPair(files["ca.crt"], files["ca.key"]), common_name="admin",
                                  organizations=("system:masters",), validity=soon)
    files = {**files, "admin.crt": other.cert_pem, "admin.key": other.key_pem}
    plan = certs.renewal(files, REQS, SHORT)
    assert plan.first == cp.ADMIN
    assert plan.not_after == _not_after(files, cp.ADMIN)
    assert plan.renew_after == plan.not_after - dt.timedelta(seconds=60)
    assert set(plan.to_status()) == {"notAfter", "renewAfter", "next"}


def test_lifetimes_whose_window_is_not_shorter_than_the_validity_are_refused() -> None:
    assert certs.Lifetimes().problems() == []
    assert SHORT.problems() == []
    bad = certs.Lifetimes(validity=dt.timedelta(seconds=60), renew_before=dt.timedelta(seconds=60))
    assert any("must be shorter" in p for p in bad.problems())
    assert certs.Lifetimes(ca_validity=dt.timedelta(days=30), ca_renew_before=dt.timedelta(days=1)).problems()


def test_renewal_counts_the_shared_kubelet_proxy_ca_with_the_ca_window() -> None:
    """The health loop's trigger covers the shared CA: the operator renews it on that reconcile."""
    lifetimes = certs.Lifetimes(validity=dt.timedelta(days=5), renew_before=dt.timedelta(days=1),
                                ca_validity=dt.timedelta(days=10), ca_renew_before=dt.timedelta(days=2))
    kca = pki.generate_ca(common_name="kubelet-proxy", validity=dt.timedelta(days=4))
    files, _ = certs.complete_pki({}, REQS, kubelet_ca=kca, tenant_name="t", lifetimes=lifetimes)
    plan = certs.renewal(files, REQS, lifetimes)
    assert plan.first == cp.KUBELET_CA
    assert plan.renew_after == pki.validity_of(kca.cert_pem)[1] - dt.timedelta(days=2)


def _usages(pem: bytes) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(pem)
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_a_server_certificate_may_also_authenticate_as_a_client_when_asked() -> None:
    """etcd's JSON gateway calls its own gRPC server with etcd's certificate (the bootstrap seed uses it)."""
    reqs = (cp.CertRequest(name=cp.ETCD_SERVER, ca=cp.ETCD_CA, common_name="etcd", server=True, client_auth=True,
                           dns_names=("localhost",)),
            cp.CertRequest(name=cp.APISERVER, ca=cp.CA, common_name="kube-apiserver", server=True, dns_names=("a",)))
    files, _ = certs.complete_pki({}, reqs, kubelet_ca=pki.generate_ca(common_name="k"), tenant_name="t")
    assert _usages(files[cp.crt(cp.ETCD_SERVER)]) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _usages(files[cp.crt(cp.APISERVER)]) == {ExtendedKeyUsageOID.SERVER_AUTH}
