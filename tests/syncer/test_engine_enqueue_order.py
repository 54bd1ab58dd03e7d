"""Start-up queue order: tenant objects without a super copy first, then the re-check of the rest.

After a restart most tenant objects are synced already and their reconcile
finds nothing to do; what was missed while the syncer was down goes first.
Pure: ``enqueue_all`` only reads the caches and queues keys.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from syncer.engine import TenantRuntime
from syncer.informer import Informer
from syncer.queue import DOWN, UP
from syncer.resources import BY_KIND, REGISTRY
from syncer.resources.base import TranslateContext, super_namespace
from syncer.tenants import TenantInfo
from tests.syncer.engine_helpers import KEY, drain, offline_syncer
from vcluster import naming
from vcluster.kube import ApiClient, resources


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


def test_a_tenant_synced_later_has_its_missing_objects_done_before_the_rechecks_of_another() -> None:
    """Two tenants after a restart: ``acme`` listed first with everything synced, ``other`` with a backlog.

    The backlog's creates must not take turns with ``acme``'s re-checks (issue 16, the drain)."""
    syncer, rt = offline_syncer(kinds=(BY_KIND["Pod"],), served=False)
    other_key = naming.cluster_key("other", "u2")
    rt_b = TenantRuntime(info=TenantInfo(key=other_key, name="other", uid="u2", kubeconfig=""),
                         api=cast(ApiClient, object()), kinds=rt.kinds,
                         ctx=TranslateContext(key=other_key, tenant_name="other", tenant_uid="u2"))
    rt_b.synced.set()
    for runtime in (rt, rt_b):
        runtime.informers["Pod"] = Informer(cast(ApiClient, object()), resources.PODS,
                                            transform=BY_KIND["Pod"].slim_tenant)
    for i in range(5):
        rt.informers["Pod"].apply("ADDED", v_obj("Pod", f"a{i}"))
        p_pod = p_copy("Pod", f"a{i}")
        p_pod["spec"] = {"nodeName": "n1"}
        p_pod["status"] = {"phase": "Running"}
        syncer.super_informers["Pod"].apply("ADDED", p_pod)
    for i in range(3):
        rt_b.informers["Pod"].apply("ADDED", v_obj("Pod", f"b{i}"))
    syncer.tenants[KEY] = rt
    syncer.tenants[other_key] = rt_b
    syncer.enqueue_all(rt)
    syncer.enqueue_all(rt_b)
    order = [(key.tenant, key.direction, key.name) for key in drain(syncer)]
    assert order[:3] == [(other_key, DOWN, f"b{i}") for i in range(3)]
    rechecks = [(KEY, direction, f"a{i}") for i in range(5) for direction in (DOWN, UP)]
    assert sorted(order[3:]) == sorted(rechecks)
