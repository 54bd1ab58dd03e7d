"""The tenant-wide quota gate in the engine: creates across namespaces share one quota.

Against the fake apiservers (tests/syncer/engine_world.py): the ledger is fed by the super informers,
a create over the quota is refused with a PolicyViolation Event naming the policy field, the object
waits, and is created once usage drops (the freed room queues it again, not its back-off).
"""

from __future__ import annotations

import contextlib
import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from syncer.queue import SyncKey
from syncer.resources.base import RetryLater
from tenant_crd.models import LimitRangeSpec
from tests.syncer.engine_world import World, make_world, namespace, pod, service
from vcluster.kube import AlreadyExists, ApiError, resources
from vcluster.quota import SOURCE_DEFAULT, TenantQuota, parse_hard


async def drain(w: World, *, rounds: int = 8) -> list[SyncKey]:
    """Reconcile until nothing is queued; a failed key is NOT queued again here (only the engine's own
    wake-ups queue it), so a waiting object stays waiting unless room is freed."""
    failed: list[SyncKey] = []
    for _ in range(rounds):
        await w.sync()
        keys = w.take()
        if not keys:
            return failed
        for key in keys:
            try:
                await w.syncer.reconcile(key)
            except RetryLater:
                failed.append(key)
    raise AssertionError("not drained")


def quota(**hard: str) -> TenantQuota:
    return TenantQuota(hard=parse_hard(hard), names=tuple(sorted(hard)))


def super_pods(w: World) -> list[str]:
    return sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in w.super_.all(resources.PODS))


async def world_with(q: TenantQuota, *objs: tuple[Any, dict[str, Any]]) -> World:
    w = make_world(quota=q)
    for ns in ("a", "b"):
        w.tenant.put(resources.NAMESPACES, namespace(ns))
    for resource, obj in objs:
        w.tenant.put(resource, obj)
    await w.start()
    return w


async def test_namespaces_share_one_quota_and_the_refused_pod_waits_for_room() -> None:
    pods = [pod(f"p{i}", ns) for ns in ("a", "b") for i in range(2)]
    w = await world_with(quota(pods="3"), *((resources.PODS, p) for p in pods))
    failed = await drain(w)
    assert len(super_pods(w)) == 3  # not 2 per namespace: 3 for the whole tenant
    (waiting,) = {(k.namespace, k.name) for k in failed}
    events = w.events(waiting[0])
    assert len(events) == 1
    assert events[0]["reason"] == "PolicyViolation"
    assert events[0]["involvedObject"]["name"] == waiting[1]
    assert "pods: this object needs 1, the tenant uses 3 of 3" in events[0]["message"]
    assert "(Tenant spec.isolation.resourceQuota)" in events[0]["message"]
    # freeing room in the *other* namespace lets the waiting pod through
    other = next(p for p in pods if p["metadata"]["namespace"] != waiting[0])
    w.tenant.delete(resources.PODS, other["metadata"]["name"], namespace=other["metadata"]["namespace"], options={})
    await drain(w)
    assert f"{w.p_ns(waiting[0])}/{waiting[1]}" in super_pods(w)
    assert len(super_pods(w)) == 3
    assert len(w.events(waiting[0])) == 1  # told once


async def test_requests_are_summed_with_the_limit_range_defaults() -> None:
    def sized(name: str, ns: str, cpu: str | None) -> dict[str, Any]:
        res = {"resources": {"requests": {"cpu": cpu}}} if cpu else {}
        return pod(name, ns, containers=[{"name": "app", "image": "busybox:1", **res}])

    q = TenantQuota(hard={"requests.cpu": Decimal("1")}, limit_range=LimitRangeSpec(default_requests={"cpu": "300m"}),
                    source=SOURCE_DEFAULT, names=("cpu",))
    w = await world_with(q, (resources.PODS, sized("big", "a", "600m")), (resources.PODS, sized("mid", "b", "300m")))
    await drain(w)
    assert super_pods(w) == [f"{w.p_ns('a')}/big", f"{w.p_ns('b')}/mid"]  # 900m of 1
    # no request stated: the LimitRange's default request (300m) is what the super namespace would give it
    w.tenant.put(resources.PODS, sized("more", "b", None))
    await drain(w)
    assert f"{w.p_ns('b')}/more" not in super_pods(w)
    (event,) = w.events("b")
    assert "requests.cpu: this object needs 300m, the tenant uses 900m of 1" in event["message"]
    assert "VC_OPERATOR_DEFAULT_QUOTA" in event["message"]


async def test_object_counts_are_tenant_wide() -> None:
    svcs = [service("s1", "a"), service("s2", "b"), service("s3", "b")]
    w = await world_with(quota(services="2"), *((resources.SERVICES, s) for s in svcs))
    await drain(w)
    assert len(w.super_.all(resources.SERVICES)) == 2
    (event,) = w.events("a") + w.events("b")
    assert "services: this object needs 1, the tenant uses 2 of 2" in event["message"]


async def test_usage_written_to_the_tenant_status_only_when_it_changed() -> None:
    w = await world_with(quota(pods="5"), (resources.PODS, pod("p", "a")))
    await drain(w)
    tenant = {"apiVersion": "tenancy.virtualcluster.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
              "status": {"quota": {"used": {"pods": "0", "secrets": "3"}}}}
    w.super_.put(resources.TENANTS, tenant)
    assert await w.syncer.report_quota(w.rt)
    written = (w.super_.get(resources.TENANTS, "acme") or {})["status"]["quota"]["used"]
    assert written == {"pods": "1"}  # a name the quota no longer has is removed
    assert not await w.syncer.report_quota(w.rt)


async def test_no_quota_no_gate() -> None:
    pods = [pod(f"p{i}", "a") for i in range(4)]
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("a"))
    for p in pods:
        w.tenant.put(resources.PODS, p)
    await w.start()
    await w.settle()
    assert len(super_pods(w)) == 4


async def test_a_failed_create_gives_its_room_back_and_wakes_the_waiting() -> None:
    from vcluster.kube import Forbidden

    failing = {"p0"}

    def status_unknown(verb: str, resource: Any, _ns: str | None, name: str) -> None:
        if verb == "create" and resource == resources.PODS and name in failing:
            raise Forbidden(403, "Forbidden", f'pods "{name}" is forbidden: status unknown for quota: vc-tenant-quota')

    w = await world_with(quota(pods="1"), (resources.PODS, pod("p0", "a")), (resources.PODS, pod("p1", "b")))
    w.super_.admission.append(status_unknown)
    failed = {(k.namespace, k.name) for k in await drain(w)}
    # p0 was admitted but its create failed (transiently: no Event); p1 waited, then took the room
    assert super_pods(w) == [f"{w.p_ns('b')}/p1"]
    assert ("a", "p0") in failed
    assert w.events("a") == []
    assert w.syncer.shared.ledger(w.rt.info.key).reserved == {}


async def test_released_room_wakes_the_waiting_keys() -> None:
    from syncer import downward
    from syncer.queue import DOWN

    w = await world_with(quota(pods="1"))
    w.take()
    key = SyncKey(w.rt.info.key, "Pod", DOWN, "b", "p1")
    w.rt.quota_waiting.add(key)
    ledger = w.syncer.shared.ledger(w.rt.info.key)
    assert ledger.admit(("Pod", w.p_ns("a"), "p0"), {"pods": Decimal(1)}, {"pods": Decimal(1)}, where="w") == []
    downward.release_quota(w.syncer.shared, w.rt, ("Pod", w.p_ns("a"), "p0"))
    assert w.take() == [key]
    assert w.rt.quota_waiting == set()


def claim(name: str, ns: str, size: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def grow(w: World, size: str) -> None:
    w.tenant.patch(resources.PVCS, "c1", {"spec": {"resources": {"requests": {"storage": size}}}}, namespace="a",
                   patch_type="merge", subresource=None)


def super_size(w: World, ns: str, name: str) -> str:
    p_claim = w.super_obj("PersistentVolumeClaim", ns, name) or {}
    return str(p_claim["spec"]["resources"]["requests"]["storage"])


async def test_a_claim_that_grows_past_the_tenant_quota_waits_and_keeps_its_size() -> None:
    """Updates are gated too: expanding a claim is how a tenant would grow past its storage quota
    without creating anything; the super claim keeps its size until there is room."""
    pvcs = resources.PVCS
    w = await world_with(quota(**{"requests.storage": "3Gi"}), (pvcs, claim("c1", "a", "1Gi")),
                         (pvcs, claim("c2", "b", "1Gi")))
    assert await drain(w) == []
    grow(w, "3Gi")
    failed = await drain(w)
    assert [(k.namespace, k.name) for k in failed] == [("a", "c1")]
    assert super_size(w, "a", "c1") == "1Gi", "the super claim did not grow"
    (event,) = w.events("a")
    assert event["reason"] == "PolicyViolation"
    assert event["involvedObject"]["name"] == "c1"
    assert "requests.storage: this change adds 2147483648, the tenant uses 2147483648 of 3221225472" in event["message"]
    assert "(Tenant spec.isolation.resourceQuota)" in event["message"]
    grow(w, "2Gi")  # what fits goes through
    assert await drain(w) == []
    assert super_size(w, "a", "c1") == "2Gi"
    grow(w, "3Gi")
    assert len(await drain(w)) == 1
    w.tenant.delete(pvcs, "c2", namespace="b", options={})  # room in the other namespace: the change goes through
    await drain(w)
    assert super_size(w, "a", "c1") == "3Gi"
    assert len(w.events("a")) == 2, "told once per refusal"


async def _refuse_prepare(io: Any, v_obj: dict[str, Any]) -> None:
    raise ApiError(500, "InternalError", "the token Secret could not be made")


@pytest.mark.parametrize("failure", ["prepare", "already-exists", "server-error"])
async def test_a_create_that_fails_any_way_after_admission_gives_its_room_back(
        failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Admitted against the tenant quota, then failed before, in or after the super create: the reservation
    goes (else the room stays taken until the syncer restarts, and the tenant's next pod waits for nothing)."""
    w = await world_with(quota(pods="1"), (resources.PODS, pod("p0", "a")))
    shared = w.syncer.shared
    if failure == "prepare":
        monkeypatch.setitem(shared.by_kind, "Pod", dataclasses.replace(shared.by_kind["Pod"], prepare=_refuse_prepare))
    else:
        error = (AlreadyExists(409, "AlreadyExists", 'pods "p0" already exists') if failure == "already-exists"
                 else ApiError(500, "InternalError", "etcd is away"))

        def refuse(verb: str, resource: Any, _ns: str | None, name: str) -> None:
            if verb == "create" and resource == resources.PODS:
                raise error

        w.super_.admission.append(refuse)
    await w.sync()
    w.take()
    with contextlib.suppress(ApiError, RetryLater):
        await w.down("Pod", "a", "p0")
    assert shared.ledger(w.rt.info.key).reserved == {}
    assert w.super_obj("Pod", "a", "p0") is None
