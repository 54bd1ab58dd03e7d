"""What the upward reconcile writes to tenants, counts and asks of the tenant apiserver.

Why: ``syncer/upward.py`` performs the kinds' upward actions (bind, status, patch, ensure), copies
super-owned metadata under transparent prefixes up, and copies super Events into tenant namespaces;
each write must be counted in ``vc_syncer_operations_total`` and must not ask for a decoded answer it
ignores (docs/architecture.md, "Writers do not decode answers").  Driven through a real syncer between
two fake apiservers (``tests/syncer/engine_world.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from syncer.resources import BY_KIND, REGISTRY, simple
from syncer.resources.base import MetadataRules, Obj, UpAction
from tests.syncer.engine_world import World, configmap, make_world, namespace, pod, service
from vcluster import naming
from vcluster.kube import AlreadyExists, resources

HOOK = "hook.example/injected"


async def started(*tenant_objs: tuple[Any, Obj], **options: Any) -> World:
    w = make_world(**options)
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for resource, obj in tenant_objs:
        w.tenant.put(resource, obj)
    await w.start()
    await w.settle()
    return w


async def test_bind_and_status_are_counted_and_not_decoded() -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_.schedule("p", w.p_ns("shop"), "node-1")
    w.super_.set_status(resources.PODS, "p", w.p_ns("shop"), {"phase": "Running"})
    await w.settle()
    assert (w.ops("Pod", "up", "bind"), w.ops("Pod", "up", "status")) == (1, 1)
    assert w.tenant_api.decoded == []
    assert w.super_api.decoded == []


async def test_a_service_ip_patch_is_counted_and_dropped_when_the_service_is_gone() -> None:
    w = await started((resources.SERVICES, service("web")))
    assert w.ops("Service", "up", "patch") == 1
    assert w.tenant_api.decoded == []
    w.tenant.patch(resources.SERVICES, "web", {"metadata": {"annotations": {naming.ANN_SUPER_CLUSTER_IP: "x"}}},
                   namespace="shop", patch_type="merge", subresource=None)
    await w.sync()
    w.take()
    w.tenant.delete(resources.SERVICES, "web", namespace="shop", options={})
    await w.up("Service", "shop", "web")  # the cache still has it; the patch finds it gone: fine
    assert w.ops("Service", "up", "patch") == 1


async def test_an_existing_tenant_volume_is_kept_and_the_claim_still_bound() -> None:
    claim = {"metadata": {"name": "data", "namespace": "shop"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    w = await started((resources.PVCS, claim))
    existing = w.tenant.put(resources.PVS, {"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "1Gi"}}})
    w.super_.patch(resources.PVCS, "data", {"spec": {"volumeName": "pv-1"}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    await w.settle()
    assert w.errors == []
    assert (w.tenant_obj("PersistentVolumeClaim", "shop", "data") or {})["spec"]["volumeName"] == "pv-1"
    assert w.tenant.get(resources.PVS, "pv-1") == existing, "the tenant's own volume is not replaced"
    assert w.ops("PersistentVolume", "up", "create") == 0
    assert w.ops("PersistentVolumeClaim", "up", "patch") == 1


async def test_a_new_tenant_volume_is_counted() -> None:
    claim = {"metadata": {"name": "data", "namespace": "shop"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    w = await started((resources.PVCS, claim))
    w.super_.patch(resources.PVCS, "data", {"spec": {"volumeName": "pv-1"}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    await w.settle()
    assert w.ops("PersistentVolume", "up", "create") == 1
    assert w.tenant_api.decoded == []


@pytest.mark.parametrize("kind", ["ConfigMap", "Service"], ids=str.lower)
async def test_super_owned_metadata_under_a_transparent_prefix_is_copied_up(kind: str) -> None:
    obj = configmap("x", a="1") if kind == "ConfigMap" else service("x")
    resource = BY_KIND[kind].resource
    w = await started((resource, obj), metadata=MetadataRules(transparent=("hook.example/",)))
    w.super_.patch(resource, "x", {"metadata": {"annotations": {HOOK: "v1", "other.example/k": "o"}}},
                   namespace=w.p_ns("shop"), patch_type="merge", subresource=None)
    await w.settle()
    ann = ((w.tenant_obj(kind, "shop", "x") or {})["metadata"].get("annotations") or {})
    assert ann.get(HOOK) == "v1"
    assert "other.example/k" not in ann, "only keys under transparent prefixes go up"
    p_obj = w.super_obj(kind, "shop", "x") or {}
    assert p_obj["metadata"]["annotations"][HOOK] == "v1", "and the super value is kept"
    w.super_.patch(resource, "x", {"metadata": {"annotations": {HOOK: None}}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    await w.settle()
    assert HOOK not in ((w.tenant_obj(kind, "shop", "x") or {})["metadata"].get("annotations") or {})
    assert w.tenant_api.decoded == []


async def test_without_transparent_prefixes_a_kind_without_upward_writes_nothing_up() -> None:
    w = await started((resources.CONFIGMAPS, configmap("x", a="1")), metadata=MetadataRules(opaque=("hook.example/",)))
    w.super_.patch(resources.CONFIGMAPS, "x", {"metadata": {"annotations": {HOOK: "v1"}}}, namespace=w.p_ns("shop"),
                   patch_type="merge", subresource=None)
    await w.settle()
    await w.up("ConfigMap", "shop", "x")
    assert [v for v in w.tenant.writes if v[1] == "configmaps"] == []


async def test_a_patch_action_patches_the_object_itself() -> None:
    """An action other than ``ensure`` writes the object the key names, whatever resource it carries."""
    def upward(v_obj: Obj, p_slim: Obj) -> list[UpAction]:
        return [UpAction("patch", {"metadata": {"labels": {"seen": "yes"}}}, resources.SECRETS)]

    kinds = tuple(dataclasses.replace(simple.CONFIGMAP, upward=upward) if k.kind == "ConfigMap" else k
                  for k in REGISTRY)
    w = await started((resources.CONFIGMAPS, configmap("x", a="1")), kinds=kinds)
    assert (w.tenant_obj("ConfigMap", "shop", "x") or {})["metadata"]["labels"] == {"seen": "yes"}
    assert w.tenant.all(resources.SECRETS) == []


# ---- super Events -----------------------------------------------------------------------------------------
def p_event(w: World, *, name: str = "p.1", involved: str = "p", count: int = 1, kind: str = "Pod") -> Obj:
    return {"metadata": {"name": name, "namespace": w.p_ns("shop")},
            "involvedObject": {"apiVersion": "v1", "kind": kind, "name": involved, "namespace": w.p_ns("shop"),
                               "uid": "super-uid", "resourceVersion": "9"},
            "reason": "Pulled", "message": f"pulled {count}", "type": "Normal", "count": count,
            "source": {"component": "kubelet"}}


async def test_a_super_event_is_copied_into_the_tenant_namespace_and_updated() -> None:
    w = await started((resources.PODS, pod("p")))
    v_uid = (w.tenant_obj("Pod", "shop", "p") or {})["metadata"]["uid"]
    w.super_event(p_event(w))
    await w.settle()
    events = w.events("shop")
    assert len(events) == 1
    assert events[0]["metadata"]["name"] == "p.1"
    assert events[0]["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "shop",
                                           "uid": v_uid}
    assert events[0]["message"] == "pulled 1"
    assert w.ops("Event", "up", "create") == 1
    w.super_event(p_event(w, count=2))
    await w.settle()
    events = w.events("shop")
    assert len(events) == 1
    assert (events[0]["count"], events[0]["message"]) == (2, "pulled 2")
    assert w.ops("Event", "up", "patch") == 1
    assert w.tenant_api.decoded == []


@pytest.mark.parametrize(("involved", "kind"), [("ghost", "Pod"), ("p", "Node")], ids=["no-tenant-object", "not-ours"])
async def test_a_super_event_about_nothing_the_tenant_has_stays_down(involved: str, kind: str) -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_event(p_event(w, involved=involved, kind=kind))
    await w.settle()
    assert w.events("shop") == []


async def test_a_super_event_update_for_a_tenant_event_deleted_meanwhile_is_dropped() -> None:
    w = await started((resources.PODS, pod("p")))
    w.super_event(p_event(w))
    await w.settle()

    def gone(verb: str, resource: Any, ns: str | None, name: str) -> None:
        if verb == "create" and resource == resources.EVENTS:
            w.tenant.delete(resources.EVENTS, name, namespace=ns, options={})
            raise AlreadyExists(409, "AlreadyExists", "events already exists")

    w.tenant.admission.append(gone)
    w.super_event(p_event(w, count=2))
    await w.settle()
    assert w.errors == []
    assert w.events("shop") == []
    assert w.ops("Event", "up", "patch") == 0
