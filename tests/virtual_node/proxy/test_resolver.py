"""The kubelet proxy's resolver against a fake super API: who may reach which super pod, and where.

Why: the resolver is the proxy's only read of the super cluster and the last
step before a tenant's ``kubectl exec`` reaches a real kubelet.  On the test
bed the namespace mapping stops a cross-tenant request before the ownership
check ever runs, so these cases put *another tenant's* pod (or an unowned
one) exactly where the caller's mapping points and require a 404; they also
pin what the kubelet is sent (super namespace, super uid) and that the
short cache expires on its clock (a fake one: no sleeps).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from vcluster import naming
from vcluster.kube import ApiClient
from vcluster.kube import resources as r
from virtual_node.proxy import routing
from virtual_node.proxy.resolver import PodResolver, Target

KEY = naming.cluster_key("alpha", "uid-a")
OTHER = naming.cluster_key("beta", "uid-b")
SUPER_NS = naming.super_namespace(KEY, "shop")
TYPES = ("InternalIP", "Hostname")


class FakeSuper:
    """``get_or_none`` over a dict of objects, counting reads."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, str, str]] = []

    async def get_or_none(self, resource: r.Resource, name: str, *, namespace: str | None = None
                          ) -> dict[str, Any] | None:
        key = (resource.kind, namespace or "", name)
        self.reads.append(key)
        return self.objects.get(key)


def p_pod(*, key: str = KEY, namespace: str = SUPER_NS, tenant_uid: str = "0a1b-2c3d", node: str | None = "n1",
          uid: str | None = "p-uid") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": namespace, "labels": {naming.LABEL_CLUSTER_KEY: key},
                            "annotations": {naming.ANN_OBJECT_UID: tenant_uid}}
    if uid is not None:
        meta["uid"] = uid
    spec = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec}


def p_node(name: str = "n1", *, port: int | None = 10250) -> dict[str, Any]:
    status: dict[str, Any] = {"addresses": [{"type": "Hostname", "address": name},
                                            {"type": "InternalIP", "address": "10.0.0.7"}]}
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"metadata": {"name": name}, "status": status}


def world(pod: dict[str, Any] | None, node: dict[str, Any] | None = None) -> FakeSuper:
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    if pod is not None:
        objects[("Pod", pod["metadata"]["namespace"], "web")] = pod
    if node is not None:
        objects[("Node", "", node["metadata"]["name"])] = node
    return FakeSuper(objects)


def resolver(fake: FakeSuper, *, ttl: float = 0.0, clock: list[float] | None = None) -> PodResolver:
    now = clock if clock is not None else [0.0]
    return PodResolver(cast(ApiClient, fake), address_types=TYPES, ttl=ttl, clock=lambda: now[0])


async def test_resolves_the_callers_pod_to_its_kubelet() -> None:
    fake = world(p_pod(), p_node())
    target = await resolver(fake).resolve(KEY, routing.parse_path("/exec/shop/web/0a1b-2c3d/app"))
    assert target == Target(host="10.0.0.7", port=10250, path=f"/exec/{SUPER_NS}/web/p-uid/app", node="n1",
                            super_namespace=SUPER_NS)
    assert fake.reads == [("Pod", SUPER_NS, "web"), ("Node", "", "n1")]


async def test_without_a_uid_the_path_carries_none() -> None:
    target = await resolver(world(p_pod(), p_node())).resolve(KEY, routing.parse_path("/containerLogs/shop/web/app"))
    assert target.path == f"/containerLogs/{SUPER_NS}/web/app"


# (id, super pod at the caller's mapped place, path) → 404
FOREIGN: list[tuple[str, dict[str, Any] | None, str]] = [
    ("no-pod", None, "/exec/shop/web/app"),
    ("other-tenants-label", p_pod(key=OTHER), "/exec/shop/web/app"),
    ("unlabelled", {**p_pod(), "metadata": {**p_pod()["metadata"], "labels": {}}}, "/exec/shop/web/app"),
    ("no-metadata", {"spec": {"nodeName": "n1"}}, "/exec/shop/web/app"),
    ("namespace-of-another-tenant", p_pod(namespace=naming.super_namespace(OTHER, "shop")), "/exec/shop/web/app"),
    ("wrong-tenant-uid", p_pod(tenant_uid="ffff-0000"), "/exec/shop/web/0a1b-2c3d/app"),
    ("not-scheduled", p_pod(node=None), "/exec/shop/web/app"),
]


@pytest.mark.parametrize(("pod", "path"), [c[1:] for c in FOREIGN], ids=[c[0] for c in FOREIGN])
async def test_anything_but_the_callers_own_scheduled_pod_is_not_found(pod: dict[str, Any] | None,
                                                                     path: str) -> None:
    objects: dict[tuple[str, str, str], dict[str, Any]] = {("Node", "", "n1"): p_node()}
    if pod is not None:
        objects[("Pod", SUPER_NS, "web")] = pod  # where the caller's mapping points, whatever it claims
    fake = FakeSuper(objects)
    with pytest.raises(routing.Denied) as info:
        await resolver(fake).resolve(KEY, routing.parse_path(path))
    assert info.value.status == 404
    assert ("Node", "", "n1") not in fake.reads  # refused before anything else is looked up


async def test_a_guessed_super_namespace_is_mapped_again() -> None:
    other_ns = naming.super_namespace(OTHER, "shop")
    fake = world(p_pod(key=OTHER, namespace=other_ns), p_node())
    with pytest.raises(routing.Denied) as info:
        await resolver(fake).resolve(KEY, routing.parse_path(f"/exec/{other_ns}/web/app"))
    assert info.value.status == 404
    assert fake.reads[0][1] == naming.super_namespace(KEY, other_ns)


@pytest.mark.parametrize(
    ("node", "status"),
    [
        pytest.param(None, 502, id="node-gone"),
        pytest.param(p_node(port=None), 502, id="no-kubelet-port"),
        pytest.param({"metadata": {"name": "n1"}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}},
                     502, id="no-address"),
    ],
)
async def test_node_problems_are_bad_gateway(node: dict[str, Any] | None, status: int) -> None:
    fake = world(p_pod(), node)
    with pytest.raises(routing.Denied) as info:
        await resolver(fake).resolve(KEY, routing.parse_path("/exec/shop/web/app"))
    assert info.value.status == status


async def test_a_uid_request_for_a_super_pod_without_uid_is_not_found() -> None:
    fake = world(p_pod(uid=None), p_node())
    with pytest.raises(routing.Denied) as info:
        await resolver(fake).resolve(KEY, routing.parse_path("/exec/shop/web/0a1b-2c3d/app"))
    assert info.value.status == 404


async def test_reads_are_cached_until_the_ttl_passes() -> None:
    now = [100.0]
    fake = world(p_pod(), p_node())
    res = resolver(fake, ttl=5.0, clock=now)
    request = routing.parse_path("/exec/shop/web/app")
    await res.resolve(KEY, request)
    await res.resolve(KEY, request)
    assert len(fake.reads) == 2  # pod and node, once
    now[0] += 4.9
    await res.resolve(KEY, request)
    assert len(fake.reads) == 2
    now[0] += 0.2
    await res.resolve(KEY, request)
    assert len(fake.reads) == 4


async def test_a_cached_miss_expires_too() -> None:
    now = [0.0]
    fake = world(None, p_node())
    res = resolver(fake, ttl=5.0, clock=now)
    request = routing.parse_path("/exec/shop/web/app")
    with pytest.raises(routing.Denied):
        await res.resolve(KEY, request)
    fake.objects[("Pod", SUPER_NS, "web")] = p_pod()  # the pod appears
    with pytest.raises(routing.Denied):
        await res.resolve(KEY, request)  # still the cached miss
    now[0] += 6
    assert (await res.resolve(KEY, request)).node == "n1"


async def test_the_cache_is_per_object_and_bounded() -> None:
    fake = world(p_pod(), p_node())
    res = resolver(fake, ttl=1000.0)
    for i in range(4100):
        fake.objects[("Pod", naming.super_namespace(KEY, f"ns{i}"), "web")] = p_pod(
            namespace=naming.super_namespace(KEY, f"ns{i}"))
    for i in range(4100):
        await res.resolve(KEY, routing.parse_path(f"/exec/ns{i}/web/app"))
    pods_read = [read for read in fake.reads if read[0] == "Pod"]
    assert len(pods_read) == 4100  # one read per distinct pod
    fake.reads.clear()
    await res.resolve(KEY, routing.parse_path("/exec/ns0/web/app"))
    # the cache was emptied when it passed its bound, so an early entry is read again
    assert ("Pod", naming.super_namespace(KEY, "ns0"), "web") in fake.reads


async def test_an_entry_is_fresh_for_less_than_the_ttl() -> None:
    now = [0.0]
    fake = world(p_pod(), p_node())
    res = resolver(fake, ttl=5.0, clock=now)
    request = routing.parse_path("/exec/shop/web/app")
    await res.resolve(KEY, request)
    now[0] = 5.0
    await res.resolve(KEY, request)
    assert len(fake.reads) == 4


async def test_a_vanished_node_is_named_in_the_refusal() -> None:
    with pytest.raises(routing.Denied) as info:
        await resolver(world(p_pod(), None)).resolve(KEY, routing.parse_path("/exec/shop/web/app"))
    assert "shop/web" in info.value.message
