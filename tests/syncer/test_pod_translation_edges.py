"""Pod translation at its edges: DNS, the token volume, env, host aliases, and what an update may change.

Why: a tenant pod must run in the super cluster yet behave as in its own
cluster, and each rewrite has a wrong way that still "works" on the happy
path: the tenant DNS after the tenant's own nameservers (the tenant's names
stop resolving), DNS rewritten for ``dnsPolicy: Default`` (the pod asked for
the node's resolver), a custom token path ignored (the app finds no token),
a service variable overriding the container's own.  Each such edge has a
case stating the expected super spec.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.resources import pod as pod_mod
from syncer.resources.base import TranslateContext
from vcluster import naming

KEY = naming.cluster_key("acme", "uid-1")
DNS = "10.96.0.10"
SECRET = naming.token_secret_name("default")


def ctx(**kw: Any) -> TranslateContext:
    return TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", **kw)


def v_pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


def down(v: dict[str, Any], **kw: Any) -> dict[str, Any]:
    before = copy.deepcopy(v)
    spec: dict[str, Any] = pod_mod.to_super(v, ctx(**kw))["spec"]
    assert v == before, "the tenant object is not ours to change"
    return spec


# ---- DNS ---------------------------------------------------------------------------------

SEARCHES = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        pytest.param({}, {"dnsPolicy": "None", "dnsConfig": {
            "nameservers": [DNS], "searches": SEARCHES, "options": [{"name": "ndots", "value": "5"}]}},
            id="default-policy-is-cluster-first"),
        pytest.param({"dnsPolicy": "ClusterFirst", "dnsConfig": {
            "nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"], "searches": ["corp.example"],
            "options": [{"name": "ndots", "value": "2"}]}},
            {"dnsPolicy": "None", "dnsConfig": {"nameservers": [DNS, "1.1.1.1", "8.8.8.8"],
                                                "searches": [*SEARCHES, "corp.example"],
                                                "options": [{"name": "ndots", "value": "2"}]}},
            id="tenant-dns-first-then-own-at-most-three"),
        pytest.param({"dnsPolicy": "Default"}, {"dnsPolicy": "Default"}, id="default-keeps-the-node-resolver"),
        pytest.param({"dnsPolicy": "ClusterFirstWithHostNet"}, {"dnsPolicy": "ClusterFirstWithHostNet"},
                     id="host-net-policy-untouched"),
        pytest.param({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}},
                     {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, id="none-is-the-tenants-choice"),
    ],
)
def test_dns(spec: dict[str, Any], want: dict[str, Any]) -> None:
    out = down(v_pod(**spec), dns_ip=DNS)
    assert {k: out[k] for k in ("dnsPolicy", "dnsConfig") if k in out} == want


def test_without_a_tenant_dns_the_pod_keeps_its_dns_settings() -> None:
    out = down(v_pod(dnsConfig={"nameservers": ["1.1.1.1"]}))
    assert "dnsPolicy" not in out
    assert out["dnsConfig"] == {"nameservers": ["1.1.1.1"]}


def test_dns_search_paths_use_the_tenant_cluster_domain() -> None:
    out = down(v_pod(), dns_ip=DNS, cluster_domain="corp.local")
    assert out["dnsConfig"]["searches"] == ["shop.svc.corp.local", "svc.corp.local", "corp.local"]


# ---- the service-account token volume -----------------------------------------------------


def _api_access(*sources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "kube-api-access-x", "projected": {"sources": list(sources), **extra}}


TOKEN = {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
CA = {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
NS = {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                 "path": "namespace"}]}}


@pytest.mark.parametrize(
    ("volume", "want"),
    [
        pytest.param(_api_access(TOKEN, CA, NS, defaultMode=420),
                     {"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
                         {"secret": {"name": SECRET, "items": [{"key": "token", "path": "token"},
                                                               {"key": "ca.crt", "path": "ca.crt"},
                                                               {"key": "namespace", "path": "namespace"}]}}]}},
                     id="standard"),
        pytest.param(_api_access({"serviceAccountToken": {"path": "auth/jwt"}},
                                 {"configMap": {"name": "kube-root-ca.crt", "items": [
                                     {"key": "ca.crt", "path": "certs/ca.pem"}]}}),
                     {"name": "kube-api-access-x", "projected": {"sources": [
                         {"secret": {"name": SECRET, "items": [{"key": "token", "path": "auth/jwt"},
                                                               {"key": "ca.crt", "path": "certs/ca.pem"}]}}]}},
                     id="custom-paths-kept"),
        pytest.param(_api_access({"serviceAccountToken": {}}, {"configMap": {"name": "kube-root-ca.crt"}}),
                     {"name": "kube-api-access-x", "projected": {"sources": [
                         {"secret": {"name": SECRET, "items": [{"key": "token", "path": "token"},
                                                               {"key": "ca.crt", "path": "ca.crt"}]}}]}},
                     id="default-paths"),
        pytest.param(_api_access(TOKEN, {"configMap": {"name": "app-config"}},
                                 {"secret": {"name": "creds"}},
                                 {"downwardAPI": {"items": [
                                     {"fieldRef": {"fieldPath": "metadata.namespace"}, "path": "ns"},
                                     {"fieldRef": {"fieldPath": "metadata.labels"}, "path": "labels"}]}}),
                     {"name": "kube-api-access-x", "projected": {"sources": [
                         {"secret": {"name": SECRET, "items": [{"key": "token", "path": "token"},
                                                               {"key": "namespace", "path": "ns"}]}},
                         {"configMap": {"name": "app-config"}}, {"secret": {"name": "creds"}},
                         {"downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.labels"},
                                                     "path": "labels"}]}}]}},
                     id="other-sources-kept"),
        pytest.param(_api_access(TOKEN, {"configMap": {"name": "kube-root-ca.crt", "items": [
            {"key": "other", "path": "other"}]}}),
                     {"name": "kube-api-access-x", "projected": {"sources": [
                         {"secret": {"name": SECRET, "items": [{"key": "token", "path": "token"}]}}]}},
                     id="only-the-ca-key-of-the-root-ca"),
    ],
)
def test_token_volume(volume: dict[str, Any], want: dict[str, Any]) -> None:
    v = v_pod(volumes=[volume])
    assert pod_mod.needs_token(v)
    assert down(v)["volumes"] == [want]


def test_token_secret_follows_the_service_account() -> None:
    for spec, sa in (({"serviceAccountName": "robot"}, "robot"), ({"serviceAccount": "legacy"}, "legacy"),
                     ({"serviceAccountName": "new", "serviceAccount": "old"}, "new"), ({}, "default")):
        out = down(v_pod(volumes=[_api_access(TOKEN)], **spec))
        assert out["serviceAccountName"] == sa
        assert "serviceAccount" not in out
        assert out["volumes"][0]["projected"]["sources"][0]["secret"]["name"] == naming.token_secret_name(sa)


def test_the_super_pod_never_mounts_a_super_token_and_is_not_pinned() -> None:
    out = down(v_pod(automountServiceAccountToken=True, nodeName="n1", enableServiceLinks=True))
    assert out["automountServiceAccountToken"] is False
    assert out["enableServiceLinks"] is False
    assert "nodeName" not in out
    assert "volumes" not in out


@pytest.mark.parametrize(
    ("volume", "needs"),
    [
        pytest.param({"name": "e", "emptyDir": {}}, False, id="empty-dir"),
        pytest.param(_api_access({"configMap": {"name": "x"}}), False, id="projected-without-token"),
        pytest.param({"name": "d", "downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.name"},
                                                             "path": "n"}]}}, False, id="downward-name"),
        pytest.param({"name": "d", "downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.namespace"},
                                                             "path": "n"}]}}, True, id="downward-namespace"),
    ],
)
def test_needs_token(volume: dict[str, Any], needs: bool) -> None:
    assert pod_mod.needs_token(v_pod(volumes=[volume])) is needs


def test_downward_volume_keeps_modes() -> None:
    volume = {"name": "d", "downwardAPI": {"defaultMode": 0o400, "items": [
        {"fieldRef": {"fieldPath": "metadata.namespace"}, "path": "ns", "mode": 0o444},
        {"fieldRef": {"fieldPath": "metadata.name"}, "path": "name"}]}}
    assert down(v_pod(volumes=[volume]))["volumes"] == [{"name": "d", "projected": {"defaultMode": 0o400, "sources": [
        {"downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.name"}, "path": "name"}]}},
        {"secret": {"name": SECRET, "items": [{"key": "namespace", "path": "ns", "mode": 0o444}]}}]}}]


# ---- env and host aliases ------------------------------------------------------------------

LINKS = (("db", "10.0.0.5", ({"port": 5432},)),)


def test_env_order_and_precedence() -> None:
    container = {"name": "c", "image": "x", "env": [
        {"name": "DB_SERVICE_HOST", "value": "mine"},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "1"}]}
    out = down(v_pod(containers=[container]), service_links=LINKS, apiserver_host="10.0.0.9",
               apiserver_port="6443")
    env = out["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.count("DB_SERVICE_HOST") == 1  # the container's own wins over the link
    assert names.index("DB_SERVICE_PORT") < names.index("NS")  # links first, as kubelet does
    values = {e["name"]: e.get("value") for e in env}
    assert (values["DB_SERVICE_HOST"], values["NS"], values["UID"]) == ("mine", "shop", "pod-uid")
    assert "valueFrom" in env[names.index("NODE")]
    assert values["KUBERNETES_SERVICE_PORT"] == "1"
    assert (values["KUBERNETES_SERVICE_HOST"], values["KUBERNETES_SERVICE_PORT_HTTPS"]) == ("10.0.0.9", "6443")
    assert names[-2:] == ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT_HTTPS"]


def test_service_links_off_means_no_link_variables() -> None:
    out = down(v_pod(enableServiceLinks=False), service_links=LINKS)
    assert "env" not in out["containers"][0]


def test_every_container_list_gets_the_env() -> None:
    spec = {"initContainers": [{"name": "i"}], "ephemeralContainers": [{"name": "e"}]}
    out = down(v_pod(**spec), apiserver_host="10.0.0.9", apiserver_port="6443")
    for list_name in ("initContainers", "containers", "ephemeralContainers"):
        assert {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.9"} in out[list_name][0]["env"]


def test_host_aliases_point_kubernetes_at_the_tenant_apiserver() -> None:
    own = [{"ip": "10.0.0.9", "hostnames": ["mine"]}, {"ip": "1.2.3.4", "hostnames": ["other"]}]
    out = down(v_pod(hostAliases=own), apiserver_host="10.0.0.9", apiserver_port="6443", cluster_domain="c.local")
    assert out["hostAliases"] == [{"ip": "1.2.3.4", "hostnames": ["other"]}, {"ip": "10.0.0.9", "hostnames": [
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.c.local"]}]


def test_a_pod_served_by_the_tenant_dns_gets_no_alias() -> None:
    """The tenant DNS answers ``kubernetes.default`` with the apiserver's Service (443 and 6443): an
    alias to the bare process address would send ``https://kubernetes.default.svc`` to port 443 there."""
    served = down(v_pod(), apiserver_host="10.0.0.9", apiserver_port="6443", dns_ip="10.96.0.53",
                  operator_dns=True)
    assert "hostAliases" not in served
    assert {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.9"} in served["containers"][0]["env"]
    # a pod with its own DNS keeps the alias: nothing else would answer the name for it
    own = down(v_pod(dnsPolicy="Default"), apiserver_host="10.0.0.9", apiserver_port="6443", dns_ip="10.96.0.53",
               operator_dns=True)
    assert own["hostAliases"][-1]["ip"] == "10.0.0.9"
    # so does one served by a tenant's own kube-dns copy: it would answer the tenant ClusterIP
    kube_dns = down(v_pod(), apiserver_host="10.0.0.9", apiserver_port="6443", dns_ip="10.96.0.53")
    assert kube_dns["hostAliases"][-1]["ip"] == "10.0.0.9"


def test_a_host_name_apiserver_gets_no_alias() -> None:
    out = down(v_pod(), apiserver_host="api.example", apiserver_port="6443")
    assert "hostAliases" not in out


@pytest.mark.parametrize(
    ("links", "want"),
    [
        pytest.param((("a", "", ({"port": 1},)),), [], id="no-ip"),
        pytest.param((("a", "None", ({"port": 1},)),), [], id="headless"),
        pytest.param((("a", "10.0.0.1", ()),), [], id="no-ports"),
        pytest.param((("my-svc", "10.0.0.1", ({"port": 53, "protocol": "UDP", "name": "dns-udp"},)),),
                     [("MY_SVC_SERVICE_HOST", "10.0.0.1"), ("MY_SVC_SERVICE_PORT", "53"),
                      ("MY_SVC_SERVICE_PORT_DNS_UDP", "53"), ("MY_SVC_PORT", "udp://10.0.0.1:53"),
                      ("MY_SVC_PORT_53_UDP", "udp://10.0.0.1:53"), ("MY_SVC_PORT_53_UDP_PROTO", "udp"),
                      ("MY_SVC_PORT_53_UDP_PORT", "53"), ("MY_SVC_PORT_53_UDP_ADDR", "10.0.0.1")],
                     id="named-udp-port"),
    ],
)
def test_service_env(links: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...],
                     want: list[tuple[str, str]]) -> None:
    assert [(e["name"], e["value"]) for e in pod_mod.service_env(links)] == want


# ---- updates and status ----------------------------------------------------------------------


def test_only_images_deadline_and_metadata_are_synced_and_patched() -> None:
    v = v_pod(initContainers=[{"name": "i", "image": "busybox"}], activeDeadlineSeconds=30)
    v["metadata"]["labels"] = {"app": "web"}
    p = pod_mod.to_super(v, ctx())
    synced = pod_mod.synced(p)
    assert synced["images"] == [["i", "busybox"], ["c", "nginx"]]
    assert synced["activeDeadlineSeconds"] == 30
    assert synced["labels"]["app"] == "web"
    patch = pod_mod.patch_update(p, {"metadata": {"labels": {"app": "old"}, "annotations": {}}})
    assert patch["spec"] == {"initContainers": [{"name": "i", "image": "busybox"}],
                             "containers": [{"name": "c", "image": "nginx"}], "activeDeadlineSeconds": 30}
    assert patch["metadata"]["labels"]["app"] == "web"
    assert pod_mod.patch_update({"metadata": {}, "spec": {}}, {"metadata": {}}) == {}


@pytest.mark.parametrize(
    ("v_status", "p_status", "patch"),
    [
        pytest.param({"phase": "Running"}, {"phase": "Running"}, None, id="equal"),
        pytest.param({"phase": "Pending"}, {"phase": "Running", "podIP": "10.1.0.5"},
                     {"phase": "Running", "podIP": "10.1.0.5"}, id="changed-and-new"),
        pytest.param({"phase": "Running", "message": "x"}, {"phase": "Running"}, {"message": None}, id="removed"),
        # the super LimitRange gave the super pod requests: its QoS class is not the tenant pod's, and the
        # tenant apiserver refuses any change of it (immutable)
        pytest.param({"phase": "Pending", "qosClass": "BestEffort"}, {"phase": "Running", "qosClass": "Burstable"},
                     {"phase": "Running"}, id="qos-class-kept"),
        pytest.param({"qosClass": "BestEffort"}, {"qosClass": "Burstable"}, None, id="only-qos-class-differs"),
        pytest.param({"phase": "Pending", "qosClass": "BestEffort"}, {"phase": "Pending"}, None,
                     id="qos-class-not-removed"),
    ],
)
def test_status_patch(v_status: dict[str, Any], p_status: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert pod_mod.status_patch(v_status, p_status) == patch


def test_super_extras_and_slim_tenant() -> None:
    assert pod_mod.super_extras({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}) == {
        "nodeName": "n1", "status": {"phase": "Running"}}
    assert pod_mod.super_extras({}) == {"nodeName": None, "status": {}}
    v = v_pod()
    v["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert "managedFields" not in pod_mod.slim_tenant(v)["metadata"]


# ---- upward: the Binding and the status after it -----------------------------------------

SCHEDULED = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t1"}


def test_the_binding_is_the_kubernetes_binding_of_the_tenant_pod() -> None:
    v = v_pod()
    p_slim = {"metadata": {}, "fp": "f", "nodeName": "n1", "status": {"phase": "Pending", "conditions": [SCHEDULED]}}
    (bind,) = [a for a in pod_mod.upward(v, p_slim) if a.op == "bind"]
    assert bind.body == {"apiVersion": "v1", "kind": "Binding",
                         "metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}


def test_a_terminating_tenant_pod_is_not_bound() -> None:
    v = v_pod()
    v["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    p_slim = {"metadata": {}, "fp": "f", "nodeName": "n1", "status": {"phase": "Running"}}
    assert [a.op for a in pod_mod.upward(v, p_slim)] == ["status"]


def test_the_binding_replaces_the_tenants_own_pod_scheduled_condition() -> None:
    v = v_pod()
    v["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}, {"type": "Other", "status": "True"}]}
    p_slim = {"metadata": {}, "fp": "f", "nodeName": "n1", "status": {"phase": "Pending", "conditions": [
        {"type": "Other", "status": "True"}, SCHEDULED]}}
    assert [a.op for a in pod_mod.upward(v, p_slim)] == ["bind"]


def test_the_super_pod_is_a_v1_pod() -> None:
    p = pod_mod.to_super(v_pod(), ctx())
    assert (p["apiVersion"], p["kind"]) == ("v1", "Pod")


def test_service_env_is_sorted_by_service_and_defaults_to_tcp() -> None:
    links = (("zeta", "10.0.0.1", ({"port": 80},)), ("alpha", "10.0.0.2", ({"port": 81},)))
    env = [(e["name"], e["value"]) for e in pod_mod.service_env(links)]
    assert env[0] == ("ALPHA_SERVICE_HOST", "10.0.0.2")
    assert ("ALPHA_PORT", "tcp://10.0.0.2:81") in env
    assert ("ZETA_PORT_80_TCP_PROTO", "tcp") in env
    assert [n for n, _ in env].index("ZETA_SERVICE_HOST") > [n for n, _ in env].index("ALPHA_PORT_81_TCP_ADDR")


def test_downward_env_of_a_pod_without_namespace_or_uid_is_empty_strings() -> None:
    container = {"name": "c", "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                      {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]}
    v = v_pod(containers=[container])
    del v["metadata"]["uid"]
    env = down(v)["containers"][0]["env"]
    assert env == [{"name": "NS", "value": "shop"}, {"name": "UID", "value": ""}]


def test_slim_tenant_takes_pods_without_managed_fields_or_metadata() -> None:
    v = v_pod()
    assert pod_mod.slim_tenant(v) is v
    assert v["metadata"]["name"] == "web"
    assert pod_mod.slim_tenant({"spec": {}}) == {"spec": {}}
