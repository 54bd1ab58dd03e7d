"""One aiohttp-based client per apiserver: request, CRUD on raw dicts, watch.

Why: every component talks to several apiservers at once (the super cluster
and one per tenant) with client certificates from kubeconfigs.  One
``request()`` does retries with back-off for transient failures and maps
error statuses to typed errors; ``watch()`` yields decoded events and turns
a 410 into :class:`Gone` so informers can relist.  Connections are kept alive
and bounded per client: a TLS handshake costs far more CPU than a request, so
idle connections stay open for ``keepalive`` seconds (long enough to span the
quiet gaps between bursts).  Writers that ignore the answer pass
``decode=False`` and skip decoding the returned object.

Credentials that change (exec plugins, rotating token files, expiring
id-tokens; :mod:`vcluster.kube.credentials`) are asked for before each
request — one clock comparison until a refresh is due — and once more after a
401; a client certificate from a plugin that changes gets a new connection
pool (the old one is closed with the client).  Fixed credentials take none of
that path.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp
import orjson
import structlog

from vcluster import pki
from vcluster.kube.credentials import Credential, CredentialSource, TokenFileSource, source_for
from vcluster.kube.errors import ApiError, Gone, TooManyRequests, Unauthorized, error_from_status
from vcluster.kube.resources import Resource

log = structlog.get_logger(__name__)

PatchType = Literal["merge", "strategic", "json", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
#: Seconds a connection pool replaced after a client-certificate change stays open for the requests and
#: watches still on it (a watch lasts at most its timeoutSeconds + 30 s) before it is closed.
RETIRED_SESSION_SECONDS = 900.0
#: Where a pod's service account is mounted (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to reach and authenticate to one apiserver."""

    server: str
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    #: ``insecure-skip-tls-verify``: no check of the serving certificate at all (files an admin passes only,
    #: see :func:`vcluster.kubeconfig.load_kubeconfig`).
    insecure: bool = False
    #: ``tls-server-name``: the name sent as SNI and checked against the serving certificate instead of
    #: the server URL's host (client-go's ``ServerName``).
    tls_server_name: str | None = None
    #: Upper bound of concurrent connections to this apiserver.
    max_connections: int = 64
    #: Seconds for one non-watch request.
    request_timeout: float = 30.0
    #: Tries for a transient failure (connection error, 429, 5xx) of an idempotent request.
    retries: int = 5
    #: Seconds an idle connection is kept open for reuse.
    keepalive: float = 300.0
    user_agent: str = field(default="virtualcluster")
    #: Credentials that change while the client runs (exec plugin, token file, expiring token); they
    #: replace ``token`` (and, when they give one, the client certificate).
    credentials: CredentialSource | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_kubeconfig(cls, source: str | Path, **options: Any) -> ClientConfig:
        """Read a kubeconfig (a path, or its YAML text) into a config."""
        from vcluster.kubeconfig import load_kubeconfig

        info = load_kubeconfig(source)
        credentials = source_for(info)
        if info.insecure_skip_tls_verify:
            log.warning("kube.tls.insecure", server=info.server, context=info.context,
                        message="insecure-skip-tls-verify: the server's certificate is not checked")
        return cls(
            server=info.server.rstrip("/"),
            ca_pem=info.ca_pem,
            insecure=info.insecure_skip_tls_verify,
            tls_server_name=info.tls_server_name,
            client_cert_pem=info.client_cert_pem,
            client_key_pem=info.client_key_pem,
            token=info.token if credentials is None else None,
            credentials=credentials,
            **options,
        )

    @classmethod
    def in_cluster(cls, server: str, *, account_dir: Path = SERVICE_ACCOUNT_DIR, **options: Any) -> ClientConfig:
        """The pod's own service account: its CA, and its token re-read as the kubelet rotates it."""
        from vcluster.kubeconfig import KubeconfigError

        try:
            ca = (account_dir / "ca.crt").read_bytes()
            token = (account_dir / "token").read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"cannot read the pod's service account in {account_dir}: {exc.strerror}") from exc
        return cls(server=server, ca_pem=ca,
                   credentials=TokenFileSource(account_dir / "token", token=token), **options)

    def ssl_context(self, credential: Credential | None = None) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        else:
            ctx = ssl.create_default_context()
        if credential is not None and credential.client_cert_pem and credential.client_key_pem:
            pki.load_cert_chain(ctx, pki.CertKeyPair(credential.client_cert_pem, credential.client_key_pem))
        elif self.client_cert_pem and self.client_key_pem:
            pki.load_cert_chain(ctx, pki.CertKeyPair(self.client_cert_pem, self.client_key_pem))
        return ctx


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, with the object."""

    type: str
    object: dict[str, Any]


class ApiClient:
    """An async client of one apiserver; use as ``async with ApiClient(cfg) as api``."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout)
        #: The client certificate (from a credential source) the current session's TLS context holds.
        self._session_cert: tuple[bytes | None, bytes | None] = (None, None)
        #: Sessions replaced after a plugin's client certificate changed, with when (monotonic seconds);
        #: closed after RETIRED_SESSION_SECONDS or with the client.
        self._retired: list[tuple[float, aiohttp.ClientSession]] = []

    @classmethod
    def from_kubeconfig(cls, source: str | Path, **options: Any) -> ApiClient:
        return cls(ClientConfig.from_kubeconfig(source, **options))

    async def __aenter__(self) -> ApiClient:
        if self.config.credentials is None:  # else the first request makes it, with the credential's certificate
            self._ensure_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _ensure_session(self, credential: Credential | None = None) -> aiohttp.ClientSession:
        if credential is not None and credential.client_cert_pem is not None:
            cert = (credential.client_cert_pem, credential.client_key_pem)
            if self._session is not None and cert != self._session_cert:
                self._retired.append((time.monotonic(), self._session))  # what runs on it may finish
                self._session = None
            self._session_cert = cert
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.config.ssl_context(credential), limit=self.config.max_connections,
                keepalive_timeout=self.config.keepalive
            )
            headers = {"User-Agent": self.config.user_agent, "Accept": "application/json"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            self._session = aiohttp.ClientSession(
                base_url=self.config.server, connector=connector, headers=headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                # apiservers set no cookies and client-go keeps none: no jar to filter on every request
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        while self._retired:
            await self._retired.pop()[1].close()

    async def _authorized(self) -> tuple[aiohttp.ClientSession, Credential | None, dict[str, str] | None]:
        """The session, the credential in use and the request headers it needs (fixed credentials: none)."""
        source = self.config.credentials
        if source is None:
            return self._ensure_session(), None, None
        credential = await source.get()
        headers = {"Authorization": f"Bearer {credential.token}"} if credential.token else None
        session = self._ensure_session(credential)
        if self._retired and time.monotonic() - self._retired[0][0] > RETIRED_SESSION_SECONDS:
            await self._retired.pop(0)[1].close()
        return session, credential, headers

    def _refused(self, err: ApiError, credential: Credential | None, refreshed: bool) -> bool:
        """Whether to try again after ``err``: a first 401 with credentials that can be fetched anew."""
        source = self.config.credentials
        if not isinstance(err, Unauthorized) or source is None:
            return False
        if refreshed:
            err.message += f" (credentials from the {source.describe()} were refused, also after getting fresh ones)"
            err.args = (f"{err.status} {err.reason}: {err.message}",)
            return False
        log.info("kube.credentials.refused", server=self.config.server, source=source.describe())
        source.invalidate(credential)
        return True

    # ---- the one request --------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
        decode: bool = True,
    ) -> Any:
        """Send one request; decode JSON (or return text if ``raw``); raise typed errors.

        With ``decode=False`` a successful answer is read but not decoded and ``{}`` is returned
        (for writers that do not look at the object the apiserver sends back).

        Connection errors, 429 and 5xx are retried with exponential back-off
        and jitter for idempotent methods, and 429 for every method (the
        apiserver did not act on a request it throttled).
        """
        session = self._ensure_session() if self.config.credentials is None else None
        credential: Credential | None = None
        auth: dict[str, str] | None = None
        refreshed = False
        data: bytes | None = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        attempt = 0
        while True:
            attempt += 1
            if self.config.credentials is not None:
                session, credential, auth = await self._authorized()
                if auth is not None:
                    headers = {**headers, **auth} if headers else auth
            assert session is not None
            try:
                async with session.request(
                    method, path, params=dict(params) if params else None, data=data,
                    headers=headers, timeout=self._timeout, server_hostname=self.config.tls_server_name,
                ) as resp:
                    payload = await resp.read()
                    if resp.status < 400:
                        if not decode:
                            return {}
                        if raw:
                            return payload.decode(errors="replace")
                        return orjson.loads(payload) if payload else None
                    err = error_from_status(resp.status, _decode_status(payload))
                    retry_after = resp.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if method not in _IDEMPOTENT or attempt >= self.config.retries:
                    raise ApiError(0, "ConnectionError", f"{method} {self.config.server}{path}: {exc}") from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            if self._refused(err, credential, refreshed):
                refreshed = True
                attempt -= 1  # not a transient failure: the retry budget is for those
                continue
            retriable = err.status in _RETRY_STATUSES and (
                method in _IDEMPOTENT or isinstance(err, TooManyRequests)
            )
            if not retriable or attempt >= self.config.retries:
                raise err
            delay = float(retry_after) if retry_after and retry_after.isdigit() else _backoff(attempt)
            await asyncio.sleep(min(delay, 5.0))

    # ---- CRUD on raw dicts -------------------------------------------------------------
    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", resource.path(namespace=namespace, name=name))
        return result

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        from vcluster.kube.errors import NotFound

        try:
            return await self.get(resource, name, namespace=namespace)
        except NotFound:
            return None

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        """One page of a list (the whole list without ``limit``)."""
        params: dict[str, str | int] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if limit:
            params["limit"] = limit
        if continue_:
            params["continue"] = continue_
        result: dict[str, Any] = await self.request("GET", resource.path(namespace=namespace), params=params)
        return result

    async def list_all(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None,
        field_selector: str | None = None, page_size: int = 500,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every item (paginated) and the list's resourceVersion."""
        items: builtins.list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self.list(
                resource, namespace=namespace, label_selector=label_selector,
                field_selector=field_selector, limit=page_size, continue_=token,
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    async def create(
        self, resource: Resource, body: dict[str, Any], *, namespace: str | None = None,
        subresource: str | None = None, name: str | None = None, decode: bool = True,
    ) -> dict[str, Any]:
        """Create; with ``decode=False`` the created object is not decoded (``{}`` is returned)."""
        ns = namespace if namespace is not None else (body.get("metadata") or {}).get("namespace")
        result: dict[str, Any] = await self.request(
            "POST", resource.path(namespace=ns, name=name, subresource=subresource), body=body, decode=decode
        )
        return result

    async def replace(
        self, resource: Resource, body: dict[str, Any], *, namespace: str | None = None,
        subresource: str | None = None, decode: bool = True,
    ) -> dict[str, Any]:
        """Replace; with ``decode=False`` the stored object is not decoded (``{}`` is returned)."""
        meta = body.get("metadata") or {}
        ns = namespace if namespace is not None else meta.get("namespace")
        result: dict[str, Any] = await self.request(
            "PUT", resource.path(namespace=ns, name=meta["name"], subresource=subresource), body=body,
            decode=decode,
        )
        return result

    async def patch(
        self, resource: Resource, name: str, patch: Any, *, namespace: str | None = None,
        patch_type: PatchType = "merge", subresource: str | None = None,
        field_manager: str | None = None, force: bool = False, decode: bool = True,
    ) -> dict[str, Any]:
        """Patch; with ``decode=False`` the patched object is not decoded (``{}`` is returned)."""
        params: dict[str, str | int] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        result: dict[str, Any] = await self.request(
            "PATCH", resource.path(namespace=namespace, name=name, subresource=subresource),
            params=params, body=patch, content_type=_PATCH_CONTENT_TYPES[patch_type], decode=decode,
        )
        return result

    async def delete(
        self, resource: Resource, name: str, *, namespace: str | None = None,
        uid: str | None = None, grace_period_seconds: int | None = None,
        propagation: str | None = "Background",
    ) -> dict[str, Any] | None:
        """Delete; with ``uid`` only that incarnation of the object (a precondition)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation:
            body["propagationPolicy"] = propagation
        result: dict[str, Any] | None = await self.request(
            "DELETE", resource.path(namespace=namespace, name=name), body=body
        )
        return result

    # ---- watch -----------------------------------------------------------------
    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Yield events until the server ends the watch; raise :class:`Gone` on 410."""
        params: dict[str, str] = {"watch": "1", "timeoutSeconds": str(timeout_seconds)}
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        refreshed = False
        while True:
            session, credential, auth = await self._authorized()
            resp = await session.get(resource.path(namespace=namespace), params=params, timeout=timeout,
                                     headers=auth, server_hostname=self.config.tls_server_name)
            if resp.status < 400:
                break
            err = error_from_status(resp.status, _decode_status(await resp.read()))
            resp.release()
            if not self._refused(err, credential, refreshed):
                raise err
            refreshed = True
        async with resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind = event.get("type", "")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        err = error_from_status(int(obj.get("code") or 500), obj)
                        if isinstance(err, Gone) or obj.get("code") == 410:
                            raise Gone(410, "Expired", str(obj.get("message", "too old resource version")), obj)
                        raise err
                    yield WatchEvent(kind, obj)


def _decode_status(payload: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        data = orjson.loads(payload)
        if isinstance(data, dict):
            return data
    return {"message": payload.decode(errors="replace")[:500]} if payload else None


def _backoff(attempt: int) -> float:
    return float(min(0.1 * 2 ** (attempt - 1), 3.0) * (0.5 + random.random() / 2))
