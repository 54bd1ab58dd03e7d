"""The patrol's diff: missing, orphaned, stale, changed and upward differences."""

from __future__ import annotations

from typing import Any

from syncer.patrol import diff_kind, tenant_of
from syncer.queue import DOWN, UP
from syncer.resources import BY_KIND
from syncer.resources.base import TranslateContext
from vcluster import naming

KEY = naming.cluster_key("acme", "u")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u")
CM = BY_KIND["ConfigMap"]


def v_cm(name: str, uid: str, data: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "uid": uid}, "data": {"k": data}}


def p_of(v: dict[str, Any]) -> dict[str, Any]:
    return CM.slim_super(CM.to_super(v, CTX))


def test_diff_finds_every_kind_of_difference() -> None:
    same, changed, stale, missing = v_cm("same", "1"), v_cm("changed", "2"), v_cm("stale", "3"), v_cm("missing", "4")
    tenant = {("shop", v["metadata"]["name"]): v for v in (same, changed, stale, missing)}
    supers = {
        ("shop", "same"): p_of(same),
        ("shop", "changed"): p_of(v_cm("changed", "2", data="old")),
        ("shop", "stale"): p_of(v_cm("stale", "older-uid")),
        ("shop", "orphan"): p_of(v_cm("orphan", "5")),
    }
    diffs = {(ref[1], direction, reason) for ref, direction, reason in diff_kind(CM, tenant, supers, CTX)}
    assert diffs == {("changed", DOWN, "changed"), ("stale", DOWN, "stale"), ("missing", DOWN, "missing"),
                     ("orphan", DOWN, "orphan")}


def test_refused_objects_are_not_missing() -> None:
    v = v_cm("x", "refused-uid")
    assert diff_kind(CM, {("shop", "x"): v}, {}, CTX, refused={"refused-uid"}) == []


def test_pending_upward_changes_are_found() -> None:
    pod = BY_KIND["Pod"]
    v = {"metadata": {"name": "p", "namespace": "shop", "uid": "pu"}, "spec": {"containers": [{"name": "c"}]}}
    p = pod.to_super(v, CTX)
    p["spec"]["nodeName"] = "n1"
    p["status"] = {"phase": "Running"}
    diffs = diff_kind(pod, {("shop", "p"): v}, {("shop", "p"): pod.slim_super(p)}, CTX)
    assert diffs == [(("shop", "p"), UP, "upward")]


def test_tenant_of_maps_back_and_skips_token_secrets() -> None:
    v = v_cm("a", "1")
    p = p_of(v)
    token = {"metadata": {"namespace": "x", "labels": {naming.LABEL_CLUSTER_KEY: KEY},
                          "annotations": {naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT: "default",
                                          naming.ANN_OBJECT_NAME: "vc-token-default"}}}
    assert tenant_of(p) == (KEY, ("shop", "a"))
    assert tenant_of(token) is None
