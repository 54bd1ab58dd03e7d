"""``insecure-skip-tls-verify`` and ``tls-server-name``, against a real TLS server on 127.0.0.1.

Why: both were parsed and then ignored.  ``tls-server-name`` (SNI and the name the serving certificate
is checked for, as client-go does) is needed to reach an apiserver by an address its certificate does
not name, e.g. a Service's ClusterIP.  ``insecure-skip-tls-verify`` is what kubectl honours from a
file; virtualcluster honours it from kubeconfig *files* an admin passes (with a warning), and refuses
it in kubeconfig *text* (what the syncer and the operator read from Secrets, which tenants' side
writes): a Secret must never turn the certificate check off silently.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from vcluster import kubeconfig as kc
from vcluster import pki
from vcluster.kube import ApiClient, ApiError, ClientConfig, resources

NAME = "apiserver.tenant.example"


@asynccontextmanager
async def tls_server(cert_for: dict[str, Any]) -> AsyncIterator[tuple[str, pki.CertKeyPair, list[str | None]]]:
    """A loopback HTTPS server whose certificate (from its own CA) names only ``cert_for``; it records
    the SNI name of each handshake."""
    ca = pki.generate_ca(common_name="tls-test-ca")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.load_cert_chain(ctx, pki.issue_server_cert(ca, common_name="apiserver", **cert_for))
    names: list[str | None] = []
    ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)

    async def handle(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "NamespaceList", "items": [], "metadata": {"resourceVersion": "1"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}", ca, names
    finally:
        await runner.cleanup()


def kubeconfig(server: str, **cluster: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_tls_server_name_is_the_sni_and_the_name_checked(tmp_path: Path) -> None:
    async with tls_server({"dns_names": [NAME]}) as (url, ca, names):
        ca_data = {"certificate-authority-data": kc._b64(ca.cert_pem)}
        named = kc.load_kubeconfig(yaml.safe_dump(kubeconfig(url, **ca_data, **{"tls-server-name": NAME})))
        assert named.tls_server_name == NAME
        async with ApiClient.from_kubeconfig(write(tmp_path, kubeconfig(url, **ca_data, **{"tls-server-name": NAME}))
                                             ) as api:
            await api.list(resources.NAMESPACES)
            _ = [e async for e in api.watch(resources.NAMESPACES, timeout_seconds=1)]  # the watch path too
        assert names == [NAME]  # one pooled connection, introduced by that name
        # without it the certificate (which does not name 127.0.0.1) is refused
        async with ApiClient(ClientConfig.from_kubeconfig(write(tmp_path, kubeconfig(url, **ca_data)),
                                                          retries=1)) as api:
            with pytest.raises(ApiError, match="ConnectionError"):
                await api.list(resources.NAMESPACES)


async def test_a_wrong_tls_server_name_is_refused(tmp_path: Path) -> None:
    async with tls_server({"ips": ["127.0.0.1"]}) as (url, ca, _names):
        path = write(tmp_path, kubeconfig(url, **{"certificate-authority-data": kc._b64(ca.cert_pem),
                                                   "tls-server-name": "other.example"}))
        async with ApiClient(ClientConfig.from_kubeconfig(path, retries=1)) as api:
            with pytest.raises(ApiError, match="ConnectionError"):
                await api.list(resources.NAMESPACES)


class Warnings:
    """Stands in for the client module's logger (whose configuration other tests may have cached)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)


async def test_insecure_from_a_file_is_honoured_with_a_warning(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from vcluster.kube import client as client_module

    warnings = Warnings()
    monkeypatch.setattr(client_module, "log", warnings)
    async with tls_server({"ips": ["127.0.0.1"]}) as (url, _ca, _names):
        path = write(tmp_path, kubeconfig(url, **{"insecure-skip-tls-verify": True}))
        config = ClientConfig.from_kubeconfig(path, retries=1)
        assert warnings.events == ["kube.tls.insecure"]
        async with ApiClient(config) as api:
            await api.list(resources.NAMESPACES)
        # the same server without the flag: its CA is unknown, the handshake fails
        async with ApiClient(ClientConfig.from_kubeconfig(write(tmp_path, kubeconfig(url)), retries=1)) as api:
            with pytest.raises(ApiError, match="ConnectionError"):
                await api.list(resources.NAMESPACES)


def test_insecure_in_kubeconfig_text_is_refused() -> None:
    """Kubeconfig text is what the syncer and the operator read from Secrets."""
    text = yaml.safe_dump(kubeconfig("https://127.0.0.1:6443", **{"insecure-skip-tls-verify": True}))
    with pytest.raises(kc.KubeconfigError, match=r"insecure-skip-tls-verify.*never for kubeconfig text"):
        kc.load_kubeconfig(text)
    with pytest.raises(kc.KubeconfigError, match="never for kubeconfig text"):
        ClientConfig.from_kubeconfig(text)


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        pytest.param({"insecure-skip-tls-verify": True, "certificate-authority-data": "Zm9v"},
                     "both a certificate authority and insecure-skip-tls-verify", id="insecure-with-ca"),
        pytest.param({"insecure-skip-tls-verify": "yes"}, "must be true or false", id="insecure-not-bool"),
        pytest.param({"tls-server-name": ""}, "tls-server-name must be a host name", id="empty-server-name"),
        pytest.param({"tls-server-name": 5}, "tls-server-name must be a host name", id="server-name-not-text"),
    ],
)
def test_bad_tls_options_are_clear_errors(tmp_path: Path, cluster: dict[str, Any], message: str) -> None:
    with pytest.raises(kc.KubeconfigError, match=message):
        kc.load_kubeconfig(write(tmp_path, kubeconfig("https://127.0.0.1:6443", **cluster)))
