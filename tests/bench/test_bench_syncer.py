"""The pure and fake-apiserver-testable parts of bench/bench_syncer.py.

Why: the bench's numbers are only as good as its set-up.  Round 8's quiet stage left ~1,200 pending pods
per round in the super cluster, so every later round measured against a growing backlog: the clean-up
helpers must delete them and the wait must fail loudly, not return, when pods are left.  Since round 9
the direct client's namespaces get copies of the tenants' super-namespace policy (LimitRange,
ResourceQuota), so both sides meet the same admission: the copies must be the tenant's objects, stripped
of what would make the operator or syncer take them for their own.  And ``--models shared,dedicated
--plots DIR``'s last steps run on the numbers two models leave.  Checked against the fake apiserver
(tests/syncer/fakeapi.py), without a test bed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, cast

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_syncer

from tests.syncer.fakeapi import FakeServer
from vcluster import naming
from vcluster.kube import ApiClient, resources


def _api(server: FakeServer) -> ApiClient:
    return cast(ApiClient, server.api())


def _with_pods(ns: str, k: int, *, other: str | None = None) -> FakeServer:
    server = FakeServer()
    api = _api(server)

    async def fill() -> None:
        for name in filter(None, (ns, other)):
            await api.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}})
        for i in range(k):
            await api.create(resources.PODS, bench_syncer.pod(f"g-{i}", ns), namespace=ns)
        if other:
            await api.create(resources.PODS, bench_syncer.pod("keep", other), namespace=other)

    asyncio.run(fill())
    return server


def _names(server: FakeServer, ns: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in server.all(resources.PODS) if o["metadata"]["namespace"] == ns)


def test_listed_count_adds_the_remaining_items() -> None:
    assert bench_syncer.listed_count({"items": [{}], "metadata": {"remainingItemCount": 41}}) == 42
    assert bench_syncer.listed_count({"items": [{}, {}], "metadata": {}}) == 2
    assert bench_syncer.listed_count({"items": None, "metadata": {}}) == 0
    assert bench_syncer.listed_count({}) == 0


def test_delete_pods_removes_every_pod_of_the_namespace_only() -> None:
    server = _with_pods("fair", 70, other="elsewhere")
    deleted = asyncio.run(bench_syncer.delete_pods(_api(server), "fair", concurrency=8))
    assert deleted == 70
    assert _names(server, "fair") == []
    assert _names(server, "elsewhere") == ["keep"]


def test_delete_pods_tolerates_pods_already_gone() -> None:
    server = _with_pods("fair", 3)
    api = _api(server)
    original = api.delete
    calls: list[str] = []

    async def racing_delete(resource: Any, name: str, **kwargs: Any) -> Any:
        calls.append(name)
        await original(resource, name, **kwargs)  # another deleter was first
        return await original(resource, name, **kwargs)  # NotFound: suppressed by delete_pods

    api.delete = racing_delete  # type: ignore[method-assign]
    assert asyncio.run(bench_syncer.delete_pods(api, "fair")) == 3
    assert sorted(calls) == ["g-0", "g-1", "g-2"]
    assert _names(server, "fair") == []


def test_until_no_pods_returns_once_the_namespaces_are_empty() -> None:
    server = _with_pods("fair", 5)
    api = _api(server)

    async def scenario() -> float:
        waiter = asyncio.create_task(bench_syncer.until_no_pods(api, ["fair", "empty"], limit=30, poll=0.01))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # pods are still there
        await bench_syncer.delete_pods(api, "fair")
        return await asyncio.wait_for(waiter, 10)

    assert asyncio.run(scenario()) >= 0


def test_until_no_pods_fails_naming_what_is_left() -> None:
    server = _with_pods("fair", 4)
    with pytest.raises(TimeoutError, match=r"pods still there .*'fair'"):
        asyncio.run(bench_syncer.until_no_pods(_api(server), ["fair"], limit=0.05, poll=0.01))


def test_plots_and_side_by_side_from_two_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--models shared,dedicated --plots DIR``'s last steps, on the numbers two rounds would leave."""
    benches = []
    for model in ("shared", "dedicated"):
        b = bench_syncer.Bench(cast(Any, None), [], cast(Any, None), 6, 3, model=model)
        b.rounds = [{"drain_ratio": 0.5 + i / 10, "burst_ratio": 0.8} for i in range(2)]
        b.curves = {"direct: Running": [0.1, 0.2, 0.3], "synced: Running in the tenants": [0.2, 0.3, 0.5]}
        b.latencies = {"direct create → watched": [1.0, 2.0], "tenant create → super watched": [2.0, 3.0]}
        b.idle = [{"syncer": 0.01, "super kube-apiserver": 0.02}]
        b.cpu = {"syncer burst": {"syncer": 0.1, "super kube-apiserver": 0.2, "bench": 0.05, "wall": 1.0},
                 "direct burst": {"super kube-apiserver": 0.1, "wall": 1.0}}
        benches.append(b)
    bench_syncer.side_by_side(benches)
    printed = capsys.readouterr().out
    assert "drain_ratio" in printed
    assert "0.55 [0.5–0.6]" in printed
    bench_syncer.write_plots(benches, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "burst-dedicated.png", "burst-shared.png", "cpu-dedicated.png", "cpu-shared.png", "latency-cdf.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in tmp_path.iterdir())


def test_direct_policy_copies_name_and_spec_of_each_kind_found() -> None:
    found = {
        "LimitRange": {"metadata": {"name": "vc-limits", "namespace": "t-shop", "uid": "1", "resourceVersion": "9",
                                    "labels": {"tenancy.x-k8s.io/cluster-key": "k"}},
                       "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "10m"}}]}},
        "ResourceQuota": {"metadata": {"name": "vc-quota", "namespace": "t-shop"},
                          "spec": {"hard": {"pods": "100000"}}, "status": {"used": {"pods": "3"}}},
    }
    copies = bench_syncer.direct_policy(found, "direct-1")
    assert [(res.kind, obj) for res, obj in copies] == [
        ("LimitRange", {"apiVersion": "v1", "kind": "LimitRange",
                        "metadata": {"name": "vc-limits", "namespace": "direct-1"},
                        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "10m"}}]}}),
        ("ResourceQuota", {"apiVersion": "v1", "kind": "ResourceQuota",
                           "metadata": {"name": "vc-quota", "namespace": "direct-1"},
                           "spec": {"hard": {"pods": "100000"}}}),
    ]
    assert bench_syncer.direct_policy({}, "direct-1") == []
    assert [res.kind for res, _ in bench_syncer.direct_policy({"ResourceQuota": found["ResourceQuota"]}, "d")] == [
        "ResourceQuota"]


def test_tenant_policy_finds_the_operators_objects_of_that_tenant() -> None:
    server = FakeServer()
    api = _api(server)

    async def scenario() -> dict[str, Any]:
        for ns in ("t-a", "t-b"):
            await api.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await api.create(resources.LIMITRANGES, {"metadata": {"name": "lr-b", "namespace": "t-b",
                                                              "labels": {naming.LABEL_CLUSTER_KEY: "b"}},
                                                 "spec": {"limits": []}}, namespace="t-b")
        await api.create(resources.LIMITRANGES, {"metadata": {"name": "lr-a", "namespace": "t-a",
                                                              "labels": {naming.LABEL_CLUSTER_KEY: "a"}},
                                                 "spec": {"limits": []}}, namespace="t-a")
        return await bench_syncer.tenant_policy(api, "a", limit=1)

    found = asyncio.run(scenario())
    assert list(found) == ["LimitRange"]
    assert found["LimitRange"]["metadata"]["name"] == "lr-a"


def test_a_bench_tenant_has_room_for_its_pods_in_the_quota() -> None:
    assert bench_syncer.bench_isolation(10) == {"resourceQuota": {"hard": {"pods": "100000"}}}
    assert bench_syncer.bench_isolation(250_000) == {"resourceQuota": {"hard": {"pods": "250000"}}}
