"""The async API layer against the real super apiserver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vcluster.kube import AlreadyExists, ApiClient, Conflict
from vcluster.kube import resources as r

pytestmark = pytest.mark.e2e


async def test_crud_round_trip(super_cluster: Any, unique_name: str) -> None:
    async with ApiClient.from_kubeconfig(super_cluster.kubeconfig) as api:
        body = {"metadata": {"name": unique_name, "namespace": "default"}, "data": {"a": "1"}}
        created = await api.create(r.CONFIGMAPS, body)
        assert created["metadata"]["uid"]
        with pytest.raises(AlreadyExists):
            await api.create(r.CONFIGMAPS, body)
        patched = await api.patch(r.CONFIGMAPS, unique_name, {"data": {"b": "2"}}, namespace="default")
        assert patched["data"] == {"a": "1", "b": "2"}
        stale = dict(created, data={"c": "3"})
        with pytest.raises(Conflict):
            await api.replace(r.CONFIGMAPS, stale)
        items, rv = await api.list_all(r.CONFIGMAPS, namespace="default", field_selector=f"metadata.name={unique_name}")
        assert [i["metadata"]["name"] for i in items] == [unique_name]
        assert rv
        with pytest.raises(Conflict, match="precondition"):
            await api.delete(r.CONFIGMAPS, unique_name, namespace="default", uid="not-the-uid")
        await api.delete(r.CONFIGMAPS, unique_name, namespace="default", uid=created["metadata"]["uid"])
        assert await api.get_or_none(r.CONFIGMAPS, unique_name, namespace="default") is None


async def test_watch_sees_changes_in_order(super_cluster: Any, unique_name: str) -> None:
    async with ApiClient.from_kubeconfig(super_cluster.kubeconfig) as api:
        _, rv = await api.list_all(r.CONFIGMAPS, namespace="default")
        seen: list[tuple[str, str]] = []

        async def consume() -> None:
            async for event in api.watch(
                r.CONFIGMAPS, namespace="default", resource_version=rv,
                field_selector=f"metadata.name={unique_name}", timeout_seconds=30,
            ):
                if event.type == "BOOKMARK":
                    continue
                seen.append((event.type, event.object["data"]["v"]))
                if event.type == "DELETED":
                    return

        task = asyncio.create_task(consume())
        await api.create(r.CONFIGMAPS, {"metadata": {"name": unique_name, "namespace": "default"}, "data": {"v": "1"}})
        await api.patch(r.CONFIGMAPS, unique_name, {"data": {"v": "2"}}, namespace="default")
        await api.delete(r.CONFIGMAPS, unique_name, namespace="default")
        await asyncio.wait_for(task, 30)
        assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
