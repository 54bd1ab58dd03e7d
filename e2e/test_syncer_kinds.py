"""The syncer's newer kinds and refusals on real control planes.

One pair of tenants from the real operator (tenant A with a ResourceQuota
and an allowed storage class, tenant B without policy) and one syncer
subprocess serve every test here.  The super cluster is the session's test
bed: its kube-controller-manager binds PVCs to a PersistentVolume the test
creates by hand (kwok has no provisioner), so binding is shown for real.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from vcluster import naming

pytestmark = pytest.mark.e2e

SUFFIX = uuid.uuid4().hex[:6]
STORAGE_CLASS = f"vc-e2e-manual-{SUFFIX}"


@pytest.fixture(scope="module")
def tenants(super_cluster: Any, vc_operator: Any) -> tuple[TenantHandle, TenantHandle]:  # noqa: F811
    a = create_tenant(super_cluster, f"kinds-a-{SUFFIX}", isolation={
        "resourceQuota": {"hard": {"limits.cpu": "2", "limits.memory": "1Gi"}},
        "allowedStorageClasses": [STORAGE_CLASS],
    })
    return a, create_tenant(super_cluster, f"kinds-b-{SUFFIX}")


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenants: Any, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    with running_syncer(super_cluster, tmp_path_factory, component_logs,
                        log_dir="syncer-kinds", log_key="syncer-kinds") as proc:
        yield proc


def namespace(tenant: TenantHandle, ns: str) -> str:
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    wait_for(f"default service account in {ns}",
             lambda: tenant.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0)
    return naming.super_namespace(tenant.cluster_key, ns)


def event_for(tenant: TenantHandle, ns: str, name: str, reason: str, syncer: SyncerProcess) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(f"{reason} event on {ns}/{name}", lambda: next((
        e for e in (kjson(tenant.kubectl, "get", "events", "-n", ns) or {}).get("items", [])
        if e["involvedObject"]["name"] == name and e.get("reason") == reason), None), syncer=syncer)
    return found


def test_pod_refused_by_super_quota_gets_an_event(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    a, _ = tenants
    p_ns = namespace(a, "quota")
    wait_for("the tenant quota in the super namespace",
             lambda: kjson(super_cluster.kubectl, "get", "resourcequota", naming.POLICY_QUOTA_NAME, "-n", p_ns),
             syncer=syncer)
    apply(a, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nolimits", "namespace": "quota"},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "limited", "namespace": "quota"},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}})
    event = event_for(a, "quota", "nolimits", "QuotaExceeded", syncer)
    assert event["type"] == "Warning"
    assert "limits" in event["message"], event["message"]
    assert naming.POLICY_QUOTA_NAME in event["message"], event["message"]
    wait_for("the pod with limits", lambda: kjson(super_cluster.kubectl, "get", "pod", "limited", "-n", p_ns),
             syncer=syncer)
    assert kjson(super_cluster.kubectl, "get", "pod", "nolimits", "-n", p_ns) is None


def test_pvc_policy_status_and_bound_volume(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    a, _ = tenants
    p_ns = namespace(a, "storage")

    def claim(name: str, cls: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "storage"},
                "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}

    apply(a, claim("data", STORAGE_CLASS), claim("sneaky", "fast-ssd"))
    event = event_for(a, "storage", "sneaky", "PolicyViolation", syncer)
    assert "fast-ssd" in event["message"]
    p_pvc = wait_for("super PVC", lambda: kjson(super_cluster.kubectl, "get", "pvc", "data", "-n", p_ns),
                     syncer=syncer)
    assert p_pvc["spec"]["storageClassName"] == STORAGE_CLASS
    assert kjson(super_cluster.kubectl, "get", "pvc", "sneaky", "-n", p_ns) is None
    pv_name = f"vc-e2e-pv-{SUFFIX}"
    super_cluster.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {pv_name}}}
spec:
  storageClassName: {STORAGE_CLASS}
  capacity: {{storage: 2Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: /tmp/{pv_name}}}
""")
    try:
        def bound() -> dict[str, Any] | None:
            c = kjson(a.kubectl, "get", "pvc", "data", "-n", "storage")
            ok = c and c.get("status", {}).get("phase") == "Bound" and c["spec"].get("volumeName")
            return c if ok else None

        v_pvc = wait_for("tenant PVC bound", bound, syncer=syncer, timeout=120)
        assert v_pvc["spec"]["volumeName"] == pv_name
        assert v_pvc["status"]["capacity"] == {"storage": "2Gi"}
        v_pv = kjson(a.kubectl, "get", "pv", pv_name)
        assert v_pv["spec"]["claimRef"]["uid"] == v_pvc["metadata"]["uid"]
        assert "hostPath" not in v_pv["spec"], "the super volume's source stays in the super cluster"
        # The claim goes: its super copy and the tenant's PV go with it.
        a.kubectl("delete", "pvc", "data", "-n", "storage", "--wait=false")
        wait_for("super PVC deleted", lambda: kjson(super_cluster.kubectl, "get", "pvc", "data", "-n", p_ns) is None,
                 syncer=syncer)
        wait_for("tenant PV deleted", lambda: kjson(a.kubectl, "get", "pv", pv_name) is None, syncer=syncer)
    finally:
        super_cluster.kubectl("delete", "pv", pv_name, "--wait=false", check=False)


def test_network_policy_and_ingress_stay_in_the_tenant(super_cluster: Any, tenants: Any,
                                                        syncer: SyncerProcess) -> None:
    a, b = tenants
    p_ns = namespace(a, "net")
    # the same namespace and label in tenant B: a translated selector of A must never match it
    namespace(b, "net")
    for t in (a, b):
        t.kubectl("label", "namespace", "net", "team=blue", "example.com/tier=db")
    apply(a, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "from-frontend", "namespace": "net"},
              "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
                  {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}]},
                  {"ports": [{"port": 80}]},
                  {"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}, "matchExpressions": [
                      {"key": "example.com/tier", "operator": "In", "values": ["db", "cache"]}]}}]},
              ]}},
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "cidr", "namespace": "net"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}},
          {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "net"},
           "spec": {"rules": [{"host": "web.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vc-token-default", "namespace": "net"},
           "stringData": {"token": "mine"}})
    p_np = wait_for("super NetworkPolicy", lambda: kjson(super_cluster.kubectl, "get", "networkpolicy",
                                                         "from-frontend", "-n", p_ns), syncer=syncer)
    rules = p_np["spec"]["ingress"]
    assert rules[0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        naming.LABEL_TENANT_NAMESPACE: "frontend", naming.LABEL_CLUSTER_KEY: a.cluster_key}
    assert rules[1]["from"] == [{"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: a.cluster_key}}}]
    # A selector on the tenant's own namespace labels selects, in the real super apiserver, exactly
    # the tenant's labelled namespace: not tenant B's namespace with the same name and labels.
    selector = rules[2]["from"][0]["namespaceSelector"]
    label_query = ",".join([f"{k}={v}" for k, v in selector["matchLabels"].items()] + [
        f"{e['key']} in ({','.join(e['values'])})" for e in selector["matchExpressions"]])

    def selected() -> list[str] | None:
        got = kjson(super_cluster.kubectl, "get", "namespaces", "-l", label_query) or {}
        names = sorted(n["metadata"]["name"] for n in got.get("items", []))
        return names or None

    assert wait_for("labelled super namespace", selected, syncer=syncer) == [p_ns]
    # The super namespace carries the label the translated selectors use.
    p_ns_obj = kjson(super_cluster.kubectl, "get", "namespace", p_ns)
    assert p_ns_obj["metadata"]["labels"][naming.LABEL_TENANT_NAMESPACE] == "net"
    assert "ipBlock" in event_for(a, "net", "cidr", "PolicyViolation", syncer)["message"]
    assert "vc-token-" in event_for(a, "net", "vc-token-default", "PolicyViolation", syncer)["message"]
    p_ing = wait_for("super Ingress", lambda: kjson(super_cluster.kubectl, "get", "ingress", "web", "-n", p_ns),
                     syncer=syncer)
    assert p_ing["spec"]["rules"][0]["host"] == "web.example"
    assert kjson(super_cluster.kubectl, "get", "networkpolicy", "cidr", "-n", p_ns) is None
    assert kjson(super_cluster.kubectl, "get", "secret", "vc-token-default", "-n", p_ns) is None
    # Tenant B, with a namespace of the same name, has none of it.
    assert kjson(super_cluster.kubectl, "get", "networkpolicy", "from-frontend", "-n",
                 naming.super_namespace(b.cluster_key, "net")) is None


def test_pod_disruption_budget_goes_down_and_guards_super_evictions(super_cluster: Any, tenants: Any,
                                                                     syncer: SyncerProcess) -> None:
    """A kind added as one module and one registry line: the tenant's PDB reaches the super namespace,
    follows tenant edits, is restored after a hand edit, and refuses an eviction of the super pod (what an
    admin's drain does); deleting it in the tenant deletes the super copy."""
    _, b = tenants
    p_ns = namespace(b, "pdb")
    apply(b, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": {"name": "web", "namespace": "pdb", "labels": {"team": "blue"}},
              "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
          {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-0", "namespace": "pdb", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    p_pdb = wait_for("super PodDisruptionBudget", lambda: kjson(super_cluster.kubectl, "get", "pdb", "web",
                                                                 "-n", p_ns), syncer=syncer)
    assert p_pdb["spec"]["minAvailable"] == 1
    assert p_pdb["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert p_pdb["metadata"]["labels"]["team"] == "blue"
    assert p_pdb["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == b.cluster_key
    # The super disruption controller counts the super pod (it carries the tenant pod's labels).
    wait_for("the super PDB counts the running super pod", lambda: (kjson(
        super_cluster.kubectl, "get", "pdb", "web", "-n", p_ns) or {}).get("status", {}).get("currentHealthy") == 1,
        syncer=syncer)
    eviction = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": "web-0", "namespace": p_ns}})
    evicted = super_cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{p_ns}/pods/web-0/eviction", "-f", "-",
                                    input=eviction, check=False)
    assert evicted.returncode != 0, "the tenant's budget must refuse evicting its only pod"
    assert "disruption budget" in evicted.stderr, evicted.stderr
    assert kjson(super_cluster.kubectl, "get", "pod", "web-0", "-n", p_ns) is not None
    # A tenant edit goes down; a hand edit in the super cluster is put back.
    b.kubectl("patch", "pdb", "web", "-n", "pdb", "--type=merge", "-p", '{"spec": {"minAvailable": 0}}')
    wait_for("the tenant edit in the super PDB", lambda: (kjson(
        super_cluster.kubectl, "get", "pdb", "web", "-n", p_ns) or {}).get("spec", {}).get("minAvailable") == 0,
        syncer=syncer)
    super_cluster.kubectl("patch", "pdb", "web", "-n", p_ns, "--type=merge", "-p", '{"spec": {"minAvailable": 5}}')
    wait_for("the hand edit undone", lambda: (kjson(
        super_cluster.kubectl, "get", "pdb", "web", "-n", p_ns) or {}).get("spec", {}).get("minAvailable") == 0,
        syncer=syncer)
    b.kubectl("delete", "pdb", "web", "-n", "pdb")
    wait_for("super PDB deleted with the tenant's",
             lambda: kjson(super_cluster.kubectl, "get", "pdb", "web", "-n", p_ns) is None, syncer=syncer)


def test_pod_sees_tenant_service_env_and_namespace(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    _, b = tenants
    p_ns = namespace(b, "envs")
    apply(b, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-db", "namespace": "envs"},
              "spec": {"selector": {"app": "db"}, "ports": [{"name": "sql", "port": 5432}]}})
    p_svc = wait_for("super service IP", lambda: (kjson(super_cluster.kubectl, "get", "svc", "my-db", "-n", p_ns)
                                                  or {}).get("spec", {}).get("clusterIP"), syncer=syncer)
    apply(b, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "envs"},
              "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                  {"name": "info", "mountPath": "/etc/info"}]}],
                       "volumes": [{"name": "info", "downwardAPI": {"items": [
                           {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                           {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}})
    p_pod = wait_for("super pod", lambda: kjson(super_cluster.kubectl, "get", "pod", "client", "-n", p_ns),
                     syncer=syncer)
    env = {e["name"]: e.get("value") for e in p_pod["spec"]["containers"][0].get("env") or []}
    assert env["MY_DB_SERVICE_HOST"] == p_svc
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432"
    volume = next(v for v in p_pod["spec"]["volumes"] if v["name"] == "info")
    secret = next(s["secret"] for s in volume["projected"]["sources"] if "secret" in s)
    data = kjson(super_cluster.kubectl, "get", "secret", secret["name"], "-n", p_ns)["data"]
    assert base64.b64decode(data[secret["items"][0]["key"]]).decode() == "envs"


def test_public_classes_are_mirrored_into_every_tenant(super_cluster: Any, tenants: Any,
                                                      syncer: SyncerProcess) -> None:
    public_sc, private_sc, public_pc = f"vc-e2e-pub-{SUFFIX}", f"vc-e2e-priv-{SUFFIX}", f"vc-e2e-pc-{SUFFIX}"
    super_cluster.kubectl("apply", "-f", "-", input=f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {public_sc}, labels: {{{naming.LABEL_PUBLIC}: "true"}}}}
provisioner: example.com/nothing
reclaimPolicy: Retain
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {private_sc}}}
provisioner: example.com/nothing
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: {public_pc}, labels: {{{naming.LABEL_PUBLIC}: "true"}}}}
value: 1000
globalDefault: true
""")
    try:
        for tenant in tenants:
            v_sc = wait_for(f"{tenant.name}: mirrored StorageClass",
                            partial(kjson, tenant.kubectl, "get", "storageclass", public_sc), syncer=syncer)
            assert v_sc["metadata"]["labels"][naming.LABEL_MIRRORED_FROM_SUPER] == "true"
            assert v_sc["provisioner"] == "example.com/nothing"
            v_pc = wait_for(f"{tenant.name}: mirrored PriorityClass",
                            partial(kjson, tenant.kubectl, "get", "priorityclass", public_pc), syncer=syncer)
            assert v_pc["value"] == 1000
            assert v_pc.get("globalDefault") is not True, "a tenant copy never becomes the default"
            assert kjson(tenant.kubectl, "get", "storageclass", private_sc) is None
        a = tenants[0]
        super_cluster.kubectl("label", "storageclass", public_sc, f"{naming.LABEL_PUBLIC}-")
        wait_for("copy removed once the class is no longer public",
                 lambda: kjson(a.kubectl, "get", "storageclass", public_sc) is None, syncer=syncer)
    finally:
        super_cluster.kubectl("delete", "storageclass", public_sc, private_sc, "--ignore-not-found", check=False)
        super_cluster.kubectl("delete", "priorityclass", public_pc, "--ignore-not-found", check=False)


def _crd(group: str, plural: str, kind: str) -> str:
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: {plural}, singular: {kind.lower()}, kind: {kind}}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_tenant_sync_options_metadata_prefixes_and_extra_kinds(super_cluster: Any, tenants: Any,
                                                               syncer: SyncerProcess) -> None:
    """Tenant spec.sync set at run time: opaque super metadata survives tenant updates, transparent super
    metadata goes up to the tenant object, an extra custom kind is copied down and super Events about it
    go up, the rest is told; a kind taken off the list loses its super copies (only that tenant's ones),
    and comes back when listed again."""
    a, b = tenants
    group = f"e2e-{SUFFIX}.example.com"
    opaque, transparent = "admin.example.com/owner", "hook.example.com/injected"
    # widgets exist in both clusters, gadgets only in the tenant
    super_cluster.kubectl("apply", "-f", "-", input=_crd(group, "widgets", "Widget"))
    b.kubectl("apply", "-f", "-", input=_crd(group, "widgets", "Widget") + "---" + _crd(group, "gadgets", "Gadget"))
    a.kubectl("apply", "-f", "-", input=_crd(group, "widgets", "Widget"))
    for run, crd in ((super_cluster.kubectl, "widgets"), (b.kubectl, "widgets"), (b.kubectl, "gadgets"),
                     (a.kubectl, "widgets")):
        run("wait", "--for=condition=established", f"crd/{crd}.{group}", "--timeout=60s")
    p_ns = namespace(b, "meta")
    a_ns = namespace(a, "meta")
    # tenant A syncs widgets too: its copies must survive B dropping the kind
    super_cluster.kubectl("patch", "tenant", a.name, "--type=merge", "-p", json.dumps(
        {"spec": {"sync": {"extraKinds": [f"widgets.{group}"]}}}))
    super_cluster.kubectl("patch", "tenant", b.name, "--type=merge", "-p", json.dumps({"spec": {"sync": {
        "extraKinds": [f"widgets.{group}", f"gadgets.{group}", "nodes"],
        "opaqueMetadataPrefixes": ["admin.example.com/"],
        "transparentMetadataPrefixes": ["hook.example.com/"],
    }}}))

    def tenant_events() -> dict[str, str]:
        got = kjson(super_cluster.kubectl, "get", "events", "-n", "default", "--field-selector",
                    f"involvedObject.kind=Tenant,involvedObject.name={b.name}") or {}
        return {e["reason"]: e["message"] for e in got.get("items", []) if e["reason"].startswith("ExtraKind")}

    def when(pred: Callable[[Any], bool], get: Callable[[], Any]) -> Callable[[], Any]:
        def check() -> Any:
            got = get()
            return got if got and pred(got) else None
        return check

    events = wait_for("extra-kind events on the Tenant", when(lambda e: len(e) == 3, tenant_events), syncer=syncer)
    assert f"widgets.{group}" in events["ExtraKindSynced"]
    assert f"gadgets.{group}" in events["ExtraKindUnavailable"]
    assert "super cluster" in events["ExtraKindUnavailable"]
    assert "nodes" in events["ExtraKindRefused"]

    # opaque: the super value survives tenant updates (merge patch: pods; replace: configmaps), tenant values stay up
    apply(b, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "meta",
                                                              "annotations": {opaque: "tenant"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "meta"},
           "data": {"k": "one"}})
    for kind in ("pod/web", "configmap/cfg"):
        wait_for(f"super {kind}", partial(kjson, super_cluster.kubectl, "get", kind, "-n", p_ns), syncer=syncer)
        super_cluster.kubectl("annotate", "--overwrite", kind, "-n", p_ns, f"{opaque}=ops", f"{transparent}=sidecar")

    # transparent: copied up onto the tenant pod
    wait_for("transparent annotation on the tenant pod", lambda: (kjson(b.kubectl, "get", "pod", "web", "-n", "meta")
             or {})["metadata"].get("annotations", {}).get(transparent) == "sidecar", syncer=syncer)
    b.kubectl("annotate", "--overwrite", "pod/web", "-n", "meta", "note=v2")
    b.kubectl("patch", "configmap", "cfg", "-n", "meta", "--type=merge", "-p", '{"data": {"k": "two"}}')
    p_pod = wait_for("tenant pod update in the super cluster", when(
        lambda p: p["metadata"].get("annotations", {}).get("note") == "v2",
        partial(kjson, super_cluster.kubectl, "get", "pod", "web", "-n", p_ns)), syncer=syncer)
    p_cm = wait_for("tenant configmap update in the super cluster", when(
        lambda c: c.get("data", {}).get("k") == "two",
        partial(kjson, super_cluster.kubectl, "get", "cm", "cfg", "-n", p_ns)), syncer=syncer)
    for p_obj in (p_pod, p_cm):
        assert p_obj["metadata"]["annotations"][opaque] == "ops"
        assert p_obj["metadata"]["annotations"][transparent] == "sidecar"
    assert kjson(b.kubectl, "get", "pod", "web", "-n", "meta")["metadata"]["annotations"][opaque] == "tenant"

    # extraKinds: a Widget goes down with its spec; status stays the super side's
    apply(b, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "meta"},
              "spec": {"size": 3}})
    p_widget = wait_for("super Widget", partial(kjson, super_cluster.kubectl, "get", f"widgets.{group}", "w1",
                                               "-n", p_ns), syncer=syncer)
    assert p_widget["spec"] == {"size": 3}
    assert p_widget["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == b.cluster_key
    assert kjson(super_cluster.kubectl, "get", f"gadgets.{group}", "-A") is None, "the super cluster has no gadgets"

    # A super operator's Event about the super Widget goes up onto the tenant Widget (matched by group + kind).
    v_widget = kjson(b.kubectl, "get", f"widgets.{group}", "w1", "-n", "meta")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    super_cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"w1.{SUFFIX}", "namespace": p_ns},
        "involvedObject": {"apiVersion": f"{group}/v1", "kind": "Widget", "name": "w1", "namespace": p_ns,
                           "uid": p_widget["metadata"]["uid"]},
        "reason": "Provisioned", "message": "widget w1 is ready", "type": "Normal", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "widget-operator"}}))
    v_event = event_for(b, "meta", "w1", "Provisioned", syncer)
    assert v_event["involvedObject"]["kind"] == "Widget"
    assert v_event["involvedObject"]["apiVersion"] == f"{group}/v1"
    assert v_event["involvedObject"]["namespace"] == "meta"
    assert v_event["involvedObject"]["uid"] == v_widget["metadata"]["uid"]
    assert v_event["message"] == "widget w1 is ready"

    # Tenant A's Widget is synced too; a hand-made Widget sits in B's super namespace.
    apply(a, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "wa", "namespace": "meta"},
              "spec": {"size": 1}})
    wait_for("tenant A's super Widget", partial(kjson, super_cluster.kubectl, "get", f"widgets.{group}", "wa",
                                                "-n", a_ns), syncer=syncer)
    super_cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "hand", "namespace": p_ns},
        "spec": {"size": 9}}))

    # Widgets taken off B's list: B's super copy goes, the admin is told; A's copy and the hand-made one stay.
    super_cluster.kubectl("patch", "tenant", b.name, "--type=merge", "-p", json.dumps(
        {"spec": {"sync": {"extraKinds": [f"gadgets.{group}"]}}}))
    wait_for("B's super Widget deleted", lambda: kjson(super_cluster.kubectl, "get", f"widgets.{group}", "w1",
                                                       "-n", p_ns) is None, syncer=syncer)
    removed = wait_for("ExtraKindRemoved on the Tenant", lambda: tenant_events().get("ExtraKindRemoved"),
                       syncer=syncer)
    assert f"widgets.{group}" in removed, removed
    assert "(1)" in removed, removed
    assert kjson(super_cluster.kubectl, "get", f"widgets.{group}", "hand", "-n", p_ns) is not None
    assert kjson(super_cluster.kubectl, "get", f"widgets.{group}", "wa", "-n", a_ns) is not None
    # B's Widget is not synced any more: a change of it makes no super copy.
    b.kubectl("patch", f"widgets.{group}", "w1", "-n", "meta", "--type=merge", "-p", '{"spec": {"size": 4}}')
    # A still syncs widgets both ways through the shared super informer: a new one is created, then deleted.
    apply(a, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "wa2", "namespace": "meta"},
              "spec": {"size": 2}})
    wait_for("tenant A's new super Widget", partial(kjson, super_cluster.kubectl, "get", f"widgets.{group}",
                                                    "wa2", "-n", a_ns), syncer=syncer)
    a.kubectl("delete", f"widgets.{group}", "wa2", "-n", "meta")
    wait_for("tenant A's deleted Widget gone from the super cluster", lambda: kjson(
        super_cluster.kubectl, "get", f"widgets.{group}", "wa2", "-n", a_ns) is None, syncer=syncer)
    assert kjson(super_cluster.kubectl, "get", f"widgets.{group}", "w1", "-n", p_ns) is None

    # Listed again: synced again, without a syncer restart, with the change made meanwhile.
    super_cluster.kubectl("patch", "tenant", b.name, "--type=merge", "-p", json.dumps(
        {"spec": {"sync": {"extraKinds": [f"gadgets.{group}", f"widgets.{group}"]}}}))
    p_widget = wait_for("B's super Widget back", when(lambda w: w["spec"] == {"size": 4}, partial(
        kjson, super_cluster.kubectl, "get", f"widgets.{group}", "w1", "-n", p_ns)), syncer=syncer)
    assert p_widget["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == b.cluster_key
