"""Credentials that change while a client runs: exec plugins, rotating token files, expiring id-tokens.

Why: kubeconfigs of managed clusters do not hold a credential, they say how to
get one — an exec credential plugin (``aws eks get-token``,
``gke-gcloud-auth-plugin``, ``kubelogin``) prints a short-lived token or client
certificate; a pod's projected service-account token is rewritten by the
kubelet before it expires; an OIDC id-token carries its own ``exp``.  A
:class:`CredentialSource` gives the client the current :class:`Credential`,
gets a fresh one before the old one expires (the plugin's
``expirationTimestamp``; a token file every :data:`TOKEN_FILE_PERIOD`
seconds, as client-go re-reads it) and again when the apiserver answers 401
(:meth:`CredentialSource.invalidate`).  Between refreshes :meth:`get` is one
clock comparison, so the client's hot path does not notice it.

Exec plugins follow the client-go credential plugin protocol
(client.authentication.k8s.io/v1 and v1beta1 ``ExecCredential``): the plugin
gets ``KUBERNETES_EXEC_INFO`` (with the cluster when ``provideClusterInfo``),
never a terminal (components are not interactive: ``interactiveMode: Always``
is refused clearly), and must print an ExecCredential whose ``status`` has a
``token`` or ``clientCertificateData`` + ``clientKeyData``.  Every way a plugin
can fail — not installed, exits non-zero, prints something else, hangs —
is a :class:`~vcluster.kubeconfig.KubeconfigError` naming the plugin, with its
stderr.

Why not a library: kubernetes_asyncio's loader (the obvious one) imports its
whole generated client (48 MB, ~0.4 s at start — the CLI's start path),
writes client keys from kubeconfigs and plugins to temporary files, and lacks
``interactiveMode``, ``provideClusterInfo`` and ``installHint``; the sync
``kubernetes`` client adds requests, google-auth and websocket-client for the
same gaps.  The protocol is small and specified; this module is it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vcluster.kube.errors import ApiError
from vcluster.kubeconfig import ExecConfig, KubeconfigError, KubeconfigInfo

log = structlog.get_logger(__name__)

#: Seconds between re-reads of a token file (client-go's cached file token source uses one minute).
TOKEN_FILE_PERIOD = 60.0
#: Seconds a plugin may run before it is killed and the request fails.
EXEC_TIMEOUT = 60.0
#: At most this many seconds before ``expirationTimestamp`` a plugin runs again (and at most half the lifetime).
EXPIRY_MARGIN = 10.0
#: How much of a failing plugin's stderr goes into the error message.
_STDERR_CHARS = 800


class CredentialError(KubeconfigError, ApiError):
    """Credentials could not be got (a plugin failed, a token file vanished, an id-token expired).

    A :class:`KubeconfigError` for the user (the message says what to fix), and an :class:`ApiError`
    (status 0) for components that retry failed requests with back-off: a plugin that fails once is
    tried again at the next request.
    """

    def __init__(self, message: str) -> None:
        ApiError.__init__(self, 0, "CredentialError", message)
        self.args = (message,)


@dataclass(frozen=True, slots=True)
class Credential:
    """What authenticates one request: a bearer token, a client certificate, or both."""

    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    #: Wall-clock seconds (``time.time()``) after which it is no longer valid; ``None``: until refused.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """The cluster a plugin is told about (``provideClusterInfo``)."""

    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None


class CredentialSource:
    """The current credential of one kubeconfig user; refreshed when due or refused.

    Subclasses implement :meth:`_fetch` (the I/O) and :meth:`_refresh_at` (when the next one is due).
    Concurrent callers share one fetch.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._current: Credential | None = None
        self._due = -math.inf
        self._lock: asyncio.Lock | None = None
        #: How many times a credential was fetched (tests and logs).
        self.fetches = 0

    def describe(self) -> str:
        """Where the credentials come from, for error messages."""
        raise NotImplementedError

    @property
    def next_refresh(self) -> float:
        """Wall-clock seconds when the current credential is due for refresh (``inf``: only when refused)."""
        return self._due

    async def get(self) -> Credential:
        """The current credential, fetched first if there is none or it is due for refresh."""
        current = self._current
        if current is not None and self._clock() < self._due:
            return current
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._current
            if current is not None and self._clock() < self._due:
                return current
            fresh = await self._fetch(current)
            self.fetches += 1
            self._current = fresh
            self._due = self._refresh_at(fresh, self._clock())
            return fresh

    def invalidate(self, refused: Credential | None) -> None:
        """The apiserver refused ``refused`` (401): the next :meth:`get` fetches again.

        Only if ``refused`` is still the current one: many requests refused at once cause one refresh.
        """
        if refused is None or refused is self._current:
            self._due = -math.inf

    async def _fetch(self, previous: Credential | None) -> Credential:
        raise NotImplementedError

    def _refresh_at(self, credential: Credential, now: float) -> float:
        if credential.expires_at is None:
            return math.inf
        lifetime = max(credential.expires_at - now, 0.0)
        return credential.expires_at - min(EXPIRY_MARGIN, lifetime / 2)


class TokenFileSource(CredentialSource):
    """A bearer token in a file that is rewritten while we run (a projected service-account token).

    Re-read every :data:`TOKEN_FILE_PERIOD` seconds and after a 401.  A read that fails while an older
    token is known keeps the older one (logged), as client-go does; the first read failing is an error.
    """

    def __init__(self, path: Path, *, token: str | None = None, period: float = TOKEN_FILE_PERIOD,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = path
        self.period = period
        if token:  # what the kubeconfig parser read just now: valid for one period
            self._current = Credential(token=token)
            self._due = clock() + period

    def describe(self) -> str:
        return f"token file {self.path}"

    async def _fetch(self, previous: Credential | None) -> Credential:
        try:
            token = (await asyncio.to_thread(self.path.read_text)).strip()
            problem = "is empty" if not token else ""
        except OSError as exc:
            token, problem = "", f"cannot be read: {exc.strerror}"
        if not problem:
            return Credential(token=token)
        if previous is not None:
            log.warning("kube.credentials.token_file_unreadable", path=str(self.path), problem=problem)
            return previous
        raise CredentialError(f"token file {self.path} {problem}")

    def _refresh_at(self, credential: Credential, now: float) -> float:
        return now + self.period


class ExpiringTokenSource(CredentialSource):
    """A fixed token that says when it expires (an OIDC id-token): an error once it has."""

    def __init__(self, token: str, expiry: _dt.datetime, *, what: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.token = token
        self.expiry = expiry
        self.what = what

    def describe(self) -> str:
        return self.what

    async def _fetch(self, previous: Credential | None) -> Credential:
        if self._clock() >= self.expiry.timestamp():
            raise CredentialError(
                f"the {self.what} expired at {self.expiry.isoformat()}; virtualcluster does not refresh it: "
                "log in again with kubectl (or use an exec plugin such as kubelogin)"
            )
        return Credential(token=self.token, expires_at=self.expiry.timestamp())

    def _refresh_at(self, credential: Credential, now: float) -> float:
        return self.expiry.timestamp()


class ExecSource(CredentialSource):
    """An exec credential plugin, run again shortly before its credential expires and after a 401."""

    def __init__(self, config: ExecConfig, *, cluster: ClusterInfo, user: str = "",
                 timeout: float = EXEC_TIMEOUT, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.config = config
        self.cluster = cluster
        self.user = user
        self.timeout = timeout

    def describe(self) -> str:
        return f"exec credential plugin {self.config.command!r} of kubeconfig user {self.user!r}"

    def command(self) -> str:
        """The command to run: a relative path (one with a slash) resolves against the kubeconfig's folder."""
        cmd = self.config.command
        if "/" in cmd and not os.path.isabs(cmd) and self.config.base_dir is not None:
            return str(self.config.base_dir / cmd)
        return cmd

    def exec_info(self) -> dict[str, Any]:
        """``KUBERNETES_EXEC_INFO``: the request the plugin reads."""
        spec: dict[str, Any] = {"interactive": False}
        if self.config.provide_cluster_info:
            cluster: dict[str, Any] = {"server": self.cluster.server}
            if self.cluster.ca_pem:
                cluster["certificate-authority-data"] = base64.b64encode(self.cluster.ca_pem).decode("ascii")
            if self.cluster.insecure:
                cluster["insecure-skip-tls-verify"] = True
            if self.cluster.tls_server_name:
                cluster["tls-server-name"] = self.cluster.tls_server_name
            if self.config.cluster_config is not None:
                cluster["config"] = self.config.cluster_config
            spec["cluster"] = cluster
        return {"apiVersion": self.config.api_version, "kind": "ExecCredential", "spec": spec}

    async def _fetch(self, previous: Credential | None) -> Credential:
        what = self.describe()
        if self.config.interactive_mode == "Always":
            raise CredentialError(
                f"{what} needs a terminal (interactiveMode: Always) and virtualcluster runs plugins without one: "
                "log in with the plugin first, or use a kubeconfig whose plugin can run unattended"
            )
        env = {**os.environ, **dict(self.config.env), "KUBERNETES_EXEC_INFO": json.dumps(self.exec_info())}
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command(), *self.config.args, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            hint = self.config.install_hint.strip() or "install it, or put it on PATH"
            raise CredentialError(f"{what} was not found: {hint}") from None
        except PermissionError:
            raise CredentialError(f"{what} cannot be run (not executable)") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CredentialError(f"{what} did not finish within {self.timeout:g} s (killed)") from None
        stderr = err.decode(errors="replace").strip()
        if proc.returncode != 0:
            detail = stderr[-_STDERR_CHARS:] if stderr else "it printed nothing on stderr"
            raise CredentialError(f"{what} failed (exit status {proc.returncode}): {detail}")
        if stderr:
            log.debug("kube.credentials.exec_stderr", plugin=self.config.command, stderr=stderr[-_STDERR_CHARS:])
        credential = self._parse(out)
        log.info("kube.credentials.exec", plugin=self.config.command, user=self.user,
                 kind="token" if credential.token else "client certificate", expires_at=credential.expires_at)
        return credential

    def _parse(self, out: bytes) -> Credential:
        what = self.describe()
        try:
            doc = json.loads(out)
        except ValueError:
            shown = out.decode(errors="replace").strip()[:200] or "nothing"
            raise CredentialError(f"{what} printed {shown!r}, not an ExecCredential (JSON)") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise CredentialError(f"{what} printed JSON that is not an ExecCredential")
        if doc.get("apiVersion") != self.config.api_version:
            raise CredentialError(
                f"{what} answered with apiVersion {doc.get('apiVersion')!r}; the kubeconfig asked for "
                f"{self.config.api_version!r}"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            raise CredentialError(f"{what} printed an ExecCredential without a status")
        token = status.get("token") or None
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert) != bool(key):
            raise CredentialError(f"{what} gave clientCertificateData and clientKeyData without the other")
        if not token and not cert:
            raise CredentialError(f"{what} gave neither a token nor a client certificate")
        if (token is not None and not isinstance(token, str)) or (cert and not isinstance(cert, str)) or (
            key and not isinstance(key, str)
        ):
            raise CredentialError(f"{what}: token, clientCertificateData and clientKeyData must be strings")
        expires_at: float | None = None
        stamp = status.get("expirationTimestamp")
        if stamp:
            try:
                when = _dt.datetime.fromisoformat(str(stamp))
                if when.tzinfo is None:
                    raise ValueError("no time zone")
            except ValueError:
                raise CredentialError(
                    f"{what} gave expirationTimestamp {stamp!r}, which is not an RFC 3339 time"
                ) from None
            expires_at = when.timestamp()
        return Credential(
            token=token, client_cert_pem=cert.encode() if cert else None,
            client_key_pem=key.encode() if key else None, expires_at=expires_at,
        )


def source_for(info: KubeconfigInfo, *, clock: Callable[[], float] = time.time) -> CredentialSource | None:
    """The credential source a kubeconfig user needs, or ``None`` when its credentials are fixed."""
    if info.exec is not None:
        cluster = ClusterInfo(info.server, info.ca_pem, info.insecure_skip_tls_verify, info.tls_server_name)
        return ExecSource(info.exec, cluster=cluster, user=info.user, clock=clock)
    if info.token_file is not None:
        return TokenFileSource(info.token_file, token=info.token, clock=clock)
    if info.token is not None and info.token_expiry is not None:
        return ExpiringTokenSource(info.token, info.token_expiry,
                                   what=f"oidc id-token of kubeconfig user {info.user!r}", clock=clock)
    return None

