"""LoadBalancer status goes up (issue 12 item 2): the super load balancer's address reaches the tenant
Service, as a cloud controller's would in a cluster of the tenant's own."""

from __future__ import annotations

from typing import Any

from syncer.resources import BY_KIND
from tests.syncer.engine_world import World, make_world, namespace, service
from vcluster.kube import resources
from vcluster.policy import PodPolicy

SVC = resources.SERVICES
LB = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}


async def world(svc: dict[str, Any]) -> World:
    w = make_world(policy=PodPolicy(load_balancer=True))
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(SVC, svc)
    await w.start()
    await w.settle()
    return w


def tenant_lb(w: World, name: str) -> Any:
    return ((w.tenant_obj("Service", "shop", name) or {}).get("status") or {}).get("loadBalancer")


async def test_load_balancer_address_goes_up_and_away() -> None:
    w = await world(service("web", type="LoadBalancer"))
    assert w.super_obj("Service", "shop", "web") is not None
    assert not (tenant_lb(w, "web") or {}).get("ingress")
    # what the super cluster's cloud controller does
    w.super_.set_status(SVC, "web", w.p_ns("shop"), LB)
    await w.settle()
    assert tenant_lb(w, "web") == LB["loadBalancer"]
    writes = len(w.tenant.writes)
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert len(w.tenant.writes) == writes  # equal already: nothing written again
    w.super_.set_status(SVC, "web", w.p_ns("shop"), {"loadBalancer": {}})
    await w.settle()
    assert not (tenant_lb(w, "web") or {}).get("ingress")


def test_only_load_balancer_services_get_status() -> None:
    upward = BY_KIND["Service"].upward
    assert upward is not None
    p_slim = {"clusterIP": "10.0.0.9", "lbIngress": LB["loadBalancer"]["ingress"]}
    v = service("web")
    v["metadata"]["annotations"] = {"tenancy.virtualcluster.dev/super-cluster-ip": "10.0.0.9"}
    assert upward(v, p_slim) == []
    v["spec"]["type"] = "LoadBalancer"
    (action,) = upward(v, p_slim)
    assert action.op == "status"
    assert action.body == {"status": LB}
