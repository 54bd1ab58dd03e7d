"""The multi-tenancy suite (after kubectl-mtb): a hostile tenant, plain kubectl, what reaches the super cluster.

Why: "hard multi-tenancy" is the product's promise, and a tenant is
cluster-admin of its own control plane.  Each case applies one hostile object
with kubectl to a real tenant apiserver and asserts, on the real super
cluster, that it did not arrive (or arrived confined) and that the tenant
object carries a Warning Event naming the ``Tenant`` policy field that
refused it.  Needs only the session super cluster (kwok nodes), the session
operator and one syncer; two tenants: one with the default policy, one with
``podSecurity: restricted`` (privilege escalation is a restricted control),
LoadBalancers allowed and a monitoring allow-list.  NetworkPolicies are
checked as the real apiserver stores them: the test bed's bridge CNI
enforces none (see docs/architecture.md, "Threat model").
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from vcluster import naming

pytestmark = pytest.mark.e2e

NS = "hostile"
BASE, STRICT = "base", "strict"
#: An admin allow-list entry (``spec.isolation.allowedIngressFrom``): a monitoring scraper.
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app": "prometheus"}}, "ports": [{"port": 9100}]}


@pytest.fixture(scope="module")
def tenants(super_cluster: Any, vc_operator: Any) -> dict[str, TenantHandle]:  # noqa: F811
    suffix = uuid.uuid4().hex[:6]
    return {BASE: create_tenant(super_cluster, f"iso-a-{suffix}"),
            STRICT: create_tenant(super_cluster, f"iso-b-{suffix}", isolation={
                "podSecurity": "restricted", "exposure": {"loadBalancer": True},
                "allowedIngressFrom": [MONITORING]})}


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenants: Any, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer-iso",
                        log_key="syncer") as proc:
        yield proc


def pod(name: str, **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "c", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": containers, **spec}}


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def endpoints(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": NS},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]}


def container(**security: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "busybox", "securityContext": security}]


#: (id, tenant, hostile object, super resource, words the Event must contain)
HOSTILE: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("toleration-exists", BASE, pod("tol-all", tolerations=[{"operator": "Exists"}]), "pod",
     "spec.isolation.allowedTolerations"),
    ("toleration-control-plane", BASE,
     pod("tol-cp", tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                 "effect": "NoSchedule"}]), "pod", "spec.isolation.allowedTolerations"),
    ("nodeport", BASE, service("np", type="NodePort", selector={"app": "x"}), "service",
     "spec.isolation.exposure.nodePort"),
    ("loadbalancer", BASE, service("lb", type="LoadBalancer", selector={"app": "x"}), "service",
     "spec.isolation.exposure.loadBalancer"),
    ("externalname", BASE, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "xn", "namespace": NS},
                            "spec": {"type": "ExternalName", "externalName": "kubernetes.default.svc.cluster.local"}},
     "service", "spec.isolation.exposure.externalName"),
    ("externalips", BASE, service("xip", selector={"app": "x"}, externalIPs=["192.0.2.10"]), "service",
     "spec.isolation.exposure.externalIPs"),
    ("hostport", BASE, pod("hostport", containers=[{"name": "c", "image": "busybox",
                                                    "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
     "pod", "spec.isolation.exposure.hostPorts"),
    # (loopback and link-local endpoints the tenant apiserver's own validation refuses already)
    ("endpoints-super-apiserver", BASE, endpoints("ep-api", "10.0.0.1"), "endpoints",
     "spec.isolation.allowedEndpointCIDRs"),
    ("host-network", BASE, pod("hostnet", hostNetwork=True), "pod", "spec.isolation.podSecurity baseline"),
    ("host-pid", BASE, pod("hostpid", hostPID=True), "pod", "spec.isolation.podSecurity baseline"),
    ("host-path", BASE, pod("hostpath", volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "pod",
     "spec.isolation.podSecurity baseline"),
    ("privileged", BASE, pod("priv", containers=container(privileged=True)), "pod",
     "spec.isolation.podSecurity baseline"),
    ("capabilities", BASE, pod("caps", containers=container(capabilities={"add": ["SYS_ADMIN"]})), "pod",
     "spec.isolation.podSecurity baseline"),
    ("privilege-escalation", STRICT, pod("escalate", containers=container(allowPrivilegeEscalation=True)), "pod",
     "spec.isolation.podSecurity restricted"),
    ("critical-priority", BASE, pod("critical", priorityClassName="system-cluster-critical"), "pod",
     "spec.isolation.allowedPriorityClasses"),
    ("reserved-secret-name", BASE, {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": naming.token_secret_name("default"), "namespace": NS},
                                    "stringData": {"token": "forged"}}, "secret", "reserved"),
]


def selectorless(name: str) -> dict[str, Any]:
    return service(name)


@pytest.fixture(scope="module")
def applied(tenants: dict[str, TenantHandle], syncer: SyncerProcess) -> dict[str, TenantHandle]:
    """Every hostile object applied at once (their waits overlap)."""
    for tenant in tenants.values():
        apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    # selector-less Services for the hand-written Endpoints
    apply(tenants[BASE], *(selectorless(o["metadata"]["name"]) for _, _, o, r, _ in HOSTILE if r == "endpoints"))
    for which in (BASE, STRICT):
        apply(tenants[which], *(o for _, t, o, _, _ in HOSTILE if t == which))
    return tenants


def policy_events(tenant: TenantHandle, kind: str, name: str) -> list[str]:
    got = kjson(tenant.kubectl, "get", "events", "-n", NS, "--field-selector",
                f"involvedObject.kind={kind},involvedObject.name={name},reason=PolicyViolation")
    return [e.get("message", "") for e in (got or {}).get("items", [])]


@pytest.mark.parametrize("case", [pytest.param(c[1:], id=c[0]) for c in HOSTILE])
def test_hostile_object_is_refused_with_an_event(super_cluster: Any, applied: dict[str, TenantHandle],
                                                 syncer: SyncerProcess, case: tuple[str, dict[str, Any], str, str]
                                                 ) -> None:
    tenant_id, obj, resource, words = case
    tenant = applied[tenant_id]
    name = obj["metadata"]["name"]
    messages = wait_for(f"PolicyViolation Event on {obj['kind']} {name}",
                        functools.partial(policy_events, tenant, obj["kind"], name), syncer=syncer)
    assert any(words in m for m in messages), messages
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    assert kjson(super_cluster.kubectl, "get", resource, name, "-n", p_ns) is None


def test_affinity_is_confined_to_the_tenant(super_cluster: Any, applied: dict[str, TenantHandle],
                                            syncer: SyncerProcess) -> None:
    tenant = applied[BASE]
    term = {"labelSelector": {"matchLabels": {"app": "victim"}}, "topologyKey": "kubernetes.io/hostname",
            "namespaceSelector": {}}
    apply(tenant, pod("nosy", affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": term}]}, "podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{**term, "namespaceSelector": None,
                                                            "namespaces": [NS, "kube-system"]}]}}))
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    p_pod = wait_for("super pod", lambda: kjson(super_cluster.kubectl, "get", "pod", "nosy", "-n", p_ns),
                     syncer=syncer)
    anti = p_pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    selector = anti[0]["podAffinityTerm"]["namespaceSelector"]["matchLabels"]
    assert selector[naming.LABEL_CLUSTER_KEY] == tenant.cluster_key
    assert selector[naming.LABEL_NAMESPACE_ROLE] == naming.ROLE_WORKLOAD
    required = p_pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["namespaces"] == [p_ns, naming.super_namespace(tenant.cluster_key, "kube-system")]
    # the tenant's default tolerations (DefaultTolerationSeconds) went down: node conditions are allowed
    keys = {t.get("key") for t in p_pod["spec"].get("tolerations") or []}
    assert "node.kubernetes.io/not-ready" in keys


def test_endpoints_to_own_pod_go_down(super_cluster: Any, applied: dict[str, TenantHandle],
                                      syncer: SyncerProcess) -> None:
    tenant = applied[BASE]
    apply(tenant, pod("backend"))
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    ip = wait_for("super pod IP", lambda: ((kjson(super_cluster.kubectl, "get", "pod", "backend", "-n", p_ns) or {})
                                           .get("status") or {}).get("podIP"), syncer=syncer)
    apply(tenant, selectorless("own"), endpoints("own", ip))
    p_ep = wait_for("super endpoints", lambda: kjson(super_cluster.kubectl, "get", "endpoints", "own", "-n", p_ns),
                    syncer=syncer)
    assert p_ep["subsets"][0]["addresses"][0]["ip"] == ip
    # changed to a hostile address (the super apiserver's service IP): told, and the super copy removed
    apply(tenant, endpoints("own", "10.0.0.1"))
    wait_for("super endpoints removed", lambda: kjson(super_cluster.kubectl, "get", "endpoints", "own", "-n", p_ns)
             is None, syncer=syncer)
    assert any("spec.isolation.allowedEndpointCIDRs" in m for m in policy_events(tenant, "Endpoints", "own"))


def test_service_turned_nodeport_is_removed(super_cluster: Any, applied: dict[str, TenantHandle],
                                            syncer: SyncerProcess) -> None:
    tenant = applied[BASE]
    apply(tenant, service("flip", selector={"app": "x"}))
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    wait_for("super service", lambda: kjson(super_cluster.kubectl, "get", "service", "flip", "-n", p_ns),
             syncer=syncer)
    tenant.kubectl("patch", "service", "flip", "-n", NS, "--type=merge", "-p", '{"spec":{"type":"NodePort"}}')
    wait_for("super service removed", lambda: kjson(super_cluster.kubectl, "get", "service", "flip", "-n", p_ns)
             is None, syncer=syncer)
    messages = wait_for("Event", functools.partial(policy_events, tenant, "Service", "flip"), syncer=syncer)
    assert any("spec.isolation.exposure.nodePort" in m for m in messages)


def test_load_balancer_status_goes_up_when_allowed(super_cluster: Any, applied: dict[str, TenantHandle],
                                                   syncer: SyncerProcess) -> None:
    tenant = applied[STRICT]
    apply(tenant, service("pub", type="LoadBalancer", selector={"app": "x"}))
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    p_svc = wait_for("super LoadBalancer service",
                     lambda: kjson(super_cluster.kubectl, "get", "service", "pub", "-n", p_ns), syncer=syncer)
    assert p_svc["spec"]["type"] == "LoadBalancer"
    # what a cloud controller does in the super cluster (the test bed has none)
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    super_cluster.kubectl("patch", "service", "pub", "-n", p_ns, "--subresource=status", "--type=merge",
                          "-p", json.dumps(status))
    def ingress_ips() -> list[str]:
        got = kjson(tenant.kubectl, "get", "service", "pub", "-n", NS) or {}
        return [i.get("ip") for i in ((got.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    # (the super apiserver defaults ipMode; it comes up with the address)
    wait_for("tenant Service status", lambda: ingress_ips() == ["192.0.2.7"], syncer=syncer)


def test_network_policy_lets_the_admins_peers_in(super_cluster: Any, applied: dict[str, TenantHandle],
                                                 syncer: SyncerProcess) -> None:
    tenant = applied[STRICT]
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    netpol = wait_for("NetworkPolicy", lambda: kjson(super_cluster.kubectl, "get", "networkpolicy",
                                                     naming.POLICY_NETWORK_POLICY_NAME, "-n", p_ns), syncer=syncer)
    own = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: tenant.cluster_key}}}
    assert netpol["spec"]["ingress"] == [
        {"from": [own]},
        {"from": [{"namespaceSelector": MONITORING["namespaceSelector"], "podSelector": MONITORING["podSelector"]}],
         "ports": [{"protocol": "TCP", "port": 9100}]},
    ]
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # the default tenant has no allow-list: only its own namespaces come in
    base = applied[BASE]
    base_pol = kjson(super_cluster.kubectl, "get", "networkpolicy", naming.POLICY_NETWORK_POLICY_NAME, "-n",
                     naming.super_namespace(base.cluster_key, NS))
    assert base_pol["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: base.cluster_key}}}]}]
