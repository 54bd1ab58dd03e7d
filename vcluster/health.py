"""Liveness, readiness and Prometheus metrics over HTTP, for every long-running component.

Why this module exists: the operator, the syncer and the kubelet proxy each
need the same three endpoints -- ``/healthz`` (the process is alive: restart
it if not), ``/readyz`` (it can do its job: route work to it) and
``/metrics`` (prometheus_client's registry in the exposition format) -- for
Deployment probes in a real cluster and for ``kubectl vc up``'s readiness
waits on a laptop.  One small aiohttp app factory keeps the paths, status
codes and content types identical everywhere; each component passes its own
readiness callback.

Wiring (in a component's async entry point)::

    server = await start_health_server(host="0.0.0.0", port=settings.health_port,
                                       ready=lambda: informers_synced)
    try:
        ...  # run the component
    finally:
        await server.stop()

``port=0`` binds a free port; :attr:`HealthServer.port` says which.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry

from vcluster.errors import VClusterError

#: A check: returns (or awaits to) ``True`` when healthy / ready.
Check = Callable[[], bool | Awaitable[bool]]

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
METRICS_PATH = "/metrics"

READY_KEY: web.AppKey[Check] = web.AppKey("ready")
ALIVE_KEY: web.AppKey[Check] = web.AppKey("alive")
REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("registry")


def _always() -> bool:
    return True


async def _run_check(check: Check) -> bool:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await result
    except Exception:  # a failing check means "not healthy", never a 500 with a trace
        return False
    return bool(result)


async def _healthz(request: web.Request) -> web.Response:
    if await _run_check(request.app[ALIVE_KEY]):
        return web.Response(text="ok\n")
    return web.Response(status=503, text="not alive\n")


async def _readyz(request: web.Request) -> web.Response:
    if await _run_check(request.app[READY_KEY]):
        return web.Response(text="ok\n")
    return web.Response(status=503, text="not ready\n")


async def _metrics(request: web.Request) -> web.Response:
    body = prometheus_client.generate_latest(request.app[REGISTRY_KEY])
    resp = web.Response(body=body)
    resp.content_type = prometheus_client.CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp


def make_health_app(
    *,
    ready: Check | None = None,
    alive: Check | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """An aiohttp app serving ``/healthz``, ``/readyz`` and ``/metrics``.

    ``ready`` and ``alive`` default to "always"; ``registry`` defaults to
    prometheus_client's global registry (where module-level metrics live).
    """
    app = web.Application()
    app[READY_KEY] = ready or _always
    app[ALIVE_KEY] = alive or _always
    app[REGISTRY_KEY] = registry if registry is not None else prometheus_client.REGISTRY
    app.router.add_get(HEALTHZ_PATH, _healthz)
    app.router.add_get(READYZ_PATH, _readyz)
    app.router.add_get(METRICS_PATH, _metrics)
    return app


@dataclass(slots=True)
class HealthServer:
    """A running health/metrics server; :meth:`stop` closes its port."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_health_server(
    *,
    host: str = "0.0.0.0",
    port: int = 0,
    ready: Check | None = None,
    alive: Check | None = None,
    registry: CollectorRegistry | None = None,
) -> HealthServer:
    """Serve :func:`make_health_app` on ``host:port`` (``0`` = a free port) until ``stop()``."""
    runner = web.AppRunner(make_health_app(ready=ready, alive=alive, registry=registry), access_log=None)
    await runner.setup()
    bound = await listen(runner, host=host, port=port, what="health endpoint")
    return HealthServer(runner=runner, host=host, port=bound)


async def listen(
    runner: web.AppRunner, *, host: str, port: int, what: str, ssl_context: ssl.SSLContext | None = None
) -> int:
    """Serve a set-up ``runner`` on ``host:port`` (``0`` = a free port); return the bound port.

    A port that cannot be bound is one :class:`VClusterError` line naming ``what``
    (the runner is cleaned up), never an ``OSError`` stack trace.
    """
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise VClusterError(f"{what} cannot listen on {host}:{port}: {exc.strerror}") from exc
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return port
