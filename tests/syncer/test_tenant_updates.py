"""A served tenant whose TenantInfo changes is changed in place, not dropped and listed anew.

Why: the syncer dropped and re-added a tenant on any change of its TenantInfo (a control-plane version
bump in the spec, renewed certificates in its kubeconfig Secret, a policy change): every informer of the
tenant listed again and the tenant was briefly not served.  Now new credentials for the same apiserver
are a new client whose watches go on from the caches' resourceVersions, a policy change is a new
translation context (objects compared again, nothing listed), and a change the engine does not use is
kept without any action.  Only a new Tenant object, a new apiserver address or a new extra-kinds list
serve the tenant anew.

The engine runs for real (informer tasks, start-up, the queue) against in-memory apiservers
(:mod:`tests.syncer.fakeapi`); every client it makes is counted, and so is every list it sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from syncer.engine import Syncer
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo, Update, update_of
from tenant_crd.models import SyncSpec
from tests.syncer.engine_helpers import drain
from tests.syncer.engine_world import RecordingNodes
from tests.syncer.fakeapi import FakeApi, FakeServer, token_kubeconfig
from vcluster import naming
from vcluster.kube import ApiClient, ClientConfig, resources
from vcluster.policy import PodPolicy

KEY = naming.cluster_key("acme", "u1")



class CountingApi(FakeApi):
    """A client of one fake apiserver that counts its lists and whether it was closed."""

    def __init__(self, server: FakeServer, url: str) -> None:
        super().__init__(server)
        self.config = ClientConfig(server=url)
        self.lists = 0
        self.closed = False

    async def list_all(self, resource: Any, **kw: Any) -> Any:
        self.lists += 1
        return await super().list_all(resource, **kw)

    async def close(self) -> None:
        self.closed = True


class ReplacingNodes(RecordingNodes):
    def __init__(self) -> None:
        super().__init__()
        self.replaced: list[tuple[str, ApiClient]] = []

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        self.replaced.append((key, tenant_client))


@dataclasses.dataclass
class Bed:
    syncer: Syncer
    tenant: FakeServer
    nodes: ReplacingNodes
    clients: list[CountingApi]

    @property
    def lists(self) -> int:
        return sum(c.lists for c in self.clients)


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    tenant, other = FakeServer("tenant"), FakeServer("other")
    servers = {"https://tenant.fake": tenant, "https://other.fake": other}
    clients: list[CountingApi] = []

    def factory(config: ClientConfig) -> ApiClient:
        clients.append(CountingApi(servers[config.server], config.server))
        return cast(ApiClient, clients[-1])

    nodes = ReplacingNodes()
    syncer = Syncer(cast(ApiClient, FakeServer("super").api()), StaticTenantSource(), settings=SyncerSettings(),
                    nodes=nodes, client_factory=factory)
    tenant.put(resources.NAMESPACES, {"metadata": {"name": "shop"}})
    try:
        yield Bed(syncer, tenant, nodes, clients)
    finally:
        await syncer.remove_tenant(KEY, reason="test over", cleanup_nodes=False)


def info(**changes: Any) -> TenantInfo:
    return dataclasses.replace(TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig=token_kubeconfig()), **changes)


async def served(bed: Bed, tenant_info: TenantInfo) -> None:
    await bed.syncer.add_tenant(tenant_info)
    rt = bed.syncer.tenants[KEY]
    await asyncio.wait_for(rt.synced.wait(), 5)


def queued(syncer: Syncer) -> int:
    return len(drain(syncer))


async def test_new_credentials_for_the_same_apiserver_reconnect_without_a_list(bed: Bed) -> None:
    await served(bed, info())
    rt = bed.syncer.tenants[KEY]
    first_lists, first_client, ctx = bed.lists, bed.clients[0], rt.ctx
    assert first_lists == len(rt.informers)  # one list per informer

    await bed.syncer.add_tenant(info(kubeconfig=token_kubeconfig(token="renewed")))

    assert bed.syncer.tenants[KEY] is rt  # the runtime, its caches and memos are kept
    assert len(bed.clients) == 2
    new = cast(ApiClient, bed.clients[1])
    assert rt.api is new
    assert all(inf.api is new for inf in rt.informers.values())
    assert bed.nodes.replaced == [(KEY, new)]
    assert rt.ctx is ctx  # nothing the translation uses changed
    # the informers watch on through the new client, from where they were: a new object arrives, no list
    bed.tenant.put(resources.NAMESPACES, {"metadata": {"name": "after"}})
    inf = rt.informers["Namespace"]
    for _ in range(200):
        if inf.get("", "after") is not None:
            break
        await asyncio.sleep(0.01)
    assert inf.get("", "after") is not None
    assert bed.lists == first_lists
    assert inf.get("", "shop") is not None
    assert not first_client.closed  # requests under way on it may finish; closed later or with the tenant
    await bed.syncer.remove_tenant(KEY, reason="test over", cleanup_nodes=False)
    assert first_client.closed
    assert bed.clients[1].closed


async def test_a_policy_change_is_a_new_context_and_every_object_compared_again_without_a_list(bed: Bed) -> None:
    await served(bed, info())
    rt = bed.syncer.tenants[KEY]
    lists = bed.lists
    drain(bed.syncer)  # what start-up queued
    policy = PodPolicy(node_selector={"pool": "tenants"})

    await bed.syncer.add_tenant(info(policy=policy))

    assert bed.syncer.tenants[KEY] is rt
    assert rt.ctx.policy == policy
    assert rt.info.policy == policy
    assert len(bed.clients) == 1
    assert bed.lists == lists
    assert queued(bed.syncer) > 0  # the namespace, compared with the new policy


async def test_a_change_the_engine_does_not_use_takes_nothing(bed: Bed) -> None:
    await served(bed, info())
    rt = bed.syncer.tenants[KEY]
    ctx, lists = rt.ctx, bed.lists
    drain(bed.syncer)

    new = info(spec={"controlPlane": {"version": "v1.31.1"}})
    await bed.syncer.add_tenant(new)

    assert bed.syncer.tenants[KEY] is rt
    assert rt.info == new
    assert rt.ctx is ctx
    assert len(bed.clients) == 1
    assert bed.lists == lists
    assert queued(bed.syncer) == 0
    assert bed.syncer.metrics.tenant_updates.labels("kept")._value.get() == 1


async def test_another_apiserver_address_is_served_anew(bed: Bed) -> None:
    await served(bed, info())
    rt = bed.syncer.tenants[KEY]

    await served(bed, info(kubeconfig=token_kubeconfig(server="https://other.fake")))

    assert bed.syncer.tenants[KEY] is not rt
    assert bed.clients[0].closed
    assert bed.clients[1].lists == len(bed.syncer.tenants[KEY].informers)  # listed anew, from the other one
    assert bed.syncer.metrics.tenant_updates.labels("relist")._value.get() == 1


@pytest.mark.parametrize(
    ("new", "servers", "want"),
    [
        pytest.param(info(), ("a", "a"), Update(), id="same"),
        pytest.param(info(spec={"x": 1}), ("a", "a"), Update(), id="spec-only"),
        pytest.param(info(kubeconfig="other"), ("a", "a"), Update(reconnect=True), id="credentials"),
        pytest.param(info(kubeconfig="other"), ("a", "b"), Update(relist="another apiserver address"),
                     id="address"),
        pytest.param(info(uid="u2"), ("a", "a"), Update(relist="another Tenant object"), id="recreated"),
        pytest.param(info(sync=SyncSpec(extra_kinds=("widgets.example.com",))), ("a", "a"),
                     Update(relist="spec.sync.extraKinds changed"), id="extra-kinds"),
        pytest.param(info(sync=SyncSpec(opaque_metadata_prefixes=("corp.example/",))), ("a", "a"),
                     Update(context=True), id="metadata-rules"),
        pytest.param(info(policy=PodPolicy(runtime_class_name="gvisor")), ("a", "a"), Update(context=True),
                     id="policy"),
        pytest.param(info(dns_ip="10.96.0.53"), ("a", "a"), Update(context=True), id="dns"),
        pytest.param(info(cluster_domain="corp.example"), ("a", "a"), Update(context=True), id="domain"),
        pytest.param(info(dns_endpoint="10.0.0.1:53"), ("a", "a"), Update(context=True), id="dns-endpoint"),
    ],
)
def test_what_a_change_takes(new: TenantInfo, servers: tuple[str, str], want: Update) -> None:
    assert update_of(info(), new, old_server=servers[0], new_server=servers[1]) == want


async def test_the_operators_dns_in_the_status_is_what_makes_pods_lose_their_kubernetes_aliases(bed: Bed) -> None:
    await served(bed, info())
    assert bed.syncer.tenants[KEY].ctx.operator_dns is False
    await bed.syncer.add_tenant(info(dns_ip="10.96.0.53"))
    assert bed.syncer.tenants[KEY].ctx.operator_dns is True
