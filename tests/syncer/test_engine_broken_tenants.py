"""A broken tenant wedges nothing: workers never wait on a tenant, a bad TenantUp never stops the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

from syncer import reporting
from syncer.queue import DOWN, SyncKey
from syncer.tenants import TenantChange, TenantDown, TenantInfo, TenantUp
from tests.syncer.engine_world import KEY, configmap, make_world, namespace
from tests.syncer.fakeapi import FakeServer
from vcluster import naming
from vcluster.kube import ApiClient, resources

STUCK = naming.cluster_key("stuck", "u9")


async def test_a_key_of_a_tenant_still_listing_never_holds_a_worker() -> None:
    """The tenant's apiserver hangs mid-list (its runtime is never ``synced``): its keys are dropped at
    once -- ``enqueue_all`` queues them again once the list is done -- so the workers serve the others."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(resources.CONFIGMAPS, configmap("cm", a="1"))
    await w.start()
    stuck = w.syncer.tenants[KEY]
    stuck.synced.clear()  # as if a list still hung
    done = asyncio.create_task(w.syncer.reconcile(SyncKey(KEY, "ConfigMap", DOWN, "shop", "cm")))
    await asyncio.wait({done}, timeout=5)
    assert done.done(), "a worker waited on a tenant that is still listing"
    assert w.super_obj("ConfigMap", "shop", "cm") is None  # nothing written for it yet
    stuck.synced.set()
    await w.settle()
    assert w.super_obj("ConfigMap", "shop", "cm") is not None


class Changes:
    def __init__(self, *changes: TenantChange) -> None:
        self.items = list(changes)
        self.served = asyncio.Event()

    async def changes(self) -> AsyncIterator[TenantChange]:
        for change in self.items:
            yield change
        self.served.set()
        await asyncio.Event().wait()


async def test_a_tenant_the_engine_cannot_add_does_not_stop_the_others() -> None:
    from syncer.engine import Syncer
    from syncer.settings import SyncerSettings

    garbage = TenantInfo(key=STUCK, name="stuck", uid="u9", kubeconfig="not: [a kubeconfig")
    source = Changes(TenantUp(garbage), TenantDown("nobody-000000", "gone"))
    super_ = FakeServer("super")
    syncer = Syncer(cast(ApiClient, super_.api()), source,
                    settings=SyncerSettings(workers=1, patrol_period=0, status_period=0))
    task = asyncio.create_task(syncer.run())
    try:
        await asyncio.wait_for(source.served.wait(), timeout=10)
        assert not task.done(), task.exception() if task.done() else None
        assert STUCK not in syncer.tenants
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_state_of_a_tenant() -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    rt = w.syncer.tenants[KEY]
    assert reporting.state_of(w.syncer.shared, rt).listed is False
    await w.start()
    w.syncer.queue.add(SyncKey(KEY, "ConfigMap", DOWN, "shop", "a"))
    state = reporting.state_of(w.syncer.shared, rt)
    assert (state.listed, state.reachable) == (True, True)
    assert state.pending >= 1
    next(iter(rt.informers.values())).outage.failed(OSError("reset"))
    assert reporting.state_of(w.syncer.shared, rt).reachable is False
