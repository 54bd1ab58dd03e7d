"""Tenant-wide quota on the test bed: more namespaces gain a tenant nothing.

Why: a quota per super namespace multiplies with every namespace a tenant
creates (it is cluster-admin of its own apiserver).  The syncer gates every
create on the tenant's aggregate usage; the operator writes the quota in
force (its default, or the Tenant's) to every super namespace as a backstop
and to ``status.quota``; the syncer writes the usage to ``status.quota.used``.
One tenant from the session operator (no quota of its own: the operator's
default first), one syncer, kwok nodes of the session super cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator, wait_tenant  # noqa: F401  (fixture)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from tenant_crd.models import is_ready
from vcluster import naming
from vcluster.operator.settings import DEFAULT_CONTAINER_REQUESTS, DEFAULT_TENANT_QUOTA

pytestmark = pytest.mark.e2e

NAMESPACES = ("q1", "q2")


@pytest.fixture(scope="module")
def tenant(super_cluster: Any, vc_operator: Any) -> TenantHandle:  # noqa: F811
    return create_tenant(super_cluster, f"quota-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenant: Any, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer-quota",
                        log_key="syncer", env={"VC_SYNCER_QUOTA_STATUS_PERIOD": "1"}) as proc:
        yield proc


def pod(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def tenant_status(super_cluster: Any, name: str) -> dict[str, Any]:
    return (kjson(super_cluster.kubectl, "get", "tenant", name) or {}).get("status") or {}


def super_pods(super_cluster: Any, key: str) -> list[str]:
    got = kjson(super_cluster.kubectl, "get", "pods", "-A", "-l", f"{naming.LABEL_CLUSTER_KEY}={key}")
    return sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in (got or {}).get("items", [])
                  if not p["metadata"].get("deletionTimestamp"))


def quota_events(tenant: TenantHandle, ns: str) -> list[dict[str, Any]]:
    got = kjson(tenant.kubectl, "get", "events", "-n", ns, "--field-selector", "reason=PolicyViolation")
    return [e for e in (got or {}).get("items", []) if "tenant-wide quota" in e.get("message", "")]


def test_default_quota_and_limit_range_apply_to_a_tenant_that_names_none(
        super_cluster: Any, tenant: TenantHandle, syncer: SyncerProcess) -> None:
    status = tenant_status(super_cluster, tenant.name)
    assert status["quota"]["source"] == "OperatorDefault"
    assert status["quota"]["hard"] == dict(DEFAULT_TENANT_QUOTA)
    assert status["limitRange"]["defaultRequests"] == dict(DEFAULT_CONTAINER_REQUESTS)
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACES[0]}},
          pod("d0", NAMESPACES[0]))
    p_ns = naming.super_namespace(tenant.cluster_key, NAMESPACES[0])
    p_pod = wait_for("super pod d0", lambda: kjson(super_cluster.kubectl, "get", "pod", "d0", "-n", p_ns),
                     syncer=syncer)
    # the backstop in the super namespace is the whole tenant quota; the LimitRange gave the pod its requests
    q = kjson(super_cluster.kubectl, "get", "resourcequota", naming.POLICY_QUOTA_NAME, "-n", p_ns)
    assert q["spec"]["hard"] == dict(DEFAULT_TENANT_QUOTA)
    assert p_pod["spec"]["containers"][0]["resources"]["requests"] == dict(DEFAULT_CONTAINER_REQUESTS)
    used = wait_for("status.quota.used", lambda: (tenant_status(super_cluster, tenant.name).get("quota") or {})
                    .get("used", {}).get("pods") == "1" and tenant_status(super_cluster, tenant.name)["quota"]["used"],
                    syncer=syncer)
    assert used["requests.cpu"] == "100m"
    # LimitRanger noted the defaults on the super pod; the syncer leaves that note alone (it patched every
    # pod once to remove it: one more write per synced pod, benchmarks round 9) — also after the binding
    # and status went up to the tenant pod, the reconciles that used to send that patch
    wait_for("tenant pod d0 Running", lambda: ((kjson(tenant.kubectl, "get", "pod", "d0", "-n", NAMESPACES[0])
                                                or {}).get("status") or {}).get("phase") == "Running", syncer=syncer)
    p_pod = kjson(super_cluster.kubectl, "get", "pod", "d0", "-n", p_ns)
    assert naming.ANN_LIMIT_RANGER in p_pod["metadata"]["annotations"]
    tenant.kubectl("delete", "pod", "d0", "-n", NAMESPACES[0], "--wait=true")


def test_two_namespaces_cannot_exceed_the_tenant_quota(super_cluster: Any, tenant: TenantHandle,
                                                       syncer: SyncerProcess) -> None:
    patch = {"spec": {"isolation": {"resourceQuota": {"hard": {"pods": "3"}}}}}
    super_cluster.kubectl("patch", "tenant", tenant.name, "--type=merge", "-p", json.dumps(patch))
    wait_tenant(super_cluster, tenant.name, is_ready, what="Ready with pods=3")
    wait_for("status.quota.hard pods=3", lambda: tenant_status(super_cluster, tenant.name)
             .get("quota", {}).get("hard") == {"pods": "3"}, syncer=syncer)
    wait_for("no pods left", lambda: super_pods(super_cluster, tenant.cluster_key) == [], syncer=syncer)
    objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                                  for ns in NAMESPACES]
    objs += [pod(f"p{i}", ns) for ns in NAMESPACES for i in range(2)]
    apply(tenant, *objs)
    # 2 namespaces x 2 pods: 3 reach the super cluster, the fourth waits with an Event naming the field
    # (which one waits is a race: a create refused transiently by a new namespace's quota gives its room back)
    every = {(ns, f"p{i}") for ns in NAMESPACES for i in range(2)}

    def one_waiting() -> tuple[str, str] | None:
        created = {(p.split("/")[0], p.split("/")[1]) for p in super_pods(super_cluster, tenant.cluster_key)}
        missing = [(ns, n) for ns, n in every if (naming.super_namespace(tenant.cluster_key, ns), n) not in created]
        if len(created) != 3 or len(missing) != 1:
            return None
        ns, name = missing[0]
        told = [e for e in quota_events(tenant, ns) if e["involvedObject"]["name"] == name]
        return (ns, name) if told else None

    waiting = wait_for("3 super pods and the fourth told it waits", one_waiting, syncer=syncer)
    (event, *_) = [e for e in quota_events(tenant, waiting[0]) if e["involvedObject"]["name"] == waiting[1]]
    assert "(Tenant spec.isolation.resourceQuota)" in event["message"]
    assert "pods: this object needs 1, the tenant uses 3 of 3 across all its namespaces" in event["message"]
    pods = super_pods(super_cluster, tenant.cluster_key)
    assert len(pods) == 3
    for ns in NAMESPACES:
        q = kjson(super_cluster.kubectl, "get", "resourcequota", naming.POLICY_QUOTA_NAME, "-n",
                  naming.super_namespace(tenant.cluster_key, ns))
        assert q["spec"]["hard"] == {"pods": "3"}  # each namespace's backstop: the whole tenant quota
    wait_for("status.quota.used pods=3", lambda: tenant_status(super_cluster, tenant.name)
             .get("quota", {}).get("used") == {"pods": "3"}, syncer=syncer)
    phase = tenant.kubectl("get", "pod", waiting[1], "-n", waiting[0], "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Pending"
    # freeing room in the other namespace lets the waiting pod through
    other_ns = next(ns for ns in NAMESPACES if ns != waiting[0])
    tenant.kubectl("delete", "pod", "p0", "-n", other_ns, "--wait=false")
    want = naming.super_namespace(tenant.cluster_key, waiting[0]) + "/" + waiting[1]
    wait_for("the waiting pod created", lambda: want in super_pods(super_cluster, tenant.cluster_key),
             syncer=syncer)
    assert len(super_pods(super_cluster, tenant.cluster_key)) == 3


def test_an_update_that_grows_past_the_tenant_quota_is_not_applied(super_cluster: Any, tenant: TenantHandle,
                                                                   syncer: SyncerProcess) -> None:
    """Updates are gated too: two ClusterIP Services in two namespaces both turned into NodePorts, with
    one node port for the whole tenant.  Each namespace's backstop alone would let both through."""
    patch = {"spec": {"isolation": {"exposure": {"nodePort": True},
                                    "resourceQuota": {"hard": {"services.nodeports": "1"}}}}}
    super_cluster.kubectl("patch", "tenant", tenant.name, "--type=merge", "-p", json.dumps(patch))
    wait_for("status.quota.hard services.nodeports=1", lambda: tenant_status(super_cluster, tenant.name)
             .get("quota", {}).get("hard", {}).get("services.nodeports") == "1", syncer=syncer)
    svcs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": ns},
             "spec": {"selector": {"app": "np"}, "ports": [{"port": 80}]}} for ns in NAMESPACES]
    apply(tenant, *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES), *svcs)

    def super_type(ns: str) -> str | None:
        got = kjson(super_cluster.kubectl, "get", "service", "np", "-n", naming.super_namespace(tenant.cluster_key, ns))
        return str(got["spec"]["type"]) if got else None

    wait_for("both super Services", lambda: all(super_type(ns) == "ClusterIP" for ns in NAMESPACES), syncer=syncer)
    first, second = NAMESPACES
    tenant.kubectl("patch", "service", "np", "-n", first, "--type=merge", "-p", '{"spec":{"type":"NodePort"}}')
    wait_for(f"{first}/np a NodePort", lambda: super_type(first) == "NodePort", syncer=syncer)
    tenant.kubectl("patch", "service", "np", "-n", second, "--type=merge", "-p", '{"spec":{"type":"NodePort"}}')
    told = wait_for("the second change refused", lambda: [e for e in quota_events(tenant, second)
                                                           if e["involvedObject"]["name"] == "np"], syncer=syncer)
    assert "services.nodeports: this change adds 1, the tenant uses 1 of 1 across all its namespaces" in \
        told[0]["message"]
    assert super_type(second) == "ClusterIP", "the super copy keeps its type"
    # the first goes back to ClusterIP: room for the second
    tenant.kubectl("patch", "service", "np", "-n", first, "--type=merge", "-p", '{"spec":{"type":"ClusterIP"}}')
    wait_for(f"{second}/np a NodePort", lambda: super_type(second) == "NodePort", syncer=syncer)
    assert super_type(first) == "ClusterIP"
