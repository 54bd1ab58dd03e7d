"""CRD validation at its edges: every malformed field is refused with its path, every edge value accepted.

Why: the Tenant spec is the admin's input, and parts of it (tolerations, the
pod-security level, quotas) become policy on every tenant pod.  A spec that
slipped past the apiserver's schema (or came from the CLI) must fail here
with a :class:`SpecError` naming the field, never be read into something
looser: a toleration without a key that is not ``Exists``, a negative
``tolerationSeconds``, ``true`` read as the integer 1, an unknown taint
effect.  Each case states the field and whether it is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from tenant_crd import TenantSpec
from tenant_crd.models import (
    ClusterVersionSpec,
    Condition,
    SpecError,
    TenantStatus,
    is_ready,
    parse_quantity,
)

# (id, spec, field path the error must name)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("spec-not-object", {"controlPlane": "x"}, "spec.controlPlane"),
    ("toleration-not-object", {"isolation": {"tolerations": ["x"]}}, "spec.isolation.tolerations[0]"),
    ("tolerations-not-list", {"isolation": {"tolerations": {"key": "a"}}}, "spec.isolation.tolerations"),
    ("toleration-no-key-equal", {"isolation": {"tolerations": [{"operator": "Equal"}]}},
     "spec.isolation.tolerations[0]"),
    ("toleration-no-key-default-operator", {"isolation": {"tolerations": [{"effect": "NoSchedule"}]}},
     "spec.isolation.tolerations[0]"),
    ("toleration-exists-with-value", {"isolation": {"tolerations": [{"key": "a", "operator": "Exists",
                                                                    "value": "v"}]}},
     "spec.isolation.tolerations[0]"),
    ("toleration-negative-seconds", {"isolation": {"tolerations": [{"key": "a", "tolerationSeconds": -1}]}},
     "spec.isolation.tolerations[0].tolerationSeconds"),
    ("toleration-bool-seconds", {"isolation": {"tolerations": [{"key": "a", "tolerationSeconds": True}]}},
     "spec.isolation.tolerations[0].tolerationSeconds"),
    ("toleration-string-seconds", {"isolation": {"tolerations": [{"key": "a", "tolerationSeconds": "5"}]}},
     "spec.isolation.tolerations[0].tolerationSeconds"),
    ("toleration-unknown-effect", {"isolation": {"tolerations": [{"key": "a", "effect": "NoEviction"}]}},
     "spec.isolation.tolerations[0].effect"),
    ("toleration-unknown-operator", {"isolation": {"tolerations": [{"key": "a", "operator": "Gt"}]}},
     "spec.isolation.tolerations[0].operator"),
    ("toleration-key-not-string", {"isolation": {"tolerations": [{"key": 1, "operator": "Exists"}]}},
     "spec.isolation.tolerations[0].key"),
    ("second-toleration", {"isolation": {"tolerations": [{"operator": "Exists"}, {"value": "v"}]}},
     "spec.isolation.tolerations[1]"),
    ("replicas-bool", {"controlPlane": {"backend": "pods", "replicas": True}}, "spec.controlPlane.replicas"),
    ("replicas-string", {"controlPlane": {"backend": "pods", "replicas": "3"}}, "spec.controlPlane.replicas"),
    ("replicas-zero", {"controlPlane": {"backend": "pods", "replicas": 0}}, "spec.controlPlane.replicas"),
    ("replicas-above-max", {"controlPlane": {"backend": "pods", "replicas": 6}}, "spec.controlPlane.replicas"),
    ("local-backend-two-replicas", {"controlPlane": {"backend": "local", "replicas": 2}}, "spec.controlPlane"),
    ("version-and-ref", {"controlPlane": {"version": "v1.36.0", "clusterVersionRef": "cv"}}, "spec.controlPlane"),
    ("bad-version", {"controlPlane": {"version": "1.36.0"}}, "spec.controlPlane.version"),
    ("unknown-backend", {"controlPlane": {"backend": "vm"}}, "spec.controlPlane.backend"),
    ("unknown-expose", {"controlPlane": {"expose": {"type": "Ingress"}}}, "spec.controlPlane.expose.type"),
    ("flag-with-dashes", {"controlPlane": {"extraArgs": {"apiserver": {"--v": "2"}}}},
     "spec.controlPlane.extraArgs.apiserver"),
    ("flag-value-not-string", {"controlPlane": {"extraArgs": {"controllerManager": {"v": 2}}}},
     "spec.controlPlane.extraArgs.controllerManager.v"),
    ("extra-args-not-map", {"controlPlane": {"extraArgs": {"apiserver": ["v"]}}},
     "spec.controlPlane.extraArgs.apiserver"),
    ("storage-size-zero", {"controlPlane": {"storage": {"size": "0"}}}, "spec.controlPlane.storage.size"),
    ("storage-size-milli", {"controlPlane": {"storage": {"size": "500m"}}}, "spec.controlPlane.storage.size"),
    ("storage-size-int", {"controlPlane": {"storage": {"size": 5}}}, "spec.controlPlane.storage.size"),
    ("storage-class-bad", {"controlPlane": {"storage": {"storageClassName": "Fast"}}},
     "spec.controlPlane.storage.storageClassName"),
    ("pod-security-unknown", {"isolation": {"podSecurity": "strict"}}, "spec.isolation.podSecurity"),
    ("pod-security-not-string", {"isolation": {"podSecurity": 2}}, "spec.isolation.podSecurity"),
    ("network-policy-string", {"isolation": {"networkPolicy": "false"}}, "spec.isolation.networkPolicy"),
    ("network-policy-int", {"isolation": {"networkPolicy": 0}}, "spec.isolation.networkPolicy"),
    ("quota-bad-quantity", {"isolation": {"resourceQuota": {"hard": {"cpu": "lots"}}}},
     "spec.isolation.resourceQuota.hard.cpu"),
    ("quota-bool", {"isolation": {"resourceQuota": {"hard": {"pods": True}}}},
     "spec.isolation.resourceQuota.hard.pods"),
    ("quota-not-map", {"isolation": {"resourceQuota": {"hard": ["cpu"]}}}, "spec.isolation.resourceQuota.hard"),
    ("limit-defaults-bad", {"isolation": {"limitRange": {"defaults": {"cpu": "1x"}}}},
     "spec.isolation.limitRange.defaults.cpu"),
    ("node-selector-not-string", {"isolation": {"nodeSelector": {"pool": 1}}}, "spec.isolation.nodeSelector.pool"),
    ("runtime-class-bad", {"isolation": {"runtimeClassName": "G Visor"}}, "spec.isolation.runtimeClassName"),
    ("storage-classes-not-list", {"isolation": {"allowedStorageClasses": "fast"}},
     "spec.isolation.allowedStorageClasses"),
    ("storage-class-empty", {"isolation": {"allowedStorageClasses": [""]}},
     "spec.isolation.allowedStorageClasses[0]"),
    ("priority-class-bad", {"isolation": {"allowedPriorityClasses": ["ok", "Not_OK"]}},
     "spec.isolation.allowedPriorityClasses[1]"),
    ("owner-not-string", {"owners": {"users": ["a", 3]}}, "spec.owners.users[1]"),
    ("extra-kind-bad", {"sync": {"extraKinds": ["Deployments"]}}, "spec.sync.extraKinds[0]"),
    ("prefix-bad", {"sync": {"opaqueMetadataPrefixes": ["/x"]}}, "spec.sync.opaqueMetadataPrefixes[0]"),
    ("cluster-version-ref-bad", {"controlPlane": {"clusterVersionRef": "V1"}}, "spec.controlPlane.clusterVersionRef"),
    ("controller-manager-flag-bad", {"controlPlane": {"extraArgs": {"controllerManager": {"--v": "2"}}}},
     "spec.controlPlane.extraArgs.controllerManager"),
    ("etcd-flag-bad", {"controlPlane": {"extraArgs": {"etcd": {"--heartbeat-interval": "250"}}}},
     "spec.controlPlane.extraArgs.etcd"),
    ("storage-class-pattern", {"isolation": {"allowedStorageClasses": ["Fast"]}},
     "spec.isolation.allowedStorageClasses[0]"),
    ("quota-float", {"isolation": {"resourceQuota": {"hard": {"cpu": 1.5}}}}, "spec.isolation.resourceQuota.hard.cpu"),
    ("transparent-prefix-bad", {"sync": {"transparentMetadataPrefixes": ["a b"]}},
     "spec.sync.transparentMetadataPrefixes[0]"),
]


@pytest.mark.parametrize(("spec", "path"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_the_field_named(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        TenantSpec.from_dict(spec)
    message = str(info.value)
    assert message.startswith(path), message
    # the path is the whole field, not a prefix of a longer one
    assert message[len(path)] in ":[ .", message


@pytest.mark.parametrize(
    ("spec", "got"),
    [
        pytest.param({"controlPlane": "x"}, "got str", id="object"),
        pytest.param({"controlPlane": {"version": 1}}, "got int", id="string"),
        pytest.param({"isolation": {"podSecurity": "strict"}}, "'strict'", id="enum"),
    ],
)
def test_refusals_say_what_was_given(spec: dict[str, Any], got: str) -> None:
    with pytest.raises(SpecError, match=got):
        TenantSpec.from_dict(spec)


def test_the_smallest_storage_size_is_accepted() -> None:
    assert TenantSpec.from_dict({"controlPlane": {"storage": {"size": "1"}}}).control_plane.storage.size == "1"


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        pytest.param({"operator": "Exists"}, {"operator": "Exists"}, id="no-key-exists"),
        pytest.param({"key": "a"}, {"key": "a", "operator": "Equal"}, id="default-operator-equal"),
        pytest.param({"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
                     {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
                     id="zero-seconds"),
        pytest.param({"key": "a", "value": "v", "effect": "PreferNoSchedule", "tolerationSeconds": 30},
                     {"key": "a", "operator": "Equal", "value": "v", "effect": "PreferNoSchedule",
                      "tolerationSeconds": 30}, id="everything"),
        pytest.param({"key": "a", "operator": "Exists", "value": ""}, {"key": "a", "operator": "Exists",
                                                                        "value": ""}, id="exists-empty-value"),
        pytest.param({"key": "a", "effect": "NoSchedule"}, {"key": "a", "operator": "Equal", "effect": "NoSchedule"},
                     id="no-schedule"),
    ],
)
def test_accepted_tolerations_round_trip(toleration: dict[str, Any], expected: dict[str, Any]) -> None:
    iso = TenantSpec.from_dict({"isolation": {"tolerations": [toleration]}}).isolation
    assert [t.to_dict() for t in iso.tolerations] == [expected]


@pytest.mark.parametrize(
    ("control_plane", "replicas"),
    [
        pytest.param({"backend": "pods", "replicas": 1}, 1, id="min"),
        pytest.param({"backend": "pods", "replicas": 5}, 5, id="max"),
        pytest.param({"backend": "pods"}, 1, id="default"),
        pytest.param({"replicas": 1}, 1, id="local-one"),
    ],
)
def test_replica_bounds_are_inclusive(control_plane: dict[str, Any], replicas: int) -> None:
    assert TenantSpec.from_dict({"controlPlane": control_plane}).control_plane.replicas == replicas


def test_an_empty_spec_reads_the_schema_defaults() -> None:
    empty: tuple[dict[str, Any] | None, ...] = (None, {})
    for spec in empty:
        t = TenantSpec.from_dict(spec)
        assert (t.control_plane.backend, t.control_plane.replicas, t.control_plane.expose.type) == (
            None, 1, "ClusterIP")  # backend None: the operator's default
        assert (t.isolation.pod_security, t.isolation.network_policy) == ("baseline", True)
        assert t.isolation.resource_quota is None
        assert t.isolation.limit_range is None
        assert t.control_plane.storage.size == "1Gi"
        assert t.problems() == []


def test_values_are_read_as_given() -> None:
    t = TenantSpec.from_dict({
        "controlPlane": {"version": "v1.36.3", "backend": "pods", "replicas": 3,
                         "expose": {"type": "NodePort", "host": "cp.example"},
                         "extraArgs": {"apiserver": {"v": "2"}, "controllerManager": {"v": "3"},
                                       "etcd": {"heartbeat-interval": "250"}},
                         "storage": {"size": "2Gi", "storageClassName": "fast"}},
        "owners": {"users": ["alice", "alice", "bob"], "groups": ["devs"]},
        "isolation": {"networkPolicy": False, "podSecurity": "restricted", "nodeSelector": {"pool": "t"},
                      "resourceQuota": {"hard": {"pods": 10, "cpu": "4"}}, "runtimeClassName": "gvisor",
                      "allowedStorageClasses": ["fast"], "allowedPriorityClasses": ["high"]},
        "sync": {"extraKinds": ["deployments.apps"], "opaqueMetadataPrefixes": ["example.com/"],
                 "transparentMetadataPrefixes": ["zone.example.com/"]},
    })
    cp = t.control_plane
    assert (cp.version, cp.backend, cp.replicas, cp.expose.type, cp.expose.host) == (
        "v1.36.3", "pods", 3, "NodePort", "cp.example")
    assert (dict(cp.apiserver_args), dict(cp.controller_manager_args)) == ({"v": "2"}, {"v": "3"})
    assert dict(cp.etcd_args) == {"heartbeat-interval": "250"}
    assert (cp.storage.size, cp.storage.storage_class_name) == ("2Gi", "fast")
    assert (t.owners.users, t.owners.groups) == (("alice", "bob"), ("devs",))
    iso = t.isolation
    assert (iso.network_policy, iso.pod_security, dict(iso.node_selector)) == (False, "restricted", {"pool": "t"})
    assert iso.resource_quota == {"pods": "10", "cpu": "4"}
    assert (iso.runtime_class_name, iso.allowed_storage_classes, iso.allowed_priority_classes) == (
        "gvisor", ("fast",), ("high",))
    assert (t.sync.extra_kinds, t.sync.opaque_metadata_prefixes, t.sync.transparent_metadata_prefixes) == (
        ("deployments.apps",), ("example.com/",), ("zone.example.com/",))


@pytest.mark.parametrize(
    ("limit_range", "quota", "problems"),
    [
        pytest.param({"defaults": {"cpu": "1"}, "defaultRequests": {"cpu": "2"}}, None, ["request cpu=2"],
                     id="request-above-limit"),
        pytest.param({"defaults": {"cpu": "1"}, "defaultRequests": {"cpu": "1"}}, None, [], id="request-equal-limit"),
        pytest.param({"defaults": {"cpu": "1"}, "defaultRequests": {"cpu": "500m"}}, None, [], id="request-below"),
        pytest.param({"defaultRequests": {"cpu": "2"}}, None, [], id="request-without-limit"),
        pytest.param({"defaults": {"memory": "2Gi"}}, {"limits.memory": "1Gi"}, ["limit memory=2Gi"],
                     id="limit-above-quota"),
        pytest.param({"defaults": {"memory": "1Gi"}}, {"limits.memory": "1Gi"}, [], id="limit-equal-quota"),
        pytest.param({"defaults": {"memory": "2Gi"}}, {"requests.memory": "1Gi"}, [], id="only-limits-quota-counts"),
        pytest.param({"defaults": {"cpu": "2", "memory": "2Gi"}, "defaultRequests": {"cpu": "3"}},
                     {"limits.memory": "1", "limits.cpu": "1"}, ["request cpu=3", "limit cpu=2", "limit memory=2Gi"],
                     id="several"),
    ],
)
def test_problems(limit_range: dict[str, Any], quota: dict[str, Any] | None, problems: list[str]) -> None:
    isolation: dict[str, Any] = {"limitRange": limit_range}
    if quota is not None:
        isolation["resourceQuota"] = {"hard": quota}
    found = TenantSpec.from_dict({"isolation": isolation}).problems()
    assert len(found) == len(problems), found
    for text, needle in zip(found, problems, strict=True):
        assert text.startswith("isolation.limitRange:")
        assert needle in text


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("1Gi", Decimal(2**30)), ("1Ki", Decimal(1024)), ("2", Decimal(2)),
     ("1k", Decimal(1000)), ("1M", Decimal(10**6)), ("1e3", Decimal(1000)), ("1.5", Decimal("1.5")),
     ("100n", Decimal("1E-7")), ("3u", Decimal("3E-6")), ("1E", Decimal(10**18)), ("1Ei", Decimal(2**60))],
    ids=str,
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1Gb", "1..2", "one", "1 Gi"])
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(SpecError, match=re.escape(repr(text))):
        parse_quantity(text)


# ---- ClusterVersion ---------------------------------------------------------------------


def test_cluster_version_reads_and_refuses() -> None:
    cv = ClusterVersionSpec.from_dict({
        "version": "v1.36.3", "images": {"etcd": "e:1", "apiserver": "a:1", "controllerManager": "c:1"},
        "apiserver": {"extraArgs": {"v": "2"}}, "controllerManager": {"extraArgs": {"v": "3"}}})
    assert cv.version == "v1.36.3"
    assert (cv.images.etcd, cv.images.apiserver, cv.images.controller_manager) == ("e:1", "a:1", "c:1")
    assert (dict(cv.apiserver_args), dict(cv.controller_manager_args)) == ({"v": "2"}, {"v": "3"})
    for bad, path in (({}, "spec.version"), ({"version": "1.2"}, "spec.version"),
                      ({"version": "v1.36.3", "images": {"etcd": "has space"}}, "spec.images.etcd"),
                      ({"version": "v1.36.3", "images": {"apiserver": "a b"}}, "spec.images.apiserver"),
                      ({"version": "v1.36.3", "images": {"controllerManager": "c d"}},
                       "spec.images.controllerManager"),
                      ({"version": "v1.36.3", "controllerManager": {"extraArgs": {"--x": "1"}}},
                       "spec.controllerManager.extraArgs"),
                      ({"version": "v1.36.3", "apiserver": {"extraArgs": {"--x": "1"}}}, "spec.apiserver.extraArgs")):
        with pytest.raises(SpecError) as info:
            ClusterVersionSpec.from_dict(bad)
        assert str(info.value).startswith(path)


# ---- status ---------------------------------------------------------------------------------


def test_status_round_trip() -> None:
    raw = {"phase": "Ready", "clusterKey": "t-abc123", "endpoint": "https://127.0.0.1:1", "version": "v1.36.3",
           "backend": "local", "observedGeneration": 3,
           "kubeconfigSecret": {"namespace": "t-abc123", "name": "admin-kubeconfig"},
           "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
                           "observedGeneration": 3, "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    status = TenantStatus.from_dict(raw)
    assert status.ready
    assert status.to_dict() == raw


@pytest.mark.parametrize(
    ("raw", "ready", "secret"),
    [
        pytest.param(None, False, None, id="none"),
        pytest.param({"conditions": [{"type": "Ready", "status": "False"}]}, False, None, id="not-ready"),
        pytest.param({"conditions": ["junk", {"type": "Other", "status": "True"}]}, False, None, id="other-type"),
        pytest.param({"kubeconfigSecret": {"namespace": "n"}}, False, None, id="secret-without-name"),
        pytest.param({"kubeconfigSecret": {"name": "s"}}, False, None, id="secret-without-namespace"),
    ],
)
def test_status_defaults(raw: dict[str, Any] | None, ready: bool, secret: tuple[str, str] | None) -> None:
    status = TenantStatus.from_dict(raw)
    assert status.ready is ready
    assert status.kubeconfig_secret == secret
    assert status.phase == "Pending"
    assert "kubeconfigSecret" not in status.to_dict()


def test_status_generation_must_be_an_integer() -> None:
    assert TenantStatus.from_dict({"observedGeneration": "3"}).observed_generation is None
    assert TenantStatus.from_dict({"observedGeneration": 3}).observed_generation == 3


def test_condition_defaults() -> None:
    c = Condition.from_dict({"observedGeneration": "3", "reason": None})
    assert (c.type, c.status, c.reason, c.message, c.observed_generation) == ("", "Unknown", "", "", None)
    assert c.to_dict() == {"type": "", "status": "Unknown", "reason": "", "message": ""}


def _tenant(generation: Any, cond_gen: Any = None, status_gen: Any = None, status: str = "True") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "Ready", "status": status}
    if cond_gen is not None:
        cond["observedGeneration"] = cond_gen
    st: dict[str, Any] = {"conditions": [cond]}
    if status_gen is not None:
        st["observedGeneration"] = status_gen
    return {"metadata": {"generation": generation}, "status": st}


@pytest.mark.parametrize(
    ("obj", "ready"),
    [
        pytest.param(_tenant(2, cond_gen=2), True, id="current"),
        pytest.param(_tenant(3, cond_gen=2), False, id="stale-condition"),
        pytest.param(_tenant(2, status_gen=2), True, id="status-generation"),
        pytest.param(_tenant(2, cond_gen=True, status_gen=2), True, id="bool-condition-generation-ignored"),
        pytest.param(_tenant(1, cond_gen=True), False, id="bool-is-not-generation-1"),
        pytest.param(_tenant(2, status_gen=True), False, id="bool-status-generation"),
        pytest.param(_tenant(2, cond_gen=2, status="False"), False, id="not-true"),
        pytest.param(_tenant(2), False, id="no-observed-generation"),
        pytest.param(_tenant("2", cond_gen=2), False, id="generation-not-int"),
        pytest.param(None, False, id="none"),
        pytest.param({"status": {"conditions": ["x"]}}, False, id="junk-condition"),
    ],
)
def test_is_ready(obj: dict[str, Any] | None, ready: bool) -> None:
    assert is_ready(obj) is ready
