"""Removing a tenant whose apiserver hangs holds up no other tenant's change.

Why: the syncer serves tenant changes one after the other in one loop, and removing a tenant ended with
its tenant-side clean-up (unused virtual nodes deleted through the tenant's apiserver, bounded only by
``VC_VNODE_DETACH_TIMEOUT``, 10 s).  With that apiserver hung (SIGSTOP) the loop waited, and a Tenant
created meanwhile was not served until then.  Now the tenant-side clean-up runs in the background; the
super side (tasks, queue keys, retries) goes at once, and a later serving of the same key waits for it
before attaching its nodes.

The engine runs for real (its loop, informers, workers) against in-memory apiservers; the node
provider cleans up through the tenant's client as the virtual-node manager does, and the hung tenant's
client never answers (a fake hanging remote).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from syncer.engine import Syncer
from syncer.nodes import NodeInUse
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from tests.syncer.fakeapi import FakeApi, FakeServer, token_kubeconfig
from vcluster import naming
from vcluster.kube import ApiClient, ClientConfig, resources

HUNG, OTHER = naming.cluster_key("hung", "u1"), naming.cluster_key("other", "u2")



class HangingApi(FakeApi):
    """A tenant client whose apiserver stops answering once :attr:`hung` is set (until released)."""

    def __init__(self, server: FakeServer, url: str) -> None:
        super().__init__(server)
        self.config = ClientConfig(server=url)
        self.hung = False
        self.released = asyncio.Event()

    async def list(self, resource: Any, **kw: Any) -> Any:
        if self.hung:
            await self.released.wait()
        return await super().list(resource, **kw)


class CleaningNodes:
    """A node provider that, like the virtual-node manager, lists the tenant's nodes through the tenant's
    client when it lets a tenant go."""

    def __init__(self) -> None:
        self.clients: dict[str, ApiClient] = {}
        self.attached: list[str] = []
        self.detached: list[str] = []

    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        self.clients[key] = tenant_client
        self.attached.append(key)

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        self.clients[key] = tenant_client

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        client = self.clients.pop(key)
        if cleanup:
            await client.list(resources.NODES)
        self.detached.append(key)

    async def ensure_node(self, key: str, node_name: str) -> None:
        return None

    async def run(self) -> None:
        return None


async def wait_for(what: str, check: Any) -> None:
    """Until ``check()``; the limit only keeps a broken engine from hanging the test run."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[Syncer, StaticTenantSource, CleaningNodes, dict[str, HangingApi]]]:
    servers = {f"https://{k}.fake": FakeServer(k) for k in (HUNG, OTHER)}
    clients: dict[str, HangingApi] = {}  # by key: the first client made for it (the one that hangs)
    made: list[HangingApi] = []

    def factory(config: ClientConfig) -> ApiClient:
        made.append(HangingApi(servers[config.server], config.server))
        clients.setdefault(config.server.removeprefix("https://").removesuffix(".fake"), made[-1])
        return cast(ApiClient, made[-1])

    source, nodes = StaticTenantSource(), CleaningNodes()
    syncer = Syncer(cast(ApiClient, FakeServer("super").api()), source,
                    settings=SyncerSettings(workers=2, patrol_period=0, status_period=0, quota_status_period=0),
                    nodes=nodes, client_factory=factory)
    task = asyncio.create_task(syncer.run())
    try:
        yield syncer, source, nodes, clients
    finally:
        for client in made:
            client.released.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def info(key: str) -> TenantInfo:
    return TenantInfo(key=key, name=key, uid=key, kubeconfig=token_kubeconfig(f"https://{key}.fake"))


async def test_a_hung_tenant_being_removed_holds_up_no_other_tenant() -> None:
    async with running() as (syncer, source, nodes, clients):
        source.add(info(HUNG))
        await wait_for("hung tenant served", lambda: HUNG in nodes.attached)
        clients[HUNG].hung = True  # its apiserver stops answering (SIGSTOP)

        source.remove(HUNG, reason="Tenant deleted")
        source.add(info(OTHER))
        await wait_for("other tenant served", lambda: OTHER in nodes.attached)

        assert HUNG not in syncer.tenants  # the super side went at once
        assert HUNG in syncer.detaching  # the tenant side still waits for the hung apiserver
        assert HUNG not in nodes.detached
        assert syncer.tenants[OTHER].synced.is_set()

        clients[HUNG].released.set()  # SIGCONT: the clean-up finishes
        await wait_for("hung tenant let go", lambda: HUNG in nodes.detached and HUNG not in syncer.detaching)


async def test_the_same_key_served_again_attaches_after_its_clean_up() -> None:
    """A Tenant removed and served again at once: its nodes are let go of before they are adopted again
    (else the old clean-up could delete what the new serving just adopted)."""
    async with running() as (_syncer, source, nodes, clients):
        source.add(info(HUNG))
        await wait_for("served", lambda: HUNG in nodes.attached)
        clients[HUNG].hung = True

        source.remove(HUNG, reason="not Ready")
        source.add(info(HUNG))
        source.add(info(OTHER))
        await wait_for("other tenant served", lambda: OTHER in nodes.attached)
        assert nodes.attached.count(HUNG) == 1  # waits for the first clean-up

        clients[HUNG].released.set()
        await wait_for("served again", lambda: nodes.attached.count(HUNG) == 2)
        assert nodes.detached == [HUNG]
        assert HUNG in nodes.clients  # the new serving's attachment is the one kept
