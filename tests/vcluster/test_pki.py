"""Unit tests of vcluster.pki: issued certificates verify against their CA and carry what we asked."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from vcluster import pki


@pytest.fixture(scope="module")
def ca() -> pki.CertKeyPair:
    return pki.generate_ca(common_name="test-ca")


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"], ids=["rsa", "ecdsa"])
def test_ca_is_self_signed_ca(key_type: pki.KeyType) -> None:
    ca = pki.generate_ca(common_name=f"ca-{key_type}", key_type=key_type)
    cert = ca.cert
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert pki.verify_signed_by(ca.cert_pem, ca.cert_pem)
    expected = rsa.RSAPrivateKey if key_type == "rsa" else ec.EllipticCurvePrivateKey
    assert isinstance(ca.key, expected)


@pytest.mark.parametrize(
    ("dns", "ips"),
    [
        (["localhost"], ["127.0.0.1"]),
        (["kubernetes", "kubernetes.default.svc"], []),
        ([], ["127.0.0.1", "::1", "10.0.0.1"]),
    ],
    ids=["dns-and-ip", "dns-only", "ips-only-v4-v6"],
)
def test_server_cert_has_sans_and_verifies(ca: pki.CertKeyPair, dns: list[str], ips: list[str]) -> None:
    srv = pki.issue_server_cert(ca, common_name="kube-apiserver", dns_names=dns, ips=ips)
    assert pki.verify_signed_by(srv.cert_pem, ca.cert_pem)
    got_dns, got_ips = pki.subject_alt_names(srv.cert_pem)
    assert got_dns == dns
    assert got_ips == ips
    eku = srv.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert srv.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_server_cert_without_names_is_refused(ca: pki.CertKeyPair) -> None:
    with pytest.raises(pki.PKIError, match="at least one DNS name or IP"):
        pki.issue_server_cert(ca, common_name="nameless")


def test_bad_ip_is_a_clear_error(ca: pki.CertKeyPair) -> None:
    with pytest.raises(pki.PKIError, match="not an IP address"):
        pki.issue_server_cert(ca, common_name="x", ips=["localhost"])


@pytest.mark.parametrize(
    ("cn", "orgs"),
    [("admin", ["system:masters"]), ("system:kube-scheduler", []), ("u", ["a", "b"])],
    ids=["masters", "no-groups", "two-groups"],
)
def test_client_cert_identity(ca: pki.CertKeyPair, cn: str, orgs: list[str]) -> None:
    client = pki.issue_client_cert(ca, common_name=cn, organizations=orgs)
    assert pki.verify_signed_by(client.cert_pem, ca.cert_pem)
    assert pki.subject_identity(client.cert_pem) == (cn, orgs)
    eku = client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_cert_of_other_ca_does_not_verify(ca: pki.CertKeyPair) -> None:
    other = pki.generate_ca(common_name="test-ca")  # same subject, other key
    client = pki.issue_client_cert(other, common_name="mallory")
    assert not pki.verify_signed_by(client.cert_pem, ca.cert_pem)


def test_pem_round_trip(ca: pki.CertKeyPair) -> None:
    key = pki.load_private_key(ca.key_pem)
    assert pki.key_to_pem(key) == ca.key_pem
    assert pki.cert_to_pem(pki.load_cert(ca.cert_pem)) == ca.cert_pem


@pytest.mark.parametrize("garbage", [b"", b"not pem", b"-----BEGIN CERTIFICATE-----\nxx\n"], ids=str)
def test_garbage_pem_is_a_clear_error(garbage: bytes) -> None:
    with pytest.raises(pki.PKIError):
        pki.load_cert(garbage)
    with pytest.raises(pki.PKIError):
        pki.load_private_key(garbage)


def test_service_account_key_pair_matches() -> None:
    pair = pki.service_account_key_pair()
    key = pki.load_private_key(pair.private_pem)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert pki.public_key_pem(key) == pair.public_pem


def test_tls_handshake_material_loads_in_ssl(tmp_path: Path, ca: pki.CertKeyPair) -> None:
    """The PEMs are what Python's ssl (OpenSSL) accepts, as Go's TLS does."""
    srv = pki.issue_server_cert(ca, common_name="s", dns_names=["localhost"], ips=["127.0.0.1"])
    cert_path, key_path = pki.write_pair(srv, cert_path=tmp_path / "s.crt", key_path=tmp_path / "s.key")
    assert key_path.stat().st_mode & 0o777 == 0o600
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())


@pytest.mark.parametrize("matching", [True, False], ids=["own-key", "foreign-key"])
def test_load_cert_chain_leaves_no_key_file(
    ca: pki.CertKeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, matching: bool
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pair = pki.issue_client_cert(ca, common_name="alice")
    other = pki.issue_client_cert(ca, common_name="bob")
    if not matching:
        pair = pki.CertKeyPair(cert_pem=pair.cert_pem, key_pem=other.key_pem)
    ctx = ssl.create_default_context()
    if matching:
        pki.load_cert_chain(ctx, pair)
    else:
        with pytest.raises(ssl.SSLError):
            pki.load_cert_chain(ctx, pair)
    assert list(tmp_path.iterdir()) == []


def test_a_client_certificate_without_a_common_name() -> None:
    """The shared etcd's admin certificate: etcd's JSON gateway refuses a client certificate with a CN."""
    ca = pki.generate_ca(common_name="ca")
    pair = pki.issue_client_cert(ca, common_name="", organizations=("virtualcluster-operator",))
    subject = pair.cert.subject
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME) == []
    assert [a.value for a in subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)] == [
        "virtualcluster-operator"]
    assert pki.verify_signed_by(pair.cert_pem, ca.cert_pem)
