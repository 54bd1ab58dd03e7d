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


async def test_a_hung_tenant_holds_at_most_its_cap_of_workers() -> None:
    """Tenant ``acme``'s apiserver hangs on writes (its upward Service patches never return); tenant
    ``other``'s objects still reach the super cluster, because ``acme`` holds at most ``tenant_limit``
    of the workers.  Without the cap its keys take every worker and ``other`` waits for the time-outs."""
    from syncer import routing
    from syncer.engine import TenantRuntime
    from syncer.resources.base import TranslateContext
    from syncer.settings import SyncerSettings

    w = make_world(settings=SyncerSettings(workers=4))
    assert w.syncer.settings.tenant_limit() == 3
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for i in range(8):
        w.tenant.put(resources.SERVICES, {"apiVersion": "v1", "kind": "Service",
                                          "metadata": {"name": f"s{i}", "namespace": "shop"},
                                          "spec": {"ports": [{"port": 80}]}})
    hung: list[str] = []

    async def hang(*args: object, **kwargs: object) -> None:
        hung.append(str(args[1]))
        await asyncio.Event().wait()  # a tenant apiserver that accepted the request and never answers

    w.tenant_api.patch = hang  # type: ignore[method-assign,assignment]
    other = FakeServer("other")
    other.put(resources.NAMESPACES, namespace("shop"))
    other_key = naming.cluster_key("other", "u2")
    kinds = w.rt.kinds
    rt_b = TenantRuntime(info=TenantInfo(key=other_key, name="other", uid="u2", kubeconfig=""),
                         api=cast(ApiClient, other.api()), kinds=kinds,
                         ctx=TranslateContext(key=other_key, tenant_name="other", tenant_uid="u2"))
    from syncer import extra_kinds
    for kind in kinds:
        rt_b.informers[kind.kind] = extra_kinds.tenant_informer(w.syncer.shared, rt_b, kind, f"{other_key}/{kind}")
    w.syncer.tenants[other_key] = rt_b

    async def relist_b() -> None:
        for inf in rt_b.informers.values():
            items, _ = await inf.api.list_all(inf.resource)
            inf.replace(items)

    await w.start()
    await relist_b()
    rt_b.synced.set()
    routing.enqueue_all(w.syncer.shared, rt_b)
    workers = [asyncio.create_task(w.syncer._worker()) for _ in range(4)]
    try:
        for _ in range(500):  # acme's Services get their super copies (and cluster IPs)
            if all(w.super_obj("Service", "shop", f"s{i}") for i in range(8)):
                break
            await asyncio.sleep(0.01)
        await w.sync()  # the super informers see the cluster IPs: acme's upward patches, which hang
        for _ in range(500):
            if len(hung) >= 3:
                break
            await asyncio.sleep(0.01)
        for i in range(6):
            other.put(resources.CONFIGMAPS, configmap(f"cm{i}"))
        await relist_b()

        def copied() -> bool:
            p_ns = naming.super_namespace(other_key, "shop")
            return all(w.super_.get(resources.CONFIGMAPS, f"cm{i}", p_ns) is not None for i in range(6))

        for _ in range(500):
            if copied():
                break
            await asyncio.sleep(0.01)
        assert len(hung) == 3, hung  # acme holds three workers, no more
        assert copied(), "the other tenant's ConfigMaps waited behind the hung tenant"
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
