"""The downward and upward reconcile against fake apiservers: each branch, the uid guard, the policy gate.

Why: ``syncer/downward.py`` and ``syncer/upward.py`` decide what the syncer writes to the super cluster and
to tenants; a change there that no test notices can create another tenant's object, delete one that is not
ours or let a refused pod through.  Each case states the clusters before, what happens, and the clusters
after, and runs a real syncer (informers, routing, queue, kinds) between two fake apiservers
(``tests/syncer/fakeapi.py``) driven key by key (``tests/syncer/engine_world.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from syncer.queue import DOWN, SyncKey
from syncer.resources import BY_KIND, simple
from syncer.resources.base import Obj, RetryLater, TranslateContext
from tests.syncer.engine_world import KEY, OTHER_KEY, World, configmap, make_world, namespace, pod, service
from vcluster import naming
from vcluster.kube import AlreadyExists, Conflict, Forbidden, Invalid, Resource, resources
from vcluster.policy import PodPolicy

CM = resources.CONFIGMAPS


async def started(*tenant_objs: tuple[Resource, Obj], super_objs: tuple[tuple[Resource, Obj], ...] = (),
                  **options: Any) -> World:
    """A world whose tenant has namespace ``shop`` and ``tenant_objs``, the super cluster ``super_objs``; settled."""
    w = make_world(**options)
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for resource, obj in tenant_objs:
        w.tenant.put(resource, obj)
    for resource, obj in super_objs:
        w.super_.put(resource, obj)
    await w.start()
    await w.settle()
    return w


def super_cm(w: World, *, name: str = "cm", key: str = KEY, object_uid: str = "old-uid", managed: bool = True,
             **data: str) -> Obj:
    """A super ConfigMap in the tenant's super namespace ``shop``, labelled for ``key`` (or not managed)."""
    labels = naming.owner_labels(key, "acme") if managed else {}
    return {"metadata": {"name": name, "namespace": w.p_ns("shop"), "labels": labels,
                         "annotations": {naming.ANN_OBJECT_NAME: name, naming.ANN_TENANT_NAMESPACE: "shop",
                                         naming.ANN_OBJECT_UID: object_uid, naming.ANN_CLUSTER_KEY: key}},
            "data": data}


def cm_writes(w: World, since: int) -> list[str]:
    return [verb for verb, plural, *_ in w.super_.writes[since:] if plural == "configmaps"]


# ---- the three-way branch -----------------------------------------------------------------------------------
async def _nothing(w: World) -> None:
    return None


async def _tenant_deletes(w: World) -> None:
    w.tenant.delete(CM, "cm", namespace="shop", options={})


async def _tenant_changes(w: World) -> None:
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)


async def _tenant_touches(w: World) -> None:
    """A tenant write that changes nothing synced (a new resourceVersion, same data): a key, no super write."""
    w.tenant.patch(CM, "cm", {"data": {"a": "1"}}, namespace="shop", patch_type="merge", subresource=None)


async def _super_drifts(w: World) -> None:
    w.super_.patch(CM, "cm", {"data": {"a": "hand-edited"}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)


async def _super_label_drifts(w: World) -> None:
    w.super_.patch(CM, "cm", {"metadata": {"labels": {"extra": "x"}}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)


THREE_WAY: list[tuple[Callable[[World], Awaitable[None]], dict[str, str] | None, list[str]]] = [
    (_nothing, {"a": "1"}, []),
    (_tenant_deletes, None, ["delete"]),
    (_tenant_changes, {"a": "2"}, ["replace"]),
    (_tenant_touches, {"a": "1"}, []),
    (_super_drifts, {"a": "1"}, ["replace"]),
    (_super_label_drifts, {"a": "1"}, ["replace"]),
]


@pytest.mark.parametrize(("act", "want_data", "want_writes"), THREE_WAY,
                         ids=["tenant-only-created", "super-only-deleted", "both-differ-updated",
                              "both-equal-no-write", "super-drift-restored", "super-label-drift-restored"])
async def test_three_way_branch(act: Callable[[World], Awaitable[None]], want_data: dict[str, str] | None,
                                want_writes: list[str]) -> None:
    w = await started((CM, configmap("cm", a="1")))
    assert cm_writes(w, 0) == ["create"]
    await act(w)
    mark = len(w.super_.writes)
    keys = await w.settle()
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert (p_cm or {}).get("data") == want_data if want_data is not None else p_cm is None
    assert cm_writes(w, mark) == want_writes
    if act is not _nothing:
        assert any(k.kind == "ConfigMap" and k.name == "cm" for k in keys), "the change was reconciled"
    if p_cm is not None:
        v_cm = w.tenant_obj("ConfigMap", "shop", "cm")
        assert v_cm is not None
        assert p_cm["metadata"]["annotations"][naming.ANN_OBJECT_UID] == v_cm["metadata"]["uid"]
        assert p_cm["metadata"]["labels"] == naming.owner_labels(KEY, "acme")
        assert w.errors == []


async def test_super_only_copy_left_when_the_syncer_was_down_is_deleted_at_start() -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    w.super_.put(CM, super_cm(w, a="1"))
    await w.start()
    await w.settle()
    assert w.super_obj("ConfigMap", "shop", "cm") is None
    assert cm_writes(w, 0) == ["delete"]


async def test_a_missing_super_namespace_is_created_before_the_object() -> None:
    """A ConfigMap whose namespace key has not run yet: its create finds no namespace and makes it."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    w.take()
    await w.down("ConfigMap", "shop", "cm")
    assert [v for v, p, *_ in w.super_.writes] == ["create", "create"]
    p_ns = w.super_obj("Namespace", "", "shop")
    assert p_ns is not None
    assert p_ns["metadata"]["annotations"][naming.ANN_TENANT_NAMESPACE] == "shop"
    assert w.super_obj("ConfigMap", "shop", "cm") is not None


async def test_an_object_of_a_namespace_the_tenant_cache_lacks_is_retried() -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    w.tenant.delete(resources.NAMESPACES, "shop", namespace=None, options={})
    w.tenant.finish_deletions()
    await w.sync(tenant=False)
    w.rt.informers["Namespace"].replace([])
    w.rt.synced.set()
    with pytest.raises(RetryLater, match="tenant namespace shop is not known yet"):
        await w.down("ConfigMap", "shop", "cm")
    assert w.super_.writes == []


async def test_a_terminating_super_namespace_makes_the_create_retry_later() -> None:
    w = await started()
    w.super_.delete(resources.NAMESPACES, w.p_ns("shop"), namespace=None, options={})
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    with pytest.raises(RetryLater, match="being terminated"):
        await w.down("ConfigMap", "shop", "cm")
    assert ("ConfigMap", "shop", "cm") not in w.rt.written, "no echo memo for a write that failed"


# ---- the uid guard --------------------------------------------------------------------------------------------
async def test_a_super_copy_of_an_older_incarnation_is_replaced_never_adopted() -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    old = w.super_.put(CM, super_cm(w, a="1"))
    await w.start()
    await w.settle()
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    v_cm = w.tenant_obj("ConfigMap", "shop", "cm")
    assert p_cm is not None
    assert v_cm is not None
    assert p_cm["metadata"]["uid"] != old["metadata"]["uid"], "deleted and created again, not updated"
    assert p_cm["metadata"]["annotations"][naming.ANN_OBJECT_UID] == v_cm["metadata"]["uid"]
    assert cm_writes(w, 0) == ["delete", "create"]
    assert any(isinstance(e, RetryLater) and "stale super copy" in str(e) for _k, e in w.errors)


def _foreign(w: World) -> Obj:
    return super_cm(w, key=OTHER_KEY, a="theirs")


def _unmanaged(w: World) -> Obj:
    return super_cm(w, managed=False, a="theirs")


@pytest.mark.parametrize("make", [_foreign, _unmanaged], ids=["another-tenants", "not-managed-by-us"])
async def test_a_name_taken_by_an_object_we_do_not_own_is_never_touched(make: Callable[[World], Obj]) -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    theirs = w.super_.put(CM, make(w))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    await w.settle()
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    assert w.super_obj("ConfigMap", "shop", "cm") == theirs
    assert cm_writes(w, 0) == [], "the creates found the name taken; nothing else was tried"


async def test_deleting_a_stale_cached_copy_spares_the_incarnation_that_replaced_it() -> None:
    """The super cache still shows the copy we made; meanwhile someone replaced it (another uid)."""
    w = await started((CM, configmap("cm", a="1")))
    w.super_.delete(CM, "cm", namespace=w.p_ns("shop"), options={})
    theirs = w.super_.put(CM, super_cm(w, a="new"))
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.sync(super_=False)
    await w.down("ConfigMap", "shop", "cm")
    assert w.super_obj("ConfigMap", "shop", "cm") == theirs


# ---- AlreadyExists: adopt, clear or leave -----------------------------------------------------------------
def _ours_stale_data(w: World, v_uid: str) -> Obj:
    return super_cm(w, object_uid=v_uid, a="old")


def _ours_same(w: World, v_uid: str) -> Obj:
    return w.syncer.shared.by_kind["ConfigMap"].to_super(w.tenant_obj("ConfigMap", "shop", "cm") or {}, w.rt.ctx)


def _ours_other_uid(w: World, v_uid: str) -> Obj:
    return super_cm(w, object_uid="old-uid", a="1")


def _others(w: World, v_uid: str) -> Obj:
    return super_cm(w, key=OTHER_KEY, object_uid=v_uid, a="theirs")


ADOPT: list[tuple[Callable[[World, str], Obj], list[str], str, bool, type[Exception] | None]] = [
    # (super object the create runs into, super writes that succeeded, its data after, same super uid, error)
    (_ours_stale_data, ["replace"], "1", True, None),
    (_ours_same, [], "1", True, None),
    (_ours_other_uid, ["delete"], "", False, RetryLater),
    (_others, [], "theirs", True, None),
]


@pytest.mark.parametrize(("make", "want_writes", "want_data", "same_uid", "error"), ADOPT,
                         ids=["ours-updated", "ours-unchanged", "older-incarnation-deleted", "another-tenants-left"])
async def test_already_exists_adopts_ours_clears_stale_and_leaves_others(
        make: Callable[[World, str], Obj], want_writes: list[str], want_data: str, same_uid: bool,
        error: type[Exception] | None) -> None:
    """The super cache has not seen the object yet (a fresh start): the create finds the name taken."""
    w = await started()
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync(super_=False)
    w.take()
    v_cm = w.tenant_obj("ConfigMap", "shop", "cm")
    assert v_cm is not None
    there = w.super_.put(CM, make(w, v_cm["metadata"]["uid"]))
    mark = len(w.super_.writes)
    if error is not None:
        with pytest.raises(error):
            await w.down("ConfigMap", "shop", "cm")
    else:
        await w.down("ConfigMap", "shop", "cm")
    assert cm_writes(w, mark) == want_writes
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert ((p_cm or {}).get("data") or {}).get("a", "") == want_data
    assert (p_cm is not None and p_cm["metadata"]["uid"] == there["metadata"]["uid"]) is same_uid
    assert ("ConfigMap", "shop", "cm") not in w.rt.written, "no echo memo for a create that found the name taken"


async def test_already_exists_then_gone_is_retried() -> None:
    """The name was taken when creating and free again when reading it: try again later."""
    w = await started()
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync(super_=False)

    def taken_then_gone(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise AlreadyExists(409, "AlreadyExists", f'configmaps "{name}" already exists')

    w.super_.admission.append(taken_then_gone)
    with pytest.raises(RetryLater, match="vanished"):
        await w.down("ConfigMap", "shop", "cm")


# ---- conflicts --------------------------------------------------------------------------------------------------
async def test_an_update_from_a_stale_cache_conflicts_and_the_retry_wins() -> None:
    w = await started((CM, configmap("cm", a="1")))
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.sync()
    w.take()
    # someone writes the super copy after the syncer's cache saw it
    w.super_.patch(CM, "cm", {"metadata": {"annotations": {"x": "y"}}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    with pytest.raises(Conflict):
        await w.down("ConfigMap", "shop", "cm")
    assert ("ConfigMap", "shop", "cm") not in w.rt.written, "a failed write leaves no echo memo"
    w.syncer.queue.add(SyncKey(KEY, "ConfigMap", DOWN, "shop", "cm"))  # the worker retries it
    await w.settle()
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert p_cm is not None
    assert p_cm["data"] == {"a": "2"}
    assert "x" not in p_cm["metadata"]["annotations"], "the hand edit is drift: overwritten"


# ---- the policy gate --------------------------------------------------------------------------------------------
REFUSED: list[tuple[Resource, Obj, str, str]] = [
    (resources.PODS, pod("p", hostNetwork=True), "Pod", "hostNetwork"),
    (resources.PODS, pod("p", containers=[{"name": "app", "image": "x", "securityContext": {"privileged": True}}]),
     "Pod", "privileged"),
    (resources.PODS, pod("p", nodeName="super-node-1"), "Pod", "nodeName"),
    (resources.SECRETS, {"metadata": {"name": naming.TOKEN_SECRET_PREFIX + "x", "namespace": "shop"},
                         "data": {}}, "Secret", "reserved"),
]


@pytest.mark.parametrize(("resource", "v_obj", "kind", "reason"), REFUSED,
                         ids=["pod-host-network", "pod-privileged", "pod-pinned-to-node", "secret-reserved-name"])
async def test_a_refused_object_never_reaches_the_super_cluster_and_is_told_once(
        resource: Resource, v_obj: Obj, kind: str, reason: str) -> None:
    w = await started((resource, v_obj))
    name = v_obj["metadata"]["name"]
    assert w.super_obj(kind, "shop", name) is None
    assert [p for _v, p, *_ in w.super_.writes] == ["namespaces"]
    w.syncer.enqueue_all(w.rt)  # reconciled again (a resync): told once
    await w.settle()
    events = w.events("shop")
    assert len(events) == 1
    v_uid = (w.tenant_obj(kind, "shop", name) or {})["metadata"]["uid"]
    assert events[0]["involvedObject"] == {"apiVersion": "v1", "kind": kind, "name": name, "namespace": "shop",
                                           "uid": v_uid}
    assert events[0]["reason"] == "PolicyViolation"
    assert events[0]["type"] == "Warning"
    assert reason in events[0]["message"]
    assert w.syncer.metrics.refused.labels(kind)._value.get() == 1


def _gated_configmap() -> Any:
    def check(v_obj: Obj, _ctx: TranslateContext) -> list[str]:
        return ["key 'forbidden' is not allowed"] if "forbidden" in (v_obj.get("data") or {}) else []
    return dataclasses.replace(simple.CONFIGMAP, check=check)


async def test_an_object_refused_then_fixed_is_created() -> None:
    kinds = (BY_KIND["Namespace"], _gated_configmap())
    w = await started((CM, configmap("cm", forbidden="1")), kinds=kinds)
    assert w.super_obj("ConfigMap", "shop", "cm") is None
    w.tenant.patch(CM, "cm", {"data": {"forbidden": None, "a": "1"}}, namespace="shop", patch_type="merge",
                   subresource=None)
    await w.settle()
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert p_cm is not None
    assert p_cm["data"] == {"a": "1"}
    assert len(w.events("shop")) == 1


async def test_a_refused_pod_is_created_once_the_tenants_policy_allows_it() -> None:
    w = await started((resources.PODS, pod("p", hostNetwork=True)))
    assert w.super_obj("Pod", "shop", "p") is None
    # the Tenant's policy is relaxed: the syncer serves it again with the new policy
    w2 = make_world(policy=PodPolicy(pod_security="privileged"), super_=w.super_, tenant=w.tenant)
    await w2.start()
    await w2.settle()
    p_pod = w2.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    assert p_pod["spec"]["hostNetwork"] is True


# ---- the super apiserver refuses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "reason"), [
    (Forbidden(403, "Forbidden", 'exceeded quota: vc-tenant-quota, requested: count/configmaps=1'), "QuotaExceeded"),
    (Invalid(422, "Invalid", "ConfigMap is invalid: data: Too long"), "SyncFailed"),
], ids=["quota", "invalid"])
async def test_a_super_refusal_is_one_event_updated_on_each_retry(error: Exception, reason: str) -> None:
    w = await started()

    def refuse(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise error

    w.super_.admission.append(refuse)
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    w.take()
    for _ in range(2):
        with pytest.raises(RetryLater):
            await w.down("ConfigMap", "shop", "cm")
    events = w.events("shop")
    assert len(events) == 1
    assert events[0]["reason"] == reason
    assert str(error.args[0]).split(": ", 1)[1] in events[0]["message"]
    assert [v for v, p, *_ in w.tenant.writes if p == "events"] == ["create", "patch"]
    assert w.super_obj("ConfigMap", "shop", "cm") is None


# ---- upward ---------------------------------------------------------------------------------------------------
async def test_a_scheduled_running_super_pod_binds_and_updates_its_tenant_pod() -> None:
    w = await started((resources.PODS, pod("p")))
    p_pod = w.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    running = {"phase": "Running", "podIP": "10.1.2.3",
               "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}
    w.super_.set_status(resources.PODS, "p", w.p_ns("shop"), running)
    mark = len(w.tenant.writes)
    await w.settle()
    v_pod = w.tenant_obj("Pod", "shop", "p")
    assert v_pod is not None
    assert v_pod["spec"]["nodeName"] == "node-1"
    assert v_pod["status"]["phase"] == "Running"
    assert v_pod["status"]["podIP"] == "10.1.2.3"
    assert w.nodes.ensured == [(KEY, "node-1")], "the virtual node is made before the binding"
    assert [w_[-1] for w_ in w.tenant.writes[mark:]] == ["binding", "status"]
    mark = len(w.tenant.writes)
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert w.tenant.writes[mark:] == [], "nothing to bring up twice"


async def test_upward_writes_nothing_to_a_tenant_pod_of_another_incarnation() -> None:
    w = await started((resources.PODS, pod("p")))
    w.tenant.delete(resources.PODS, "p", namespace="shop", options={})
    w.tenant.put(resources.PODS, pod("p"))  # same name, new uid; the super copy is still the old one's
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    await w.sync()
    w.take()
    mark = len(w.tenant.writes)
    await w.up("Pod", "shop", "p")
    assert w.tenant.writes[mark:] == []
    assert w.nodes.ensured == []


async def test_a_bind_that_lost_the_race_is_fine() -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    await w.sync()
    w.take()
    w.tenant.create(resources.PODS, {"metadata": {"name": "p", "uid": (w.tenant_obj("Pod", "shop", "p") or {})[
        "metadata"]["uid"]}, "target": {"name": "node-1"}}, namespace="shop", subresource="binding", name="p")
    await w.up("Pod", "shop", "p")  # the cache still shows it unbound: the binding conflicts, quietly
    assert (w.tenant_obj("Pod", "shop", "p") or {})["spec"]["nodeName"] == "node-1"


async def test_a_pod_bound_once_is_not_bound_again_while_the_tenant_cache_lags() -> None:
    """The super pod starts right after its binding; its next upward key must not bind again (the
    tenant informer has not seen our binding yet): a second binding can only fail with Conflict."""
    w = await started((resources.PODS, pod("p")))
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    await w.sync()
    w.take()
    mark = len(w.tenant.writes)
    await w.up("Pod", "shop", "p")
    w.super_.set_status(resources.PODS, "p", w.p_ns("shop"), {"phase": "Running"})
    await w.sync(tenant=False)  # the super pod's news arrived; the tenant watch is behind
    w.take()
    await w.up("Pod", "shop", "p")
    assert [w_[-1] for w_ in w.tenant.writes[mark:]] == ["binding", "status"]
    assert w.ops("Pod", "up", "bind") == 1, "one binding request, not a second one that conflicts"
    v_pod = w.tenant_obj("Pod", "shop", "p") or {}
    assert v_pod["spec"]["nodeName"] == "node-1"
    assert v_pod["status"]["phase"] == "Running"
    await w.sync()
    w.take()
    await w.up("Pod", "shop", "p")
    assert w.rt.bound == {}, "dropped once the tenant cache shows the binding"


async def test_a_status_for_a_tenant_pod_deleted_meanwhile_is_dropped() -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_.set_status(resources.PODS, "p", w.p_ns("shop"), {"phase": "Pending"})
    await w.sync()
    w.take()
    w.tenant.delete(resources.PODS, "p", namespace="shop", options={})
    await w.up("Pod", "shop", "p")
    assert w.tenant_obj("Pod", "shop", "p") is None


async def test_a_service_learns_its_super_cluster_ip() -> None:
    w = await started((resources.SERVICES, service("web")))
    p_svc = w.super_obj("Service", "shop", "web")
    v_svc = w.tenant_obj("Service", "shop", "web")
    assert p_svc is not None
    assert v_svc is not None
    assert p_svc["spec"]["clusterIP"] != v_svc["spec"]["clusterIP"], "the fake gives each cluster its own IPs"
    assert v_svc["metadata"]["annotations"][naming.ANN_SUPER_CLUSTER_IP] == p_svc["spec"]["clusterIP"]


async def test_a_claim_bound_in_the_super_cluster_gets_a_tenant_volume_removed_with_it() -> None:
    claim = {"metadata": {"name": "data", "namespace": "shop"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    w = await started((resources.PVCS, claim))
    w.super_.patch(resources.PVCS, "data", {"spec": {"volumeName": "pv-1"}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    w.super_.set_status(resources.PVCS, "data", w.p_ns("shop"),
                        {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]})
    await w.settle()
    v_claim = w.tenant_obj("PersistentVolumeClaim", "shop", "data")
    assert v_claim is not None
    assert v_claim["spec"]["volumeName"] == "pv-1"
    assert v_claim["status"]["phase"] == "Bound"
    assert w.tenant.get(resources.PVS, "pv-1") is not None
    w.tenant.delete(resources.PVCS, "data", namespace="shop", options={})
    await w.settle()
    assert w.tenant.get(resources.PVS, "pv-1") is None, "the tenant volume made for the claim goes with it"
    assert w.super_obj("PersistentVolumeClaim", "shop", "data") is None


# ---- deletion of a terminating tenant pod -------------------------------------------------------------------
async def test_a_terminating_tenant_pod_takes_its_super_pod_with_its_grace_then_goes() -> None:
    w = await started((resources.PODS, pod("p", terminationGracePeriodSeconds=20)))
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    await w.settle()
    w.tenant.delete(resources.PODS, "p", namespace="shop", options={"gracePeriodSeconds": 7})
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    assert p_pod["metadata"]["deletionGracePeriodSeconds"] == 7, "the super pod gets the tenant's grace"
    assert w.tenant_obj("Pod", "shop", "p") is not None, "the tenant pod waits for its super pod"
    w.super_.finish_deletions()  # the super kubelet is done
    await w.settle()
    assert w.tenant_obj("Pod", "shop", "p") is None


async def test_a_bound_tenant_pod_whose_super_pod_vanished_is_deleted_as_lost() -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    await w.settle()
    w.super_.delete(resources.PODS, "p", namespace=w.p_ns("shop"), options={"gracePeriodSeconds": 0})
    await w.settle()
    assert w.tenant_obj("Pod", "shop", "p") is None
    assert w.super_obj("Pod", "shop", "p") is None, "not created again"



# ---- counts and answers ---------------------------------------------------------------------------------------
async def test_downward_writes_are_counted_and_ask_for_no_decoded_answer() -> None:
    w = await started((CM, configmap("cm", a="1")))
    assert (w.ops("Namespace", "down", "create"), w.ops("ConfigMap", "down", "create")) == (1, 1)
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    assert w.ops("ConfigMap", "down", "update") == 1
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    assert w.ops("ConfigMap", "down", "delete") == 1
    assert w.super_api.decoded == []


async def test_a_pod_image_change_is_a_strategic_patch_of_the_super_pod() -> None:
    w = await started((resources.PODS, pod("p")))
    w.tenant.patch(resources.PODS, "p", {"spec": {"containers": [{"name": "app", "image": "busybox:2"}]}},
                   namespace="shop", patch_type="strategic", subresource=None)
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    assert [c["image"] for c in p_pod["spec"]["containers"]] == ["busybox:2"]
    assert [v for v, p, *_ in w.super_.writes if p == "pods"] == ["create", "patch"]
    assert w.ops("Pod", "down", "update") == 1
    assert w.errors == []
