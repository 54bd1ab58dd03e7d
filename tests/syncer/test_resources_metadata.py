"""Tenant ``spec.sync`` metadata rules: opaque and transparent prefixes (pure functions)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from syncer import patrol as patrol_mod
from syncer.resources import BY_KIND
from syncer.resources.base import (
    MetadataRules,
    TranslateContext,
    is_ours,
    transparent_patch,
    with_super_owned,
)
from vcluster import naming

KEY = naming.cluster_key("acme", "uid-1")
RULES = MetadataRules(opaque=("admin.example/", "quota."), transparent=("hook.example/",))
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", metadata=RULES)
OURS = naming.LABEL_CLUSTER_KEY
NSLABEL = naming.tenant_label_key("admin.example/x")


@pytest.mark.parametrize(("key", "owned", "transparent"), [
    ("admin.example/owner", True, False),
    ("quota.example.com/x", True, False),        # a plain string prefix, as in VirtualCluster
    ("hook.example/sidecar", True, True),
    ("admin.examples/x", False, False),          # a trailing "/" means exactly that domain
    ("app", False, False),
    ("example.com/admin.example/", False, False),
    (OURS, False, False),                        # ours even if a prefix matched
    (NSLABEL, False, False),                     # our nslabel subdomain
], ids=["opaque", "opaque-plain-prefix", "transparent", "other-domain", "plain", "prefix-not-at-start",
        "ours", "ours-subdomain"])
def test_which_keys_are_super_owned(key: str, owned: bool, transparent: bool) -> None:
    assert RULES.super_owned(key) is owned
    assert RULES.is_transparent(key) is transparent


@pytest.mark.parametrize(("rules", "key"), [
    (MetadataRules(opaque=(naming.GROUP,)), OURS),
    (MetadataRules(transparent=("",)), OURS),
], ids=["opaque-covers-our-group", "empty-prefix"])
def test_our_keys_are_never_super_owned(rules: MetadataRules, key: str) -> None:
    assert is_ours(key)
    assert not rules.super_owned(key)
    assert not rules.is_transparent(key)


def test_no_rules_own_nothing() -> None:
    assert not MetadataRules()
    assert not MetadataRules().super_owned("admin.example/x")


def v_cm(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
            "metadata": {"name": "cfg", "namespace": "shop", "uid": "cm-uid", **meta}}


TENANT_META = {
    "labels": {"app": "web", "admin.example/tier": "gold", "hook.example/x": "tenant"},
    "annotations": {"note": "hi", "quota.example.com/limit": "9", "hook.example/injected": "tenant"},
}


@pytest.mark.parametrize(("kind", "obj"), [
    ("ConfigMap", v_cm(**TENANT_META)),
    ("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "uid": "u",
                                                            **TENANT_META},
             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    ("Service", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop",
                                                                    "uid": "u", **TENANT_META},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
], ids=["configmap", "pod", "service"])
def test_tenant_values_under_super_owned_prefixes_do_not_go_down(kind: str, obj: dict[str, Any]) -> None:
    meta = BY_KIND[kind].to_super(obj, CTX)["metadata"]
    assert meta["labels"]["app"] == "web"
    assert meta["annotations"]["note"] == "hi"
    for key in ("admin.example/tier", "hook.example/x"):
        assert key not in meta["labels"]
    for key in ("quota.example.com/limit", "hook.example/injected"):
        assert key not in meta["annotations"]
    # without rules they are ordinary tenant metadata
    plain = BY_KIND[kind].to_super(obj, dataclasses.replace(CTX, metadata=MetadataRules()))["metadata"]
    assert plain["labels"]["admin.example/tier"] == "gold"


def test_namespace_labels_under_super_owned_prefixes_stay_in_the_tenant() -> None:
    v_ns = {"metadata": {"name": "shop", "uid": "ns-uid", "labels": {"team": "a", "admin.example/x": "y"}}}
    labels = BY_KIND["Namespace"].to_super(v_ns, CTX)["metadata"]["labels"]
    assert naming.tenant_label_key("team") in labels
    assert NSLABEL not in labels


def super_copy(kind: str, v_obj: dict[str, Any], **extra: dict[str, str]) -> dict[str, Any]:
    """The super object as the apiserver holds it: our copy plus what an admin or webhook added."""
    p = BY_KIND[kind].to_super(v_obj, CTX)
    for field_name, values in extra.items():
        p["metadata"].setdefault(field_name, {}).update(values)
    p["metadata"]["resourceVersion"] = "7"
    return p


SUPER_ADDED = {"labels": {"admin.example/tier": "platinum"},
               "annotations": {"quota.example.com/limit": "100", "hook.example/injected": "sidecar-v2"}}


@pytest.mark.parametrize("kind", ["ConfigMap", "Pod", "Namespace"], ids=str.lower)
def test_super_owned_keys_survive_updates_and_do_not_count_as_drift(kind: str) -> None:
    k = BY_KIND[kind]
    v_obj = v_cm(labels={"app": "web"}) if kind != "Namespace" else {
        "metadata": {"name": "shop", "uid": "ns-uid", "labels": {"app": "web"}}}
    if kind == "Pod":
        v_obj = {**v_obj, "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        v_obj.pop("data")
    p_slim = k.slim_super(super_copy(kind, v_obj, **SUPER_ADDED))
    desired = with_super_owned(k.to_super(v_obj, CTX), p_slim, RULES)
    assert k.fingerprint(desired) == p_slim["fp"], "super-owned keys alone are no difference"
    update = k.update(desired, p_slim)
    body_meta = update.body.get("metadata") or {}
    if update.method == "replace":
        assert body_meta["labels"]["admin.example/tier"] == "platinum"
        assert body_meta["annotations"]["quota.example.com/limit"] == "100"
        assert body_meta["annotations"]["hook.example/injected"] == "sidecar-v2"
    else:
        assert body_meta == {"labels": {}, "annotations": {}} or not any(body_meta.values()), body_meta
    # a real tenant change is still seen, and the update still keeps the super's keys
    v_changed = {**v_obj, "metadata": {**v_obj["metadata"], "labels": {"app": "shop",
                                                                        "admin.example/tier": "tenant-try"}}}
    desired = with_super_owned(k.to_super(v_changed, CTX), p_slim, RULES)
    assert k.fingerprint(desired) != p_slim["fp"]
    update = k.update(desired, p_slim)
    labels = update.body["metadata"]["labels"]
    assert labels.get("admin.example/tier", "platinum") == "platinum", "never overwritten by the tenant"
    assert all(v is not None for v in update.body["metadata"].get("annotations", {}).values()), "never removed"
    if update.method == "patch":
        assert labels == {("app" if kind != "Namespace" else naming.tenant_label_key("app")): "shop"}


def test_patrol_sees_no_drift_from_super_owned_keys() -> None:
    k = BY_KIND["ConfigMap"]
    v_obj = v_cm(labels={"app": "web"})
    p_slim = k.slim_super(super_copy("ConfigMap", v_obj, **SUPER_ADDED))
    p_slim_same = k.slim_super(super_copy("ConfigMap", v_obj))
    assert patrol_mod.diff_kind(k, {("shop", "cfg"): v_obj}, {("shop", "cfg"): p_slim_same}, CTX) == []
    diffs = patrol_mod.diff_kind(k, {("shop", "cfg"): v_obj}, {("shop", "cfg"): p_slim}, CTX)
    assert [d[2] for d in diffs] == ["upward"], "only the transparent annotation has to go up"


@pytest.mark.parametrize(("v_meta", "p_meta", "patch"), [
    ({}, {"annotations": {"hook.example/a": "1", "other": "x"}}, {"annotations": {"hook.example/a": "1"}}),
    ({"annotations": {"hook.example/a": "1"}}, {"annotations": {"hook.example/a": "2"}},
     {"annotations": {"hook.example/a": "2"}}),
    ({"labels": {"hook.example/a": "1", "mine": "y"}}, {"labels": {}}, {"labels": {"hook.example/a": None}}),
    ({"annotations": {"hook.example/a": "1"}}, {"annotations": {"hook.example/a": "1"}}, None),
    ({}, {"annotations": {"admin.example/a": "1", OURS: "k"}}, None),
], ids=["copied-up", "updated", "removed", "equal", "opaque-and-ours-stay-down"])
def test_transparent_keys_go_up(v_meta: dict[str, Any], p_meta: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert transparent_patch({"metadata": v_meta}, {"metadata": p_meta}, RULES) == patch


def test_transparent_keys_copied_up_do_not_come_back_down() -> None:
    """No ping-pong: the tenant object with the copied-up key translates to the same super object."""
    k = BY_KIND["Pod"]
    v_pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "p", "namespace": "shop", "uid": "u"},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    p_slim = k.slim_super(super_copy("Pod", v_pod, annotations={"hook.example/injected": "yes"}))
    patch = transparent_patch(v_pod, p_slim, RULES)
    assert patch == {"annotations": {"hook.example/injected": "yes"}}
    v_after = {**v_pod, "metadata": {**v_pod["metadata"], **patch}}
    assert transparent_patch(v_after, p_slim, RULES) is None
    desired = with_super_owned(k.to_super(v_after, CTX), p_slim, RULES)
    assert k.fingerprint(desired) == p_slim["fp"]


def test_without_rules_nothing_changes() -> None:
    k = BY_KIND["ConfigMap"]
    desired = k.to_super(v_cm(), CTX)
    assert with_super_owned(desired, {"metadata": {"annotations": {"admin.example/a": "1"}}}, MetadataRules()) \
        is desired
    assert transparent_patch(v_cm(), {"metadata": {"annotations": {"hook.example/a": "1"}}}, MetadataRules()) is None


@pytest.mark.parametrize(("kind", "patch_type"), [("Pod", "strategic"), ("Namespace", "merge")],
                         ids=["pod-containers-merge-by-name", "namespace"])
def test_update_patches_are_sent_so_the_apiserver_accepts_them(kind: str, patch_type: str) -> None:
    """A pod's containers list must merge by name: a JSON merge patch of [{name, image}] would drop
    every other container field, which the apiserver refuses for a running pod."""
    k = BY_KIND[kind]
    v_obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "p", "namespace": "shop",
                                                                           "uid": "u", "labels": {"a": "1"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx", "env": [{"name": "X"}]}]}}
    p_slim = k.slim_super(k.to_super(v_obj, CTX))
    v_obj["metadata"]["labels"] = {"a": "2"}
    update = k.update(k.to_super(v_obj, CTX), p_slim)
    assert update.method == "patch"
    assert update.patch_type == patch_type
