"""Shutdown order of ``Syncer.close``: every writer stops before tenants are detached.

A fake NodeProvider records its calls and whether the workers were already
cancelled at the time; the super and tenant API clients are never used for I/O
by ``close`` (only closed), so a stand-in that records ``close`` is enough.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from syncer.engine import Syncer, TenantRuntime
from syncer.nodes import NodeInUse
from syncer.resources.base import TranslateContext
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from vcluster import naming
from vcluster.kube import ApiClient

KEYS = (naming.cluster_key("acme", "u1"), naming.cluster_key("zeta", "u2"))


class FakeApi:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class RecordingNodes:
    def __init__(self, workers: list[asyncio.Task[Any]]) -> None:
        self.workers = workers
        self.calls: list[tuple[str, bool, bool]] = []  # (key, cleanup, every worker done at that time)

    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        return None

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        self.calls.append((key, cleanup, all(t.done() for t in self.workers)))
        await asyncio.sleep(0)

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        return None

    async def ensure_node(self, key: str, node_name: str) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()


async def _writer(log: list[str], name: str) -> None:
    try:
        while True:
            log.append(name)  # stands for a tenant write done by a worker while it runs
            await asyncio.sleep(0)
    except asyncio.CancelledError:
        log.append(f"{name}:cancelled")
        raise


@pytest.mark.parametrize("cleanup_nodes", [True, False], ids=["clean-stop", "lost-lease"])
async def test_close_cancels_writers_before_detaching_tenants(cleanup_nodes: bool) -> None:
    writes: list[str] = []
    workers: list[asyncio.Task[Any]] = []
    nodes = RecordingNodes(workers)
    syncer = Syncer(cast(ApiClient, FakeApi()), StaticTenantSource(), settings=SyncerSettings(), nodes=nodes)
    apis = []
    for key in KEYS:
        api = FakeApi()
        apis.append(api)
        rt = TenantRuntime(info=TenantInfo(key=key, name=key, uid=key, kubeconfig=""),
                           api=cast(ApiClient, api), ctx=TranslateContext(key=key, tenant_name=key, tenant_uid=key))
        rt.tasks.append(asyncio.create_task(_writer(writes, f"informer-{key}")))
        syncer.tenants[key] = rt
    for i in range(3):
        workers.append(asyncio.create_task(_writer(writes, f"worker-{i}")))
    for task in workers:
        syncer.adopt_task(task)
    await asyncio.sleep(0)

    await syncer.close(cleanup_nodes=cleanup_nodes)

    assert sorted(c[0] for c in nodes.calls) == sorted(KEYS)
    assert all(done for _key, _cleanup, done in nodes.calls), "a tenant was detached while workers still ran"
    assert {c[1] for c in nodes.calls} == {cleanup_nodes}
    assert syncer.tenants == {}
    assert all(api.closed for api in apis)
    # Nothing wrote after being cancelled.
    for name in {w.split(":")[0] for w in writes}:
        tail = [w for w in writes if w.split(":")[0] == name]
        assert tail[-1] == f"{name}:cancelled"


async def test_lease_lost_makes_run_skip_node_cleanup() -> None:
    nodes = RecordingNodes([])
    syncer = Syncer(cast(ApiClient, FakeApi()), StaticTenantSource(), settings=SyncerSettings(), nodes=nodes)
    key = KEYS[0]
    syncer.tenants[key] = TenantRuntime(
        info=TenantInfo(key=key, name=key, uid=key, kubeconfig=""), api=cast(ApiClient, FakeApi()),
        ctx=TranslateContext(key=key, tenant_name=key, tenant_uid=key),
    )
    run = asyncio.create_task(syncer.run())
    await asyncio.sleep(0)  # run() is waiting for the super informers, which never sync here
    syncer.lease_lost()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert nodes.calls == [(key, False, True)]
