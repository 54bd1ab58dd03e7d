"""The operator on a real super cluster: Tenants become real, isolated control planes.

Three local control planes and one pods-backend tenant in total, shared by
the tests of this module:

* ``alpha`` and ``beta`` (local): kubectl against the tenant apiserver, CRDs,
  independence, owners and isolation updates.
* ``gamma`` (local): unknown ClusterVersion → Ready=False + Event; the
  ClusterVersion appears → provisioning starts; the operator is SIGKILLed in
  the middle and restarted → exactly one healthy control plane; deletion
  removes every process, namespace and secret.
* ``delta`` (pods): the rendered objects are accepted by the super apiserver
  and the pods reach Running on the kwok nodes; etcd's claim binds to a
  pre-made PersistentVolume (the test bed has no provisioner), a changed
  storage size is reported and not applied, deletion removes the claim.
* ``epsilon``/``zeta`` (local): a second operator (same state folder, as a
  second replica on the same machine) stands by while the first holds the
  Lease and touches nothing; SIGTERM on the first releases the Lease, the
  second takes over, adopts the running control planes and provisions a
  Tenant created meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.operator_fixtures import (
    OperatorProcess,
    TenantHandle,
    control_plane_processes,
    create_tenant,
    delete_tenant,
    get_tenant,
    is_ready,
    ready_condition,
    tenant_manifest,
    wait_tenant,
)
from vcluster import naming
from vcluster.controlplane import spec as cp
from vcluster.operator.settings import DEFAULT_TENANT_QUOTA
from vcluster.process import read_cmdline

pytestmark = pytest.mark.e2e
#: The ``vc_operator`` fixture (one operator per session).
pytest_plugins = ("e2e.operator_fixtures",)

CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def _suffix() -> str:
    return uuid.uuid4().hex[:5]


@pytest.fixture(scope="module")
def pair(super_cluster: Any, vc_operator: OperatorProcess) -> Iterator[tuple[TenantHandle, TenantHandle]]:
    """Two local tenants, created together (the operator provisions them concurrently)."""
    a_name, b_name = f"alpha-{_suffix()}", f"beta-{_suffix()}"
    create_tenant(super_cluster, a_name, wait=False, owners={"users": ["alice"]})
    create_tenant(super_cluster, b_name, wait=False)
    a = create_tenant(super_cluster, a_name, owners={"users": ["alice"]})
    b = create_tenant(super_cluster, b_name)
    yield a, b
    delete_tenant(super_cluster, a_name, wait=False)
    delete_tenant(super_cluster, b_name)
    delete_tenant(super_cluster, a_name)


def test_local_tenant_serves_kubectl(super_cluster: Any, pair: tuple[TenantHandle, TenantHandle]) -> None:
    a, _ = pair
    status = a.status
    assert status["phase"] == "Ready"
    assert status["clusterKey"] == a.cluster_key
    assert status["kubeconfigSecret"] == {"namespace": a.cluster_key, "name": "admin-kubeconfig"}
    assert a.endpoint is not None
    assert a.endpoint.startswith("https://127.0.0.1:")
    assert a.endpoint != super_cluster.server
    # the tenant's own apiserver answers kubectl: namespaces, create, CRDs
    names = a.kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/kube-system" in names
    a.kubectl("create", "namespace", "team-a")
    a.kubectl("apply", "-f", "-", input=CRD_YAML)
    a.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s")
    a.kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "team-a"}}))
    assert a.kubectl("get", "widgets", "-n", "team-a", "-o", "name").stdout.strip() == "widget.example.com/w1"
    # the root namespace in the super cluster is labelled for the syncer and the policy
    ns = json.loads(super_cluster.kubectl("get", "ns", a.cluster_key, "-o", "json").stdout)
    assert ns["metadata"]["labels"][naming.LABEL_NAMESPACE_ROLE] == naming.ROLE_ROOT
    assert ns["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == a.cluster_key
    # owners are cluster-admin inside the tenant, nobody else is
    assert a.kubectl("auth", "can-i", "*", "*", "--as=alice").stdout.strip() == "yes"
    assert a.kubectl("auth", "can-i", "create", "pods", "--as=mallory", check=False).stdout.strip() == "no"
    # the kubelet-proxy CA exists, and the tenant apiserver's kubelet client cert chains to it
    super_cluster.kubectl("get", "secret", "-n", naming.SYSTEM_NAMESPACE, naming.KUBELET_PROXY_CA_SECRET)


def test_two_tenants_are_independent(pair: tuple[TenantHandle, TenantHandle]) -> None:
    a, b = pair
    a.kubectl("create", "namespace", "only-in-a")
    a.kubectl("apply", "-f", "-", input=CRD_YAML.replace("widgets", "gadgets").replace("Widget", "Gadget")
              .replace("widget", "gadget"))
    assert b.endpoint != a.endpoint
    # b's apiserver answers, and it has neither (not merely: kubectl failed)
    for what in (("ns", "only-in-a"), ("crd", "gadgets.example.com")):
        got = b.kubectl("get", *what, check=False)
        assert got.returncode != 0
        assert "(NotFound)" in got.stderr, got.stderr
    # a's admin credentials are worthless against b's apiserver (different CA)
    assert b.endpoint is not None
    cross = a.kubectl(f"--server={b.endpoint}", "get", "ns", check=False)
    assert cross.returncode != 0
    assert "certificate" in cross.stderr, cross.stderr


def test_updates_owners_and_isolation(super_cluster: Any, pair: tuple[TenantHandle, TenantHandle],
                                      vc_operator: OperatorProcess) -> None:
    a, _ = pair
    workload_ns = naming.super_namespace(a.cluster_key, "web")
    super_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": workload_ns, "labels": {
            naming.LABEL_CLUSTER_KEY: a.cluster_key, naming.LABEL_NAMESPACE_ROLE: naming.ROLE_WORKLOAD}},
    }))
    patch = {"spec": {"owners": {"users": ["alice", "bob"]},
                      "isolation": {"podSecurity": "restricted", "resourceQuota": {"hard": {"pods": "7"}}}}}
    super_cluster.kubectl("patch", "tenant", a.name, "--type=merge", "-p", json.dumps(patch))
    wait_tenant(super_cluster, a.name, is_ready, what="Ready after update", operator=vc_operator)
    assert a.kubectl("auth", "can-i", "*", "*", "--as=bob").stdout.strip() == "yes"
    quota = json.loads(super_cluster.kubectl("get", "resourcequota", "-n", workload_ns, "-o", "json").stdout)
    assert [q["spec"]["hard"] for q in quota["items"]] == [{"pods": "7"}]
    netpol = json.loads(super_cluster.kubectl("get", "networkpolicy", "-n", workload_ns, "-o", "json").stdout)
    (item,) = netpol["items"]
    assert item["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        naming.LABEL_CLUSTER_KEY: a.cluster_key}
    ns = json.loads(super_cluster.kubectl("get", "ns", workload_ns, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # dropping the quota from the spec puts the operator's default back; an empty one means none
    super_cluster.kubectl("patch", "tenant", a.name, "--type=json",
                          "-p", json.dumps([{"op": "remove", "path": "/spec/isolation/resourceQuota"}]))
    wait_tenant(super_cluster, a.name, is_ready, what="Ready after second update", operator=vc_operator)
    quota = json.loads(super_cluster.kubectl("get", "resourcequota", "-n", workload_ns, "-o", "json").stdout)
    assert [q["spec"]["hard"] for q in quota["items"]] == [dict(DEFAULT_TENANT_QUOTA)]
    super_cluster.kubectl("patch", "tenant", a.name, "--type=merge",
                          "-p", json.dumps({"spec": {"isolation": {"resourceQuota": {"hard": {}}}}}))
    wait_tenant(super_cluster, a.name, is_ready, what="Ready after third update", operator=vc_operator)
    quota = json.loads(super_cluster.kubectl("get", "resourcequota", "-n", workload_ns, "-o", "json").stdout)
    assert quota["items"] == []


@pytest.mark.parametrize(
    ("name", "spec", "needle"),
    [
        ("bad--name", {}, "must not contain '--'"),
        ("x" * 33, {}, "at most 32 characters"),
        ("badbackend", {"controlPlane": {"backend": "vm"}}, "Unsupported value: \"vm\""),
        ("badversion", {"controlPlane": {"version": "1.36"}}, "spec.controlPlane.version"),
        ("badboth", {"controlPlane": {"version": "v1.36.3", "clusterVersionRef": "x"}}, "at most one"),
        ("badpsa", {"isolation": {"podSecurity": "none"}}, "spec.isolation.podSecurity"),
        ("badsize", {"controlPlane": {"storage": {"size": "lots"}}}, "spec.controlPlane.storage.size"),
        ("zerosize", {"controlPlane": {"storage": {"size": "0Gi"}}}, "storage.size must be greater than zero"),
    ],
    ids=["double-dash", "too-long", "backend-enum", "version-pattern", "version-and-ref", "pod-security",
         "storage-size-pattern", "storage-size-zero"],
)
def test_schema_invalid_tenant_is_rejected(super_cluster: Any, vc_operator: OperatorProcess, name: str,
                                           spec: dict[str, Any], needle: str) -> None:
    got = super_cluster.kubectl("apply", "-f", "-", check=False,
                                input=yaml.safe_dump(tenant_manifest(name, **spec)))
    assert got.returncode != 0
    assert needle in got.stderr
    assert get_tenant(super_cluster, name) is None


def _events(super_cluster: Any, name: str) -> list[dict[str, Any]]:
    got = super_cluster.kubectl("get", "events", "-A", "--field-selector",
                                f"involvedObject.kind=Tenant,involvedObject.name={name}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(got.stdout)["items"]
    return items


def test_cluster_version_kill_restart_and_delete(super_cluster: Any, vc_operator: OperatorProcess) -> None:
    name, cv_name = f"gamma-{_suffix()}", f"cv-{_suffix()}"
    t = create_tenant(super_cluster, name, wait=False, controlPlane={"clusterVersionRef": cv_name})
    # unknown ClusterVersion: Ready=False with a reason and an Event, nothing provisioned
    wait_tenant(super_cluster, name, lambda o: ready_condition(o).get("reason") == "ClusterVersionNotFound",
                what="ClusterVersionNotFound", timeout=60, operator=vc_operator)
    deadline = time.monotonic() + 30
    while not any(e["reason"] == "ClusterVersionNotFound" for e in _events(super_cluster, name)):
        assert time.monotonic() < deadline, "no ClusterVersionNotFound Event"
        time.sleep(0.5)
    absent = super_cluster.kubectl("get", "ns", t.cluster_key, check=False)
    assert absent.returncode != 0
    assert "(NotFound)" in absent.stderr, absent.stderr
    assert control_plane_processes(vc_operator.state_dir, t.cluster_key) == {}

    # the ClusterVersion appears: provisioning starts; SIGKILL the operator in the middle of it
    super_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": naming.API_VERSION, "kind": "ClusterVersion", "metadata": {"name": cv_name},
        "spec": {"version": "v1.36.3", "apiserver": {"extraArgs": {"v": "1"}}}}))
    pid_dir = vc_operator.state_dir / t.cluster_key / "run"
    deadline = time.monotonic() + 120
    while not (pid_dir / "etcd.pid").exists():
        assert time.monotonic() < deadline, f"provisioning never started:\n{vc_operator.log_tail()}"
        time.sleep(0.1)
    vc_operator.kill()
    vc_operator.start()
    obj = wait_tenant(super_cluster, name, is_ready, what="Ready after operator restart", operator=vc_operator)
    procs = control_plane_processes(vc_operator.state_dir, t.cluster_key)
    assert {k: len(v) for k, v in procs.items()} == dict.fromkeys(cp.COMPONENTS, 1)
    assert obj["status"]["version"] == "v1.36.3"
    apiserver_cmd = read_cmdline(procs["kube-apiserver"][0]) or []
    assert "--v=1" in apiserver_cmd

    # a changed ClusterVersion is rolled out to the tenants that use it
    super_cluster.kubectl("patch", "clusterversion", cv_name, "--type=merge",
                          "-p", json.dumps({"spec": {"apiserver": {"extraArgs": {"v": "2"}}}}))
    deadline = time.monotonic() + 120
    while True:
        procs = control_plane_processes(vc_operator.state_dir, t.cluster_key)
        cmds = [read_cmdline(pid) or [] for pid in procs.get("kube-apiserver", [])]
        if len(cmds) == 1 and "--v=2" in cmds[0]:
            break
        assert time.monotonic() < deadline, f"ClusterVersion change not rolled out:\n{vc_operator.log_tail()}"
        time.sleep(0.5)
    wait_tenant(super_cluster, name, is_ready, what="Ready after ClusterVersion change", operator=vc_operator)

    # deletion removes every process, namespace and secret of the tenant
    workload_ns = naming.super_namespace(t.cluster_key, "app")
    super_cluster.kubectl("create", "namespace", workload_ns)
    super_cluster.kubectl("label", "namespace", workload_ns, f"{naming.LABEL_CLUSTER_KEY}={t.cluster_key}",
                          f"{naming.LABEL_NAMESPACE_ROLE}={naming.ROLE_WORKLOAD}")
    delete_tenant(super_cluster, name)
    assert control_plane_processes(vc_operator.state_dir, t.cluster_key) == {}
    assert not (vc_operator.state_dir / t.cluster_key).exists()
    deadline = time.monotonic() + 120
    while True:
        left = super_cluster.kubectl("get", "ns", "-l", f"{naming.LABEL_CLUSTER_KEY}={t.cluster_key}",
                                     "-o", "name").stdout.split()
        if not left:
            break
        assert time.monotonic() < deadline, f"namespaces left: {left}"
        time.sleep(1)
    assert super_cluster.kubectl("get", "secrets", "-n", t.cluster_key, "-o", "name",
                                 check=False).stdout.strip() == ""
    super_cluster.kubectl("delete", "clusterversion", cv_name)


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def test_pods_backend_runs_on_kwok_nodes(super_cluster: Any, vc_operator: OperatorProcess, tmp_path: Path) -> None:
    name, storage_class = f"delta-{_suffix()}", f"vc-e2e-{_suffix()}"
    # the test bed has no provisioner: a pre-made volume of a class only this test uses
    pv_name = f"{storage_class}-etcd"
    super_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "256Mi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                 "hostPath": {"path": str(tmp_path / "etcd"), "type": "DirectoryOrCreate"}}}))
    t = create_tenant(super_cluster, name, wait=False,
                      controlPlane={"backend": "pods", "replicas": 2, "expose": {"type": "ClusterIP"},
                                    "storage": {"size": "256Mi", "storageClassName": storage_class}})
    try:
        deadline = time.monotonic() + 180
        while True:
            got = super_cluster.kubectl("get", "pods", "-n", t.cluster_key, "-o", "json", check=False)
            pods = json.loads(got.stdout)["items"] if got.returncode == 0 else []
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            if len(running) == 4:  # etcd, 2 apiservers, controller-manager
                break
            assert time.monotonic() < deadline, (
                f"pods: {[(p['metadata']['name'], p['status'].get('phase')) for p in pods]}\n"
                f"{vc_operator.log_tail()}")
            time.sleep(1)
        components = sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in running)
        assert components == ["etcd", "kube-apiserver", "kube-apiserver", "kube-controller-manager"]
        assert all(p["spec"]["nodeName"] for p in running)
        images = {c["image"] for p in running for c in p["spec"]["containers"]}
        assert "registry.k8s.io/kube-apiserver:v1.36.3" in images
        svc = json.loads(super_cluster.kubectl("get", "svc", "apiserver", "-n", t.cluster_key, "-o",
                                               "json").stdout)
        assert svc["spec"]["ports"][0]["port"] == 6443
        # etcd's data is on a claim from the StatefulSet, bound to the pre-made volume, not an emptyDir
        (etcd_pod,) = [p for p in running if p["metadata"]["labels"]["app.kubernetes.io/component"] == "etcd"]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in etcd_pod["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == ["data-etcd-0"]
        assert not any("emptyDir" in v for v in etcd_pod["spec"]["volumes"])
        pvc = json.loads(super_cluster.kubectl("get", "pvc", "data-etcd-0", "-n", t.cluster_key, "-o",
                                               "json").stdout)
        assert pvc["status"]["phase"] == "Bound"
        assert pvc["spec"]["volumeName"] == pv_name
        assert pvc["spec"]["storageClassName"] == storage_class
        assert pvc["spec"]["resources"]["requests"]["storage"] == "256Mi"
        # the apiserver in a kwok pod does not really run: the operator says so, it does not lie
        obj = wait_tenant(super_cluster, name,
                          lambda o: ready_condition(o).get("reason") == "WaitingForApiserver",
                          what="WaitingForApiserver", timeout=90, operator=vc_operator)
        assert ready_condition(obj)["status"] == "False"
        assert obj["status"]["clusterKey"] == t.cluster_key
        assert obj["status"]["phase"] == "Provisioning"
        assert _condition(obj, "StorageApplied")["status"] == "True"

        # a claim template is immutable: a bigger size is reported, not applied, and etcd keeps its claim
        super_cluster.kubectl("patch", "tenant", name, "--type=merge",
                              "-p", json.dumps({"spec": {"controlPlane": {"storage": {"size": "512Mi"}}}}))
        obj = wait_tenant(
            super_cluster, name,
            lambda o: _condition(o, "StorageApplied").get("reason") == "StorageChangeNeedsMigration"
            and _condition(o, "StorageApplied").get("observedGeneration") == o["metadata"]["generation"],
            what="StorageChangeNeedsMigration", timeout=90, operator=vc_operator)
        cond = _condition(obj, "StorageApplied")
        assert cond["status"] == "False"
        assert "512Mi" in cond["message"]
        assert "256Mi" in cond["message"]
        deadline = time.monotonic() + 30
        while not any(e["reason"] == "StorageChangeNeedsMigration" and e["type"] == "Warning"
                      for e in _events(super_cluster, name)):
            assert time.monotonic() < deadline, "no StorageChangeNeedsMigration Event"
            time.sleep(0.5)
        # the rest is still reconciled (the status follows the new generation), nothing was replaced
        obj = wait_tenant(super_cluster, name,
                          lambda o: ready_condition(o).get("reason") == "WaitingForApiserver"
                          and ready_condition(o).get("observedGeneration") == o["metadata"]["generation"],
                          what="WaitingForApiserver after the storage change", timeout=90, operator=vc_operator)
        sts = json.loads(super_cluster.kubectl("get", "statefulset", "etcd", "-n", t.cluster_key, "-o",
                                               "json").stdout)
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "256Mi"
        etcd_now = json.loads(super_cluster.kubectl("get", "pod", "etcd-0", "-n", t.cluster_key, "-o",
                                                    "json").stdout)
        assert etcd_now["metadata"]["uid"] == etcd_pod["metadata"]["uid"]
        assert etcd_now["status"]["phase"] == "Running"

        # deleting the Tenant deletes the claim too; the Retain volume is Released, and ours to delete
        delete_tenant(super_cluster, name)
        deadline = time.monotonic() + 120
        while True:
            left = super_cluster.kubectl("get", "pvc", "-A", "-l", f"{naming.LABEL_CLUSTER_KEY}={t.cluster_key}",
                                         "-o", "name").stdout.split()
            pv = json.loads(super_cluster.kubectl("get", "pv", pv_name, "-o", "json").stdout)
            if not left and pv["status"].get("phase") == "Released":
                break
            assert time.monotonic() < deadline, f"claims left: {left}; volume: {pv['status']}"
            time.sleep(1)
    finally:
        delete_tenant(super_cluster, name)
        super_cluster.kubectl("delete", "pv", pv_name, "--ignore-not-found", "--wait=false")


def test_dead_apiserver_is_restarted(pair: tuple[TenantHandle, TenantHandle], vc_operator: OperatorProcess) -> None:
    _, b = pair
    (pid,) = control_plane_processes(vc_operator.state_dir, b.cluster_key)["kube-apiserver"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        procs = control_plane_processes(vc_operator.state_dir, b.cluster_key).get("kube-apiserver", [])
        if procs and procs != [pid] and b.kubectl("get", "ns", "default", check=False).returncode == 0:
            break
        assert time.monotonic() < deadline, f"apiserver not restarted:\n{vc_operator.log_tail()}"
        time.sleep(0.5)
    assert len(procs) == 1


def _lease_holder(super_cluster: Any) -> str:
    got = super_cluster.kubectl("get", "lease", "-n", naming.SYSTEM_NAMESPACE, naming.OPERATOR_LEASE_NAME,
                                "-o", "json")
    return str(json.loads(got.stdout)["spec"].get("holderIdentity") or "")


def _identity(op: OperatorProcess) -> str:
    """The operator's default Lease identity (``<hostname>-<pid>``; it runs as a direct child)."""
    assert op.proc is not None
    return f"{socket.gethostname()}-{op.proc.pid}"


def test_second_operator_stands_by_and_takes_over(super_cluster: Any, vc_operator: OperatorProcess,
                                                  tmp_path: Path) -> None:
    first = vc_operator
    first.wait_log("operator.leading")
    assert _lease_holder(super_cluster) == _identity(first)
    second = OperatorProcess(super_cluster, state_dir=first.state_dir, log_path=tmp_path / "operator-2.log")
    second.start()
    try:
        line = second.wait_log("operator.standing_by")
        assert _identity(first) in line  # it names the current holder

        # While the first leads, a new Tenant is provisioned once, by the first; the standby does nothing.
        e = create_tenant(super_cluster, f"epsilon-{_suffix()}", operator=first)
        e_procs = control_plane_processes(first.state_dir, e.cluster_key)
        assert {k: len(v) for k, v in e_procs.items()} == dict.fromkeys(cp.COMPONENTS, 1)
        assert e.name not in second.log_text()
        assert "operator.start" not in second.log_text()
        assert second.alive()

        # SIGTERM: the first releases the Lease; a Tenant created meanwhile is provisioned by the second.
        first.stop()
        z = create_tenant(super_cluster, f"zeta-{_suffix()}", wait=False, operator=second)
        second.wait_log("operator.leading")
        assert _lease_holder(super_cluster) == _identity(second)
        z = create_tenant(super_cluster, z.name, operator=second)
        z_procs = control_plane_processes(second.state_dir, z.cluster_key)
        assert {k: len(v) for k, v in z_procs.items()} == dict.fromkeys(cp.COMPONENTS, 1)
        # the first's control plane was adopted, not replaced or duplicated
        wait_tenant(super_cluster, e.name, is_ready, what="Ready under the second operator", operator=second)
        assert control_plane_processes(first.state_dir, e.cluster_key) == e_procs
        delete_tenant(super_cluster, e.name)
        delete_tenant(super_cluster, z.name)
        assert control_plane_processes(second.state_dir, z.cluster_key) == {}
    finally:
        # Hand the session operator back: it stands by until the second releases the Lease.
        first.tenants |= second.tenants
        mark = len(first.log_text())
        if not first.alive():
            first.start()
        second.stop()
    first.wait_log("operator.leading", since=mark)
