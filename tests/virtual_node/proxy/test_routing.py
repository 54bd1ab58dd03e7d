"""Kubelet path parsing, tenant identity and the cross-tenant checks."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster import naming
from virtual_node.proxy import routing
from virtual_node.proxy.routing import Denied, KubeletRequest

KEY_A = "alpha-1a2b3c"
KEY_B = "beta-4d5e6f"


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        pytest.param("/containerLogs/default/web/app", KubeletRequest("containerLogs", "default", "web", "app", None),
                     id="logs"),
        pytest.param("/exec/ns1/web-0/c", KubeletRequest("exec", "ns1", "web-0", "c", None), id="exec"),
        pytest.param("/exec/ns1/web.x/1234-abcd/c", KubeletRequest("exec", "ns1", "web.x", "c", "1234-abcd"),
                     id="exec-uid"),
        pytest.param("/attach/ns1/p/c", KubeletRequest("attach", "ns1", "p", "c", None), id="attach"),
        pytest.param("/portForward/ns1/p", KubeletRequest("portForward", "ns1", "p", None, None), id="port-forward"),
        pytest.param("/portForward/ns1/p/ab-12", KubeletRequest("portForward", "ns1", "p", None, "ab-12"),
                     id="port-forward-uid"),
    ],
)
def test_parse_path(path: str, expect: KubeletRequest) -> None:
    assert routing.parse_path(path) == expect


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/stats/summary", 403, id="stats"),
        pytest.param("/pods", 403, id="pod-list"),
        pytest.param("/logs/syslog", 403, id="node-logs"),
        pytest.param("/runningpods/", 403, id="runningpods"),
        pytest.param("/containerLogs/default/web", 404, id="logs-too-short"),
        pytest.param("/containerLogs/../web/app", 404, id="dotdot-namespace"),
        pytest.param("/containerLogs/default/../app", 404, id="dotdot-pod"),
        pytest.param("/containerLogs/Default/web/app", 404, id="uppercase"),
        pytest.param("/exec/ns/p/not-a-uid!/c", 404, id="bad-uid"),
        pytest.param("/exec/ns/p/u/c/extra", 404, id="too-long"),
        pytest.param("relative", 404, id="relative"),
    ],
)
def test_parse_path_refuses(path: str, status: int) -> None:
    with pytest.raises(Denied) as info:
        routing.parse_path(path)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("cn", "orgs", "ok"),
    [
        pytest.param(KEY_A, [naming.KUBELET_CLIENT_GROUP], True, id="tenant"),
        pytest.param(KEY_A, ["system:masters"], False, id="wrong-group"),
        pytest.param("alpha-1a2b3c--default", [naming.KUBELET_CLIENT_GROUP], False, id="super-namespace-as-cn"),
        pytest.param("", [naming.KUBELET_CLIENT_GROUP], False, id="empty-cn"),
        pytest.param("kube-apiserver-kubelet-client", [], False, id="super-apiserver"),
    ],
)
def test_tenant_from_identity(cn: str, orgs: list[str], ok: bool) -> None:
    if ok:
        assert routing.tenant_from_identity(cn, orgs) == cn
    else:
        with pytest.raises(Denied) as info:
            routing.tenant_from_identity(cn, orgs)
        assert info.value.status == 403


def _p_pod(key: str, tenant_ns: str, *, node: str | None = "n1", uid: str = "0a1b-2c") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web", "namespace": naming.super_namespace(key, tenant_ns), "uid": "s-uid",
            "labels": {naming.LABEL_CLUSTER_KEY: key},
            "annotations": {naming.ANN_OBJECT_UID: uid},
        },
        "spec": {"nodeName": node} if node else {},
    }


def test_guessed_super_namespace_is_translated_again() -> None:
    # Tenant B names tenant A's super namespace in the path.
    guessed = naming.super_namespace(KEY_A, "default")
    request = routing.parse_path(f"/containerLogs/{guessed}/web/app")
    mapped = routing.super_namespace_for(KEY_B, request)
    assert mapped != guessed
    assert naming.is_super_namespace_of(mapped, KEY_B)


@pytest.mark.parametrize(
    ("caller", "p_pod", "uid", "status"),
    [
        pytest.param(KEY_A, None, None, 404, id="missing"),
        pytest.param(KEY_B, _p_pod(KEY_A, "default"), None, 404, id="other-tenants-pod"),
        pytest.param(KEY_A, {**_p_pod(KEY_A, "default"), "metadata": {
            **_p_pod(KEY_A, "default")["metadata"], "labels": {}}}, None, 404, id="unlabelled"),
        pytest.param(KEY_A, {**_p_pod(KEY_A, "default"), "metadata": {
            **_p_pod(KEY_A, "default")["metadata"], "namespace": "kube-system"}}, None, 404, id="foreign-namespace"),
        pytest.param(KEY_A, _p_pod(KEY_A, "default", node=None), None, 404, id="unscheduled"),
        pytest.param(KEY_A, _p_pod(KEY_A, "default"), "other-uid", 404, id="uid-mismatch"),
    ],
)
def test_check_super_pod_refuses(caller: str, p_pod: dict[str, Any] | None, uid: str | None, status: int) -> None:
    request = KubeletRequest("containerLogs", "default", "web", "app", uid)
    with pytest.raises(Denied) as info:
        routing.check_super_pod(caller, request, p_pod)
    assert info.value.status == status


def test_check_super_pod_and_super_path() -> None:
    request = routing.parse_path("/exec/default/web/0a1b-2c/app")
    assert routing.check_super_pod(KEY_A, request, _p_pod(KEY_A, "default")) == "n1"
    super_ns = routing.super_namespace_for(KEY_A, request)
    assert routing.super_path(request, super_namespace=super_ns, super_uid="s-uid") == (
        f"/exec/{super_ns}/web/s-uid/app"
    )


@pytest.mark.parametrize(
    ("addresses", "types", "expect"),
    [
        pytest.param([{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                     ("InternalIP", "Hostname"), ("10.0.0.1", 10250), id="prefer-ip"),
        pytest.param([{"type": "Hostname", "address": "h"}], ("InternalIP", "Hostname"), ("h", 10250),
                     id="fallback"),
    ],
)
def test_node_endpoint(addresses: list[dict[str, str]], types: tuple[str, ...], expect: tuple[str, int]) -> None:
    p_node = {"metadata": {"name": "n"}, "status": {"addresses": addresses,
                                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert routing.node_endpoint(p_node, address_types=types) == expect


def test_node_endpoint_without_port_is_bad_gateway() -> None:
    with pytest.raises(Denied) as info:
        routing.node_endpoint({"metadata": {"name": "n"}, "status": {}}, address_types=("InternalIP",))
    assert info.value.status == 502
