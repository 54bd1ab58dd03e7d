"""The kubelet proxy as an aiohttp app: identify, authorize, translate, forward.

Why: tenant apiservers reach "kubelets" of virtual nodes here.  The app is
built by :func:`create_app` (typed app keys, paired startup/cleanup through
``cleanup_ctx``) so that tests and ``python -m virtual_node.proxy`` run the
same thing.

Forwarding:

* plain requests (``containerLogs``, also with ``follow``) are streamed through
  an aiohttp client session;
* upgrade requests (``exec``/``attach``/``portForward``: SPDY/3.1 from
  kube-apiserver, or websockets) are forwarded as bytes: the request head
  goes to the real kubelet over a fresh connection, its ``101`` goes back,
  and from then on both connections are spliced.  aiohttp only knows the
  websocket upgrade, so after the ``101`` the client side is taken over with
  ``protocol.set_parser`` — the same hook aiohttp's own WebSocketResponse uses.

A kubelet (per node) or the super apiserver that cannot be reached answers
the request with 502/503 at once (the tenant's client retries); the proxy logs
one line per state change of each (``kubelet_proxy.kubelet.down`` / ``.back``,
``kubelet_proxy.super.down`` / ``.back``; :class:`vcluster.backoff.Outage`), not
one per failed request, and exports ``vc_remote_up{component="kubelet-proxy"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from vcluster.backoff import Outage, RemoteMetrics
from vcluster.kube import ApiClient, ApiError, ClientConfig
from virtual_node.proxy import routing
from virtual_node.proxy.metrics import ProxyMetrics
from virtual_node.proxy.resolver import PodResolver, Target
from virtual_node.settings import ProxySettings

log = structlog.get_logger(__name__)

#: Request headers never forwarded (hop-by-hop, or about this connection only).
_HOP_BY_HOP = frozenset(
    h.lower() for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Authorization", "Impersonate-User", "Impersonate-Group",
        "Content-Length",
    )
)
_MAX_HEAD = 64 * 1024
_HIGH_WATER = 1 << 20


class BearerToken:
    """A bearer token read from a file, read again whenever the file changes.

    In a pod this is the service account's projected token: the kubelet rewrites the file
    before the token expires, so the token the proxy sends is always the current one.  A real
    kubelet accepts it through its webhook authentication (a TokenReview) and authorizes the
    service account for ``nodes/proxy``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def value(self) -> str:
        """The current token (an empty file or one that cannot be read raises :class:`OSError`)."""
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            token = self.path.read_text().strip()
            if not token:
                raise OSError(f"the kubelet token file {self.path} is empty")
            self._token, self._stamp = token, stamp
        return self._token


@dataclass(frozen=True, slots=True)
class KubeletTLS:
    """How the proxy talks to the real kubelets."""

    scheme: str = "https"
    #: ``None``: no TLS (http), else the client context (CA, client certificate).
    context: ssl.SSLContext | None = None
    #: Sent as ``Authorization: Bearer`` to every kubelet (``None``: none, e.g. a client certificate).
    token: BearerToken | None = None

    def authorization(self) -> str | None:
        return f"Bearer {self.token.value()}" if self.token is not None else None


class Remotes:
    """The state of each remote side the proxy talks to: ``super`` and ``kubelet/<node>``."""

    def __init__(self, metrics: RemoteMetrics) -> None:
        self.metrics = metrics
        self._outages: dict[str, Outage] = {}

    def __call__(self, target: str) -> Outage:
        outage = self._outages.get(target)
        if outage is None:
            event = "kubelet_proxy.super" if target == "super" else "kubelet_proxy.kubelet"
            outage = self._outages[target] = Outage(
                logger=log.bind(target=target), event=event, metrics=self.metrics, component="kubelet-proxy",
                target=target,
            )
        return outage


SETTINGS = web.AppKey("settings", ProxySettings)
SUPER_CONFIG = web.AppKey("super_config", ClientConfig)
KUBELET_TLS = web.AppKey("kubelet_tls", KubeletTLS)
METRICS = web.AppKey("metrics", ProxyMetrics)
SUPER_CLIENT = web.AppKey("super_client", ApiClient)
RESOLVER = web.AppKey("resolver", PodResolver)
UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)
REMOTES = web.AppKey("remotes", Remotes)


@dataclass(slots=True)
class OpenStreams:
    """Tasks splicing upgraded connections; cancelled on shutdown."""

    tasks: set[asyncio.Task[Any]]


STREAMS = web.AppKey("streams", OpenStreams)


def kubelet_tls(settings: ProxySettings) -> KubeletTLS:
    """The client TLS context for real kubelets, from the settings' files."""
    token = BearerToken(settings.kubelet_token_file) if settings.kubelet_token_file is not None else None
    if settings.kubelet_scheme == "http":
        return KubeletTLS(scheme="http", context=None, token=token)
    if settings.kubelet_ca_file:
        ctx = ssl.create_default_context(cafile=str(settings.kubelet_ca_file))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.kubelet_client_cert_file and settings.kubelet_client_key_file:
        ctx.load_cert_chain(str(settings.kubelet_client_cert_file), str(settings.kubelet_client_key_file))
    return KubeletTLS(scheme="https", context=ctx, token=token)


def peer_identity(request: web.Request) -> tuple[str, list[str]]:
    """(CN, [O...]) of the verified client certificate, or ("", []) without one."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return "", []
    cn = ""
    orgs: list[str] = []
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                cn = value
            elif name == "organizationName":
                orgs.append(value)
    return cn, orgs


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with ApiClient(app[SUPER_CONFIG]) as super_client:
        app[SUPER_CLIENT] = super_client
        app[RESOLVER] = PodResolver(
            super_client, address_types=settings.kubelet_address_types, ttl=settings.lookup_cache_seconds
        )
        tls = app[KUBELET_TLS]
        connector = aiohttp.TCPConnector(ssl=tls.context if tls.context is not None else False, limit=256)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as upstream:
            app[UPSTREAM] = upstream
            yield
            tasks = list(app[STREAMS].tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


def create_app(
    settings: ProxySettings, *, super_config: ClientConfig, tls: KubeletTLS,
    metrics: ProxyMetrics | None = None,
) -> web.Application:
    """The kubelet-API app (serve it with a TLS context that requires client certificates)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[SUPER_CONFIG] = super_config
    app[KUBELET_TLS] = tls
    app[METRICS] = metrics or ProxyMetrics.create()
    app[REMOTES] = Remotes(RemoteMetrics.of(app[METRICS].registry))
    app[STREAMS] = OpenStreams(tasks=set())
    app.cleanup_ctx.append(_resources)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": status},
        status=status,
    )


async def handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    cn, orgs = peer_identity(request)
    action = request.path.split("/")[1] if request.path.count("/") >= 1 else ""
    action = action if action in routing.ACTIONS else "other"
    tenant = cn or "-"
    bound = log.bind(tenant=tenant, action=action, path=request.path)
    try:
        key = routing.tenant_from_identity(cn, orgs)
        parsed = routing.parse_path(request.path)
        with metrics.lookup_seconds.time():
            target = await app[RESOLVER].resolve(key, parsed)
        app[REMOTES]("super").succeeded()
    except routing.Denied as denied:
        bound.info("kubelet_proxy.denied", status=denied.status, reason=denied.message)
        metrics.requests.labels(tenant, action, str(denied.status)).inc()
        return _error(denied.status, denied.message)
    except ApiError as exc:
        if exc.status == 0 or exc.status >= 500:  # the super apiserver is down, not a bad request
            app[REMOTES]("super").failed(exc)
        else:
            bound.warning("kubelet_proxy.lookup_failed", error=str(exc))
        metrics.requests.labels(tenant, action, "503").inc()
        return _error(503, f"cannot look up the pod in the super cluster: {exc.message}")
    bound = bound.bind(namespace=parsed.namespace, pod=parsed.pod, node=target.node)
    upgrade = "upgrade" in request.headers.get("Connection", "").lower() and bool(request.headers.get("Upgrade"))
    try:
        authorization = app[KUBELET_TLS].authorization()
    except OSError as exc:  # the proxy's own credential, not the kubelet, is the problem
        bound.error("kubelet_proxy.token_unreadable", error=str(exc))
        metrics.requests.labels(key, action, "503").inc()
        return _error(503, "the kubelet proxy cannot read its kubelet credentials")
    try:
        if upgrade:
            response = await _forward_upgrade(request, target, tenant=key, action=action, log_=bound,
                                              authorization=authorization)
        else:
            response = await _forward_plain(request, target, log_=bound, authorization=authorization)
    except (OSError, aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
        app[REMOTES](f"kubelet/{target.node}").failed(exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))
        bound.debug("kubelet_proxy.upstream_failed", error=str(exc) or type(exc).__name__)
        metrics.requests.labels(key, action, "502").inc()
        return _error(502, f"the kubelet of node {target.node} cannot be reached")
    app[REMOTES](f"kubelet/{target.node}").succeeded()
    metrics.requests.labels(key, action, str(response.status)).inc()
    return response


def _forward_headers(request: web.Request, authorization: str | None = None) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones and its credentials; the proxy's own, if any."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def _query(request: web.Request) -> str:
    """The query exactly as the client encoded it (decoding it would break a command with spaces)."""
    raw = request.rel_url.raw_query_string
    return f"?{raw}" if raw else ""


def _url(request: web.Request, tls: KubeletTLS, target: Target) -> URL:
    return URL(f"{tls.scheme}://{_hostport(target)}{target.path}{_query(request)}", encoded=True)


def _hostport(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


async def _forward_plain(
    request: web.Request, target: Target, *, log_: Any, authorization: str | None
) -> web.StreamResponse:
    app = request.app
    body = request.content if request.can_read_body else None
    tls = app[KUBELET_TLS]
    async with app[UPSTREAM].request(
        request.method, _url(request, tls, target), headers=_forward_headers(request, authorization), data=body,
        allow_redirects=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        log_.info("kubelet_proxy.forwarded", status=upstream.status)
        return response


class _RawSink:
    """Takes the client's bytes after the upgrade and writes them to the kubelet connection."""

    def __init__(self, writer: asyncio.StreamWriter, client: asyncio.Transport) -> None:
        self._writer = writer
        self._client = client
        self._paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._writer.is_closing():
            return True, b""
        self._writer.write(data)
        transport = self._writer.transport
        if not self._paused and transport.get_write_buffer_size() > _HIGH_WATER:
            self._paused = True
            self._client.pause_reading()
            asyncio.get_running_loop().create_task(self._resume())
        return False, b""

    async def _resume(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.drain()
        self._paused = False
        with contextlib.suppress(RuntimeError):
            self._client.resume_reading()

    def feed_eof(self) -> None:
        if self._writer.can_write_eof():
            with contextlib.suppress(OSError):
                self._writer.write_eof()
                return
        self._writer.close()


def _request_head(request: web.Request, target: Target, authorization: str | None = None) -> bytes:
    lines = [f"{request.method} {target.path}{_query(request)} HTTP/1.1", f"Host: {_hostport(target)}"]
    for name, value in request.headers.items():
        lname = name.lower()
        if lname in ("connection", "upgrade") or lname not in _HOP_BY_HOP:
            lines.append(f"{name}: {value}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, str, CIMultiDict[str]]:
    text = raw.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"bad status line from kubelet: {status_line[:80]!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDict[str]) -> bytes:
    length = headers.get("Content-Length")
    if length is not None and length.isdigit():
        return await reader.readexactly(int(length))
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    return await reader.read(_MAX_HEAD)


async def _forward_upgrade(
    request: web.Request, target: Target, *, tenant: str, action: str, log_: Any, authorization: str | None
) -> web.StreamResponse:
    app = request.app
    tls = app[KUBELET_TLS]
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            target.host, target.port, ssl=tls.context, server_hostname=target.host if tls.context else None,
            limit=_MAX_HEAD * 4,
        ),
        timeout=10,
    )
    try:
        writer.write(_request_head(request, target, authorization))
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        status, reason, headers = _parse_head(raw_head[:-4])
        if status != 101:
            body = await asyncio.wait_for(_read_body(reader, headers), timeout=30)
            response = web.Response(status=status, reason=reason or None, body=body)
            for name in ("Content-Type",):
                if name in headers:
                    response.headers[name] = headers[name]
            log_.info("kubelet_proxy.upgrade_refused", status=status, body=body[:200].decode(errors="replace"))
            writer.close()
            return response
    except BaseException:
        writer.close()
        raise
    return await _splice(request, reader, writer, headers, tenant=tenant, action=action, log_=log_)


async def _splice(
    request: web.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    headers: CIMultiDict[str], *, tenant: str, action: str, log_: Any,
) -> web.StreamResponse:
    app = request.app
    client_transport = request.transport
    if client_transport is None:
        writer.close()
        raise ConnectionResetError("client went away")
    response = web.StreamResponse(status=101, reason="Switching Protocols")
    for name, value in headers.items():
        if name.lower() not in ("content-length", "transfer-encoding", "date", "server"):
            response.headers.add(name, value)
    response.force_close()
    # From here on the client's bytes are the upgraded protocol: take them over
    # before the 101 goes out, so none can reach aiohttp's HTTP parser.
    assert isinstance(client_transport, asyncio.Transport)
    request.protocol.set_parser(_RawSink(writer, client_transport))  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    await response.prepare(request)
    streams = app[METRICS].streams.labels(tenant, action)
    streams.inc()
    task = asyncio.current_task()
    if task is not None:
        app[STREAMS].tasks.add(task)
    log_.info("kubelet_proxy.stream_opened", protocol=request.headers.get("Upgrade", ""),
              subprotocol=headers.get("X-Stream-Protocol-Version") or headers.get("Sec-WebSocket-Protocol") or "")
    sent = 0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            sent += len(data)
            await response.write(data)
    except (ConnectionError, OSError) as exc:
        log_.info("kubelet_proxy.stream_broken", error=str(exc) or type(exc).__name__)
    finally:
        streams.dec()
        if task is not None:
            app[STREAMS].tasks.discard(task)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        log_.info("kubelet_proxy.stream_closed", bytes_to_client=sent)
    return response
