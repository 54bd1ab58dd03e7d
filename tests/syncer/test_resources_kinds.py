"""Pure translation of the newer kinds: PVCs, NetworkPolicies, Ingresses, refusals, pod env and volumes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.resources import BY_KIND
from syncer.resources import event as event_mod
from syncer.resources import networkpolicy as np_mod
from syncer.resources import pod as pod_mod
from syncer.resources import pvc as pvc_mod
from syncer.resources import tokens as tokens_mod
from syncer.resources.base import TranslateContext
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import PodPolicy

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1",
                       policy=PodPolicy(allowed_storage_classes=("standard",)))
TENANT_WIDE = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}}}


def obj(kind: str, name: str = "x", ns: str = "shop", **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": ns, "uid": f"{name}-uid"}, **fields}


def v_pvc(cls: str | None = "standard", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if cls is not None:
        spec["storageClassName"] = cls
    spec.update(extra)
    return obj("PersistentVolumeClaim", "data", spec=spec)


# ---- PVCs --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "refused"), [
    pytest.param("standard", False, id="allowed-class"),
    pytest.param(None, False, id="default-class"),
    pytest.param("fast-ssd", True, id="other-class-refused"),
])
def test_pvc_storage_class_policy(cls: str | None, refused: bool) -> None:
    reasons = pvc_mod.PVC.check(v_pvc(cls), CTX) if pvc_mod.PVC.check else []
    assert bool(reasons) is refused
    if refused:
        assert "fast-ssd" in reasons[0]


def test_pvc_goes_down_without_tenant_volume_name_or_controller_annotations() -> None:
    v = v_pvc(volumeName="tenant-pv")
    v["metadata"]["annotations"] = {"pv.kubernetes.io/bind-completed": "yes", "team": "a",
                                    "volume.kubernetes.io/storage-provisioner": "x"}
    p = pvc_mod.to_super(v, CTX)
    assert p["metadata"]["namespace"] == naming.super_namespace(KEY, "shop")
    assert "volumeName" not in p["spec"]
    assert p["metadata"]["annotations"]["team"] == "a"
    assert not any(k.startswith(("pv.", "volume.")) for k in p["metadata"]["annotations"])
    # The super PV controller's own annotations are not drift.
    observed = {**p, "metadata": {**p["metadata"], "annotations": {
        **p["metadata"]["annotations"], "pv.kubernetes.io/bind-completed": "yes"}}}
    assert pvc_mod.PVC.fingerprint(observed) == pvc_mod.PVC.fingerprint(p)


def _slim(**status: Any) -> dict[str, Any]:
    p = {"metadata": {"name": "data"}, "spec": {"storageClassName": "standard", "volumeName": status.pop("vol", None)},
         "status": status}
    return pvc_mod.super_extras(p)


@pytest.mark.parametrize(("v_spec", "v_status", "slim", "ops"), [
    pytest.param({}, {}, _slim(phase="Pending"), ["status"], id="pending-flows-up"),
    pytest.param({}, {"phase": "Pending"}, _slim(phase="Pending"), [], id="pending-already-shown"),
    pytest.param({}, {"phase": "Pending"}, _slim(phase="Bound", vol="pv-1", capacity={"storage": "2Gi"}),
                 ["ensure", "patch", "status"], id="bound-volume-shown"),
    pytest.param({"volumeName": "pv-1"}, {"phase": "Bound", "capacity": {"storage": "2Gi"}},
                 _slim(phase="Bound", vol="pv-1", capacity={"storage": "2Gi"}), [], id="bound-already-shown"),
    pytest.param({"volumeName": "other"}, {"phase": "Bound"}, _slim(phase="Bound", vol="pv-1"), [],
                 id="tenant-bound-elsewhere-left-alone"),
])
def test_pvc_upward(v_spec: dict[str, Any], v_status: dict[str, Any], slim: dict[str, Any], ops: list[str]) -> None:
    v = v_pvc()
    v["spec"].update(v_spec)
    v["status"] = v_status
    assert [a.op for a in pvc_mod.upward(v, slim)] == ops


def _pv(*, label: bool = True, driver: str = pvc_mod.PLACEHOLDER_DRIVER, claim_uid: str = "claim-1") -> dict[str, Any]:
    return {"metadata": {"name": "pv-1", "labels": {naming.LABEL_MIRRORED_FROM_SUPER: "true"} if label else {}},
            "spec": {"csi": {"driver": driver}, "claimRef": {"uid": claim_uid}}}


@pytest.mark.parametrize(("v_pv", "ours"), [
    pytest.param(_pv(), True, id="ours"),
    pytest.param(_pv(label=False), False, id="not-labelled"),
    pytest.param(_pv(driver="ebs.csi.aws.com"), False, id="a-real-volume"),
    pytest.param(_pv(claim_uid="another-claim"), False, id="bound-to-another-claim"),
])
def test_the_tenant_pv_of_a_deleted_claim_is_a_leftover(v_pv: dict[str, Any], ours: bool) -> None:
    slim = {"metadata": {"annotations": {naming.ANN_OBJECT_UID: "claim-1"}}, "volumeName": "pv-1"}
    [left] = pvc_mod.tenant_leftovers(slim)
    assert (left.resource, left.name) == (resources.PVS, "pv-1")
    assert left.is_ours(v_pv) is ours


def test_an_unbound_claim_leaves_nothing() -> None:
    assert pvc_mod.tenant_leftovers({"metadata": {}, "volumeName": None}) == []


def test_tenant_volume_points_at_the_claim_and_hides_the_super_source() -> None:
    slim = _slim(phase="Bound", vol="pv-1", capacity={"storage": "2Gi"}, accessModes=["ReadWriteOnce"])
    actions = pvc_mod.upward(v_pvc(), slim)
    pv = actions[0].body
    assert actions[0].resource == resources.PVS
    assert pv["metadata"]["name"] == "pv-1"
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "shop",
                                      "name": "data", "uid": "data-uid"}
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["csi"]["driver"] == pvc_mod.PLACEHOLDER_DRIVER
    assert actions[1].body == {"spec": {"volumeName": "pv-1"}}


# ---- NetworkPolicies ----------------------------------------------------------------------------

@pytest.mark.parametrize(("v_selector", "want"), [
    pytest.param({}, {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}}, id="all-namespaces-means-all-of-tenant"),
    pytest.param({"matchLabels": {"kubernetes.io/metadata.name": "web"}},
                 {"matchLabels": {naming.LABEL_TENANT_NAMESPACE: "web", naming.LABEL_CLUSTER_KEY: KEY}},
                 id="by-name"),
    pytest.param({"matchLabels": {naming.LABEL_CLUSTER_KEY: "other-tenant"}},
                 {"matchLabels": {naming.tenant_label_key(naming.LABEL_CLUSTER_KEY): "other-tenant",
                                  naming.LABEL_CLUSTER_KEY: KEY}},
                 id="spoofed-cluster-key-is-just-a-tenant-label"),
    pytest.param({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a"]},
                                       {"key": naming.LABEL_CLUSTER_KEY, "operator": "DoesNotExist"}]},
                 {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}, "matchExpressions": [
                     {"key": naming.LABEL_TENANT_NAMESPACE, "operator": "In", "values": ["a"]},
                     {"key": naming.tenant_label_key(naming.LABEL_CLUSTER_KEY), "operator": "DoesNotExist"}]},
                 id="expressions"),
    pytest.param({"matchLabels": {"team": "x", "example.com/tier": "web"}},
                 {"matchLabels": {naming.tenant_label_key("team"): "x", naming.tenant_label_key("example.com/tier"):
                                  "web", naming.LABEL_CLUSTER_KEY: KEY}},
                 id="tenant-labels-mapped-and-confined"),
])
def test_namespace_selector_is_confined_to_the_tenant(v_selector: dict[str, Any], want: dict[str, Any]) -> None:
    assert np_mod.namespace_selector(v_selector, KEY) == want


@pytest.mark.parametrize(("ingress", "want_from"), [
    pytest.param([{}], [TENANT_WIDE], id="no-peers-means-tenant-wide"),
    pytest.param([{"from": []}], [TENANT_WIDE], id="empty-peers-means-tenant-wide"),
    pytest.param([{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}],
                 [{"podSelector": {"matchLabels": {"app": "a"}}}], id="pod-selector-kept"),
    pytest.param([{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], [TENANT_WIDE], id="ip-block-dropped"),
])
def test_ingress_rules_never_admit_other_tenants(ingress: list[dict[str, Any]],
                                                 want_from: list[dict[str, Any]]) -> None:
    v = obj("NetworkPolicy", spec={"podSelector": {}, "ingress": ingress})
    p = np_mod.to_super(v, CTX)
    assert p["metadata"]["namespace"] == naming.super_namespace(KEY, "shop")
    assert p["spec"]["ingress"][0]["from"] == want_from


@pytest.mark.parametrize(("spec", "refused"), [
    pytest.param({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, True, id="ingress-ip-block"),
    pytest.param({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, False, id="egress-ip-block"),
    pytest.param({"ingress": [{}]}, False, id="plain"),
])
def test_network_policy_check(spec: dict[str, Any], refused: bool) -> None:
    assert bool(np_mod.check(obj("NetworkPolicy", spec=spec), CTX)) is refused


def test_egress_namespace_selectors_are_confined_and_open_egress_kept() -> None:
    v = obj("NetworkPolicy", spec={"podSelector": {}, "egress": [
        {"to": [{"namespaceSelector": {}}]}, {"ports": [{"port": 53}]}]})
    egress = np_mod.to_super(v, CTX)["spec"]["egress"]
    assert egress[0]["to"] == [TENANT_WIDE]
    assert "to" not in egress[1]


# ---- Ingresses ---------------------------------------------------------------------------------

def test_ingress_goes_down_unchanged_and_load_balancer_comes_up() -> None:
    spec = {"rules": [{"host": "a.example"}], "tls": [{"secretName": "cert"}]}
    v = obj("Ingress", spec=spec)
    ingress = BY_KIND["Ingress"]
    p = ingress.to_super(v, CTX)
    assert p["spec"] == spec
    assert p["metadata"]["namespace"] == naming.super_namespace(KEY, "shop")
    lb = {"ingress": [{"ip": "192.0.2.1"}]}
    assert ingress.upward is not None
    assert [a.body for a in ingress.upward(v, {"status": {"loadBalancer": lb}})] == [{"status": {"loadBalancer": lb}}]
    assert ingress.upward({**v, "status": {"loadBalancer": lb}}, {"status": {"loadBalancer": lb}}) == []


# ---- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "message", "reason"), [
    pytest.param(403, 'pods "a" is forbidden: failed quota: vc-tenant-quota: must specify limits.cpu for: c',
                 event_mod.QUOTA_EXCEEDED, id="quota-limits-missing"),
    pytest.param(403, 'pods "a" is forbidden: exceeded quota: vc-tenant-quota, requested: limits.cpu=3',
                 event_mod.QUOTA_EXCEEDED, id="quota-exceeded"),
    pytest.param(403, 'pods "a" is forbidden: violates PodSecurity "baseline:latest": host namespaces',
                 event_mod.SYNC_FAILED, id="pod-security"),
    pytest.param(403, 'pods "a" is forbidden: error looking up service account x--y/default: not found',
                 None, id="service-account-not-yet"),
    pytest.param(403, "unable to create new content in namespace x--y because it is being terminated",
                 None, id="namespace-terminating"),
    pytest.param(422, 'Pod "a" is invalid: spec.containers[0].image: Required value', event_mod.SYNC_FAILED,
                 id="invalid"),
    pytest.param(500, "boom", None, id="server-error-is-transient"),
])
def test_refusal_reason(status: int, message: str, reason: str | None) -> None:
    assert event_mod.refusal_reason(status, message) == reason


def test_super_refusal_event_is_stable_per_object_and_reason() -> None:
    v = obj("Pod", "web")
    one = event_mod.super_refusal(v, kind="Pod", api_version="v1", status=403, message="exceeded quota: q",
                                  now="t1")
    two = event_mod.super_refusal(v, kind="Pod", api_version="v1", status=403, message="exceeded quota: q2",
                                  now="t2")
    assert one is not None
    assert two is not None
    assert one["metadata"]["name"] == two["metadata"]["name"]
    assert one["reason"] == event_mod.QUOTA_EXCEEDED
    assert one["type"] == "Warning"
    assert "exceeded quota: q" in one["message"]
    assert one["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop",
                                     "uid": "web-uid"}
    other = event_mod.super_refusal(obj("Pod", "web2"), kind="Pod", api_version="v1", status=403,
                                    message="exceeded quota: q", now="t1")
    assert other is not None
    assert other["metadata"]["name"] != one["metadata"]["name"]


@pytest.mark.parametrize(("name", "refused"), [
    pytest.param("vc-token-default", True, id="token-prefix"),
    pytest.param("vc-tokens", False, id="similar-but-not-prefix"),
    pytest.param("db-creds", False, id="plain"),
])
def test_secret_names_reserved_for_tokens_are_refused(name: str, refused: bool) -> None:
    secret = BY_KIND["Secret"]
    assert secret.check is not None
    assert bool(secret.check(obj("Secret", name, data={}), CTX)) is refused


def test_super_namespace_carries_the_tenant_namespace_label() -> None:
    p = BY_KIND["Namespace"].to_super({"metadata": {"name": "shop", "uid": "u"}}, CTX)
    assert p["metadata"]["labels"][naming.LABEL_TENANT_NAMESPACE] == "shop"


def test_tenant_namespace_labels_are_copied_but_never_pose_as_super_labels() -> None:
    v_labels = {"team": "blue", "kubernetes.io/metadata.name": "shop",
                "pod-security.kubernetes.io/enforce": "privileged", naming.LABEL_CLUSTER_KEY: "someone-else"}
    p = BY_KIND["Namespace"].to_super({"metadata": {"name": "shop", "uid": "u", "labels": v_labels}}, CTX)
    labels = p["metadata"]["labels"]
    assert labels[naming.tenant_label_key("team")] == "blue"
    assert labels[naming.tenant_label_key("pod-security.kubernetes.io/enforce")] == "privileged"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"  # the tenant's policy, not its label
    assert labels[naming.LABEL_CLUSTER_KEY] == KEY
    assert naming.tenant_label_key("kubernetes.io/metadata.name") not in labels
    # a label the tenant removes is removed from the super namespace too
    have = copy.deepcopy(p)
    v_labels.pop("team")
    desired = BY_KIND["Namespace"].to_super({"metadata": {"name": "shop", "uid": "u", "labels": v_labels}}, CTX)
    patch_update = BY_KIND["Namespace"].patch_update
    assert patch_update is not None
    patch = patch_update(desired, have)
    assert patch["metadata"]["labels"] == {naming.tenant_label_key("team"): None}


# ---- pods: service env vars and downward-API volumes ------------------------------------------

LINKS = (("my-db", "10.96.0.7", ({"name": "sql", "port": 5432, "protocol": "TCP"},)),
         ("headless", "None", ({"port": 80},)),
         ("web", "10.96.0.9", ({"port": 80}, {"name": "udp-dns", "port": 53, "protocol": "UDP"})))


def test_service_env_matches_kubelet_names() -> None:
    env = {e["name"]: e["value"] for e in pod_mod.service_env(LINKS)}
    assert env["MY_DB_SERVICE_HOST"] == "10.96.0.7"
    assert env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432"
    assert env["MY_DB_PORT"] == "tcp://10.96.0.7:5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "10.96.0.7"
    assert env["WEB_PORT_53_UDP"] == "udp://10.96.0.9:53"
    assert env["WEB_SERVICE_PORT_UDP_DNS"] == "53"
    assert not any(k.startswith("HEADLESS") for k in env), "headless services get no variables"


def _pod(**spec: Any) -> dict[str, Any]:
    return obj("Pod", "web", spec={"containers": [{"name": "c", "image": "i", "env": [
        {"name": "MY_DB_SERVICE_HOST", "value": "mine"}]}], **spec})


@pytest.mark.parametrize(("spec", "want_host"), [
    pytest.param({}, "mine", id="container-env-wins"),
    pytest.param({"enableServiceLinks": False}, "mine", id="links-disabled"),
])
def test_pod_gets_tenant_service_links(spec: dict[str, Any], want_host: str) -> None:
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", service_links=LINKS)
    p = pod_mod.to_super(_pod(**spec), ctx)
    env = {e["name"]: e["value"] for e in p["spec"]["containers"][0]["env"]}
    assert env["MY_DB_SERVICE_HOST"] == want_host
    assert ("WEB_SERVICE_HOST" in env) is (spec.get("enableServiceLinks") is not False)
    assert p["spec"]["enableServiceLinks"] is False, "the super namespace's own services never leak in"


@pytest.mark.parametrize(("items", "kept"), [
    pytest.param([{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}, "mode": 0o400}], [],
                 id="namespace-only"),
    pytest.param([{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                  {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}],
                 [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}], id="mixed"),
])
def test_downward_api_volume_shows_the_tenant_namespace(items: list[dict[str, Any]],
                                                        kept: list[dict[str, Any]]) -> None:
    v = _pod(volumes=[{"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": items}}])
    assert pod_mod.needs_token(v), "the token Secret carries the namespace file"
    p = pod_mod.to_super(v, CTX)
    volume = p["spec"]["volumes"][0]
    sources = volume["projected"]["sources"]
    secret = next(s["secret"] for s in sources if "secret" in s)
    assert secret["name"] == naming.token_secret_name("default")
    assert secret["items"][0]["key"] == tokens_mod.NAMESPACE_KEY
    assert secret["items"][0]["path"] == "ns"
    assert [s["downwardAPI"]["items"] for s in sources if "downwardAPI" in s] == ([kept] if kept else [])
    assert volume["projected"]["defaultMode"] == 0o444
    assert v["spec"]["volumes"][0]["downwardAPI"]["items"] == items, "the tenant object is not touched"


def test_pod_without_downward_namespace_needs_no_token() -> None:
    v = _pod(volumes=[{"name": "info", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}])
    assert not pod_mod.needs_token(v)
    assert pod_mod.to_super(v, CTX)["spec"]["volumes"][0] == v["spec"]["volumes"][0]
