"""One health loop for every tenant control plane: a truthful ``Ready`` condition within seconds, and repair.

Why this module exists: the Tenant's status used to be written only by the
reconcile, so a tenant apiserver killed after provisioning left ``phase:
Ready`` and ``Ready=True ... serving at https://...`` for as long as it was
down -- a lie for the syncer (which serves a tenant only while it is Ready),
the CLI's ``--wait`` and every admin reading ``kubectl get tnt``.  And each
Tenant had its own Kopf timer, a task per tenant waking up even when
nothing was wrong.

:class:`HealthMonitor` is one task for all tenants.  Every
``health_interval`` seconds it lists the Tenants once and probes each
provisioned one (phase ``Ready`` or ``Degraded``, status of the current
generation), a bounded number at a time:

* ``local`` backend: are its processes alive (pid files and ``/proc``, no
  spec built)?  One gone → ``ProcessExited`` at once, and a repair (the
  reconcile restarts it) is started in the background.  Except the
  controller-manager alone while the apiserver serves: kube-controller-manager
  exits when its apiserver goes away in its first seconds (it waits 10 s for
  ``/healthz``), e.g. an apiserver restarted just after it; the tenant still
  serves, so it is restarted quietly, with back-off (:func:`cm_restart`),
  and the Tenant stays Ready -- until it keeps exiting (:data:`CM_QUIET_RESTARTS`
  restarts without a quiet minute between them), then ``ProcessExited`` as
  for any other component;
* the admin kubeconfig Secret (read again every ``secret_recheck`` s):
  gone, not base64 or not a kubeconfig → ``KubeconfigUnreadable`` at once
  (nobody, the syncer included, can use the tenant with it), and a repair
  (the reconcile writes the Secret again);
* ``GET /readyz?exclude=shutdown`` on the tenant apiserver with the admin
  kubeconfig (a client per tenant, kept between rounds; ``shutdown``: a
  stopping apiserver pod still serves during its shutdown delay, see
  :mod:`vcluster.controlplane.pods`); when it fails or does not
  answer in time, ``/livez/ping`` (the process alone) unanswered →
  ``ApiserverUnreachable``, else ``/readyz/etcd`` failing → ``EtcdUnhealthy``
  (a hung etcd makes ``/readyz`` itself hang past the probe timeout, so
  "no answer" alone cannot tell), else ``ApiserverNotReady``.  These count after
  ``health_failure_threshold`` failed rounds in a row, so one slow answer
  under load does not make the syncer drop a tenant; while a failure awaits
  confirmation the next round comes after 1 s instead of the interval.

The same round renews certificates: a tenant whose ``status.certificates.renewAfter``
(written by the reconcile, :func:`vcluster.controlplane.certs.renewal`) has
passed is reconciled in the background, without a spec change; the reconcile
reissues what is due, rolls it out and posts ``CertificatesRenewed``
(:func:`renewal_due`).  While a reconcile restarts a local control plane on
purpose (``Reconciler.rolling``) its tenant is not probed: the restart is not a
failure.

:func:`transition` (pure) decides what to write: ``Ready=False`` with that
reason and phase ``Degraded`` when a healthy tenant fails, back to
``Ready=True``/``Ready`` when a tenant the loop marked degraded answers
again; nothing otherwise (a reconcile owns every other state).  The write
goes through :meth:`Reconciler._report`, which posts one Event per change of
the condition.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as _dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from tenant_crd import TenantStatus
from tenant_crd.models import cluster_domain
from vcluster import clock, naming
from vcluster.controlplane.spec import CM_COMPONENT
from vcluster.kube import ApiClient, ApiError, ClientConfig, NotFound
from vcluster.kube import resources as r
from vcluster.operator.reconcile import Invalid, Reconciler, Retry

log = structlog.get_logger(__name__)
#: The probe's ``/readyz`` query (see :meth:`HealthMonitor.probe`).
READYZ_PARAMS = {"exclude": "shutdown"}

#: Quiet restarts of an exited controller-manager (the apiserver serving) before it counts as
#: ``ProcessExited``; the count starts again once it has run for :data:`CM_STABLE_SECONDS`.
CM_QUIET_RESTARTS = 3
CM_STABLE_SECONDS = 60.0
#: Back-off of quiet controller-manager restarts: 2, 4, 8 ... seconds after the last one, at most this.
CM_RESTART_CAP = 60.0

#: The Event of a quiet controller-manager restart (the Tenant stays Ready, so no condition changes).
CM_RESTARTED = "ControllerManagerRestarted"

#: The phase of a provisioned tenant whose control plane is not healthy right now.
DEGRADED = "Degraded"
PROCESS_EXITED = "ProcessExited"
APISERVER_UNREACHABLE = "ApiserverUnreachable"
APISERVER_NOT_READY = "ApiserverNotReady"
ETCD_UNHEALTHY = "EtcdUnhealthy"
KUBECONFIG_UNREADABLE = "KubeconfigUnreadable"
#: Reasons this loop writes (and may therefore take back).
REASONS = frozenset({PROCESS_EXITED, APISERVER_UNREACHABLE, APISERVER_NOT_READY, ETCD_UNHEALTHY,
                     KUBECONFIG_UNREADABLE})
#: Reasons the loop repairs by reconciling the tenant (a process to start, a Secret to write again).
REPAIRED = frozenset({PROCESS_EXITED, KUBECONFIG_UNREADABLE})


class SecretProblem(Exception):
    """The tenant's admin kubeconfig Secret cannot be used (gone, not base64, not a kubeconfig)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one probe found."""

    healthy: bool
    reason: str = "Ready"
    message: str = ""
    #: Known for sure at once (a process is gone), not only after ``threshold`` probes.
    certain: bool = False
    #: The apiserver serves but the (local) controller-manager process is gone (after
    #: :meth:`HealthMonitor._controller_manager`: and it was restarted quietly this round).
    cm_exited: bool = False


@dataclass(frozen=True, slots=True)
class CmRestarts:
    """Quiet restarts of one tenant's controller-manager: how many in a row, and when the last one was."""

    count: int = 0
    last: float = float("-inf")


def cm_restart(state: CmRestarts, now: float) -> tuple[str, CmRestarts]:
    """What to do about an exited controller-manager while the apiserver serves (pure): ``"restart"``
    (quietly, the Tenant stays Ready), ``"wait"`` (its back-off has not passed) or ``"report"``
    (it keeps exiting: ``ProcessExited``), and the state after it."""
    if state.count >= CM_QUIET_RESTARTS:
        return "report", state
    if now - state.last < min(2.0 ** state.count, CM_RESTART_CAP):
        return "wait", state
    return "restart", CmRestarts(state.count + 1, now)


@dataclass(frozen=True, slots=True)
class Write:
    """A Ready condition (and phase) to write."""

    ready: bool
    phase: str
    reason: str
    message: str


def transition(status: TenantStatus, verdict: Verdict, *, failures: int, threshold: int) -> Write | None:
    """What the loop writes for ``verdict`` after ``failures`` failed probes in a row (``None``: nothing)."""
    cond = status.condition("Ready")
    ready = cond is not None and cond.status == "True"
    ours = cond is not None and cond.reason in REASONS
    if verdict.healthy:
        if not ready and (ours or status.phase == DEGRADED):
            where = f" at {status.endpoint}" if status.endpoint else ""
            return Write(True, "Ready", "Ready", f"control plane ({status.backend}, {status.version}) is serving"
                         f"{where} again")
        return None
    if not verdict.certain and failures < threshold:
        return None
    if ready or (ours and cond is not None and cond.reason != verdict.reason):
        return Write(False, DEGRADED, verdict.reason, verdict.message)
    return None


def renewal_due(status: Mapping[str, Any] | None, now: _dt.datetime) -> bool:
    """Whether the tenant's next certificate renewal (``status.certificates.renewAfter``) has come (pure).

    No such field (a tenant provisioned before renewal existed; the reconcile on the operator's start
    writes it) or an unreadable one: not due.
    """
    certificates = (status or {}).get("certificates")
    raw = certificates.get("renewAfter") if isinstance(certificates, Mapping) else None
    if not isinstance(raw, str):
        return False
    try:
        when = _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return now >= when


def _ref(status: TenantStatus) -> str:
    return "/".join(status.kubeconfig_secret or ("?", "?"))


def eligible(body: Mapping[str, Any]) -> bool:
    """A tenant the loop looks after: provisioned, not being deleted, status of the current generation."""
    meta = body.get("metadata") or {}
    status = TenantStatus.from_dict(body.get("status"))
    return (
        not meta.get("deletionTimestamp")
        and status.phase in ("Ready", DEGRADED)
        and bool(status.cluster_key and status.endpoint and status.kubeconfig_secret)
        and status.observed_generation == meta.get("generation")
    )


class HealthMonitor:
    """Probes every provisioned tenant each ``interval`` seconds; reports and repairs (see the module doc)."""

    def __init__(
        self,
        *,
        api: ApiClient,
        reconciler: Reconciler,
        interval: float = 5.0,
        threshold: int = 2,
        probe_timeout: float = 3.0,
        concurrency: int = 16,
        secret_recheck: float = 30.0,
        renewal_retry: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.reconciler = reconciler
        self.interval = interval
        self.threshold = threshold
        self.probe_timeout = probe_timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._failures: dict[str, int] = {}
        self._clients: dict[str, ApiClient] = {}
        #: The kubeconfig each client was built from, and when its Secret was last read.
        self._texts: dict[str, str] = {}
        self._read_at: dict[str, float] = {}
        self.secret_recheck = secret_recheck
        self._clock = clock
        self._repairs: dict[str, asyncio.Task[None]] = {}
        #: When a renewal reconcile was last started per tenant: one that did not bring a new
        #: ``renewAfter`` (it failed) is tried again after ``renewal_retry`` seconds, not every round.
        self._renewals: dict[str, float] = {}
        self.renewal_retry = renewal_retry
        #: Quiet restarts of an exited controller-manager per tenant (:func:`cm_restart`).
        self._cm_restarts: dict[str, CmRestarts] = {}

    async def run(self) -> None:
        """Rounds until cancelled; a failed round (super apiserver down) is logged once per state change."""
        from vcluster.backoff import BackoffPolicy, Outage

        outage = Outage(logger=log, event="operator.health.super", policy=BackoffPolicy(
            initial=self.interval, cap=max(self.interval, 30.0), jitter=0.2))
        try:
            while True:
                try:
                    await self.round()
                except ApiError as exc:
                    await asyncio.sleep(outage.failed(exc))
                    continue
                except Exception as exc:  # a bug must not end the only health loop: logged, retried
                    log.exception("operator.health.round_failed")
                    await asyncio.sleep(outage.failed(exc))
                    continue
                outage.succeeded()
                await asyncio.sleep(self.next_delay())
        finally:
            await self.close()

    def next_delay(self) -> float:
        """Seconds to the next round: ``interval``, or 1 s while a failed probe awaits confirmation
        (so the threshold costs about a second of detection, not another interval)."""
        if any(0 < failures < self.threshold for failures in self._failures.values()):
            return min(self.interval, 1.0)
        return self.interval

    async def close(self) -> None:
        for task in self._repairs.values():
            task.cancel()
        await asyncio.gather(*self._repairs.values(), return_exceptions=True)
        self._repairs.clear()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def round(self) -> None:
        """One look at every tenant."""
        tenants, _ = await self.api.list_all(r.TENANTS)
        live = {t["metadata"]["name"] for t in tenants}
        for name in [n for n in self._failures if n not in live]:
            self._failures.pop(name, None)
        for name in [n for n in self._renewals if n not in live]:
            self._renewals.pop(name, None)
        for name in [n for n in self._cm_restarts if n not in live]:
            self._cm_restarts.pop(name, None)
        for key in [k for k in self._clients if k not in {self._key(t) for t in tenants}]:
            await self._drop_client(key)
        await asyncio.gather(*(self._check(t) for t in tenants if eligible(t)))

    @staticmethod
    def _key(body: Mapping[str, Any]) -> str | None:
        return TenantStatus.from_dict(body.get("status")).cluster_key

    async def _check(self, body: Mapping[str, Any]) -> None:
        # Also while a reconcile holds the tenant's lock: one that waits on a hung apiserver
        # (up to the start timeout) must not keep the status from telling the truth meanwhile;
        # its own report at the end is newer and wins.
        name = body["metadata"]["name"]
        status = TenantStatus.from_dict(body.get("status"))
        if status.cluster_key in self.reconciler.rolling:
            return  # a reconcile restarts it on purpose (new certificates): not a failure to count
        async with self._slots:
            try:
                verdict = await self.probe(status)
            except Exception as exc:  # e.g. an aiohttp error the API layer does not wrap
                if status.cluster_key:
                    await self._drop_client(status.cluster_key)
                verdict = Verdict(False, APISERVER_UNREACHABLE,
                                  f"tenant apiserver {status.endpoint}: probe failed: {type(exc).__name__}: {exc}")
        verdict = self._controller_manager(name, verdict)
        if verdict.cm_exited:  # restarted quietly: the condition stays, an Event tells the admin
            restarts = self._cm_restarts[name].count
            await self.reconciler.event(
                body, type_="Warning", reason=CM_RESTARTED,
                message=f"{CM_COMPONENT} of the local control plane exited while the apiserver served; "
                        f"restarted (quiet restart {restarts} of {CM_QUIET_RESTARTS}; one more within "
                        f"{CM_STABLE_SECONDS:g} s of a start is reported as {PROCESS_EXITED}). Its log: "
                        f"logs/{CM_COMPONENT}.log in the tenant's folder")
        if verdict.healthy != (self._failures.get(name, 0) == 0):
            log.debug("operator.health.probe", tenant=name, healthy=verdict.healthy, reason=verdict.reason,
                      message=verdict.message)
        failures = 0 if verdict.healthy else self._failures.get(name, 0) + 1
        self._failures[name] = failures
        write = transition(status, verdict, failures=failures, threshold=self.threshold)
        if write is not None:
            logger = log.bind(tenant=name)
            if write.ready:
                logger.info("operator.tenant.healthy", reason=write.reason, message=write.message)
            else:
                logger.warning("operator.tenant.unhealthy", reason=write.reason, message=write.message)
            await self.reconciler._report(body, phase=write.phase, ready=write.ready, reason=write.reason,
                                          message=write.message)
        if verdict.reason in REPAIRED and name not in self._repairs:
            self._repairs[name] = asyncio.create_task(self._repair(name), name=f"repair-{name}")
        elif verdict.healthy and name not in self._repairs and renewal_due(body.get("status"), clock.now()) \
                and self._clock() - self._renewals.get(name, -self.renewal_retry) >= self.renewal_retry:
            self._renewals[name] = self._clock()
            log.info("operator.certificates.due", tenant=name,
                     renew_after=((body.get("status") or {}).get("certificates") or {}).get("renewAfter"))
            self._repairs[name] = asyncio.create_task(self._repair(name), name=f"repair-{name}")
        elif verdict.healthy and status.backend == "local" and status.cluster_key and name not in self._repairs \
                and await self._dns_stale(status.cluster_key, cluster_domain(body)):
            # the tenant DNS is not part of Ready: its server gone, its token past half its life or a
            # new shortened namespace to map is repaired without touching the condition
            self._repairs[name] = asyncio.create_task(self._repair(name), name=f"repair-{name}")

    def _controller_manager(self, name: str, verdict: Verdict) -> Verdict:
        """An exited controller-manager beside a serving apiserver: restarted quietly with back-off (the
        reconcile starts it once the apiserver's ``/readyz`` answers), or reported once it keeps exiting."""
        now = self._clock()
        state = self._cm_restarts.get(name)
        if not verdict.cm_exited:
            if state is not None and verdict.healthy and now - state.last >= CM_STABLE_SECONDS:
                del self._cm_restarts[name]  # it has run for a while: the next exit starts the count again
            return verdict
        action, state = cm_restart(state or CmRestarts(), now)
        if action == "report":
            return Verdict(False, PROCESS_EXITED, f"{CM_COMPONENT} of the local control plane exited "
                           f"{CM_QUIET_RESTARTS + 1} times within {CM_STABLE_SECONDS:g} s of its last start; "
                           "the operator restarts it", certain=True)
        if action == "restart" and name not in self._repairs:
            self._cm_restarts[name] = state
            log.warning("operator.tenant.controller_manager_exited", tenant=name, restarts=state.count,
                        message="the apiserver serves: restarted, the Tenant stays Ready")
            self._repairs[name] = asyncio.create_task(self._repair(name), name=f"repair-{name}")
            return Verdict(True, verdict.reason, verdict.message, cm_exited=True)
        return Verdict(True, verdict.reason, verdict.message)

    async def _dns_stale(self, key: str, domain: str) -> bool:
        try:
            return await self.reconciler.local_dns_stale(key, domain)
        except ApiError:
            return False  # the super apiserver did not answer: nothing to repair from here

    async def probe(self, status: TenantStatus) -> Verdict:
        """Probe one tenant's control plane (see the module doc)."""
        key = status.cluster_key
        assert key is not None
        assert status.endpoint is not None
        if status.backend == "local":
            gone = await asyncio.to_thread(self.reconciler.local.exited, key)
            if gone == [CM_COMPONENT] and (serving := await self._probe_apiserver(key, status)).healthy:
                return Verdict(True, serving.reason, serving.message, cm_exited=True)
            if gone:
                return Verdict(False, PROCESS_EXITED, f"{', '.join(gone)} of the local control plane exited; "
                               "the operator restarts it", certain=True)
        return await self._probe_apiserver(key, status)

    async def _probe_apiserver(self, key: str, status: TenantStatus) -> Verdict:
        try:
            client = await self._client(key, status)
        except SecretProblem as exc:
            return Verdict(False, KUBECONFIG_UNREADABLE, f"{exc}; the operator writes it again", certain=True)
        except ApiError as exc:  # the super apiserver did not answer the read
            return Verdict(False, APISERVER_UNREACHABLE, f"cannot read the tenant's kubeconfig Secret: {exc}")
        try:
            # ``shutdown`` excluded: an apiserver pod that is stopping (a rolling upgrade) fails that
            # check while it still serves for its --shutdown-delay-duration, and the probe's kept-alive
            # connection may be to it while its successor already serves; the tenant is not down.
            await client.request("GET", "/readyz", params=READYZ_PARAMS, raw=True)
            return Verdict(True)
        except ApiError as exc:
            first = str(exc) if exc.status else "no answer"
        # Not ready, or no answer in time (a hung etcd makes /readyz itself hang past the probe
        # timeout): /livez/ping needs nothing but the apiserver process, /readyz/etcd only etcd.
        try:
            # the process answers a ping at once, if at all: a short timeout keeps detection quick
            async with asyncio.timeout(min(1.0, self.probe_timeout)):
                await client.request("GET", "/livez/ping", raw=True)
        except (ApiError, TimeoutError):
            await self._drop_client(key)  # the next round starts with fresh connections
            return Verdict(False, APISERVER_UNREACHABLE, f"tenant apiserver {status.endpoint} does not answer")
        try:
            await client.request("GET", "/readyz/etcd", raw=True)
        except ApiError:
            return Verdict(False, ETCD_UNHEALTHY, f"tenant apiserver {status.endpoint} cannot reach its etcd")
        return Verdict(False, APISERVER_NOT_READY, f"tenant apiserver {status.endpoint} is not ready: {first}")

    async def _client(self, key: str, status: TenantStatus) -> ApiClient:
        """The tenant's probe client; its Secret is read again every ``secret_recheck`` seconds (a
        changed one gets a new client, a broken one raises :class:`SecretProblem`)."""
        client = self._clients.get(key)
        now = self._clock()
        if client is not None and now - self._read_at.get(key, now) < self.secret_recheck:
            return client
        text = await self._kubeconfig_text(status)
        self._read_at[key] = now
        if client is not None and self._texts.get(key) == text:
            return client
        try:
            config = ClientConfig.from_kubeconfig(text, request_timeout=self.probe_timeout, retries=1,
                                                  max_connections=2, user_agent="vc-operator-health")
        except Exception as exc:  # whatever a broken document makes the parser raise
            raise SecretProblem(f"kubeconfig Secret {_ref(status)} is not a usable kubeconfig: "
                                f"{type(exc).__name__}: {str(exc)[:200]}") from None
        await self._drop_client(key)
        client = self._clients[key] = ApiClient(config)
        self._texts[key] = text
        self._read_at[key] = now
        return client

    async def _kubeconfig_text(self, status: TenantStatus) -> str:
        assert status.kubeconfig_secret is not None
        namespace, name = status.kubeconfig_secret
        try:
            secret = await self.api.get(r.SECRETS, name, namespace=namespace)
        except NotFound:
            raise SecretProblem(f"kubeconfig Secret {_ref(status)} is gone") from None
        raw = (secret.get("data") or {}).get(naming.KUBECONFIG_SECRET_KEY)
        if not raw:
            raise SecretProblem(f"kubeconfig Secret {_ref(status)} has no {naming.KUBECONFIG_SECRET_KEY!r} key")
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, ValueError) as exc:
            raise SecretProblem(f"kubeconfig Secret {_ref(status)} is not readable: {exc}") from None

    async def _drop_client(self, key: str) -> None:
        client = self._clients.pop(key, None)
        self._texts.pop(key, None)
        self._read_at.pop(key, None)
        if client is not None:
            await client.close()

    async def _repair(self, name: str) -> None:
        """Reconcile one tenant (restarts its dead local processes); one at a time per tenant."""
        try:
            async with self.reconciler.lock(name):
                body = await self.api.get_or_none(r.TENANTS, name)
                if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                    return
                log.info("operator.tenant.repairing", tenant=name)
                self._failures.pop(name, None)
                await self.reconciler.reconcile(body)
        except (ApiError, Retry, Invalid) as exc:
            log.warning("operator.tenant.repair_failed", tenant=name, error=str(exc))
        finally:
            self._repairs.pop(name, None)
