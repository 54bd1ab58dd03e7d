"""Every ``status_period`` seconds, each served tenant's :class:`~syncer.tenant_status.SyncState` written on its Tenant.

Why a module: the engine owns the loop's task, but what the state is made
of -- the tenant's informers (reachable? listed?), the queue and the
failing keys (pending), the last full comparison -- is read from
:class:`~syncer.shared.Shared` here, so the engine stays the lifecycle and
nothing else.  :func:`state_of` is pure over the shared state.
"""

from __future__ import annotations

import asyncio

import structlog

from syncer.runtime import TenantRuntime
from syncer.shared import Shared
from syncer.tenant_status import SyncState, TenantStatusWriter

log = structlog.get_logger(__name__)


def state_of(shared: Shared, rt: TenantRuntime) -> SyncState:
    """What the syncer knows of ``rt`` now."""
    return SyncState(
        reachable=not any(inf.outage.down for inf in rt.informers.values()),
        listed=rt.synced.is_set(),
        pending=shared.queue.depths().get(rt.key, 0) + shared.retries.failing().get(rt.key, 0),
        last_full_sync=rt.last_full_sync,
    )


async def report_all(shared: Shared, writer: TenantStatusWriter) -> int:
    """One round: every served tenant's state written if it changed; how many were written."""
    runtimes = list(shared.tenants.values())
    written = await asyncio.gather(*(writer.report(rt.info.name, state_of(shared, rt)) for rt in runtimes))
    return sum(written)


async def run(shared: Shared, writer: TenantStatusWriter, *, period: float) -> None:
    """:func:`report_all` every ``period`` seconds until cancelled."""
    while True:
        try:
            await report_all(shared, writer)
        except Exception:
            log.exception("sync.status_round_failed")
        await asyncio.sleep(period)
