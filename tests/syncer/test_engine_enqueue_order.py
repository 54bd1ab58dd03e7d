"""Start-up queue order: tenant objects without a super copy first, then the re-check of the rest.

After a restart most tenant objects are synced already and their reconcile
finds nothing to do; what was missed while the syncer was down goes first.
Pure: ``enqueue_all`` only reads the caches and queues keys.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from syncer.informer import Informer
from syncer.queue import DOWN
from syncer.resources import BY_KIND, REGISTRY
from syncer.resources.base import super_namespace
from tests.syncer.engine_helpers import KEY, drain, offline_syncer
from vcluster import naming
from vcluster.kube import ApiClient


def v_obj(kind: str, name: str, ns: str = "shop") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if BY_KIND[kind].namespaced:
        meta["namespace"] = ns
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def p_copy(kind: str, name: str, ns: str = "shop") -> dict[str, Any]:
    k = BY_KIND[kind]
    meta: dict[str, Any] = {
        "name": name if k.namespaced else super_namespace(KEY, name), "uid": f"p-{name}",
        "labels": {naming.LABEL_CLUSTER_KEY: KEY},
        "annotations": {naming.ANN_OBJECT_NAME: name, naming.ANN_OBJECT_UID: f"uid-{name}",
                        naming.ANN_TENANT_NAMESPACE: ns},
    }
    if k.namespaced:
        meta["namespace"] = super_namespace(KEY, ns)
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("tenant", "synced", "first"),
    [
        pytest.param([("Pod", "a"), ("Pod", "b"), ("Pod", "c")], [("Pod", "a"), ("Pod", "c")], [("Pod", "b")],
                     id="missing-pod-first"),
        pytest.param([("Namespace", "shop"), ("Pod", "a"), ("Pod", "b")], [("Pod", "a")],
                     [("Namespace", "shop"), ("Pod", "b")], id="missing-namespace-before-missing-pod"),
        pytest.param([("Pod", "a"), ("Pod", "b")], [("Pod", "a"), ("Pod", "b")], [], id="all-synced"),
    ],
)
def test_objects_without_super_copy_are_queued_first(
    tenant: list[tuple[str, str]], synced: list[tuple[str, str]], first: list[tuple[str, str]]
) -> None:
    syncer, rt = offline_syncer(kinds=REGISTRY, served=False)
    for kind in REGISTRY:
        rt.informers[kind.kind] = Informer(cast(ApiClient, object()), kind.resource, transform=kind.slim_tenant)
    for kind_name, name in tenant:
        rt.informers[kind_name].apply("ADDED", v_obj(kind_name, name))
    for kind_name, name in synced:
        syncer.super_informers[kind_name].apply("ADDED", p_copy(kind_name, name))
    syncer.tenants[KEY] = rt
    syncer.enqueue_all(rt)
    order = [(key.kind, key.name) for key in drain(syncer) if key.direction == DOWN]
    assert order[:len(first)] == first
    assert sorted(order) == sorted(set(tenant) | set(synced))  # everything is still queued, once
