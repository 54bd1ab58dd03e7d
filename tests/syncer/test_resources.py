"""Per-kind pure translation: tenant object → super object, fingerprints, upward actions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.resources import BY_KIND, REGISTRY
from syncer.resources import event as event_mod
from syncer.resources import pod as pod_mod
from syncer.resources.base import TranslateContext
from vcluster import naming
from vcluster.policy import PodPolicy

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", apiserver_host="10.0.0.9",
                       apiserver_port="6443")


def v_pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid", "labels": {"app": "web",
                     naming.LABEL_CLUSTER_KEY: "spoofed"}, "ownerReferences": [{"uid": "rs"}]},
        "spec": {
            "serviceAccountName": "default",
            "nodeName": None,
            "containers": [{"name": "c", "image": "nginx", "env": [
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            ], "volumeMounts": [{"name": "kube-api-access-abc", "mountPath": "/var/run/secrets/x"}]}],
            "volumes": [{"name": "kube-api-access-abc", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}],
        },
        "status": {"phase": "Pending"},
    }
    base["spec"].pop("nodeName")
    base["spec"].update(spec)
    return base


def test_registry_is_explicit_and_ordered() -> None:
    kinds = [k.kind for k in REGISTRY]
    assert kinds[0] == "Namespace"
    assert kinds.index("ServiceAccount") < kinds.index("Pod")
    assert set(BY_KIND) == set(kinds)


def test_pod_goes_down_with_tenant_identity() -> None:
    p = pod_mod.to_super(v_pod(), CTX)
    meta = p["metadata"]
    assert meta["namespace"] == naming.super_namespace(KEY, "shop")
    assert meta["labels"][naming.LABEL_CLUSTER_KEY] == KEY, "a tenant cannot spoof our labels"
    assert meta["labels"]["app"] == "web"
    assert meta["annotations"][naming.ANN_OBJECT_UID] == "pod-uid"
    assert "ownerReferences" not in meta
    spec = p["spec"]
    assert spec["automountServiceAccountToken"] is False
    (vol,) = spec["volumes"]
    assert vol["name"] == "kube-api-access-abc"
    (source,) = vol["projected"]["sources"]
    assert source["secret"]["name"] == naming.token_secret_name("default")
    assert {i["key"] for i in source["secret"]["items"]} == {"token", "ca.crt", "namespace"}
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["MY_NS"] == "shop"
    assert env["MY_UID"] == "pod-uid"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.9"
    assert spec["hostAliases"][-1]["hostnames"][0] == "kubernetes"


def test_pod_translation_does_not_touch_the_tenant_object() -> None:
    v = v_pod()
    before = copy.deepcopy(v)
    pod_mod.to_super(v, CTX)
    assert v == before


def test_pod_gets_tenant_dns_and_policy() -> None:
    policy = PodPolicy(node_selector={"pool": "tenants"}, tolerations=({"key": "t", "operator": "Exists"},),
                       runtime_class_name="gvisor")
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u", policy=policy, dns_ip="10.96.0.77")
    spec = pod_mod.to_super(v_pod(), ctx)["spec"]
    assert spec["dnsPolicy"] == "None"
    assert spec["dnsConfig"]["nameservers"][0] == "10.96.0.77"
    assert spec["dnsConfig"]["searches"][0] == "shop.svc.cluster.local"
    assert spec["nodeSelector"] == {"pool": "tenants"}
    assert {"key": "t", "operator": "Exists"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "gvisor"


def test_a_changed_external_name_is_drift() -> None:
    """An ExternalName Service (where the policy allows it) whose alias the tenant changes must be
    updated below: the alias is part of what is kept equal."""
    kind = BY_KIND["Service"]
    v = {"metadata": {"name": "alias", "namespace": "shop", "uid": "svc"},
         "spec": {"type": "ExternalName", "externalName": "db.example.invalid"}}
    super_copy = kind.to_super(v, CTX)
    assert super_copy["spec"]["externalName"] == "db.example.invalid"
    assert kind.synced(kind.to_super(v, CTX)) == kind.synced(super_copy)
    changed = copy.deepcopy(v)
    changed["spec"]["externalName"] = "db2.example.invalid"
    assert kind.synced(kind.to_super(changed, CTX)) != kind.synced(super_copy)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({"hostNetwork": True}, "hostNetwork", id="host-network"),
        pytest.param({"hostPID": True}, "hostPID", id="host-pid"),
        pytest.param({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "hostPath", id="host-path"),
        pytest.param({"nodeName": "node-1"}, "nodeName", id="pinned-node"),
        pytest.param({"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
                     "privileged", id="privileged"),
    ],
)
def test_forbidden_pods_are_refused(spec: dict[str, Any], fragment: str) -> None:
    reasons = pod_mod.violations(v_pod(**spec), CTX)
    assert any(fragment in r for r in reasons), reasons


def test_plain_pod_is_allowed() -> None:
    assert pod_mod.violations(v_pod(), CTX) == []


def test_pod_upward_binds_then_copies_status() -> None:
    v = v_pod()
    p_full = pod_mod.to_super(v, CTX)
    p_full["metadata"]["uid"] = "super-uid"
    p_full["spec"]["nodeName"] = "kwok-node-0"
    p_full["status"] = {"phase": "Running", "podIP": "10.1.0.5"}
    p_slim = BY_KIND["Pod"].slim_super(p_full)
    actions = pod_mod.upward(v, p_slim)
    assert [a.op for a in actions] == ["bind", "status"]
    assert actions[0].body["target"]["name"] == "kwok-node-0"
    assert actions[1].body["status"] == {"phase": "Running", "podIP": "10.1.0.5"}
    v["spec"]["nodeName"] = "kwok-node-0"
    v["status"] = dict(p_full["status"])
    assert pod_mod.upward(v, p_slim) == []


def test_fingerprint_sees_changes_that_matter_and_ignores_server_defaults() -> None:
    kind = BY_KIND["Pod"]
    desired = kind.to_super(v_pod(), CTX)
    observed = copy.deepcopy(desired)
    observed["spec"]["tolerations"] = [{"key": "node.kubernetes.io/not-ready"}]  # added by the super cluster
    observed["spec"]["nodeName"] = "n"
    assert kind.fingerprint(desired) == kind.fingerprint(observed)
    observed["spec"]["containers"][0]["image"] = "evil"
    assert kind.fingerprint(desired) != kind.fingerprint(observed)
    patch = kind.update(desired, kind.slim_super(observed)).body
    assert patch["spec"]["containers"] == [{"name": "c", "image": "nginx"}]


def test_service_drops_cluster_ip_and_sends_super_ip_up() -> None:
    kind = BY_KIND["Service"]
    v = {"metadata": {"name": "web", "namespace": "shop", "uid": "svc"},
         "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "type": "NodePort", "selector": {"a": "b"},
                  "ports": [{"port": 80, "nodePort": 30001, "protocol": "TCP"}]}}
    p = kind.to_super(v, CTX)
    assert "clusterIP" not in p["spec"]
    assert "nodePort" not in p["spec"]["ports"][0]
    p["spec"]["clusterIP"] = "10.96.3.4"
    p["metadata"]["uid"] = "x"
    actions = kind.upward(v, kind.slim_super(p)) if kind.upward else []
    assert actions[0].body["metadata"]["annotations"][naming.ANN_SUPER_CLUSTER_IP] == "10.96.3.4"


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        pytest.param("Service", {"metadata": {"name": "kubernetes", "namespace": "default"}}, id="kubernetes-svc"),
        pytest.param("ServiceAccount", {"metadata": {"name": "default", "namespace": "x"}}, id="default-sa"),
        pytest.param("ConfigMap", {"metadata": {"name": "kube-root-ca.crt", "namespace": "x"}}, id="root-ca"),
        pytest.param("Secret", {"metadata": {"name": "t", "namespace": "x"},
                                "type": "kubernetes.io/service-account-token"}, id="legacy-token"),
    ],
)
def test_system_objects_are_not_synced(kind: str, obj: dict[str, Any]) -> None:
    assert BY_KIND[kind].skip(obj)


def test_namespace_is_prefixed_labelled_and_annotated() -> None:
    p = BY_KIND["Namespace"].to_super({"metadata": {"name": "shop", "uid": "ns-uid"}}, CTX)
    assert p["metadata"]["name"] == naming.super_namespace(KEY, "shop")
    labels = p["metadata"]["labels"]
    assert labels[naming.LABEL_NAMESPACE_ROLE] == naming.ROLE_WORKLOAD
    assert labels[naming.LABEL_MANAGED_BY] == naming.MANAGED_BY_SYNCER
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert p["metadata"]["annotations"][naming.ANN_TENANT_NAMESPACE] == "shop"
    observed = copy.deepcopy(p)
    observed["metadata"]["labels"]["kubernetes.io/metadata.name"] = p["metadata"]["name"]
    assert BY_KIND["Namespace"].fingerprint(observed) == BY_KIND["Namespace"].fingerprint(p)


def test_configmap_update_is_a_full_replace() -> None:
    kind = BY_KIND["ConfigMap"]
    v = {"metadata": {"name": "cfg", "namespace": "shop", "uid": "c"}, "data": {"a": "1"}}
    desired = kind.to_super(v, CTX)
    old = copy.deepcopy(desired)
    old["data"] = {"a": "0", "b": "2"}
    old["metadata"]["resourceVersion"] = "7"
    slim = kind.slim_super(old)
    assert kind.fingerprint(desired) != slim["fp"]
    update = kind.update(desired, slim)
    assert update.method == "replace"
    assert update.body["data"] == {"a": "1"}
    assert update.body["metadata"]["resourceVersion"] == "7"


def test_event_goes_up_with_tenant_names() -> None:
    p_event = {"metadata": {"name": "web.1", "namespace": naming.super_namespace(KEY, "shop")},
               "involvedObject": {"kind": "Pod", "name": "web", "namespace": "x", "uid": "super"},
               "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 1}
    v_event = event_mod.to_tenant(p_event, tenant_namespace="shop", v_uid="pod-uid")
    assert v_event["metadata"] == {"name": "web.1", "namespace": "shop"}
    assert v_event["involvedObject"]["namespace"] == "shop"
    assert v_event["involvedObject"]["uid"] == "pod-uid"
    assert v_event["reason"] == "Scheduled"


@pytest.mark.parametrize(("target", "domain", "expected"), [
    ("web.shop.svc.cluster.local", "cluster.local", f"web.{naming.super_namespace(KEY, 'shop')}.svc.cluster.local"),
    ("web.shop.svc.cluster.local.", "cluster.local", f"web.{naming.super_namespace(KEY, 'shop')}.svc.cluster.local"),
    ("db-0.db.shop.svc.corp.example", "corp.example",
     f"db-0.db.{naming.super_namespace(KEY, 'shop')}.svc.corp.example"),
    # another tenant's super namespace becomes one of this tenant's that cannot exist
    ("web.other-9f9f9f--shop.svc.cluster.local", "cluster.local",
     f"web.{naming.super_namespace(KEY, 'other-9f9f9f--shop')}.svc.cluster.local"),
    # outside the tenant's domain, or not a service name: as written
    ("db.example.invalid", "cluster.local", "db.example.invalid"),
    ("web.shop.svc.cluster.local", "corp.example", "web.shop.svc.cluster.local"),
    ("shop.svc.cluster.local", "cluster.local", "shop.svc.cluster.local"),
    ("_http._tcp.web.shop.svc.cluster.local", "cluster.local", "_http._tcp.web.shop.svc.cluster.local"),
])
def test_an_external_name_in_the_tenants_domain_names_the_super_copy(target: str, domain: str,
                                                                    expected: str) -> None:
    kind = BY_KIND["Service"]
    v = {"metadata": {"name": "alias", "namespace": "shop", "uid": "svc"},
         "spec": {"type": "ExternalName", "externalName": target}}
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", cluster_domain=domain)
    assert kind.to_super(v, ctx)["spec"]["externalName"] == expected
