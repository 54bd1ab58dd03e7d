"""PodDisruptionBudgets go down with their spec (policy/v1 fields only) and the tenant's identity."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import BY_KIND, REGISTRY
from syncer.resources import pdb as pdb_mod
from syncer.resources.base import TranslateContext
from vcluster import naming

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1")
SELECTOR = {"matchLabels": {"app": "web"}}


def v_pdb(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop", "uid": "pdb-uid", "resourceVersion": "7",
                         "labels": {"team": "blue"}, "generation": 2},
            "spec": spec,
            "status": {"currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2}}


@pytest.mark.parametrize(("spec", "want"), [
    ({"selector": SELECTOR, "minAvailable": 1}, {"selector": SELECTOR, "minAvailable": 1}),
    ({"selector": SELECTOR, "maxUnavailable": "25%"}, {"selector": SELECTOR, "maxUnavailable": "25%"}),
    ({"selector": SELECTOR, "minAvailable": "50%", "unhealthyPodEvictionPolicy": "AlwaysAllow"},
     {"selector": SELECTOR, "minAvailable": "50%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}),
    ({"selector": {}, "maxUnavailable": 0}, {"selector": {}, "maxUnavailable": 0}),
    ({"selector": SELECTOR, "minAvailable": 1, "futureField": True}, {"selector": SELECTOR, "minAvailable": 1}),
], ids=["min-available", "max-unavailable-percent", "unhealthy-policy", "all-pods-none-disrupted", "unknown-dropped"])
def test_pdb_goes_down_with_its_spec(spec: dict[str, Any], want: dict[str, Any]) -> None:
    p_obj = pdb_mod.to_super(v_pdb(**spec), CTX)
    assert p_obj["apiVersion"] == "policy/v1"
    assert p_obj["kind"] == "PodDisruptionBudget"
    assert p_obj["spec"] == want
    assert "status" not in p_obj, "the tenant's status is its own disruption controller's"
    meta = p_obj["metadata"]
    assert meta["namespace"] == naming.super_namespace(KEY, "shop")
    assert meta["name"] == "web"
    assert meta["labels"]["team"] == "blue"
    assert meta["labels"][naming.LABEL_CLUSTER_KEY] == KEY
    assert meta["annotations"][naming.ANN_OBJECT_UID] == "pdb-uid"
    assert "resourceVersion" not in meta


def test_pdb_fingerprint_is_equal_on_desired_and_observed_and_sees_spec_drift() -> None:
    kind = pdb_mod.PDB
    desired = kind.to_super(v_pdb(selector=SELECTOR, minAvailable=1), CTX)
    observed = {**desired, "metadata": {**desired["metadata"], "uid": "super-uid", "resourceVersion": "99"},
                "status": {"currentHealthy": 0, "disruptionsAllowed": 0}}
    assert kind.fingerprint(desired) == kind.slim_super(observed)["fp"]
    edited = {**observed, "spec": {**observed["spec"], "minAvailable": 0}}
    assert kind.fingerprint(desired) != kind.slim_super(edited)["fp"], "a hand edit in the super cluster is drift"


def test_pdb_is_registered_before_pods() -> None:
    kinds = [k.kind for k in REGISTRY]
    assert BY_KIND["PodDisruptionBudget"] is pdb_mod.PDB
    assert kinds.index("PodDisruptionBudget") < kinds.index("Pod")
    assert pdb_mod.PDB.upward is None
