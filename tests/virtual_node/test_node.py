"""Super Node → virtual Node translation."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest

from vcluster import naming
from virtual_node import node

NOW = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.UTC)


def p_node(*, ready: str = "True", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "kwok-node-1",
            "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", "pool": "secret-pool",
                       "topology.kubernetes.io/zone": "z1", **(labels or {})},
        },
        "spec": {"podCIDR": "10.0.0.0/24", "providerID": "kwok://x"},
        "status": {
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "allocatable": {"cpu": "31", "memory": "250Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "10.1.2.3"}, {"type": "Hostname", "address": "real"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "ok",
                 "lastHeartbeatTime": "2020-01-01T00:00:00Z", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False", "reason": "Fine",
                 "lastTransitionTime": "2020-01-01T00:00:00Z"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.36.3", "architecture": "arm64", "machineID": "private"},
        },
    }


def test_virtual_node_points_at_proxy_and_hides_super_details() -> None:
    v = node.build_virtual_node("kwok-node-1", p_node(), proxy_address="192.0.2.7", proxy_port=4443, now=NOW)
    assert v["status"]["addresses"] == [{"type": "InternalIP", "address": "192.0.2.7"}]
    assert v["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 4443}}
    assert "pool" not in v["metadata"]["labels"]
    assert "podCIDR" not in v["spec"]
    assert "providerID" not in v["spec"]
    assert "machineID" not in v["status"]["nodeInfo"]
    assert v["metadata"]["labels"][naming.LABEL_VIRTUAL_NODE] == "true"
    assert v["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-node-1"
    assert v["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert v["metadata"]["labels"]["topology.kubernetes.io/zone"] == "z1"
    assert v["spec"]["taints"] == [{"key": naming.TAINT_VIRTUAL_NODE, "value": "true", "effect": "NoSchedule"}]
    assert v["status"]["capacity"]["cpu"] == "32"
    assert v["status"]["allocatable"]["cpu"] == "31"
    assert node.is_virtual(v)


def test_dns_proxy_address_is_hostname_and_internal_dns() -> None:
    name = "kubelet-proxy.vc-system.svc"
    assert node.proxy_addresses(name) == [
        {"type": "Hostname", "address": name}, {"type": "InternalDNS", "address": name}
    ]


@pytest.mark.parametrize(
    ("super_ready", "expect"),
    [pytest.param("True", "True", id="ready"), pytest.param("False", "False", id="not-ready"),
     pytest.param("Unknown", "Unknown", id="unknown")],
)
def test_conditions_follow_super_node_with_fresh_heartbeat(super_ready: str, expect: str) -> None:
    conds = node.virtual_conditions(p_node(ready=super_ready), now=NOW)
    ready = next(c for c in conds if c["type"] == "Ready")
    assert ready["status"] == expect
    assert ready["lastHeartbeatTime"] == "2026-01-02T03:04:05Z"
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z"


def test_lost_super_node_turns_every_condition_unknown_and_keeps_capacity() -> None:
    previous = node.virtual_status(p_node(), proxy_address="1.2.3.4", proxy_port=1, now=NOW)
    lost = node.virtual_status(None, proxy_address="1.2.3.4", proxy_port=1, now=NOW, previous=previous)
    assert {c["type"]: c["status"] for c in lost["conditions"]} == {"Ready": "Unknown", "MemoryPressure": "Unknown"}
    assert all(c["reason"] == node.REASON_SUPER_NODE_LOST for c in lost["conditions"])
    assert lost["capacity"] == previous["capacity"]
    assert not node.is_ready({"status": lost})


def test_status_changed_ignores_heartbeat_times_only() -> None:
    a = node.virtual_status(p_node(), proxy_address="1.2.3.4", proxy_port=1, now=NOW)
    b = node.virtual_status(p_node(), proxy_address="1.2.3.4", proxy_port=1, now=NOW + _dt.timedelta(minutes=5))
    assert not node.status_changed(a, b)
    c = node.virtual_status(p_node(ready="False"), proxy_address="1.2.3.4", proxy_port=1, now=NOW)
    assert node.status_changed(a, c)
    d = node.virtual_status(p_node(), proxy_address="1.2.3.5", proxy_port=1, now=NOW)
    assert node.status_changed(a, d)


@pytest.mark.parametrize(
    ("v_node", "expect_keys"),
    [
        pytest.param(node.build_virtual_node("kwok-node-1", p_node(), proxy_address="1.1.1.1", proxy_port=1, now=NOW),
                     None, id="in-sync"),
        pytest.param({"metadata": {"labels": {}}, "spec": {}}, {"metadata", "spec"}, id="labels-and-taint-lost"),
        pytest.param({"metadata": {"labels": node.virtual_labels("kwok-node-1", p_node())},
                      "spec": {"taints": [{"key": "other", "effect": "NoExecute"}]}}, {"spec"}, id="taint-lost"),
    ],
)
def test_metadata_patch(v_node: dict[str, Any], expect_keys: set[str] | None) -> None:
    patch = node.metadata_patch(v_node, "kwok-node-1", p_node())
    assert (set(patch) if patch else None) == expect_keys
    if patch and "spec" in patch:
        keys = [t["key"] for t in patch["spec"]["taints"]]
        assert naming.TAINT_VIRTUAL_NODE in keys
        assert len(keys) == len((v_node.get("spec") or {}).get("taints") or []) + 1


_OURS = {"key": naming.TAINT_VIRTUAL_NODE, "value": "true", "effect": "NoSchedule"}
_ADMISSION = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
_UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}
_ADMIN = {"key": "maintenance", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("taints", "super_ready", "want"),
    [
        pytest.param([_OURS, _ADMISSION], "True", [_OURS], id="admission-not-ready-dropped"),
        pytest.param([_UNREACHABLE, _OURS, _ADMIN], "True", [_OURS, _ADMIN], id="old-lifecycle-leftover-dropped"),
        pytest.param([_OURS, _ADMISSION], "Unknown", None, id="kept-while-super-node-not-ready"),
        pytest.param([_OURS, _ADMIN], "True", None, id="admin-taint-kept"),
    ],
)
def test_metadata_patch_lifecycle_taints(taints: list[dict[str, str]], super_ready: str,
                                         want: list[dict[str, str]] | None) -> None:
    v_node = {"metadata": {"labels": node.virtual_labels("kwok-node-1", p_node())}, "spec": {"taints": taints}}
    patch = node.metadata_patch(v_node, "kwok-node-1", p_node(ready=super_ready))
    assert (patch["spec"]["taints"] if patch else None) == want


def test_lease_is_owned_by_node_and_renewed_now() -> None:
    lease = node.build_lease("n1", now=NOW, duration_seconds=40, node_uid="u-1")
    assert lease["metadata"]["namespace"] == naming.NODE_LEASE_NAMESPACE
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert lease["spec"]["renewTime"] == "2026-01-02T03:04:05.000000Z"
    assert lease["spec"]["holderIdentity"] == "n1"
