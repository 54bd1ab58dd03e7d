"""Spec/status models: defaults, validation errors that name the field, semantic problems."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd import ClusterVersionSpec, SpecError, StorageSpec, TenantSpec, TenantStatus, models
from tenant_crd.models import Condition, parse_quantity


def test_empty_spec_gets_safe_defaults() -> None:
    spec = TenantSpec.from_dict({})
    assert spec.control_plane.backend == "local"
    assert spec.control_plane.replicas == 1
    assert spec.isolation.pod_security == "baseline"
    assert spec.isolation.network_policy is True
    assert spec.isolation.resource_quota is None
    assert spec.control_plane.storage == StorageSpec(size="1Gi", storage_class_name=None)
    assert spec.problems() == []


def test_full_spec_is_read() -> None:
    spec = TenantSpec.from_dict(
        {
            "controlPlane": {"version": "v1.36.3", "backend": "pods", "replicas": 2,
                             "expose": {"type": "NodePort"}, "extraArgs": {"apiserver": {"v": "2"}},
                             "storage": {"size": "5Gi", "storageClassName": "fast-ssd"}},
            "owners": {"users": ["alice", "alice", "bob"], "groups": ["devs"]},
            "isolation": {
                "resourceQuota": {"hard": {"pods": 10, "limits.cpu": "4"}},
                "limitRange": {"defaults": {"cpu": "500m"}, "defaultRequests": {"cpu": "100m"}},
                "podSecurity": "restricted",
                "nodeSelector": {"pool": "tenants"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}],
                "runtimeClassName": "gvisor",
            },
            "sync": {"extraKinds": ["widgets.example.com"], "opaqueMetadataPrefixes": ["example.com/"]},
        }
    )
    assert spec.control_plane.replicas == 2
    assert spec.control_plane.apiserver_args == {"v": "2"}
    assert spec.control_plane.storage == StorageSpec(size="5Gi", storage_class_name="fast-ssd")
    assert spec.owners.users == ("alice", "bob")
    assert spec.isolation.resource_quota == {"pods": "10", "limits.cpu": "4"}
    assert spec.isolation.tolerations[0].to_dict() == {
        "key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}
    assert spec.sync.extra_kinds == ("widgets.example.com",)
    assert spec.problems() == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("backend-enum", {"controlPlane": {"backend": "vm"}}, "spec.controlPlane.backend"),
    ("version-pattern", {"controlPlane": {"version": "1.36"}}, "spec.controlPlane.version"),
    ("both-version-and-ref", {"controlPlane": {"version": "v1.36.3", "clusterVersionRef": "x"}}, "at most one"),
    ("local-replicas", {"controlPlane": {"replicas": 3}}, "exactly one replica"),
    ("replicas-range", {"controlPlane": {"backend": "pods", "replicas": 9}}, "between 1 and 5"),
    ("replicas-type", {"controlPlane": {"replicas": "2"}}, "must be an integer"),
    ("pod-security", {"isolation": {"podSecurity": "none"}}, "spec.isolation.podSecurity"),
    ("quota-quantity", {"isolation": {"resourceQuota": {"hard": {"cpu": "lots"}}}}, "not a quantity"),
    ("toleration-exists-value", {"isolation": {"tolerations": [{"key": "a", "operator": "Exists",
                                                                "value": "b"}]}}, "tolerations[0]"),
    ("flag-name", {"controlPlane": {"extraArgs": {"apiserver": {"--v": "2"}}}}, "key '--v'"),
    ("owners-type", {"owners": {"users": "alice"}}, "spec.owners.users"),
    ("spec-not-object", {"controlPlane": []}, "spec.controlPlane: must be an object"),
    ("extra-kind", {"sync": {"extraKinds": ["Widgets"]}}, "spec.sync.extraKinds[0]"),
    ("storage-size-word", {"controlPlane": {"storage": {"size": "lots"}}}, "spec.controlPlane.storage.size"),
    ("storage-size-zero", {"controlPlane": {"storage": {"size": "0Gi"}}}, "greater than zero"),
    ("storage-size-milli", {"controlPlane": {"storage": {"size": "500m"}}}, "not a storage size"),
    ("storage-size-int", {"controlPlane": {"storage": {"size": 5}}}, "spec.controlPlane.storage.size"),
    ("storage-class-name", {"controlPlane": {"storage": {"storageClassName": "Fast_SSD"}}},
     "spec.controlPlane.storage.storageClassName"),
    ("cluster-domain-upper", {"dns": {"clusterDomain": "Corp.Example"}}, "spec.dns.clusterDomain"),
    ("cluster-domain-dot", {"dns": {"clusterDomain": "corp.example."}}, "spec.dns.clusterDomain"),
    ("cluster-domain-label", {"dns": {"clusterDomain": "a" * 64 + ".local"}}, "spec.dns.clusterDomain"),
    ("cluster-domain-long", {"dns": {"clusterDomain": ".".join(["a" * 60] * 5)}}, "spec.dns.clusterDomain"),
    ("cluster-domain-reverse", {"dns": {"clusterDomain": "10.in-addr.arpa"}}, "reverse-lookup zone"),
    ("cluster-domain-arpa", {"dns": {"clusterDomain": "arpa"}}, "reverse-lookup zone"),
    ("cluster-domain-type", {"dns": {"clusterDomain": 5}}, "spec.dns.clusterDomain"),
]


@pytest.mark.parametrize(("spec", "needle"), [(b, n) for _, b, n in BAD], ids=[i for i, _, _ in BAD])
def test_bad_spec_names_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        TenantSpec.from_dict(spec)
    assert needle in str(info.value)


CONFLICTS: list[tuple[str, dict[str, Any], str]] = [
    ("request-above-limit", {"limitRange": {"defaults": {"cpu": "100m"}, "defaultRequests": {"cpu": "1"}}},
     "exceeds default limit"),
    ("limit-above-quota", {"resourceQuota": {"hard": {"limits.memory": "1Gi"}},
                           "limitRange": {"defaults": {"memory": "2Gi"}}}, "exceeds resourceQuota"),
]


@pytest.mark.parametrize(("isolation", "needle"), [(b, n) for _, b, n in CONFLICTS],
                         ids=[i for i, _, _ in CONFLICTS])
def test_conflicting_policy_is_a_problem(isolation: dict[str, Any], needle: str) -> None:
    problems = TenantSpec.from_dict({"isolation": isolation}).problems()
    assert len(problems) == 1
    assert needle in problems[0]


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("1k", "1000"), ("1e3", "1000")],
    ids=["milli", "plain", "binary", "decimal", "exponent"],
)
def test_parse_quantity(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value)
    assert str(parse_quantity(text).normalize()) == str(parse_quantity(value).normalize())


def test_cluster_version_requires_version() -> None:
    with pytest.raises(SpecError, match=r"spec.version"):
        ClusterVersionSpec.from_dict({"images": {}})
    cv = ClusterVersionSpec.from_dict({"version": "v1.36.3", "images": {"apiserver": "reg/x:v1"}})
    assert cv.images.apiserver == "reg/x:v1"


def test_status_round_trip() -> None:
    status = TenantStatus(
        phase="Ready",
        conditions=(Condition("Ready", "True", "Provisioned", "ok", 3, "2026-01-01T00:00:00Z"),),
        cluster_key="a-123456",
        endpoint="https://127.0.0.1:1234",
        kubeconfig_secret=("a-123456", "admin-kubeconfig"),
        observed_generation=3,
    )
    assert TenantStatus.from_dict(status.to_dict()) == status
    assert status.ready
    assert not TenantStatus.from_dict({}).ready


def _tenant(generation: Any, *conditions: dict[str, Any], observed: Any = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Ready", "conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    meta = {"name": "t"} if generation is None else {"name": "t", "generation": generation}
    return {"metadata": meta, "status": status}


def _ready(status: str = "True", **extra: Any) -> dict[str, Any]:
    return {"type": "Ready", "status": status, **extra}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(_tenant(2, _ready(observedGeneration=2)), True, id="ready-current-generation"),
        pytest.param(_tenant(3, _ready(observedGeneration=2)), False, id="ready-for-older-spec"),
        pytest.param(_tenant(2, _ready("False", observedGeneration=2)), False, id="not-ready"),
        pytest.param(_tenant(2, _ready(), observed=2), True, id="status-observed-generation-fallback"),
        pytest.param(_tenant(2, _ready(), observed=1), False, id="status-observed-generation-stale"),
        pytest.param(_tenant(2, _ready()), False, id="no-observed-generation"),
        pytest.param(_tenant(None, _ready(observedGeneration=1)), False, id="no-generation"),
        pytest.param(_tenant(2, {"type": "Other", "status": "True", "observedGeneration": 2}), False,
                     id="no-ready-condition"),
        pytest.param(_tenant(1, _ready(observedGeneration=True)), False, id="bool-is-not-a-generation"),
        pytest.param({"metadata": {"generation": 1}}, False, id="no-status"),
        pytest.param(None, False, id="no-object"),
    ],
)
def test_is_ready_is_generation_aware(obj: dict[str, Any] | None, expected: bool) -> None:
    assert models.is_ready(obj) is expected


@pytest.mark.parametrize(("spec", "domain"), [
    ({}, "cluster.local"), ({"dns": {}}, "cluster.local"), ({"dns": {"clusterDomain": "corp"}}, "corp"),
    ({"dns": {"clusterDomain": "team-a.corp.example"}}, "team-a.corp.example"),
])
def test_cluster_domain_is_read_with_kubernetes_default(spec: dict[str, Any], domain: str) -> None:
    assert TenantSpec.from_dict(spec).dns.cluster_domain == domain
    assert models.cluster_domain({"spec": spec}) == domain


def test_cluster_domain_of_an_unreadable_spec_is_the_default() -> None:
    assert models.cluster_domain({"spec": {"dns": {"clusterDomain": "ip6.arpa"}}}) == "cluster.local"
    assert models.cluster_domain({"spec": {"isolation": []}}) == "cluster.local"
