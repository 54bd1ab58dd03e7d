"""Leader election through a coordination.k8s.io Lease, so two syncer replicas can run.

Why: two active syncers would race on every write (harmless thanks to uid
preconditions, but twice the load); a standby that takes over when the
leader stops renewing keeps the syncer available.  Same protocol as
client-go's leaderelection: holderIdentity, renewTime, leaseDurationSeconds,
optimistic concurrency on resourceVersion.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import socket
from typing import Any

import structlog

from syncer.settings import SyncerSettings
from vcluster import naming
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, Conflict, NotFound, resources

log = structlog.get_logger(__name__)


class LostLease(VClusterError):
    """This replica stopped being the leader."""


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _fmt(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        return None


def expired(lease: dict[str, Any], *, now: _dt.datetime) -> bool:
    """Whether the lease's holder stopped renewing (pure)."""
    spec = lease.get("spec") or {}
    renewed = _parse(spec.get("renewTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or not spec.get("holderIdentity") or (now - renewed).total_seconds() > duration


class LeaderElector:
    """Acquire and keep the syncer Lease."""

    def __init__(self, api: ApiClient, *, settings: SyncerSettings) -> None:
        self.api = api
        self.identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.duration = settings.lease_duration
        self.namespace = naming.SYSTEM_NAMESPACE
        self.name = naming.SYNCER_LEASE_NAME

    def _spec(self) -> dict[str, Any]:
        now = _fmt(_now())
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                "acquireTime": now, "renewTime": now}

    async def try_acquire(self) -> bool:
        lease = await self.api.get_or_none(resources.LEASES, self.name, namespace=self.namespace)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec()}
            try:
                await self.api.create(resources.LEASES, body)
            except (AlreadyExists, NotFound):
                return False
            return True
        holder = (lease.get("spec") or {}).get("holderIdentity")
        if holder != self.identity and not expired(lease, now=_now()):
            return False
        spec = self._spec()
        if holder == self.identity:
            spec["acquireTime"] = (lease.get("spec") or {}).get("acquireTime", spec["acquireTime"])
        lease["spec"] = spec
        try:
            await self.api.replace(resources.LEASES, lease)
        except Conflict:
            return False
        return True

    async def acquire(self) -> None:
        while True:
            if await self.try_acquire():
                break
            await asyncio.sleep(self.duration / 3)
        log.info("leader.acquired", identity=self.identity)

    async def keep(self) -> None:
        """Renew until cancelled; raise :class:`LostLease` when another replica took over."""
        while True:
            await asyncio.sleep(self.duration / 3)
            if not await self.try_acquire():
                raise LostLease(f"{self.identity} lost the syncer lease")

    async def release(self) -> None:
        lease = await self.api.get_or_none(resources.LEASES, self.name, namespace=self.namespace)
        if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            lease["spec"]["holderIdentity"] = ""
            await self.api.replace(resources.LEASES, lease)
