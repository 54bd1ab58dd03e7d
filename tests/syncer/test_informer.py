"""The informer's cache: events applied, relists report changes and vanished objects."""

from __future__ import annotations

from typing import Any

from syncer.informer import Informer
from vcluster.kube import ApiClient, ClientConfig, resources


def pod(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "managedFields": [{"x": 1}]}}


def make() -> tuple[Informer, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    inf = Informer(ApiClient(ClientConfig(server="http://127.0.0.1:1")), resources.PODS,
                   handler=lambda t, o: seen.append((t, o["metadata"]["name"])))
    return inf, seen


def test_events_update_the_cache_without_managed_fields() -> None:
    inf, seen = make()
    inf.apply("ADDED", pod("a", "1"))
    inf.apply("MODIFIED", pod("a", "2"))
    cached = inf.get("ns", "a")
    assert cached is not None
    assert cached["metadata"]["resourceVersion"] == "2"
    assert "managedFields" not in cached["metadata"]
    inf.apply("DELETED", pod("a", "3"))
    assert inf.get("ns", "a") is None
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_relist_reports_only_differences() -> None:
    inf, seen = make()
    inf.replace([pod("a", "1"), pod("b", "1"), pod("c", "1")])
    seen.clear()
    inf.replace([pod("a", "1"), pod("b", "2"), pod("d", "1")])
    assert sorted(seen) == [("ADDED", "d"), ("DELETED", "c"), ("MODIFIED", "b")]
    assert sorted(inf.refs()) == [("ns", "a"), ("ns", "b"), ("ns", "d")]
