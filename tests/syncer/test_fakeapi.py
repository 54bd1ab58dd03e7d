"""The fake apiserver answers like kube-apiserver where the engine's tests rely on it.

Why: the reconcile tests are only as honest as ``tests/syncer/fakeapi.py``; these cases pin each answer
the engine branches on (conflict, already-exists, not-found, uid preconditions, graceful deletion) so
the fake cannot drift into agreeing with whatever the engine does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.syncer.fakeapi import FakeApi, FakeServer
from vcluster.kube import AlreadyExists, ApiError, Conflict, Forbidden, Gone, Invalid, NotFound, resources

CM = resources.CONFIGMAPS


def seeded() -> FakeServer:
    server = FakeServer()
    server.put(resources.NAMESPACES, {"metadata": {"name": "ns"}})
    server.put(CM, {"metadata": {"name": "cm", "namespace": "ns"}, "data": {"a": "1"}})
    return server


def _stale_replace(s: FakeServer) -> Any:
    body = s.get(CM, "cm", "ns") or {}
    s.patch(CM, "cm", {"data": {"a": "2"}}, namespace="ns", patch_type="merge", subresource=None)
    return s.replace(CM, body, namespace=None, subresource=None)


ERRORS: list[tuple[Callable[[FakeServer], Any], type[ApiError]]] = [
    (_stale_replace, Conflict),
    (lambda s: s.create(CM, {"metadata": {"name": "cm", "namespace": "ns"}}, namespace=None, subresource=None,
                        name=None), AlreadyExists),
    (lambda s: s.create(CM, {"metadata": {"name": "x", "namespace": "nope"}}, namespace=None, subresource=None,
                        name=None), NotFound),
    (lambda s: s.delete(CM, "cm", namespace="ns", options={"preconditions": {"uid": "other"}}), Conflict),
    (lambda s: s.delete(CM, "gone", namespace="ns", options={}), NotFound),
    (lambda s: s.patch(CM, "gone", {}, namespace="ns", patch_type="merge", subresource=None), NotFound),
]


@pytest.mark.parametrize(("call", "error"), ERRORS, ids=["stale-resource-version", "name-taken", "no-namespace",
                                                         "uid-precondition", "delete-missing", "patch-missing"])
def test_errors_the_engine_branches_on(call: Callable[[FakeServer], Any], error: type[ApiError]) -> None:
    server = seeded()
    with pytest.raises(error) as info:
        call(server)
    assert type(info.value) is error
    assert server.get(CM, "cm", "ns") is not None


def test_writes_assign_uids_and_increasing_resource_versions() -> None:
    server = seeded()
    first = server.get(CM, "cm", "ns") or {}
    after = server.patch(CM, "cm", {"data": {"b": "2"}}, namespace="ns", patch_type="merge", subresource=None)
    assert after["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(after["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert after["data"] == {"a": "1", "b": "2"}
    other = server.put(CM, {"metadata": {"name": "cm2", "namespace": "ns"}})
    assert other["metadata"]["uid"] != first["metadata"]["uid"]


def test_status_is_a_subresource_of_pods_and_binding_sets_the_node_once() -> None:
    server = seeded()
    server.put(resources.PODS, {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}})
    server.patch(resources.PODS, "p", {"status": {"phase": "Running"}}, namespace="ns", patch_type="merge",
                 subresource=None)
    assert "phase" not in ((server.get(resources.PODS, "p", "ns") or {}).get("status") or {})
    server.patch(resources.PODS, "p", {"status": {"phase": "Running"}}, namespace="ns", patch_type="merge",
                 subresource="status")
    assert (server.get(resources.PODS, "p", "ns") or {})["status"]["phase"] == "Running"
    server.create(resources.PODS, {"target": {"name": "n1"}}, namespace="ns", subresource="binding", name="p")
    with pytest.raises(Conflict):
        server.create(resources.PODS, {"target": {"name": "n2"}}, namespace="ns", subresource="binding", name="p")
    assert (server.get(resources.PODS, "p", "ns") or {})["spec"]["nodeName"] == "n1"
    with pytest.raises(Invalid):
        server.patch(resources.PODS, "p", {"spec": {"hostNetwork": True}}, namespace="ns", patch_type="merge",
                     subresource=None)


def test_graceful_deletion_and_terminating_namespaces() -> None:
    server = seeded()
    server.put(resources.PODS, {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}})
    server.delete(resources.PODS, "p", namespace="ns", options={"gracePeriodSeconds": 5})
    assert (server.get(resources.PODS, "p", "ns") or {})["metadata"]["deletionGracePeriodSeconds"] == 5
    server.delete(resources.NAMESPACES, "ns", namespace=None, options={})
    with pytest.raises(Forbidden, match="being terminated"):
        server.create(CM, {"metadata": {"name": "x", "namespace": "ns"}}, namespace=None, subresource=None, name=None)
    server.finish_deletions()
    assert server.objects == {}


async def test_watch_resumes_from_a_resource_version() -> None:
    server = seeded()
    api = FakeApi(server)
    _items, rv = await api.list_all(CM)
    server.patch(CM, "cm", {"data": {"a": "2"}}, namespace="ns", patch_type="merge", subresource=None)
    seen = [(e.type, e.object["data"]) async for e in api.watch(CM, resource_version=rv, timeout_seconds=0)]
    assert seen == [("MODIFIED", {"a": "2"})]
    server.history = server.history[-1:]
    with pytest.raises(Gone):
        [e async for e in api.watch(CM, resource_version="1", timeout_seconds=0)]


async def test_field_selectors_and_the_list_log() -> None:
    """kube-apiserver selects pods by ``spec.nodeName`` (what the virtual-node manager lists by); a field the
    fake does not know is refused rather than guessed."""
    server = seeded()
    for name, node in (("a", "n1"), ("b", "n2"), ("c", None)):
        server.put(resources.PODS, {"metadata": {"name": name, "namespace": "ns"},
                                    "spec": {"nodeName": node} if node else {}})
    api = FakeApi(server)

    async def names(fields: str, **kw: Any) -> list[str]:
        page = await api.list(resources.PODS, field_selector=fields, **kw)
        return [p["metadata"]["name"] for p in page["items"]]

    assert await names("spec.nodeName=n1") == ["a"]
    assert await names("spec.nodeName==n2,metadata.namespace=ns") == ["b"]
    assert await names("spec.nodeName=") == ["c"]
    assert await names("spec.nodeName!=n1") == ["b", "c"]
    assert await names("spec.nodeName=n1", limit=1) == ["a"]
    assert await names("spec.nodeName=n3") == []
    assert server.lists[-1] == ("pods", None, "spec.nodeName=n3")
    with pytest.raises(NotImplementedError):
        await api.list(CM, field_selector="spec.nodeName=n1")
