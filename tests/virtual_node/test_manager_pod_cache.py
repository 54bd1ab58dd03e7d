"""The idle check of virtual nodes answered by the syncer's pod cache, and the LIST kept as the fallback.

Why: every heartbeat asked each tenant apiserver, per virtual node, for one pod bound to it (a LIST with
``spec.nodeName``); the syncer already caches every tenant pod, so it hands the manager an answer source
(``node_in_use``).  The answer must never be staler than a LIST where it matters: a node deleted while a
pod is bound to it makes the tenant's pod GC delete that pod, so when the source cannot tell (None) the
manager lists.

The manager runs against in-memory apiservers (tests/syncer/fakeapi.py) with a fake clock; its
background loop is stopped and each test calls the heartbeat itself.
"""

from __future__ import annotations

import asyncio
from typing import cast

from tests.clock import ManualClock
from tests.syncer.fakeapi import FakeServer, Obj
from vcluster import naming
from vcluster.kube import ApiClient
from vcluster.kube import resources as r
from virtual_node.manager import NodeInUse, VirtualNodeManager
from virtual_node.settings import VirtualNodeSettings

KEY = "acme-0a1b2c"
GRACE = 100.0


class Answers:
    """What the syncer's cache says per node (None: it cannot tell); counts the questions."""

    def __init__(self, **nodes: bool | None) -> None:
        self.nodes: dict[str, bool | None] = dict(nodes)
        self.asked: list[str] = []

    def __call__(self, node: str) -> bool | None:
        self.asked.append(node)
        return self.nodes.get(node)


def _tenant() -> FakeServer:
    tenant = FakeServer("tenant")
    tenant.put(r.NAMESPACES, {"metadata": {"name": naming.NODE_LEASE_NAMESPACE}})
    tenant.put(r.NAMESPACES, {"metadata": {"name": "default"}})
    return tenant


def _pod(name: str, node: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}


def _pod_lists(tenant: FakeServer) -> list[str | None]:
    """The field selectors of the pod LISTs the tenant apiserver answered."""
    return [fields for plural, _labels, fields in tenant.lists if plural == "pods"]


async def _manager(tenant: FakeServer, clock: ManualClock, node_in_use: NodeInUse | None, *nodes: str
                   ) -> VirtualNodeManager:
    """A manager serving ``tenant`` with ``nodes`` made (as before a binding); its loop stopped."""
    mgr = VirtualNodeManager(cast(ApiClient, FakeServer("super").api()),
                             VirtualNodeSettings(heartbeat_period=10.0, gc_grace_period=GRACE), clock=clock)
    await mgr.attach_tenant(KEY, cast(ApiClient, tenant.api()), node_in_use=node_in_use)
    task = mgr._tenants[KEY].task
    assert task is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for node in nodes:
        await mgr.ensure_node(KEY, node)
    tenant.lists.clear()
    return mgr


async def _beat(mgr: VirtualNodeManager, clock: ManualClock, advance: float = 0.0) -> None:
    clock.now += advance
    failed = await mgr._heartbeat(mgr._tenants[KEY])
    assert failed is None


def _node_names(tenant: FakeServer) -> set[str]:
    return {n["metadata"]["name"] for n in tenant.all(r.NODES)}


async def test_heartbeats_send_no_pod_list_when_the_cache_answers() -> None:
    tenant, clock = _tenant(), ManualClock(1000.0)
    answers = Answers(**{"kwok-node-0": True, "kwok-node-1": True})
    mgr = await _manager(tenant, clock, answers, "kwok-node-0", "kwok-node-1")
    for _ in range(3):
        await _beat(mgr, clock, advance=10.0)
    assert _pod_lists(tenant) == []
    assert sorted(answers.asked) == ["kwok-node-0"] * 3 + ["kwok-node-1"] * 3
    assert mgr.registry.get_sample_value("vc_virtual_node_pod_checks_total",
                                         {"tenant": KEY, "source": "cache"}) == 6.0
    # The heartbeat itself goes on: every node's Lease is renewed each time.
    lease_patches = [w for w in tenant.writes if w[:2] == ("patch", "leases")]
    assert len(lease_patches) == 6


async def test_a_node_the_cache_says_is_in_use_is_never_collected() -> None:
    """The cache knows a bound pod the manager would not find by listing (here: the fake tenant holds none):
    the cache's answer is the one used, and the node stays however long it is past the grace period."""
    tenant, clock = _tenant(), ManualClock(1000.0)
    mgr = await _manager(tenant, clock, Answers(**{"kwok-node-0": True}), "kwok-node-0")
    for _ in range(4):
        await _beat(mgr, clock, advance=GRACE)
    assert _node_names(tenant) == {"kwok-node-0"}
    assert mgr.virtual_nodes(KEY) == {"kwok-node-0"}


async def test_a_cache_that_cannot_tell_falls_back_to_the_list() -> None:
    """The syncer's pod informer is not current (None): the manager lists, finds the bound pod, keeps the
    node -- a node is never collected on the word of a cache that may have missed the pod."""
    tenant, clock = _tenant(), ManualClock(1000.0)
    answers = Answers(**{"kwok-node-0": None})
    mgr = await _manager(tenant, clock, answers, "kwok-node-0")
    tenant.put(r.PODS, _pod("web", "kwok-node-0"))
    for _ in range(3):
        await _beat(mgr, clock, advance=GRACE)
    assert _node_names(tenant) == {"kwok-node-0"}
    assert _pod_lists(tenant) == ["spec.nodeName=kwok-node-0"] * 3
    assert mgr.registry.get_sample_value("vc_virtual_node_pod_checks_total",
                                         {"tenant": KEY, "source": "list"}) == 3.0

    # Once the pod is gone the list says so, and the node goes after the grace period.
    tenant.objects.pop(("pods", "default", "web"))
    await _beat(mgr, clock, advance=10.0)
    assert _node_names(tenant) == {"kwok-node-0"}
    await _beat(mgr, clock, advance=GRACE)
    assert _node_names(tenant) == set()


async def test_without_an_answer_source_the_manager_lists() -> None:
    tenant, clock = _tenant(), ManualClock(1000.0)
    mgr = await _manager(tenant, clock, None, "kwok-node-0")
    tenant.put(r.PODS, _pod("web", "kwok-node-0"))
    await _beat(mgr, clock, advance=GRACE)
    assert _pod_lists(tenant) == ["spec.nodeName=kwok-node-0"]
    assert _node_names(tenant) == {"kwok-node-0"}


async def test_a_node_whose_pod_went_is_collected_after_the_grace_period() -> None:
    tenant, clock = _tenant(), ManualClock(1000.0)
    answers = Answers(**{"kwok-node-0": True, "kwok-node-1": True})
    mgr = await _manager(tenant, clock, answers, "kwok-node-0", "kwok-node-1")
    await _beat(mgr, clock, advance=GRACE)
    answers.nodes["kwok-node-1"] = False  # its last pod deleted (the informer's DELETED event)
    await _beat(mgr, clock, advance=10.0)  # empty from now on
    await _beat(mgr, clock, advance=GRACE - 1.0)
    assert _node_names(tenant) == {"kwok-node-0", "kwok-node-1"}  # not a full grace period yet
    await _beat(mgr, clock, advance=1.0)
    assert _node_names(tenant) == {"kwok-node-0"}
    assert tenant.get(r.LEASES, "kwok-node-1", naming.NODE_LEASE_NAMESPACE) is None
    assert mgr.registry.get_sample_value("vc_virtual_nodes_collected_total", {"tenant": KEY}) == 1.0
    assert _pod_lists(tenant) == []


async def test_a_pod_seen_again_restarts_the_grace_period() -> None:
    tenant, clock = _tenant(), ManualClock(1000.0)
    answers = Answers(**{"kwok-node-0": False})
    mgr = await _manager(tenant, clock, answers, "kwok-node-0")
    clock.now += GRACE  # past the grace of the ensure
    await _beat(mgr, clock, advance=0.0)  # empty since now
    answers.nodes["kwok-node-0"] = True  # a pod bound meanwhile
    await _beat(mgr, clock, advance=GRACE - 1.0)
    answers.nodes["kwok-node-0"] = False
    await _beat(mgr, clock, advance=GRACE - 1.0)  # empty again, but only since this beat
    assert _node_names(tenant) == {"kwok-node-0"}
    await _beat(mgr, clock, advance=GRACE)
    assert _node_names(tenant) == set()


async def test_detach_cleans_up_by_the_cache_and_lists_where_it_cannot_tell() -> None:
    tenant, clock = _tenant(), ManualClock(1000.0)
    answers = Answers(**{"in-use": True, "idle": False, "unknown": None})
    mgr = await _manager(tenant, clock, answers, "in-use", "idle", "unknown")
    tenant.put(r.PODS, _pod("web", "unknown"))
    await mgr.detach_tenant(KEY)
    assert _node_names(tenant) == {"in-use", "unknown"}
    assert _pod_lists(tenant) == ["spec.nodeName=unknown"]
