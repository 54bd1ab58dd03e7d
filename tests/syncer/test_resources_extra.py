"""Extra kinds (Tenant spec.sync.extraKinds): which may be synced, discovery parsing, translation."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import REGISTRY
from syncer.resources import event as event_mod
from syncer.resources import extra as extra_mod
from syncer.resources.base import MetadataRules, TranslateContext, with_super_owned
from vcluster import naming
from vcluster.kube import Resource

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1")
SYNCED = tuple(k.resource for k in REGISTRY)
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


@pytest.mark.parametrize(("entry", "plural", "group", "fragment"), [
    ("widgets.example.com", "widgets", "example.com", None),
    ("podtemplates", "podtemplates", "", None),
    ("certificates.cert-manager.io", "certificates", "cert-manager.io", None),
    ("pods", "pods", "", "synced by the syncer already"),
    ("secrets", "secrets", "", "synced by the syncer already"),
    ("ingresses.networking.k8s.io", "ingresses", "networking.k8s.io", "synced by the syncer already"),
    ("nodes", "nodes", "", "built-in"),
    ("events", "events", "", "built-in"),
    ("leases.coordination.k8s.io", "leases", "coordination.k8s.io", "built-in"),
    ("deployments.apps", "deployments", "apps", "built-in"),
    ("jobs.batch", "jobs", "batch", "built-in"),
    ("rolebindings.rbac.authorization.k8s.io", "rolebindings", "rbac.authorization.k8s.io", "built-in"),
    ("resourcequotas", "resourcequotas", "", "built-in"),
    (f"tenants.{naming.GROUP}", "tenants", naming.GROUP, "virtualcluster itself"),
], ids=lambda v: v if isinstance(v, str) and v else None)
def test_which_extra_kinds_may_be_synced(entry: str, plural: str, group: str, fragment: str | None) -> None:
    assert extra_mod.parse(entry) == (plural, group)
    why = extra_mod.never_synced(plural, group, synced=SYNCED)
    if fragment is None:
        assert why is None
    else:
        assert why is not None
        assert fragment in why


def _list(**entry: Any) -> dict[str, Any]:
    base = {"name": "widgets", "namespaced": True, "kind": "Widget",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}
    return {"kind": "APIResourceList", "resources": [{"name": "widgets/status", "namespaced": True},
                                                     {**base, **entry}]}


@pytest.mark.parametrize(("doc", "want"), [
    (_list(), WIDGETS),
    (_list(namespaced=False), "cluster-scoped"),
    (_list(verbs=["get", "list"]), "does not allow"),
    (_list(name="gadgets"), "is not served"),
    (None, "is not served"),
], ids=["namespaced", "cluster-scoped", "read-only", "other-resource", "no-group-version"])
def test_discovery_document_to_resource(doc: dict[str, Any] | None, want: Resource | str) -> None:
    found = extra_mod.find_resource(doc, plural="widgets", group="example.com", version="v1")
    if isinstance(want, Resource):
        assert found == want
    else:
        assert isinstance(found, str)
        assert want in found


@pytest.mark.parametrize(("doc", "version"), [
    ({"kind": "APIGroup", "preferredVersion": {"groupVersion": "example.com/v2", "version": "v2"},
      "versions": [{"version": "v2"}, {"version": "v1"}]}, "v2"),
    ({"kind": "APIVersions", "versions": ["v1"]}, "v1"),
    (None, None),
], ids=["api-group", "core", "absent"])
def test_preferred_version(doc: dict[str, Any] | None, version: str | None) -> None:
    assert extra_mod.preferred_version(doc) == version


def v_widget(**extra: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "shop", "uid": "w-uid", "resourceVersion": "5",
                         "labels": {"app": "x", naming.LABEL_CLUSTER_KEY: "spoofed"}},
            "spec": {"size": 3, "colors": ["red"]}, "status": {"ready": False}, **extra}


def test_extra_kind_copies_payload_and_leaves_status_to_the_super_side() -> None:
    kind = extra_mod.extra_kind(WIDGETS)
    assert kind.kind == "widgets.example.com/v1"
    assert kind.namespaced
    p = kind.to_super(v_widget(data={"k": "v"}), CTX)
    assert p["apiVersion"] == "example.com/v1"
    assert p["kind"] == "Widget"
    assert p["metadata"]["namespace"] == naming.super_namespace(KEY, "shop")
    assert p["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == KEY
    assert p["metadata"]["annotations"][naming.ANN_OBJECT_UID] == "w-uid"
    assert p["spec"] == {"size": 3, "colors": ["red"]}
    assert p["data"] == {"k": "v"}
    assert "status" not in p
    assert "resourceVersion" not in p["metadata"]
    # the super side's status is no difference, and a replace keeps it
    live = {**p, "status": {"ready": True}, "metadata": {**p["metadata"], "resourceVersion": "9", "uid": "p"}}
    p_slim = kind.slim_super(live)
    assert kind.fingerprint(p) == p_slim["fp"]
    changed = kind.to_super(v_widget(spec={"size": 4}), CTX)
    assert kind.fingerprint(changed) != p_slim["fp"]
    update = kind.update(changed, p_slim)
    assert update.method == "replace"
    assert update.body["status"] == {"ready": True}
    assert update.body["metadata"]["resourceVersion"] == "9"
    assert update.body["spec"] == {"size": 4}


def test_extra_kind_follows_the_metadata_rules() -> None:
    rules = MetadataRules(opaque=("admin.example/",))
    kind = extra_mod.extra_kind(WIDGETS)
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", metadata=rules)
    v = v_widget()
    v["metadata"]["annotations"] = {"admin.example/owner": "tenant"}
    p = kind.to_super(v, ctx)
    assert "admin.example/owner" not in p["metadata"]["annotations"]
    live = {**p, "metadata": {**p["metadata"], "annotations": {**p["metadata"]["annotations"],
                                                                "admin.example/owner": "ops"}}}
    p_slim = kind.slim_super(live)
    desired = with_super_owned(p, p_slim, rules)
    assert kind.fingerprint(desired) == p_slim["fp"]


def test_tenant_event_is_about_the_tenant_object() -> None:
    body = event_mod.tenant_event(tenant_name="acme", tenant_uid="uid-1", type_="Warning",
                                  reason=event_mod.EXTRA_KIND_UNAVAILABLE, message="x" * 2000, now="t")
    assert body["involvedObject"] == {"apiVersion": naming.API_VERSION, "kind": "Tenant", "name": "acme",
                                      "uid": "uid-1"}
    assert body["metadata"]["namespace"] == event_mod.TENANT_EVENT_NAMESPACE
    assert len(body["message"]) == 1024
