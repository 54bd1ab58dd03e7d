"""The patrol's scan of a running syncer: every kind of every synced tenant diffed from the caches.

Why: ``diff_kind`` (``test_patrol*.py``) decides one kind; ``scan`` decides what is diffed at all and what
is done with a difference: only synced tenants, every kind of each, only the objects the syncer syncs
(a filtered or refused object is no drift), another tenant's copies never this tenant's orphans, and each
difference queued as its key, counted in ``vc_syncer_drift_total`` and logged.  A scan that skipped a
kind or queued the wrong key would leave drift unrepaired; one that counted filtered objects would
recreate what must not be synced.
"""

from __future__ import annotations

from structlog.testing import capture_logs

from syncer.queue import DOWN, UP
from tests.syncer.engine_world import KEY, OTHER_KEY, World, configmap, pod, service
from tests.syncer.test_engine_reconcile import started, super_cm
from vcluster.kube import resources

CM = resources.CONFIGMAPS


def drift(w: World, kind: str, reason: str) -> float:
    value: float = w.syncer.metrics.drift.labels(kind, reason)._value.get()
    return value


async def test_a_settled_world_has_no_drift() -> None:
    w = await started((CM, configmap("cm", a="1")), (resources.PODS, pod("p")))
    with capture_logs() as logs:
        assert w.syncer.patrol() == {}
    assert w.take() == []
    assert [e for e in logs if e["event"] == "patrol.drift"] == []


async def test_every_difference_is_queued_counted_and_logged() -> None:
    w = await started((CM, configmap("cm", a="1")), (CM, configmap("gone", a="1")), (resources.PODS, pod("p")))
    w.tenant.put(CM, configmap("new", a="1"))  # missing in the super cluster
    w.tenant.delete(CM, "gone", namespace="shop", options={})  # its copy is an orphan
    w.super_.patch(CM, "cm", {"data": {"a": "hand"}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)  # changed
    w.super_.schedule("p", w.p_ns("shop"), "node-1")  # a node to bring up
    await w.sync()
    w.take()
    with capture_logs() as logs:
        counts = w.syncer.patrol()
    assert counts == {"missing": 1, "orphan": 1, "changed": 1, "upward": 1}
    keys = {(k.tenant, k.kind, k.direction, k.namespace, k.name) for k in w.take()}
    assert keys == {(KEY, "ConfigMap", DOWN, "shop", "new"), (KEY, "ConfigMap", DOWN, "shop", "gone"),
                    (KEY, "ConfigMap", DOWN, "shop", "cm"), (KEY, "Pod", UP, "shop", "p")}
    assert (drift(w, "ConfigMap", "missing"), drift(w, "ConfigMap", "orphan"), drift(w, "ConfigMap", "changed"),
            drift(w, "Pod", "upward")) == (1, 1, 1, 1)
    assert [(e["log_level"], e["counts"]) for e in logs if e["event"] == "patrol.drift"] == [("info", counts)]
    w.syncer.patrol()  # queued again (the keys were taken off above), and this time reconciled
    await w.settle()
    assert w.syncer.patrol() == {}, "the queued keys repaired it"


async def test_a_tenant_not_synced_yet_is_not_scanned() -> None:
    w = await started((CM, configmap("cm", a="1")))
    w.tenant.put(CM, configmap("new", a="1"))
    await w.sync()
    w.take()
    w.rt.synced.clear()
    assert w.syncer.patrol() == {}
    assert w.take() == []


async def test_refused_and_filtered_objects_are_no_drift() -> None:
    ep = {"metadata": {"name": "web", "namespace": "shop"},
          "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}
    w = await started((resources.PODS, pod("bad", hostNetwork=True)), (resources.SERVICES, service("web")),
                      (resources.ENDPOINTS, ep))
    assert w.super_obj("Pod", "shop", "bad") is None
    assert w.syncer.patrol() == {}, "a refused pod is not missing; a selector Service's Endpoints are not synced"


async def test_another_tenants_copies_are_not_this_tenants_orphans() -> None:
    w = await started((CM, configmap("cm", a="1")))
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": f"{OTHER_KEY}--shop"}})
    theirs = super_cm(w, name="theirs", key=OTHER_KEY, a="x")
    theirs["metadata"]["namespace"] = f"{OTHER_KEY}--shop"
    w.super_.put(CM, theirs)
    await w.sync()
    w.take()
    assert w.syncer.patrol() == {}
