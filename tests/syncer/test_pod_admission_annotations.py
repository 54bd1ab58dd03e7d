"""The super apiserver's LimitRanger annotation on a super pod is not a difference to undo.

Why: since the operator gives every tenant's super namespaces a LimitRange with default requests
(issue 12), kube-apiserver's LimitRanger admission writes ``kubernetes.io/limit-ranger`` onto each super
pod it defaults.  The syncer's fingerprint counted it as drift, so the next reconcile of the pod (its
upward binding) sent one PATCH per pod to remove it: +1 write and ~5 watch events per synced pod in
bench_syncer round 9 (``super PATCH pods 1.00`` in the burst, none in round 6).  The fake apiserver here
gets LimitRanger's create-time annotation by hand; the real one adds it on create only (pods are not
defaulted again on update).
"""

from __future__ import annotations

import copy
from typing import Any

from syncer.resources.pod import POD, patch_update
from tests.syncer.engine_world import make_world, namespace, pod
from tests.syncer.fakeapi import FakeServer
from vcluster import naming
from vcluster.kube import Resource, resources

LIMIT_RANGER_VALUE = "LimitRanger plugin set: cpu, memory request for container app"


class LimitRangedServer(FakeServer):
    """The fake super apiserver with LimitRanger's create-time annotation on every pod it creates."""

    def create(self, resource: Resource, body: dict[str, Any], *, namespace: str | None, subresource: str | None,
               name: str | None) -> dict[str, Any]:
        if resource == resources.PODS and subresource is None:
            body = copy.deepcopy(body)
            body["metadata"].setdefault("annotations", {})[naming.ANN_LIMIT_RANGER] = LIMIT_RANGER_VALUE
        return super().create(resource, body, namespace=namespace, subresource=subresource, name=name)


async def test_a_limit_ranger_annotated_super_pod_is_not_patched_after_its_binding() -> None:
    w = make_world(super_=LimitRangedServer("super", ip_prefix="10.200.0."))
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(resources.PODS, pod("web"))
    await w.start()
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", "web")
    assert p_pod is not None
    assert p_pod["metadata"]["annotations"][naming.ANN_LIMIT_RANGER] == LIMIT_RANGER_VALUE
    mark = len(w.super_.writes)
    w.super_.schedule("web", w.p_ns("shop"), "node-1")  # the super scheduler; the syncer binds the tenant pod
    await w.settle()
    assert (w.tenant_obj("Pod", "shop", "web") or {}).get("spec", {}).get("nodeName") == "node-1"
    assert [wr for wr in w.super_.writes[mark:] if wr[:2] == ("patch", "pods")] == []
    after = w.super_obj("Pod", "shop", "web")
    assert after is not None
    assert after["metadata"]["annotations"][naming.ANN_LIMIT_RANGER] == LIMIT_RANGER_VALUE


def _slim(annotations: dict[str, str]) -> dict[str, Any]:
    obj = {"metadata": {"name": "web", "namespace": "p-shop", "uid": "u", "resourceVersion": "1",
                        "labels": {"app": "web"}, "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
    return POD.slim_super(obj)


def _desired(annotations: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "p-shop", "labels": labels or {"app": "web"},
                         "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}


def test_the_fingerprint_leaves_the_limit_ranger_annotation_out() -> None:
    ours = {naming.ANN_OBJECT_UID: "v-uid"}
    assert POD.fingerprint(_desired(ours)) == _slim({**ours, naming.ANN_LIMIT_RANGER: LIMIT_RANGER_VALUE})["fp"]
    # the tenant's own LimitRanger value (its LimitRange) is no difference either
    tenant_set = {**ours, naming.ANN_LIMIT_RANGER: "LimitRanger plugin set: cpu limit for container app"}
    assert POD.fingerprint(_desired(tenant_set)) == _slim({**ours, naming.ANN_LIMIT_RANGER: LIMIT_RANGER_VALUE})["fp"]
    # every other annotation still is
    assert POD.fingerprint(_desired({**ours, "team": "a"})) != _slim(ours)["fp"]


def test_a_patch_for_another_change_neither_removes_nor_overwrites_the_super_value() -> None:
    ours = {naming.ANN_OBJECT_UID: "v-uid"}
    have = _slim({**ours, naming.ANN_LIMIT_RANGER: LIMIT_RANGER_VALUE})
    patch = patch_update(_desired(ours, labels={"app": "web", "tier": "front"}), have)
    assert patch["metadata"] == {"labels": {"tier": "front"}}
    patch = patch_update(_desired({**ours, naming.ANN_LIMIT_RANGER: "tenant's", "team": "a"}), have)
    assert patch["metadata"] == {"annotations": {"team": "a"}}
