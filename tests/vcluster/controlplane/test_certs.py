"""PKI completion: generate once, reuse, reissue only what changed."""

from __future__ import annotations

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
