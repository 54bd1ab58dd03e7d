"""The syncer's tenant pod cache answers the virtual-node manager's idle check, end to end in one process.

Why: the manager used to LIST the tenant's pods on each virtual node at every heartbeat (3-7 % of the
syncer's CPU in ``bench_syncer``'s profiles).  The engine now hands it the tenant pod informer's node
index at attach.  This runs the real engine (its loop, informers, workers, upward binding) and the real
:class:`~virtual_node.manager.VirtualNodeManager` against in-memory apiservers: a pod the syncer binds
keeps its node without a LIST, the node goes after the grace period once the pod is deleted, and while
the tenant's pod watch is broken the manager lists, so a pod bound meanwhile keeps its node.

The manager's clock is fake and its heartbeat period long: the test calls the heartbeat itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from syncer.engine import Syncer
from syncer.resources.namespace import NAMESPACE
from syncer.resources.pod import POD
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from tests.clock import ManualClock
from tests.syncer.engine_helpers import offline_syncer
from tests.syncer.engine_world import pod
from tests.syncer.fakeapi import FakeApi, FakeServer, token_kubeconfig
from vcluster import naming
from vcluster.kube import ApiClient, ApiError, ClientConfig, WatchEvent
from vcluster.kube import resources as r
from virtual_node.manager import VirtualNodeManager
from virtual_node.settings import VirtualNodeSettings

KEY = naming.cluster_key("acme", "u1")
URL = "https://acme.fake"
GRACE = 100.0


class TenantApi(FakeApi):
    """The tenant apiserver; its pod list and watch fail while :attr:`pods_broken` (a broken connection
    for the pod informer only)."""

    def __init__(self, server: FakeServer) -> None:
        super().__init__(server)
        self.config = ClientConfig(server=URL)
        self.pods_broken = False

    async def list_all(self, resource: Any, **kw: Any) -> Any:
        if self.pods_broken and resource == r.PODS:
            raise ApiError(0, "ConnectionError", "list pods: connection refused")
        return await super().list_all(resource, **kw)

    async def watch(self, resource: Any, **kw: Any) -> AsyncIterator[WatchEvent]:
        async for event in super().watch(resource, **kw):
            if self.pods_broken and resource == r.PODS:
                raise ApiError(0, "ConnectionError", "watch pods: connection reset")
            yield event


@dataclass
class Bed:
    syncer: Syncer
    manager: VirtualNodeManager
    clock: ManualClock
    super_: FakeServer
    tenant: FakeServer
    api: TenantApi

    async def beat(self, advance: float) -> None:
        self.clock.now += advance
        assert await self.manager._heartbeat(self.manager._tenants[KEY]) is None

    def pod_lists(self) -> list[str]:
        """The field selectors of the tenant pod LISTs (the informer's own lists have none)."""
        return [fields for plural, _labels, fields in self.tenant.lists if plural == "pods" and fields]

    def nodes(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.tenant.all(r.NODES)}


async def until(what: str, check: Callable[[], bool]) -> None:
    """Until ``check()``; the bound only keeps a broken engine from hanging the run."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Bed]:
    super_, tenant = FakeServer("super", ip_prefix="10.200.0."), FakeServer("tenant")
    for ns in ("shop", naming.NODE_LEASE_NAMESPACE):
        tenant.put(r.NAMESPACES, {"metadata": {"name": ns}})
    api = TenantApi(tenant)
    super_api = cast(ApiClient, super_.api())
    clock = ManualClock(1000.0)
    manager = VirtualNodeManager(super_api, VirtualNodeSettings(heartbeat_period=3600.0, gc_grace_period=GRACE),
                                 clock=clock)
    source = StaticTenantSource()
    syncer = Syncer(super_api, source, nodes=manager, client_factory=lambda _config: cast(ApiClient, api),
                    settings=SyncerSettings(workers=2, patrol_period=0, status_period=0, quota_status_period=0))
    task = asyncio.create_task(syncer.run())
    try:
        source.add(TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig=token_kubeconfig(URL)))
        await until("tenant served", lambda: KEY in syncer.tenants and syncer.tenants[KEY].synced.is_set())
        await until("nodes attached", lambda: KEY in manager._tenants)
        yield Bed(syncer, manager, clock, super_, tenant, api)
    finally:
        api.pods_broken = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def bind(bed: Bed, name: str, node: str) -> None:
    """A tenant pod, synced down, scheduled in the super cluster, bound up by the syncer (which makes the
    virtual node first)."""
    bed.tenant.put(r.PODS, pod(name))
    p_ns = naming.super_namespace(KEY, "shop")
    await until(f"super pod {name}", lambda: bed.super_.get(r.PODS, name, p_ns) is not None)
    bed.super_.schedule(name, p_ns, node)
    await until(f"tenant pod {name} bound", lambda: ((bed.tenant.get(r.PODS, name, "shop") or {}).get("spec")
                                                     or {}).get("nodeName") == node)


async def test_a_bound_pod_keeps_its_node_without_a_list_and_its_deletion_lets_it_go() -> None:
    async with running() as bed:
        rt = bed.syncer.tenants[KEY]
        await bind(bed, "web", "kwok-node-0")
        await until("the cache sees the binding", lambda: rt.node_in_use("kwok-node-0") is True)
        assert bed.nodes() == {"kwok-node-0"}
        bed.tenant.lists.clear()

        for _ in range(3):  # long past the grace period of the node's creation
            await bed.beat(GRACE)
        assert bed.nodes() == {"kwok-node-0"}
        assert bed.pod_lists() == []

        bed.tenant.delete(r.PODS, "web", namespace="shop", options={"gracePeriodSeconds": 0})
        await until("the cache sees the deletion", lambda: rt.node_in_use("kwok-node-0") is False)
        await bed.beat(10.0)  # empty from now on
        assert bed.nodes() == {"kwok-node-0"}
        await bed.beat(GRACE)
        assert bed.nodes() == set()
        assert bed.pod_lists() == []


async def test_with_the_pod_watch_broken_the_manager_lists_and_keeps_a_node_bound_meanwhile() -> None:
    async with running() as bed:
        rt = bed.syncer.tenants[KEY]
        await bind(bed, "web", "kwok-node-0")
        await bed.manager.ensure_node(KEY, "kwok-node-1")  # made for a pod about to be bound
        await until("the cache sees the binding", lambda: rt.node_in_use("kwok-node-0") is True)
        assert rt.node_in_use("kwok-node-1") is False

        bed.api.pods_broken = True
        # Bound while the tenant's pod watch is broken: the cache never hears of it.
        bed.tenant.put(r.PODS, pod("late", nodeName="kwok-node-1"))
        await until("the pod informer noticed", lambda: not rt.informers["Pod"].current)
        bed.tenant.lists.clear()

        for _ in range(3):
            await bed.beat(GRACE)
        assert bed.nodes() == {"kwok-node-0", "kwok-node-1"}
        assert sorted(set(bed.pod_lists())) == ["spec.nodeName=kwok-node-0", "spec.nodeName=kwok-node-1"]


def test_without_a_kind_that_indexes_nodes_the_cache_cannot_tell() -> None:
    """A syncer serving no Pods (a kinds subset) has no answer: the manager lists rather than hear "no pods"."""
    _syncer, rt = offline_syncer(kinds=(NAMESPACE,))
    assert rt.node_in_use("kwok-node-0") is None
    _syncer, rt = offline_syncer(kinds=(NAMESPACE, POD))  # Pods synced, but no pod informer (yet)
    assert rt.node_in_use("kwok-node-0") is None
