"""The pod kind's hooks inside the reconcile: the nameserver and the service links a super pod is given.

Why: a tenant pod must resolve names with *its* DNS (the tenant's kube-dns copy in the super cluster,
unless the operator gives one in ``status.dns``) and see *its* Services as environment variables,
with super cluster IPs; both come from the pod kind's ``context`` hook, which reads the super caches
and keeps one context per DNS address and per namespace's links.  A stale cached context would give
new pods an old nameserver or old links; a wrong lookup would give them none.  Each case runs the real
reconcile between fake apiservers (``tests/syncer/engine_world.py``) and reads the super pod.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.syncer.engine_world import World, make_world, namespace, pod, service
from vcluster.kube import resources


def kube_dns(*, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"k8s-app": "kube-dns"}, "ports": [{"name": "dns", "port": 53,
                                                                             "protocol": "UDP"}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": spec}


async def world(*objs: tuple[resources.Resource, dict[str, Any]], dns_ip: str | None = None) -> World:
    w = make_world()
    if dns_ip is not None:
        w.rt.ctx = dataclasses.replace(w.rt.ctx, dns_ip=dns_ip)
    for ns in ("shop", "kube-system"):
        w.tenant.put(resources.NAMESPACES, namespace(ns))
    for resource, obj in objs:
        w.tenant.put(resource, obj)
    await w.start()
    await w.settle()
    return w


async def add_pod(w: World, name: str, **spec: Any) -> dict[str, Any]:
    w.tenant.put(resources.PODS, pod(name, **spec))
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", name)
    assert p_pod is not None
    return p_pod


def super_ip(w: World, ns: str, name: str) -> str:
    return str((w.super_obj("Service", ns, name) or {})["spec"]["clusterIP"])


def env(p_pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in p_pod["spec"]["containers"][0].get("env") or []}


async def test_a_pod_resolves_with_the_super_copy_of_the_tenants_kube_dns() -> None:
    w = await world((resources.SERVICES, kube_dns()))
    p_pod = await add_pod(w, "p")
    ip = super_ip(w, "kube-system", "kube-dns")
    assert ip.startswith("10.200.0."), "the super cluster's address, not the tenant's"
    assert p_pod["spec"]["dnsPolicy"] == "None"
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == [ip]
    assert p_pod["spec"]["dnsConfig"]["searches"][0] == "shop.svc.cluster.local"


async def test_the_operators_dns_address_wins_over_a_kube_dns_copy() -> None:
    w = await world((resources.SERVICES, kube_dns()), dns_ip="10.96.0.53")
    p_pod = await add_pod(w, "p")
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == ["10.96.0.53"]


async def test_without_a_dns_address_the_pods_dns_is_left_as_asked() -> None:
    for objs in ((), ((resources.SERVICES, kube_dns(headless=True)),)):
        w = await world(*objs)
        p_pod = await add_pod(w, "p")
        assert p_pod["spec"].get("dnsPolicy", "ClusterFirst") == "ClusterFirst"
        assert "dnsConfig" not in p_pod["spec"]


async def test_a_new_kube_dns_address_reaches_the_next_pod() -> None:
    w = await world((resources.SERVICES, kube_dns()))
    first = await add_pod(w, "p1")
    again = await add_pod(w, "p2")
    assert again["spec"]["dnsConfig"] == first["spec"]["dnsConfig"], "the same address: the same context"
    old = super_ip(w, "kube-system", "kube-dns")
    w.tenant.delete(resources.SERVICES, "kube-dns", namespace="kube-system", options={})
    await w.settle()
    p_pod = await add_pod(w, "p3")
    assert "dnsConfig" not in p_pod["spec"], "no DNS Service now: no nameserver"
    w.tenant.put(resources.SERVICES, kube_dns())
    await w.settle()
    new = super_ip(w, "kube-system", "kube-dns")
    assert new != old
    p_pod = await add_pod(w, "p4")
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == [new]


async def test_a_pod_sees_its_namespaces_services_with_super_addresses_unless_it_opts_out() -> None:
    w = await world((resources.SERVICES, service("web")))
    web = super_ip(w, "shop", "web")
    p_pod = await add_pod(w, "p1")
    assert env(p_pod)["WEB_SERVICE_HOST"] == web
    assert env(p_pod)["WEB_PORT"] == f"tcp://{web}:80"
    w.tenant.put(resources.SERVICES, service("shop-db", ports=[{"port": 5432}]))
    await w.settle()
    p_pod = await add_pod(w, "p2")
    assert env(p_pod)["SHOP_DB_SERVICE_HOST"] == super_ip(w, "shop", "shop-db"), "a new Service: new links"
    assert env(p_pod)["WEB_SERVICE_HOST"] == web
    p_pod = await add_pod(w, "p3", enableServiceLinks=False)
    assert not any(k.endswith("_SERVICE_HOST") and k != "KUBERNETES_SERVICE_HOST" for k in env(p_pod))


def own_dns(*nameservers: str) -> dict[str, Any]:
    return {"dnsPolicy": "None", "dnsConfig": {"nameservers": list(nameservers), "searches": ["corp.internal"]}}


def tenant_ip(w: World, ns: str, name: str) -> str:
    return str((w.tenant.get(resources.SERVICES, name, ns) or {})["spec"]["clusterIP"])


async def test_a_pod_with_its_own_dns_gets_the_super_address_of_its_dns_service() -> None:
    """A tenant running its own DNS names it by its tenant Service's cluster IP, which routes nowhere in the
    super cluster: the super pod names the super copy's address instead, whichever namespace it is in."""
    w = await world((resources.SERVICES, service("own-dns", ns="kube-system")), dns_ip="10.96.0.53")
    v_ip, p_ip = tenant_ip(w, "kube-system", "own-dns"), super_ip(w, "kube-system", "own-dns")
    assert v_ip != p_ip
    p_pod = await add_pod(w, "p", **own_dns(v_ip, "192.0.2.10"))
    assert p_pod["spec"]["dnsPolicy"] == "None", "the pod's own DNS, not the operator's"
    assert p_pod["spec"]["dnsConfig"] == {"nameservers": [p_ip, "192.0.2.10"], "searches": ["corp.internal"]}


async def test_only_a_none_dns_policy_pod_has_its_nameservers_translated() -> None:
    w = await world((resources.SERVICES, service("own-dns")))
    v_ip = tenant_ip(w, "shop", "own-dns")
    p_pod = await add_pod(w, "p", dnsPolicy="Default", dnsConfig={"nameservers": [v_ip]})
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == [v_ip], "Default: the node's resolver plus what it asked"


async def test_a_nameserver_that_is_no_tenant_service_stays_as_written() -> None:
    w = await world((resources.SERVICES, service("web")), (resources.SERVICES, service("hl", clusterIP="None")))
    p_pod = await add_pod(w, "p", **own_dns("192.0.2.53", "None"))
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == ["192.0.2.53", "None"]
