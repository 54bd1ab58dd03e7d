"""The tenant-wide quota's accounting (vcluster/quota.py): what an object counts for, and the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tenant_crd.models import LimitRangeSpec, SpecError
from vcluster import quota
from vcluster.quota import Ledger, object_usage, parse_hard


def c(name: str = "app", *, req: dict[str, str] | None = None, lim: dict[str, str] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if req:
        res["requests"] = req
    if lim:
        res["limits"] = lim
    return {"name": name, "image": "x", "resources": res}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), phase: str | None = None,
        overhead: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    if overhead:
        spec["overhead"] = overhead
    out: dict[str, Any] = {"spec": spec}
    if phase:
        out["status"] = {"phase": phase}
    return out


def d(values: dict[str, str]) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in values.items()}


POD_CASES = [
    pytest.param(pod(c(req={"cpu": "250m", "memory": "64Mi"}), c("b", req={"cpu": "1"})), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1.25", "requests.memory": str(64 * 2**20)},
                 id="requests-summed"),
    pytest.param(pod(c(lim={"cpu": "2"})), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "2", "limits.cpu": "2"},
                 id="requests-default-to-limits"),
    pytest.param(pod(c(req={"cpu": "1"}), c("b", req={"cpu": "1"}), init=(c("i", req={"cpu": "3"}),)), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "3"}, id="largest-init-container-wins"),
    pytest.param(pod(c(req={"cpu": "1"}), init=(c("i", req={"cpu": "500m"}),)), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1"}, id="app-containers-win"),
    pytest.param(pod(c(req={"cpu": "1"}), overhead={"cpu": "100m"}), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1.1"}, id="overhead-added"),
    pytest.param(pod(c(), c("b", req={"cpu": "1"})),
                 LimitRangeSpec(defaults={"cpu": "2"}, default_requests={"cpu": "200m"}),
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1.2", "limits.cpu": "4"},
                 id="limit-range-defaults-fill-missing-only"),
    pytest.param(pod(c()), LimitRangeSpec(defaults={"memory": "1Gi"}),
                 {"pods": "1", "count/pods": "1", "requests.memory": str(2**30), "limits.memory": str(2**30)},
                 id="default-limit-is-the-default-request"),
    pytest.param(pod(c(req={"cpu": "1"}, lim={"cpu": "1", "memory": "1Gi"}),
                     init=(c("i", req={"cpu": "2"}, lim={"cpu": "2"}),)), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "2", "limits.cpu": "2",
                  "requests.memory": str(2**30), "limits.memory": str(2**30)},
                 id="init-container-limits-count-too"),
    pytest.param(pod(init=(c("i", req={"cpu": "100m"}),)), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "0.1"}, id="init-container-alone-below-one"),
    pytest.param(pod(c(req={"cpu": "1"}), init=(c("i"),)), LimitRangeSpec(default_requests={"cpu": "3"}),
                 {"pods": "1", "count/pods": "1", "requests.cpu": "3"}, id="init-container-gets-limit-range-defaults"),
    pytest.param(pod(c(req={"cpu": "1"}, lim={"cpu": "2"}), overhead={"cpu": "100m"}), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1.1", "limits.cpu": "2.1"},
                 id="overhead-added-to-limits-too"),
    pytest.param(pod(c(req={"cpu": "1"}), phase="Succeeded"), None, {}, id="terminated-counts-nothing"),
    pytest.param(pod(c(req={"cpu": "1"}), phase="Running"), None,
                 {"pods": "1", "count/pods": "1", "requests.cpu": "1"}, id="running-counts"),
]


@pytest.mark.parametrize(("obj", "limit_range", "want"), POD_CASES)
def test_pod_usage(obj: dict[str, Any], limit_range: LimitRangeSpec | None, want: dict[str, str]) -> None:
    assert object_usage("", "pods", obj, limit_range) == d(want)


@pytest.mark.parametrize(("group", "plural", "obj", "want"), [
    ("", "services", {"spec": {"ports": [{"port": 80}]}}, {"services": "1", "count/services": "1"}),
    ("", "services", {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}},
     {"services": "1", "count/services": "1", "services.nodeports": "2"}),
    ("", "services", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
     {"services": "1", "count/services": "1", "services.nodeports": "1", "services.loadbalancers": "1"}),
    ("", "persistentvolumeclaims", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}},
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": str(5 * 2**30)}),
    ("", "configmaps", {}, {"configmaps": "1", "count/configmaps": "1"}),
    ("", "secrets", {}, {"secrets": "1", "count/secrets": "1"}),
    ("", "endpoints", {}, {"count/endpoints": "1"}),
    ("networking.k8s.io", "ingresses", {}, {"count/ingresses.networking.k8s.io": "1"}),
    ("", "persistentvolumeclaims", {"spec": {"resources": {"requests": {"storage": "lots"}}}},
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1"}),
    ("", "configmaps", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}},
     {"configmaps": "1", "count/configmaps": "1"}),
], ids=["clusterip", "nodeport", "loadbalancer", "pvc", "configmap", "secret", "endpoints", "ingress",
        "pvc-bad-quantity-counts-no-storage", "only-claims-count-storage"])
def test_object_usage(group: str, plural: str, obj: dict[str, Any], want: dict[str, str]) -> None:
    assert object_usage(group, plural, obj) == d(want)


def test_parse_hard_spellings_and_errors() -> None:
    assert parse_hard({"cpu": "2", "requests.cpu": "1500m", "pods": 3}) == d({"requests.cpu": "1.5", "pods": "3"})
    assert parse_hard({"cpu": "1", "requests.cpu": "3"}) == d({"requests.cpu": "1"}), "both hold: the smaller"
    with pytest.raises(SpecError):
        parse_hard({"pods": "many"})


@pytest.mark.parametrize(("value", "text"),
                         [("3", "3"), ("1.5", "1500m"), ("0.0001", "1m"), ("1073741824", "1073741824")])
def test_format_quantity(value: str, text: str) -> None:
    assert quota.format_quantity(Decimal(value)) == text


def test_ledger_reserves_so_concurrent_creates_cannot_overshoot() -> None:
    hard = d({"pods": "2"})
    ledger = Ledger()
    one = d({"pods": "1"})
    assert ledger.admit(("Pod", "a", "p1"), one, hard, where="w") == []
    assert ledger.admit(("Pod", "b", "p2"), one, hard, where="w") == []
    # neither is in the cache yet: the reservations alone fill the quota
    (why,) = ledger.admit(("Pod", "a", "p3"), one, hard, where="Tenant spec.isolation.resourceQuota")
    assert why == ("pods: this object needs 1, the tenant uses 2 of 2 across all its namespaces "
                   "(Tenant spec.isolation.resourceQuota)")
    # a retry of an admitted create is not counted twice
    assert ledger.admit(("Pod", "a", "p1"), one, hard, where="w") == []
    assert ledger.total() == d({"pods": "2"})
    # the cache shows p1: its reservation becomes its observed usage (still 2)
    assert ledger.observe(("Pod", "a", "p1"), one) is False
    assert ledger.total() == d({"pods": "2"})
    # p2's create failed: the room comes back
    ledger.release(("Pod", "b", "p2"))
    assert ledger.admit(("Pod", "a", "p3"), one, hard, where="w") == []


def test_ledger_observe_tells_when_usage_went_down() -> None:
    ledger = Ledger()
    ref = ("Pod", "a", "p")
    assert ledger.observe(ref, d({"pods": "1", "requests.cpu": "1"})) is False
    assert ledger.observe(ref, d({"pods": "1", "requests.cpu": "1"})) is False  # unchanged
    assert ledger.observe(ref, {}) is True  # terminated: counts nothing any more
    assert ledger.total() == {}
    assert ledger.observe(ref, None) is False  # gone; was nothing already
    assert ledger.observed == {}


def test_ledger_only_checks_what_the_object_uses() -> None:
    ledger = Ledger()
    ledger.observe(("Pod", "a", "p"), d({"pods": "5"}))  # over a quota lowered meanwhile
    hard = d({"pods": "2", "services": "1"})
    assert ledger.admit(("Service", "a", "s"), d({"services": "1"}), hard, where="w") == []
    assert ledger.admit(("Service", "a", "t"), d({"services": "1"}), hard, where="w") != []


def test_status_used_spells_names_as_the_tenant_does() -> None:
    ledger = Ledger()
    ledger.observe(("Pod", "a", "p"), d({"pods": "1", "requests.cpu": "0.5"}))
    assert quota.status_used(ledger, ("cpu", "pods", "services")) == {"cpu": "500m", "pods": "1", "services": "0"}
    assert quota.status_used(None, ("pods",)) == {"pods": "0"}


def test_ledger_admits_an_update_by_what_it_adds() -> None:
    q = parse_hard
    hard = q({"requests.storage": "3Gi", "persistentvolumeclaims": "5"})
    ledger = Ledger()
    c1, c2 = ("PersistentVolumeClaim", "a", "c1"), ("PersistentVolumeClaim", "b", "c2")
    ledger.observe(c1, q({"requests.storage": "1Gi", "persistentvolumeclaims": "1"}))
    ledger.observe(c2, q({"requests.storage": "1Gi", "persistentvolumeclaims": "1"}))
    # unchanged or smaller: nothing to admit (the object is counted already)
    assert ledger.admit_growth(c1, q({"requests.storage": "1Gi", "persistentvolumeclaims": "1"}), hard, where="w") == []
    assert ledger.admit_growth(c1, q({"requests.storage": "500Mi"}), hard, where="w") == []
    assert ledger.reserved == {}
    # 1Gi → 3Gi adds 2Gi on top of 2Gi: over 3Gi
    (why,) = ledger.admit_growth(c1, q({"requests.storage": "3Gi", "persistentvolumeclaims": "1"}), hard,
                                 where="Tenant spec.isolation.resourceQuota")
    assert why == ("requests.storage: this change adds 2147483648, the tenant uses 2147483648 of 3221225472 "
                   "across all its namespaces (Tenant spec.isolation.resourceQuota)")
    assert ledger.total() == q({"requests.storage": "2Gi", "persistentvolumeclaims": "2"}), "nothing reserved"
    # 1Gi → 2Gi fits exactly; what it adds is held until the cache shows the grown claim
    assert ledger.admit_growth(c1, q({"requests.storage": "2Gi"}), hard, where="w") == []
    assert ledger.total()["requests.storage"] == q({"x": "3Gi"})["x"]
    assert ledger.admit_growth(c2, q({"requests.storage": "1100Mi"}), hard, where="w") != [], "the held room counts"
    assert ledger.admit_growth(c1, q({"requests.storage": "2Gi"}), hard, where="w") == [], "a retry adds nothing"
    assert ledger.total()["requests.storage"] == q({"x": "3Gi"})["x"]
    ledger.observe(c1, q({"requests.storage": "2Gi", "persistentvolumeclaims": "1"}))
    assert ledger.reserved == {}
    assert ledger.total() == q({"requests.storage": "3Gi", "persistentvolumeclaims": "2"})
    # an update that failed gives back what it held
    assert ledger.admit_growth(c2, q({"requests.storage": "1Gi", "persistentvolumeclaims": "2"}), hard,
                               where="w") == []
    ledger.release(c2)
    assert ledger.total() == q({"requests.storage": "3Gi", "persistentvolumeclaims": "2"})


def test_ledger_retry_of_a_reserved_create_with_more_usage_counts_its_own_reservation_once() -> None:
    hard = d({"pods": "3"})
    ledger = Ledger()
    assert ledger.admit(("Pod", "a", "p1"), d({"pods": "1"}), hard, where="w") == []
    assert ledger.admit(("Pod", "a", "p2"), d({"pods": "1"}), hard, where="w") == []
    # p1 again, now counting 2: 2 + p2's 1 = 3 fits; 3 + 1 would not
    assert ledger.admit(("Pod", "a", "p1"), d({"pods": "2"}), hard, where="w") == []
    assert ledger.admit(("Pod", "a", "p1"), d({"pods": "3"}), hard, where="w") != []


def test_ledger_growth_of_a_name_the_object_did_not_count_before() -> None:
    ledger = Ledger()
    svc = ("Service", "a", "s")
    ledger.observe(svc, d({"services": "1"}))
    (why,) = ledger.admit_growth(svc, d({"services": "1", "services.nodeports": "2"}),
                                 d({"services.nodeports": "1"}), where="w")
    assert why.startswith("services.nodeports: this change adds 2, the tenant uses 0 of 1")
    assert ledger.admit_growth(svc, d({"services": "1", "services.nodeports": "1"}),
                               d({"services.nodeports": "0"}), where="w") != [], "no node port at all"
    assert ledger.reserved == {}


def test_ledger_observe_of_an_unchanged_object_still_ends_its_reservation() -> None:
    # observe() returns at once for an object's next event with the same usage (most pod events),
    # but not while something is reserved for it: the event ends that reservation
    ledger = Ledger()
    ref = ("PersistentVolumeClaim", "a", "c")
    ledger.observe(ref, d({"requests.storage": "1"}))
    assert ledger.admit_growth(ref, d({"requests.storage": "3"}), d({"requests.storage": "10"}), where="w") == []
    assert ledger.total() == d({"requests.storage": "3"})
    assert ledger.observe(ref, d({"requests.storage": "1"})) is True
    assert ledger.total() == d({"requests.storage": "1"})
