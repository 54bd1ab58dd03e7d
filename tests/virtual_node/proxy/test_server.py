"""The kubelet proxy's serving certificate: renewed by the one window rule, loaded into the listening
TLS context without a restart; a renewed client CA keeps the tenants' client certificates accepted."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509

from vcluster import clock, pki
from vcluster.kube import ClientConfig
from vcluster.kubelet_ca import issue_tenant_client_cert
from virtual_node.proxy.server import ServingCredentials, serving_certificate
from virtual_node.settings import ProxySettings

SHORT = ProxySettings(serving_names=("127.0.0.1",), cert_validity=dt.timedelta(seconds=120),
                      cert_renew_before=dt.timedelta(seconds=60))


def test_the_serving_certificate_is_kept_until_due_then_reissued() -> None:
    ca = pki.generate_ca(common_name="kubelet-proxy-ca")
    first = serving_certificate(SHORT, ca)
    before, after = pki.validity_of(first.cert_pem)
    assert after - before == dt.timedelta(seconds=120, minutes=5)  # 5 min backdated
    outside = after - dt.timedelta(seconds=61)
    assert serving_certificate(SHORT, ca, current=first, now=outside) is first
    inside = after - dt.timedelta(seconds=60)
    renewed = serving_certificate(SHORT, ca, current=first, now=inside)
    assert pki.serial_of(renewed.cert_pem) != pki.serial_of(first.cert_pem)
    assert pki.subject_alt_names(renewed.cert_pem) == ([], ["127.0.0.1"])


def test_a_serving_certificate_of_another_ca_is_reissued() -> None:
    first = serving_certificate(SHORT, pki.generate_ca(common_name="one"))
    other = pki.generate_ca(common_name="two")
    again = serving_certificate(SHORT, other, current=first)
    assert pki.verify_signed_by(again.cert_pem, other.cert_pem)


def test_a_serving_certificate_of_the_same_ca_renewed_is_kept() -> None:
    """A CA renewed with its own key still signs the certificate: nothing to reissue yet."""
    ca = pki.generate_ca(common_name="c")
    first = serving_certificate(SHORT, ca)
    assert serving_certificate(SHORT, pki.renew_ca(ca), current=first) is first


def _write(root: Path, serving: pki.CertKeyPair, ca_pem: bytes) -> ProxySettings:
    (root / "tls.crt").write_bytes(serving.cert_pem)
    (root / "tls.key").write_bytes(serving.key_pem)
    (root / "ca.crt").write_bytes(ca_pem)
    return ProxySettings(cert_file=root / "tls.crt", key_file=root / "tls.key", client_ca_file=root / "ca.crt")


async def _serve(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"ok")
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


async def _visit(port: int, ca: pki.CertKeyPair, client: pki.CertKeyPair) -> tuple[int, bytes]:
    """(serial of the served certificate, what the server said: b"ok", or b"" when it refused us)."""
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    pki.load_cert_chain(ctx, client)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        try:
            said = await reader.read(2)
        except (ssl.SSLError, ConnectionError):
            said = b""
        return int(x509.load_der_x509_certificate(der).serial_number), said
    finally:
        writer.close()


async def test_the_listening_context_serves_the_renewed_certificate(tmp_path: Path) -> None:
    ca = pki.generate_ca(common_name="kubelet-proxy-ca")
    first = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
    settings = _write(tmp_path, first, ca.cert_pem)
    creds = ServingCredentials(settings=settings, super_config=cast(ClientConfig, None), serving=first,
                               client_ca_pem=ca.cert_pem)
    server, port = await _serve(creds.context)
    tenant = issue_tenant_client_cert(ca, "tenant-0a1b2c")
    try:
        assert await _visit(port, ca, tenant) == (pki.serial_of(first.cert_pem), b"ok")
        assert not await creds.refresh()  # nothing changed
        second = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
        _write(tmp_path, second, ca.cert_pem)
        assert await creds.refresh()
        # the same listening socket, a new handshake: the new certificate
        assert await _visit(port, ca, tenant) == (pki.serial_of(second.cert_pem), b"ok")
    finally:
        server.close()
        await server.wait_closed()


async def test_a_renewed_client_ca_keeps_tenants_accepted_after_the_old_one_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy trusted a CA that has expired since; the operator renewed it (same key): once the proxy
    has the renewed CA, client certificates the renewed CA signed are accepted again."""
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() - dt.timedelta(hours=2))
    old = pki.generate_ca(common_name="kubelet-proxy-ca", validity=dt.timedelta(hours=1))
    monkeypatch.setattr(clock, "now", real_now)
    ca = pki.renew_ca(old, validity=dt.timedelta(days=1))
    serving = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
    settings = _write(tmp_path, serving, old.cert_pem)
    creds = ServingCredentials(settings=settings, super_config=cast(ClientConfig, None), serving=serving,
                               client_ca_pem=old.cert_pem)
    server, port = await _serve(creds.context)
    tenant = issue_tenant_client_cert(ca, "tenant-0a1b2c")
    try:
        assert (await _visit(port, ca, tenant))[1] == b""  # refused: the proxy's CA has expired
        _write(tmp_path, serving, ca.cert_pem)
        assert await creds.refresh()
        assert (await _visit(port, ca, tenant))[1] == b"ok"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_failed_check_is_retried_not_the_end_of_renewal(tmp_path: Path) -> None:
    ca = pki.generate_ca(common_name="kubelet-proxy-ca")
    first = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
    settings = _write(tmp_path, first, ca.cert_pem)
    fast = ProxySettings(cert_file=settings.cert_file, key_file=settings.key_file,
                         client_ca_file=settings.client_ca_file, cert_check_period=0.01)
    creds = ServingCredentials(settings=fast, super_config=cast(ClientConfig, None), serving=first,
                               client_ca_pem=ca.cert_pem)
    (tmp_path / "tls.crt").write_bytes(b"not a certificate")  # a half-written file: that round fails
    task = asyncio.create_task(creds.keep_fresh())
    try:
        await asyncio.sleep(0.1)
        assert not task.done()
        second = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
        _write(tmp_path, second, ca.cert_pem)
        for _ in range(200):
            if creds.serving.cert_pem == second.cert_pem:
                break
            await asyncio.sleep(0.01)
        assert creds.serving.cert_pem == second.cert_pem
    finally:
        task.cancel()


async def test_the_trust_store_keeps_the_current_client_ca_and_the_one_before_only(tmp_path: Path) -> None:
    """Three CAs in a row (new keys, the worst case): a tenant of the first is refused once the third is
    in; the second and third are trusted, and every handshake serves the current certificate."""
    cas = [pki.generate_ca(common_name=f"kubelet-proxy-ca-{n}") for n in range(3)]
    tenants = [issue_tenant_client_cert(ca, "tenant-0a1b2c") for ca in cas]
    servings = [pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", ips=["127.0.0.1"]) for ca in cas]
    settings = _write(tmp_path, servings[0], cas[0].cert_pem)
    creds = ServingCredentials(settings=settings, super_config=cast(ClientConfig, None), serving=servings[0],
                               client_ca_pem=cas[0].cert_pem)
    server, port = await _serve(creds.context)
    try:
        assert (await _visit(port, cas[0], tenants[0]))[1] == b"ok"
        assert (await _visit(port, cas[0], tenants[1]))[1] == b""
        for n in (1, 2):
            _write(tmp_path, servings[n], cas[n].cert_pem)
            assert await creds.refresh()
            assert await _visit(port, cas[n], tenants[n]) == (pki.serial_of(servings[n].cert_pem), b"ok")
            assert (await _visit(port, cas[n], tenants[n - 1]))[1] == b"ok"  # the CA before: still trusted
        assert (await _visit(port, cas[2], tenants[0]))[1] == b""  # two renewals ago: dropped
        # a new serving certificate of the current CA goes into the context handshakes use
        again = pki.issue_server_cert(cas[2], common_name="vc-kubelet-proxy", ips=["127.0.0.1"])
        _write(tmp_path, again, cas[2].cert_pem)
        assert await creds.refresh()
        assert await _visit(port, cas[2], tenants[2]) == (pki.serial_of(again.cert_pem), b"ok")
    finally:
        server.close()
        await server.wait_closed()
