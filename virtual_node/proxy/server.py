"""Start and stop the kubelet proxy: TLS that requires client certificates, plus metrics.

Why: ``python -m virtual_node.proxy`` and the e2e tests start the proxy the
same way; the TLS set-up (serving certificate from the shared CA, client
certificates required and verified against it) is the security boundary and
lives in one place.  The serving certificate is renewed while the proxy runs
(:class:`ServingCredentials`): once it is due by the rule of
:func:`vcluster.pki.due` (or no longer signed by the shared CA, or its files
changed), a new one is loaded into the listening TLS context, and every later
connection gets it; open connections keep theirs.  No restart, no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import ssl
from dataclasses import dataclass, field

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
class ServingCredentials:
    """The proxy's serving certificate and client CA, and the TLS context that serves them.

    :attr:`context` is the listening socket's; every handshake is handed to :attr:`current`
    (its SNI callback, called for every ClientHello), so :meth:`refresh` takes effect for every
    later connection.  A new serving certificate is loaded into the current context; a new client
    CA gets a new context that trusts it and the one before it -- only those two: an OpenSSL trust
    store cannot drop a certificate, so adding each renewed CA to one context grew it for ever.
    """

    settings: ProxySettings
    super_config: ClientConfig
    serving: pki.CertKeyPair
    client_ca_pem: bytes
    context: ssl.SSLContext = field(init=False)
    #: The context handshakes use: :attr:`context` until the client CA changes.
    current: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self.context = server_ssl_context(self.serving, self.client_ca_pem)
        self.current = self.context
        self.context.sni_callback = self._select

    def _select(self, conn: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext) -> None:
        if self.current is not self.context:
            conn.context = self.current

    async def refresh(self, *, now: _dt.datetime | None = None) -> bool:
        """Reissue or re-read what changed or came due; whether the context got anything new."""
        serving, client_ca = await load_credentials(self.settings, self.super_config, current=self.serving, now=now)
        if serving.cert_pem == self.serving.cert_pem and client_ca == self.client_ca_pem:
            return False
        if client_ca != self.client_ca_pem:
            # the renewed CA and the one before it: a CA renewed with its own key verifies the tenants'
            # client certificates of either (the store prefers a certificate that is in its lifetime),
            # and a tenant whose apiserver has not yet rolled to the new CA file is still accepted
            self.current = server_ssl_context(serving, self.client_ca_pem + b"\n" + client_ca)
            self.client_ca_pem = client_ca
        elif serving.cert_pem != self.serving.cert_pem:
            pki.load_cert_chain(self.current, serving)
        if serving.cert_pem != self.serving.cert_pem:
            self.serving = serving
            _, not_after = pki.validity_of(serving.cert_pem)
            log.info("kubelet_proxy.serving_cert.renewed", serial=f"{pki.serial_of(serving.cert_pem):x}",
                     not_after=not_after.isoformat())
        return True

    async def keep_fresh(self) -> None:
        """:meth:`refresh` every ``cert_check_period`` seconds until cancelled; a failure is logged and retried."""
        while True:
            await asyncio.sleep(self.settings.cert_check_period)
            try:
                await self.refresh()
            except Exception as exc:  # never let one bad round end renewal (the super cluster down, a bad file)
                log.warning("kubelet_proxy.serving_cert.refresh_failed", error=str(exc) or type(exc).__name__)


@dataclass(slots=True)
class RunningProxy:
    runner: web.AppRunner
    app: web.Application
    port: int
    health: HealthServer | None
    metrics: ProxyMetrics
    credentials: ServingCredentials
    renewer: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Stop listening; end open streams first (aiohttp would wait for them up to its shutdown timeout)."""
        if self.renewer is not None:
            self.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewer
        if self.health is not None:
            await self.health.stop()
        tasks = list(self.app[STREAMS].tasks)
        for task in tasks:
            task.cancel()
        await self.runner.cleanup()


async def load_credentials(
    settings: ProxySettings, super_config: ClientConfig, *, current: pki.CertKeyPair | None = None,
    now: _dt.datetime | None = None,
) -> tuple[pki.CertKeyPair, bytes]:
    """(serving certificate, client CA PEM): from files, or issued from the shared CA Secret.

    An issued ``current`` certificate is kept while it is signed by the CA and not due
    (``cert_renew_before`` of its expiry); otherwise a new one is issued for ``cert_validity``.
    """
    if settings.cert_file and settings.key_file and settings.client_ca_file:
        try:
            return (
                pki.CertKeyPair(cert_pem=settings.cert_file.read_bytes(), key_pem=settings.key_file.read_bytes()),
                settings.client_ca_file.read_bytes(),
            )
        except OSError as exc:
            raise VClusterError(f"cannot read the proxy's certificate files: {exc}") from exc
    async with ApiClient(super_config) as super_client:
        ca = await ensure_ca_secret(super_client)  # read (made if missing); the operator renews it
    return serving_certificate(settings, ca, current=current, now=now), ca.cert_pem


def serving_certificate(settings: ProxySettings, ca: pki.CertKeyPair, *, current: pki.CertKeyPair | None = None,
                        now: _dt.datetime | None = None) -> pki.CertKeyPair:
    """``current`` while it is signed by ``ca`` and not due, else a new one for ``serving_names`` (pure)."""
    if current is not None and _still_good(current, ca.cert_pem, settings.cert_renew_before, now):
        return current
    dns = [n for n in settings.serving_names if not _is_ip(n)]
    ips = [n for n in settings.serving_names if _is_ip(n)]
    return pki.issue_server_cert(ca, common_name="vc-kubelet-proxy", dns_names=dns, ips=ips,
                                 validity=settings.cert_validity)


def _still_good(serving: pki.CertKeyPair, ca_pem: bytes, renew_before: _dt.timedelta,
                now: _dt.datetime | None) -> bool:
    try:
        return not pki.due(serving.cert_pem, renew_before, now=now) and pki.verify_signed_by(serving.cert_pem, ca_pem)
    except pki.PKIError:
        return False


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
    credentials = ServingCredentials(settings=settings, super_config=super_config, serving=serving,
                                     client_ca_pem=client_ca_pem)
    port = await listen(runner, host=settings.host, port=settings.port, what="kubelet proxy",
                        ssl_context=credentials.context)
    health = None
    if settings.metrics_port >= 0:
        health = await start_health_server(host=settings.host, port=settings.metrics_port, registry=metrics.registry)
    log.info("kubelet_proxy.listening", host=settings.host, port=port,
             metrics_port=health.port if health else None)
    renewer = asyncio.create_task(credentials.keep_fresh(), name="kubelet-proxy-serving-cert")
    return RunningProxy(runner=runner, app=app, port=port, health=health, metrics=metrics,
                        credentials=credentials, renewer=renewer)
