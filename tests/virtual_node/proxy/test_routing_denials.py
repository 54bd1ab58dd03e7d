"""Every refusal of the kubelet proxy: its status, and a message that names what was refused.

Why: a refusal is the whole answer a tenant's ``kubectl logs/exec`` gets, so
its status must be the documented one (404 for anything that could confirm
another tenant's pod, 403 for endpoints never served, 502 for a super node
the proxy cannot use) and its message must say which path, pod, container
or node it is about.  The edges of path parsing (trailing slashes, name
lengths) are here too: a parser that is off by one there changes which
requests reach a kubelet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vcluster import naming
from virtual_node.proxy import routing
from virtual_node.proxy.routing import Denied, KubeletRequest

KEY = naming.cluster_key("alpha", "uid-a")


def denial(call: Callable[[], Any]) -> Denied:
    with pytest.raises(Denied) as info:
        call()
    exc = info.value
    assert isinstance(exc.message, str)
    assert exc.message
    assert str(exc) == exc.message
    return exc


@pytest.mark.parametrize(
    ("path", "status", "word"),
    [
        pytest.param("containerLogs/ns/p/c", 404, "endpoint", id="no-leading-slash"),
        pytest.param("", 404, "endpoint", id="empty"),
        pytest.param("/", 403, "/", id="root"),
        pytest.param("/metrics", 403, "/metrics", id="metrics"),
        pytest.param("/run/ns/p/c", 403, "/run", id="run"),
        pytest.param("/exec/ns/p", 404, "/exec", id="too-short"),
        pytest.param("/exec/ns/p/u/c/x", 404, "/exec", id="too-long"),
        pytest.param("/portForward/ns", 404, "/portForward", id="port-forward-short"),
        pytest.param("/exec/Bad_NS/p/c", 404, "Bad_NS", id="namespace"),
        pytest.param("/exec/ns/Bad_Pod/c", 404, "Bad_Pod", id="pod"),
        pytest.param(f"/exec/ns/{'p' * 254}/c", 404, "p" * 254, id="pod-254"),
        pytest.param("/exec/ns/p/Bad_C", 404, "Bad_C", id="container"),
        pytest.param("/exec/ns/p/c//", 404, "''", id="empty-container"),
        pytest.param("/exec/ns/p/not_a_uid/c", 404, "not_a_uid", id="uid"),
        pytest.param("/portForward/ns/p/zz", 404, "zz", id="port-forward-uid"),
    ],
)
def test_parse_path_refusals(path: str, status: int, word: str) -> None:
    exc = denial(lambda: routing.parse_path(path))
    assert exc.status == status
    assert word in exc.message


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        pytest.param("/containerLogs/ns/p/c/", KubeletRequest("containerLogs", "ns", "p", "c", None),
                     id="trailing-slash"),
        pytest.param("/portForward/ns/p/", KubeletRequest("portForward", "ns", "p", None, None),
                     id="port-forward-trailing-slash"),
        pytest.param(f"/exec/ns/{'p' * 253}/c", KubeletRequest("exec", "ns", "p" * 253, "c", None), id="pod-253"),
        pytest.param("/attach/ns/p/ABCDEF-0123/c", KubeletRequest("attach", "ns", "p", "c", "ABCDEF-0123"),
                     id="upper-hex-uid"),
    ],
)
def test_parse_path_edges_accepted(path: str, expect: KubeletRequest) -> None:
    assert routing.parse_path(path) == expect


@pytest.mark.parametrize(
    ("cn", "orgs", "word"),
    [
        pytest.param(KEY, ["system:masters"], naming.KUBELET_CLIENT_GROUP, id="wrong-group"),
        pytest.param("", [naming.KUBELET_CLIENT_GROUP], "CN", id="empty-cn"),
        pytest.param("a--b", [naming.KUBELET_CLIENT_GROUP], "a--b", id="separator"),
        pytest.param("Admin", [naming.KUBELET_CLIENT_GROUP], "Admin", id="not-a-label"),
    ],
)
def test_identity_refusals(cn: str, orgs: list[str], word: str) -> None:
    exc = denial(lambda: routing.tenant_from_identity(cn, orgs))
    assert exc.status == 403
    assert word in exc.message


def test_identity_accepted() -> None:
    assert routing.tenant_from_identity(KEY, ["other", naming.KUBELET_CLIENT_GROUP]) == KEY


def test_super_namespace_for_an_impossible_mapping_is_not_found() -> None:
    request = KubeletRequest("exec", "n" * 63, "p", "c", None)
    assert routing.super_namespace_for(KEY, request).startswith(KEY)
    exc = denial(lambda: routing.super_namespace_for("Not-A-Key", request))
    assert exc.status == 404
    assert "Not-A-Key" in exc.message


REQ = KubeletRequest("exec", "shop", "web", "c", None)
REQ_UID = KubeletRequest("exec", "shop", "web", "c", "ab12")
SUPER_NS = naming.super_namespace(KEY, "shop")


def p_pod(**meta: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"namespace": SUPER_NS, "labels": {naming.LABEL_CLUSTER_KEY: KEY},
                            "annotations": {naming.ANN_OBJECT_UID: "ab12"}}
    base.update(meta)
    return {"metadata": base, "spec": {"nodeName": "n1"}}


@pytest.mark.parametrize(
    ("request_", "pod"),
    [
        pytest.param(REQ, None, id="missing"),
        pytest.param(REQ, p_pod(labels={}), id="unlabelled"),
        pytest.param(REQ, p_pod(namespace="elsewhere"), id="outside-the-tenant"),
        pytest.param(REQ, {"metadata": {"labels": {naming.LABEL_CLUSTER_KEY: KEY}}, "spec": {"nodeName": "n"}},
                     id="no-namespace"),
        pytest.param(REQ_UID, p_pod(annotations={}), id="uid-unknown"),
        pytest.param(REQ, {**p_pod(), "spec": {}}, id="unscheduled"),
    ],
)
def test_check_super_pod_refusals_name_the_tenant_pod(request_: KubeletRequest, pod: dict[str, Any] | None) -> None:
    exc = denial(lambda: routing.check_super_pod(KEY, request_, pod))
    assert exc.status == 404
    assert "shop/web" in exc.message
    assert SUPER_NS not in exc.message  # the super namespace is not the tenant's business


def test_super_path_needs_the_super_uid_when_the_tenant_named_one() -> None:
    exc = denial(lambda: routing.super_path(REQ_UID, super_namespace=SUPER_NS, super_uid=None))
    assert exc.status == 404
    assert "shop/web" in exc.message
    assert routing.super_path(REQ_UID, super_namespace=SUPER_NS, super_uid="s-1") == f"/exec/{SUPER_NS}/web/s-1/c"


def _node(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "node-7"}, "status": status}


@pytest.mark.parametrize(
    "node",
    [
        pytest.param(_node({"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}), id="no-port"),
        pytest.param(_node({"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}), id="no-address"),
        pytest.param(_node({"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                            "addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}), id="no-wanted-type"),
        pytest.param(_node({"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                            "addresses": [{"type": "InternalIP", "address": ""}]}), id="empty-address"),
    ],
)
def test_unusable_nodes_are_bad_gateway_and_named(node: dict[str, Any]) -> None:
    exc = denial(lambda: routing.node_endpoint(node, address_types=("InternalIP", "Hostname")))
    assert exc.status == 502
    assert "node-7" in exc.message


def test_node_endpoint_prefers_the_first_wanted_type_and_the_first_address_of_it() -> None:
    node = _node({"daemonEndpoints": {"kubeletEndpoint": {"Port": "10250"}}, "addresses": [
        {"type": "Hostname", "address": "node-7"}, {"type": "InternalIP", "address": "10.0.0.1"},
        {"type": "InternalIP", "address": "10.0.0.2"}]})
    assert routing.node_endpoint(node, address_types=("InternalIP", "Hostname")) == ("10.0.0.1", 10250)
    assert routing.node_endpoint(node, address_types=("Hostname",)) == ("node-7", 10250)
    assert routing.node_endpoint(node, address_types=("ExternalIP", "Hostname")) == ("node-7", 10250)


@pytest.mark.parametrize(
    "status",
    [pytest.param({}, id="no-port"),
     pytest.param({"daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}, id="no-address")],
)
def test_a_node_without_metadata_is_still_refused_cleanly(status: dict[str, Any]) -> None:
    exc = denial(lambda: routing.node_endpoint({"status": status}, address_types=("InternalIP",)))
    assert exc.status == 502
