"""Leader election through a coordination.k8s.io Lease, shared by the syncer and the operator.

Why: both run as long-lived processes of which at most one may act at a time
(two syncers race on every write; two operators each provision their own
control plane for the same Tenant and fight over its status).  One module
holds the protocol so both behave the same; each caller names its Lease
(:mod:`vcluster.naming`) and timing in a :class:`LeaseConfig`.

Same protocol as client-go's leaderelection: ``holderIdentity``,
``renewTime``, ``leaseDurationSeconds``, ``leaseTransitions``, optimistic
concurrency on ``resourceVersion`` (a Conflict is a lost race, not an error).

Like client-go, expiry is judged on the *local* monotonic clock: a follower
notes when it last saw the lease record change and takes over once it has
not changed for ``leaseDurationSeconds`` (wall clocks of two machines need
not agree).  The leader gives up when it could not renew for
``renew_deadline`` seconds (< the lease duration), so it stops writing
before any follower may take over; :meth:`LeaderElector.keep` raises
:class:`LostLease` then and the caller stops its work.  A clean stop calls
:meth:`LeaderElector.release` (holder cleared) so a follower takes over at
its next retry instead of waiting for the lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog

from vcluster import naming
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, ApiError, Conflict, NotFound, resources
from vcluster.settings import LeaseTiming

log = structlog.get_logger(__name__)

#: Errors of one lease round trip that are retried (the apiserver may be briefly away).
_TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)


class LostLease(VClusterError):
    """This replica stopped being the leader."""


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Which Lease to hold, as whom, and its timing (seconds; ``retry_period < renew_deadline < duration``)."""

    name: str
    namespace: str = naming.SYSTEM_NAMESPACE
    #: Written into ``holderIdentity``; empty means ``<hostname>-<pid>``.
    identity: str = ""
    #: A Lease not renewed for this long may be taken over by a follower.
    duration: float = 15.0
    #: The leader gives up when it could not renew for this long.
    renew_deadline: float = 10.0
    #: Seconds between attempts (followers) and renewals (the leader).
    retry_period: float = 2.0


class LeaseSettings(Protocol):
    """The lease knobs a settings group carries (``SyncerSettings``, ``OperatorSettings``)."""

    @property
    def identity(self) -> str: ...
    @property
    def lease(self) -> LeaseTiming: ...


def lease_config_for(name: str, settings: LeaseSettings) -> LeaseConfig:
    """The Lease ``name`` in ``naming.SYSTEM_NAMESPACE`` with the identity and timing of ``settings`` (pure)."""
    return LeaseConfig(
        name=name,
        namespace=naming.SYSTEM_NAMESPACE,
        identity=settings.identity,
        duration=settings.lease.duration,
        renew_deadline=settings.lease.renew_deadline,
        retry_period=settings.lease.retry_period,
    )


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _fmt(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any] | None) -> tuple[str, str, int, int]:
    """The part of a Lease whose change proves its holder is alive (pure)."""
    spec = (lease or {}).get("spec") or {}
    return (
        str(spec.get("holderIdentity") or ""),
        str(spec.get("renewTime") or ""),
        int(spec.get("leaseDurationSeconds") or 0),
        int(spec.get("leaseTransitions") or 0),
    )


@dataclass(slots=True)
class Observation:
    """What this replica last saw of the Lease, and when (monotonic seconds) it last changed."""

    record: tuple[str, str, int, int] = ("", "", 0, 0)
    changed_at: float = 0.0

    def see(self, lease: dict[str, Any] | None, *, now: float) -> None:
        record = record_of(lease)
        if record != self.record:
            self.record = record
            self.changed_at = now


def may_take(obs: Observation, *, identity: str, now: float) -> bool:
    """Whether ``identity`` may write itself into the Lease last observed as ``obs`` (pure).

    Yes when it holds it already, nobody holds it (released), or the record has
    not changed for longer than its ``leaseDurationSeconds`` on our own clock.
    """
    holder, _renew, duration, _transitions = obs.record
    if not holder or holder == identity:
        return True
    return now - obs.changed_at > duration


def next_spec(old: dict[str, Any] | None, *, identity: str, duration: float, now: _dt.datetime) -> dict[str, Any]:
    """The Lease spec after ``identity`` acquires or renews it (pure)."""
    old = old or {}
    stamp = _fmt(now)
    same = old.get("holderIdentity") == identity
    transitions = int(old.get("leaseTransitions") or 0)
    if old.get("holderIdentity") and not same:
        transitions += 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(duration)),
        "acquireTime": old.get("acquireTime", stamp) if same else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


class LeaderElector:
    """Acquire, keep and release the Lease named by a :class:`LeaseConfig`."""

    def __init__(
        self,
        api: ApiClient,
        *,
        config: LeaseConfig,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self.identity = config.identity or default_identity()
        self.duration = config.duration
        self.renew_deadline = config.renew_deadline
        self.retry_period = config.retry_period
        self.namespace = config.namespace
        self.name = config.name
        self.observed = Observation()
        self.leading = False
        #: Monotonic time of the last successful Lease round trip (``None``: none yet).
        self.last_contact: float | None = None
        self._on_change = on_change
        self._clock = clock
        self._log = log.bind(identity=self.identity, lease=f"{self.namespace}/{self.name}")

    @property
    def holder(self) -> str:
        """The holder last seen in the Lease ("" when released or not read yet)."""
        return self.observed.record[0]

    def _set_leading(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            if self._on_change is not None:
                self._on_change(leading)

    def standing_by(self) -> bool:
        """A healthy follower: not leading, and the Lease was read within its duration."""
        return (not self.leading and self.last_contact is not None
                and self._clock() - self.last_contact < self.duration)

    async def try_acquire(self) -> bool:
        """One round trip: take or renew the Lease if allowed; ``False`` if another replica holds it."""
        lease = await self.api.get_or_none(resources.LEASES, self.name, namespace=self.namespace)
        now = self.last_contact = self._clock()
        self.observed.see(lease, now=now)
        wall = _dt.datetime.now(_dt.UTC)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": next_spec(None, identity=self.identity, duration=self.duration, now=wall),
            }
            try:
                created = await self.api.create(resources.LEASES, body)
            except AlreadyExists:
                return False
            except NotFound:
                self._log.warning("leader.namespace_missing", namespace=self.namespace)
                return False
            self.observed.see(created, now=self._clock())
            return True
        if not may_take(self.observed, identity=self.identity, now=now):
            return False
        holder = record_of(lease)[0]
        lease["spec"] = next_spec(lease.get("spec"), identity=self.identity, duration=self.duration, now=wall)
        try:
            written = await self.api.replace(resources.LEASES, lease)
        except Conflict:
            return False
        self.observed.see(written, now=self._clock())
        if holder and holder != self.identity:
            self._log.info("leader.took_over", previous=holder)
        return True

    async def attempt(self) -> bool:
        """One bounded :meth:`try_acquire` (transient errors logged, not raised); on success, leading."""
        try:
            async with asyncio.timeout(self.renew_deadline):  # not wait_for: it can swallow a cancel (3.11)
                acquired = await self.try_acquire()
        except _TRANSIENT as exc:
            self._log.warning("leader.acquire_failed", error=str(exc) or type(exc).__name__)
            return False
        if acquired and not self.leading:
            self._set_leading(True)
            self._log.info("leader.acquired")
        return acquired

    async def acquire(self) -> None:
        """Wait (standing by) until this replica holds the Lease."""
        if self.leading:
            return
        self._log.info("leader.standing_by", holder=self.holder or None)
        while True:
            if await self.attempt():
                return
            await asyncio.sleep(self.retry_period)

    async def keep(self) -> None:
        """Renew until cancelled; raise :class:`LostLease` when another replica holds the Lease or
        renewing failed for ``renew_deadline`` seconds (before the Lease can expire for others)."""
        last_renew = self._clock()
        try:
            while True:
                await asyncio.sleep(self.retry_period)
                left = self.renew_deadline - (self._clock() - last_renew)
                try:
                    if left <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(left):  # not wait_for: it can swallow a cancel (3.11)
                        renewed = await self.try_acquire()
                except _TRANSIENT as exc:
                    renewed = False
                    self._log.warning("leader.renew_failed", error=str(exc) or type(exc).__name__,
                                      since_renew=round(self._clock() - last_renew, 2))
                if renewed:
                    last_renew = self._clock()
                    continue
                holder = self.holder
                if holder and holder != self.identity:
                    raise LostLease(f"{self.identity} lost the lease {self.namespace}/{self.name} to {holder}")
                if self._clock() - last_renew >= self.renew_deadline:
                    raise LostLease(f"{self.identity} could not renew the lease {self.namespace}/{self.name} "
                                    f"for {self.renew_deadline:g}s")
        except LostLease as exc:
            self._set_leading(False)
            self._log.error("leader.lost", reason=str(exc))
            raise

    async def release(self) -> None:
        """Give the Lease up (holder cleared) so a follower need not wait for it to expire."""
        self._set_leading(False)
        lease = await self.api.get_or_none(resources.LEASES, self.name, namespace=self.namespace)
        if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            await self.api.replace(resources.LEASES, lease)
            self._log.info("leader.released")


async def lead(
    elector: LeaderElector,
    *,
    work: asyncio.Task[Any],
    keep: asyncio.Task[None],
    stop_work: Callable[[bool], None],
    component: str,
    clean_stop_timeout: float | None = None,
) -> LostLease | None:
    """Work while holding the Lease; on the way out stop the work, and exit hard if that is overdue.

    Waits until ``work`` ends or ``keep`` (:meth:`LeaderElector.keep`) raises :class:`LostLease`, or the
    caller is cancelled.  Then ``keep`` is cancelled and ``stop_work(lost)`` asked to stop the work.  After a
    lost Lease the work must stop before a standby may take over (lease duration − renew deadline): if it
    has not, the process exits at once (``os._exit(1)``), as client-go's users do, so no write of ours
    overlaps the new leader's.  After a clean stop the work gets ``clean_stop_timeout`` seconds (None: as
    long as it takes) and the Lease is released, so a standby takes over at its next retry.

    Returns the :class:`LostLease` (None after a clean stop); the caller reads ``work``'s own result.
    Shared by the syncer and the operator.
    """
    lost: LostLease | None = None
    try:
        done, _ = await asyncio.wait({work, keep}, return_when=asyncio.FIRST_COMPLETED)
        if keep in done and not keep.cancelled() and isinstance(keep.exception(), LostLease):
            lost = keep.exception()  # type: ignore[assignment]
    finally:
        keep.cancel()
        stop_work(lost is not None)
        grace = max(0.1, elector.duration - elector.renew_deadline) if lost is not None \
            else clean_stop_timeout
        _, pending = await asyncio.wait({work}, timeout=grace)
        if pending and lost is not None:
            with contextlib.suppress(Exception):  # nothing may keep us from exiting (e.g. a closed stream)
                log.error(f"{component}.stop_overdue", grace=grace)
                print(f"error: {lost}; the {component} did not stop within {grace:g}s, exiting hard",
                      file=sys.stderr)
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(1)
        await asyncio.gather(keep, return_exceptions=True)
        if lost is None:
            try:
                async with asyncio.timeout(max(2.0, elector.retry_period)):
                    await elector.release()
            except Exception as exc:  # the Lease then expires on its own
                log.warning(f"{component}.release_failed", error=str(exc) or type(exc).__name__)
        log.info(f"{component}.leader_stopped", lost=lost is not None)
    return lost
