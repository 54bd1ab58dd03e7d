"""The syncer on real control planes: two tenants from the real operator, one real super cluster.

Everything here runs against real kube-apiservers: the session's super
cluster (with kwok nodes), two tenant control planes provisioned by the
operator from Tenant objects, and the syncer as a child process that finds
the tenants through those Tenant objects.  Tenants and the syncer are shared
by the module's tests to keep the suite lean.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from vcluster import naming
from vcluster.kube import ApiClient, resources

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def tenants(super_cluster: Any, vc_operator: Any) -> tuple[TenantHandle, TenantHandle]:  # noqa: F811
    suffix = uuid.uuid4().hex[:6]
    # tenant b takes a 500-pod flood: above the operator's default tenant-wide quota (100 pods)
    return (create_tenant(super_cluster, f"sync-a-{suffix}"),
            create_tenant(super_cluster, f"sync-b-{suffix}", isolation={"resourceQuota": {"hard": {"pods": "1000"}}}))


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenants: Any, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer", log_key="syncer") as proc:
        yield proc


def workload(ns: str, *, replicas: int = 2, data: str = "one") -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": ns}, "data": {"k": data}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
         "stringData": {"password": data}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": ns}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": "runner",
                                        "containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
    ]


def test_objects_go_down_and_status_comes_up(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    tenant, _ = tenants
    apply(tenant, *workload("shop"))
    p_ns = naming.super_namespace(tenant.cluster_key, "shop")
    sk = super_cluster.kubectl

    ns_obj = wait_for("super namespace", lambda: kjson(sk, "get", "ns", p_ns), syncer=syncer)
    assert ns_obj["metadata"]["labels"][naming.LABEL_NAMESPACE_ROLE] == naming.ROLE_WORKLOAD
    assert ns_obj["metadata"]["annotations"][naming.ANN_TENANT_NAMESPACE] == "shop"
    for kind, name in (("configmap", "cfg"), ("secret", "creds"), ("serviceaccount", "runner"), ("service", "web")):
        obj = wait_for(f"super {kind}", functools.partial(kjson, sk, "get", kind, name, "-n", p_ns), syncer=syncer)
        assert obj["metadata"]["labels"][naming.LABEL_MANAGED_BY] == naming.MANAGED_BY_SYNCER

    def running_pods() -> list[dict[str, Any]] | None:
        got = kjson(tenant.kubectl, "get", "pods", "-n", "shop")
        pods = [p for p in (got or {}).get("items", []) if p["status"].get("phase") == "Running"
                and p["spec"].get("nodeName")]
        return pods if len(pods) == 2 else None

    pods = wait_for("tenant pods Running on a node", running_pods, syncer=syncer)
    super_pods = kjson(sk, "get", "pods", "-n", p_ns)["items"]
    assert {p["metadata"]["name"] for p in super_pods} == {p["metadata"]["name"] for p in pods}
    by_name = {p["metadata"]["name"]: p for p in super_pods}
    for v_pod in pods:
        p_pod = by_name[v_pod["metadata"]["name"]]
        assert v_pod["spec"]["nodeName"] == p_pod["spec"]["nodeName"]
        assert p_pod["metadata"]["annotations"][naming.ANN_OBJECT_UID] == v_pod["metadata"]["uid"]
        assert p_pod["spec"]["automountServiceAccountToken"] is False
    token = kjson(sk, "get", "secret", naming.token_secret_name("runner"), "-n", p_ns)
    assert token is not None, "the pods' tenant token Secret exists"

    p_svc = kjson(sk, "get", "service", "web", "-n", p_ns)
    wait_for("tenant service shows its super cluster IP", lambda: (
        (kjson(tenant.kubectl, "get", "service", "web", "-n", "shop") or {}).get("metadata", {})
        .get("annotations", {}).get(naming.ANN_SUPER_CLUSTER_IP) == p_svc["spec"]["clusterIP"]), syncer=syncer)

    wait_for("tenant sees the super scheduler's events", lambda: any(
        e.get("reason") == "Scheduled" for e in (kjson(tenant.kubectl, "get", "events", "-n", "shop") or {})
        .get("items", [])), syncer=syncer)

    # Updates and deletions propagate.
    tenant.kubectl("patch", "configmap", "cfg", "-n", "shop", "--type=merge", "-p", '{"data":{"k":"two"}}')
    wait_for("configmap update", lambda: (kjson(sk, "get", "cm", "cfg", "-n", p_ns) or {}).get("data") == {"k": "two"},
             syncer=syncer)
    tenant.kubectl("scale", "deployment", "web", "-n", "shop", "--replicas=1")
    wait_for("scale down reaches the super cluster", lambda: len(kjson(sk, "get", "pods", "-n", p_ns)["items"]) == 1,
             syncer=syncer)
    wait_for("tenant has one pod", lambda: len(kjson(tenant.kubectl, "get", "pods", "-n", "shop")["items"]) == 1,
             syncer=syncer)
    tenant.kubectl("delete", "configmap", "cfg", "-n", "shop")
    wait_for("configmap deletion", lambda: kjson(sk, "get", "cm", "cfg", "-n", p_ns) is None, syncer=syncer)


def test_same_names_in_two_tenants_never_clash(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    a, b = tenants
    for tenant, data in ((a, "from-a"), (b, "from-b")):
        apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "same"}},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "same"},
               "data": {"who": data}})
    sk = super_cluster.kubectl
    for tenant, data in ((a, "from-a"), (b, "from-b")):
        p_ns = naming.super_namespace(tenant.cluster_key, "same")
        def copied(ns: str = p_ns, d: str = data) -> bool:
            return bool((kjson(sk, "get", "cm", "cfg", "-n", ns) or {}).get("data") == {"who": d})

        wait_for(f"{tenant.name}'s copy", copied, syncer=syncer)
    assert naming.super_namespace(a.cluster_key, "same") != naming.super_namespace(b.cluster_key, "same")
    # Neither tenant sees the other's objects.
    b_namespaces = {n["metadata"]["name"] for n in kjson(b.kubectl, "get", "namespaces")["items"]}
    assert "shop" not in b_namespaces
    assert kjson(b.kubectl, "get", "cm", "cfg", "-n", "same")["data"] == {"who": "from-b"}
    assert kjson(a.kubectl, "get", "cm", "cfg", "-n", "same")["data"] == {"who": "from-a"}


def test_forbidden_pod_is_refused_with_an_event(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    tenant, _ = tenants
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "risky"}})
    wait_for("default service account", lambda: tenant.kubectl("get", "sa", "default", "-n", "risky",
                                                               check=False).returncode == 0)
    apply(tenant, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": "risky"},
                   "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox"}]}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fine", "namespace": "risky"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    p_ns = naming.super_namespace(tenant.cluster_key, "risky")
    event = wait_for("refusal event", lambda: next((
        e for e in (kjson(tenant.kubectl, "get", "events", "-n", "risky") or {}).get("items", [])
        if e["involvedObject"]["name"] == "sneaky" and e.get("reason") == "PolicyViolation"), None), syncer=syncer)
    assert "hostNetwork" in event["message"]
    # The allowed pod made it, so the refusal is not a slow sync.
    wait_for("the allowed pod", lambda: kjson(super_cluster.kubectl, "get", "pod", "fine", "-n", p_ns), syncer=syncer)
    assert kjson(super_cluster.kubectl, "get", "pod", "sneaky", "-n", p_ns) is None


async def _create_pods(kubeconfig: Path, ns: str, names: list[str], *, concurrency: int = 32) -> None:
    async with ApiClient.from_kubeconfig(kubeconfig) as api:
        sem = asyncio.Semaphore(concurrency)

        async def one(name: str) -> None:
            async with sem:
                await api.create(resources.PODS, {
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

        await asyncio.gather(*(one(n) for n in names))


async def _delete_pods(kubeconfig: Path, ns: str, names: list[str]) -> None:
    async with ApiClient.from_kubeconfig(kubeconfig) as api:
        await asyncio.gather(*(api.delete(resources.PODS, n, namespace=ns, grace_period_seconds=0) for n in names))


def test_sigkill_mid_flood_then_restart_converges(super_cluster: Any, tenants: Any, syncer: SyncerProcess) -> None:
    _, tenant = tenants
    assert tenant.kubeconfig_path is not None
    ns = "flood"
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    wait_for("default service account", lambda: tenant.kubectl("get", "sa", "default", "-n", ns,
                                                               check=False).returncode == 0)
    p_ns = naming.super_namespace(tenant.cluster_key, ns)
    names = [f"p-{i:03d}" for i in range(500)]

    async def flood_and_kill() -> None:
        creating = asyncio.create_task(_create_pods(tenant.kubeconfig_path, ns, names))
        # Kill the syncer once it is visibly in the middle of the flood.
        while True:
            got = await asyncio.to_thread(kjson, super_cluster.kubectl, "get", "pods", "-n", p_ns)
            if got is not None and len(got["items"]) >= 50:
                break
            await asyncio.sleep(0.2)
        syncer.kill()
        await creating

    asyncio.run(flood_and_kill())
    # While it is down, some tenant pods go away: their super copies become orphans.
    asyncio.run(_delete_pods(tenant.kubeconfig_path, ns, names[:40]))
    syncer.start()

    def converged() -> tuple[int, int] | None:
        v_pods = {p["metadata"]["name"]: p["metadata"]["uid"]
                  for p in kjson(tenant.kubectl, "get", "pods", "-n", ns)["items"]}
        p_items = [p for p in kjson(super_cluster.kubectl, "get", "pods", "-n", p_ns)["items"]
                   if not p["metadata"].get("deletionTimestamp")]
        p_pods = {p["metadata"]["name"]: p["metadata"]["annotations"][naming.ANN_OBJECT_UID] for p in p_items}
        if v_pods == p_pods and len(p_items) == len(p_pods):
            return len(v_pods), len(p_items)
        return None

    counts = wait_for("super pods equal the tenant's (none missing, orphaned or duplicated)", converged,
                      timeout=240, syncer=syncer)
    assert counts == (460, 460)
