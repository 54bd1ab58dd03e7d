"""Isolation policy: objects per super namespace, pod checks and pod mutation."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd import TenantSpec
from vcluster import naming, policy


def _iso(**isolation: Any) -> Any:
    return TenantSpec.from_dict({"isolation": isolation}).isolation


def test_default_policy_is_network_isolation_and_baseline() -> None:
    iso = _iso()
    objs = policy.policy_objects(iso, super_namespace="t-abc123--app", cluster_key="t-abc123", tenant_name="t")
    assert [o["kind"] for o in objs] == ["NetworkPolicy"]
    netpol = objs[0]
    assert netpol["metadata"]["namespace"] == "t-abc123--app"
    assert netpol["spec"]["podSelector"] == {}
    assert netpol["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: "t-abc123"}}}]}
    ]
    assert netpol["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == "t-abc123"
    assert policy.namespace_labels(iso)["pod-security.kubernetes.io/enforce"] == "baseline"
    assert sorted(policy.stale_policy_kinds(iso)) == ["LimitRange", "ResourceQuota"]


def test_quota_and_limits() -> None:
    iso = _iso(
        resourceQuota={"hard": {"pods": 5, "requests.cpu": "2"}},
        limitRange={"defaults": {"cpu": "500m"}, "defaultRequests": {"cpu": "100m"}},
        networkPolicy=False,
    )
    objs = {o["kind"]: o for o in policy.policy_objects(iso, super_namespace="n", cluster_key="k", tenant_name="t")}
    assert set(objs) == {"ResourceQuota", "LimitRange"}
    assert objs["ResourceQuota"]["spec"]["hard"] == {"pods": "5", "requests.cpu": "2"}
    assert objs["LimitRange"]["spec"]["limits"] == [
        {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}
    ]
    assert policy.stale_policy_kinds(iso) == ["NetworkPolicy"]


def _pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    base.update(spec)
    return base


_RESTRICTED_OK = _pod(
    securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    containers=[{"name": "c", "image": "x", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
)

POD_CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("plain-baseline", "baseline", _pod(), []),
    ("host-network", "baseline", _pod(hostNetwork=True), ["hostNetwork"]),
    ("host-pid-ipc", "baseline", _pod(hostPID=True, hostIPC=True), ["hostPID", "hostIPC"]),
    ("host-path", "baseline", _pod(volumes=[{"name": "v", "hostPath": {"path": "/"}}]), ["hostPath"]),
    ("privileged", "baseline",
     _pod(containers=[{"name": "c", "securityContext": {"privileged": True}}]), ["privileged"]),
    ("privileged-init", "baseline",
     _pod(initContainers=[{"name": "i", "securityContext": {"privileged": True}}]), ["initContainers[i]"]),
    ("cap-sys-admin", "baseline",
     _pod(containers=[{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]),
     ["SYS_ADMIN"]),
    ("host-port", "baseline", _pod(containers=[{"name": "c", "ports": [{"hostPort": 80}]}]), ["hostPort"]),
    ("pinned-node", "privileged", _pod(nodeName="node-1"), ["nodeName"]),
    ("privileged-level-allows-host", "privileged", _pod(hostNetwork=True), []),
    ("restricted-plain-fails", "restricted", _pod(),
     ["allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile", "drop ALL"]),
    ("restricted-ok", "restricted", _RESTRICTED_OK, []),
    ("restricted-host-path", "restricted", {**_RESTRICTED_OK, "volumes": [{"name": "v", "hostPath": {}}]},
     ["hostPath"]),
    ("priority-not-allowed", "baseline", _pod(priorityClassName="system-node-critical"), ["priorityClassName"]),
]


@pytest.mark.parametrize(("level", "spec", "needles"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_check_pod(level: str, spec: dict[str, Any], needles: list[str]) -> None:
    violations = policy.check_pod(spec, policy.PodPolicy(pod_security=level))
    if not needles:
        assert violations == []
    for needle in needles:
        assert any(needle in v for v in violations), (needle, violations)
    assert len(violations) >= len(needles)


def test_allowed_priority_class_passes() -> None:
    pol = policy.pod_policy(_iso(allowedPriorityClasses=["high"]))
    assert policy.check_pod(_pod(priorityClassName="high"), pol) == []


def test_apply_pod_policy_adds_and_overrides_without_mutating() -> None:
    iso = _iso(
        nodeSelector={"pool": "tenants"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}],
        runtimeClassName="gvisor",
    )
    pol = policy.pod_policy(iso)
    spec = _pod(nodeSelector={"pool": "mine", "disk": "ssd"}, runtimeClassName="runc")
    out = policy.apply_pod_policy(spec, pol)
    assert out["nodeSelector"] == {"pool": "tenants", "disk": "ssd"}
    assert out["runtimeClassName"] == "gvisor"
    assert out["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"pool": "mine", "disk": "ssd"}
    assert policy.apply_pod_policy(out, pol) == out


@pytest.mark.parametrize(
    ("allowed", "cls", "ok"),
    [((), None, True), ((), "fast", False), (("fast",), "fast", True)],
    ids=["default-class", "not-allowed", "allowed"],
)
def test_check_pvc(allowed: tuple[str, ...], cls: str | None, ok: bool) -> None:
    pol = policy.PodPolicy(allowed_storage_classes=allowed)
    assert (policy.check_pvc({"storageClassName": cls}, pol) == []) is ok
