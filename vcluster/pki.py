"""Certificates and keys for the control planes we run, built with ``cryptography``.

Why this module exists: every control plane we start (the local super cluster,
each tenant's kube-apiserver, the kubelet proxy) needs its own CA, serving
certificates, client certificates in the right groups and a service-account
key pair.  Writing X.509 by hand is not something to do twice, so this is the
one place that makes them.  Everything here is pure (returns PEM bytes); only
:func:`write_pair` and :func:`write_bytes` touch the file system.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vcluster import clock
from vcluster.errors import VClusterError
from vcluster.files import write_atomic

KeyType = Literal["rsa", "ecdsa"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

#: Default lifetimes: long enough for a demo or a test run, short enough to be honest.  The operator
#: renews before expiry (:mod:`vcluster.controlplane.certs`, ``VC_OPERATOR_CERT_VALIDITY`` and friends).
CA_VALIDITY = _dt.timedelta(days=3650)
CERT_VALIDITY = _dt.timedelta(days=365)
RSA_BITS = 2048
_BACKDATE = _dt.timedelta(minutes=5)


class PKIError(VClusterError):
    """A certificate or key could not be loaded or issued."""


@dataclass(frozen=True, slots=True)
class CertKeyPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return load_cert(self.cert_pem)

    @property
    def key(self) -> PrivateKey:
        return load_private_key(self.key_pem)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM private key and its PEM public key (the service-account signing pair)."""

    private_pem: bytes
    public_pem: bytes


# ---- keys --------------------------------------------------------------------


def generate_key(*, key_type: KeyType = "ecdsa") -> PrivateKey:
    """A new private key: ECDSA P-256 (fast, the default) or RSA 2048."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise PKIError(f"unknown key type {key_type!r}: expected 'rsa' or 'ecdsa'")


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM without encryption."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_private_key(pem: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key (PKCS#1, PKCS#8 or SEC1)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"not a usable PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PKIError(f"unsupported private key type {type(key).__name__}: expected RSA or ECDSA")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    """Load one PEM certificate (the first, if the PEM holds a bundle)."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PKIError(f"not a PEM certificate: {exc}") from exc


def service_account_key_pair(*, key_type: KeyType = "rsa") -> KeyPair:
    """The key pair kube-apiserver signs service-account tokens with.

    RSA by default: every Kubernetes version and every token consumer accepts RS256.
    """
    key = generate_key(key_type=key_type)
    return KeyPair(private_pem=key_to_pem(key), public_pem=public_key_pem(key))


# ---- certificates --------------------------------------------------------------


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    if common_name:  # none: a subject of organizations only (etcd's gateway refuses a client cert with a CN)
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _sign_alg() -> hashes.SHA256:
    return hashes.SHA256()


def generate_ca(
    *, common_name: str, validity: _dt.timedelta = CA_VALIDITY, key_type: KeyType = "ecdsa"
) -> CertKeyPair:
    """A self-signed CA certificate and its key."""
    return _self_signed(generate_key(key_type=key_type), _name(common_name), validity)


def renew_ca(ca: CertKeyPair, *, validity: _dt.timedelta = CA_VALIDITY) -> CertKeyPair:
    """The CA again with a new lifetime: same key, same subject, a new serial and new dates.

    Every certificate the old one signed verifies against the new one (same issuer name, same key,
    same subject key identifier), and the other way round, so a CA renewed this way keeps trust with
    no bundle of old and new CA: clients holding either certificate accept leaves of both.
    """
    return _self_signed(ca.key, ca.cert.subject, validity)


def _self_signed(key: PrivateKey, name: x509.Name, validity: _dt.timedelta) -> CertKeyPair:
    now = clock.now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, _sign_alg())
    )
    return CertKeyPair(cert_pem=cert_to_pem(cert), key_pem=key_to_pem(key))


def _sans(dns_names: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    for ip in ips:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise PKIError(f"not an IP address: {ip!r}") from exc
    return out


def _issue(
    ca: CertKeyPair,
    *,
    common_name: str,
    organizations: Sequence[str],
    dns_names: Sequence[str],
    ips: Sequence[str],
    server: bool,
    client: bool,
    validity: _dt.timedelta,
    key_type: KeyType,
) -> CertKeyPair:
    ca_cert = ca.cert
    ca_key = ca.key
    key = generate_key(key_type=key_type)
    now = clock.now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans = _sans(dns_names, ips)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, _sign_alg())
    return CertKeyPair(cert_pem=cert_to_pem(cert), key_pem=key_to_pem(key))


def issue_server_cert(
    ca: CertKeyPair,
    *,
    common_name: str,
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
    validity: _dt.timedelta = CERT_VALIDITY,
    key_type: KeyType = "ecdsa",
    client_auth: bool = False,
) -> CertKeyPair:
    """A serving certificate with SANs (DNS names and IP addresses) signed by ``ca``."""
    if not dns_names and not ips:
        raise PKIError(f"server certificate {common_name!r} needs at least one DNS name or IP")
    return _issue(
        ca, common_name=common_name, organizations=(), dns_names=dns_names, ips=ips,
        server=True, client=client_auth, validity=validity, key_type=key_type,
    )


def issue_client_cert(
    ca: CertKeyPair,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    validity: _dt.timedelta = CERT_VALIDITY,
    key_type: KeyType = "ecdsa",
) -> CertKeyPair:
    """A client certificate: Kubernetes reads CN as the user and each O as a group."""
    return _issue(
        ca, common_name=common_name, organizations=organizations, dns_names=(), ips=(),
        server=False, client=True, validity=validity, key_type=key_type,
    )


# ---- inspection ------------------------------------------------------------------


def verify_signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether ``cert_pem`` carries a valid signature of the CA in ``ca_pem`` (no chain walk)."""
    cert = load_cert(cert_pem)
    ca = load_cert(ca_pem)
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def validity_of(cert_pem: bytes) -> tuple[_dt.datetime, _dt.datetime]:
    """(notBefore, notAfter) of a certificate, timezone-aware UTC."""
    cert = load_cert(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def due(cert_pem: bytes, renew_before: _dt.timedelta, *, now: _dt.datetime | None = None) -> bool:
    """Whether a certificate is within ``renew_before`` of its expiry (or past it): time to reissue.

    The one renewal rule of every certificate the project issues (the operator's tenant PKI,
    the shared kubelet-proxy CA, the kubelet proxy's serving certificate).
    """
    _, not_after = validity_of(cert_pem)
    return (now or clock.now()) >= not_after - renew_before


def serial_of(cert_pem: bytes) -> int:
    """A certificate's serial number (a new one for every certificate issued)."""
    return int(load_cert(cert_pem).serial_number)


def subject_alt_names(cert_pem: bytes) -> tuple[list[str], list[str]]:
    """The (DNS names, IP addresses) of a certificate's SAN extension."""
    cert = load_cert(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (
        list(ext.get_values_for_type(x509.DNSName)),
        [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)],
    )


def subject_identity(cert_pem: bytes) -> tuple[str, list[str]]:
    """(CN, [O, ...]) of a certificate: the user and groups Kubernetes sees."""
    subject = load_cert(cert_pem).subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", [str(o.value) for o in orgs])


# ---- explicit write helpers ------------------------------------------------------


def write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to ``path`` with ``mode`` (created with it, never world-readable first; atomically)."""
    return write_atomic(path, data, mode=mode)


def write_pair(pair: CertKeyPair, *, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    """Write a certificate (0644) and its key (0600)."""
    write_bytes(cert_path, pair.cert_pem, mode=0o644)
    write_bytes(key_path, pair.key_pem, mode=0o600)
    return cert_path, key_path


def load_cert_chain(ctx: ssl.SSLContext, pair: CertKeyPair) -> None:
    """Load ``pair`` into ``ctx`` as its own certificate (server or client side).

    ``ssl`` only loads key material from files: the pair goes through a private
    (0600) temporary file that is removed at once, whatever happens.
    """
    fd, path = tempfile.mkstemp(prefix="vc-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pair.cert_pem.rstrip(b"\n") + b"\n" + pair.key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
