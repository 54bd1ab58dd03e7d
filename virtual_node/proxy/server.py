"""Start and stop the kubelet proxy: TLS that requires client certificates, plus metrics.

Why: ``python -m virtual_node.proxy`` and the e2e tests start the proxy the
same way; the TLS set-up (serving certificate from the shared CA, client
certificates required and verified against it) is the security boundary and
lives in one place.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import structlog
from aiohttp import web

from vcluster import pki
from vcluster.errors import VClusterError
from vcluster.health import HealthServer, listen, start_health_server
from vcluster.kube import ApiClient, ClientConfig
from vcluster.kubelet_ca import ensure_ca_secret
from virtual_node.proxy.app import STREAMS, create_app, kubelet_tls
from virtual_node.proxy.metrics import ProxyMetrics
from virtual_node.settings import ProxySettings

log = structlog.get_logger(__name__)


def server_ssl_context(serving: pki.CertKeyPair, client_ca_pem: bytes) -> ssl.SSLContext:
    """Serve with ``serving``; require a client certificate signed by ``client_ca_pem``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=client_ca_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    pki.load_cert_chain(ctx, serving)
    return ctx


@dataclass(slots=True)
class RunningProxy:
    runner: web.AppRunner
    app: web.Application
    port: int
    health: HealthServer | None
    metrics: ProxyMetrics

    async def stop(self) -> None:
        """Stop listening; end open streams first (aiohttp would wait for them up to its shutdown timeout)."""
        if self.health is not None:
            await self.health.stop()
        tasks = list(self.app[STREAMS].tasks)
        for task in tasks:
            task.cancel()
        await self.runner.cleanup()


async def load_credentials(
    settings: ProxySettings, super_config: ClientConfig
) -> tuple[pki.CertKeyPair, bytes]:
    """(serving certificate, client CA PEM): from files, or issued from the shared CA Secret."""
    if settings.cert_file and settings.key_file and settings.client_ca_file:
        try:
            return (
                pki.CertKeyPair(cert_pem=settings.cert_file.read_bytes(), key_pem=settings.key_file.read_bytes()),
                settings.client_ca_file.read_bytes(),
            )
        except OSError as exc:
            raise VClusterError(f"cannot read the proxy's certificate files: {exc}") from exc
    async with ApiClient(super_config) as super_client:
        ca = await ensure_ca_secret(super_client)
    dns = [n for n in settings.serving_names if not _is_ip(n)]
    ips = [n for n in settings.serving_names if _is_ip(n)]
    serving = pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", dns_names=dns, ips=ips)
    return serving, ca.cert_pem


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


async def start_proxy(
    settings: ProxySettings, *, super_config: ClientConfig, serving: pki.CertKeyPair, client_ca_pem: bytes,
) -> RunningProxy:
    """Serve the proxy on ``settings.host:settings.port`` (0 = a free port) until ``stop()``."""
    metrics = ProxyMetrics.create()
    app = create_app(settings, super_config=super_config, tls=kubelet_tls(settings), metrics=metrics)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5.0)
    await runner.setup()
    port = await listen(runner, host=settings.host, port=settings.port, what="kubelet proxy",
                        ssl_context=server_ssl_context(serving, client_ca_pem))
    health = None
    if settings.metrics_port >= 0:
        health = await start_health_server(host=settings.host, port=settings.metrics_port, registry=metrics.registry)
    log.info("kubelet_proxy.listening", host=settings.host, port=port,
             metrics_port=health.port if health else None)
    return RunningProxy(runner=runner, app=app, port=port, health=health, metrics=metrics)
