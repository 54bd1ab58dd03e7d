"""A syncer serving one tenant between two fake apiservers, driven key by key like its workers.

Why: the reconcile tests state behaviour as "given these objects in the tenant and the super cluster,
after the syncer settles, the clusters hold these" — the declarative shape of vcluster's sync tests.
The :class:`World` wires a real :class:`~syncer.engine.Syncer` (real informers, routing, queue, kinds)
to two :class:`~tests.syncer.fakeapi.FakeServer` instances; instead of background tasks it lists the
fakes into the informers (:meth:`World.sync`, what an informer's list does) and hands every queued key
to :meth:`Syncer.reconcile` (:meth:`World.settle`, what the workers do), so each test is deterministic
and needs no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from syncer import extra_kinds, routing
from syncer.engine import Syncer, TenantRuntime
from syncer.nodes import NodeInUse
from syncer.queue import DOWN, UP, SyncKey
from syncer.resources import REGISTRY
from syncer.resources.base import NO_RULES, Kind, MetadataRules, RetryLater, TranslateContext
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from tests.syncer.fakeapi import FakeApi, FakeServer, Obj
from vcluster import naming
from vcluster.kube import ApiClient, ApiError, resources
from vcluster.policy import PodPolicy
from vcluster.quota import TenantQuota

KEY = naming.cluster_key("acme", "u1")
OTHER_KEY = naming.cluster_key("other", "u2")


class RecordingNodes:
    """A :class:`~syncer.nodes.NodeProvider` that records the nodes the syncer asked for."""

    def __init__(self) -> None:
        self.ensured: list[tuple[str, str]] = []

    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        return None

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        return None

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        return None

    async def ensure_node(self, key: str, node_name: str) -> None:
        self.ensured.append((key, node_name))

    async def run(self) -> None:
        return None


@dataclass(slots=True)
class World:
    syncer: Syncer
    rt: TenantRuntime
    super_: FakeServer
    tenant: FakeServer
    nodes: RecordingNodes
    super_api: FakeApi
    tenant_api: FakeApi
    #: Keys whose reconcile raised, with the error (the workers would retry them with back-off).
    errors: list[tuple[SyncKey, Exception]] = field(default_factory=list)

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return self.rt.kinds

    async def sync(self, *, tenant: bool = True, super_: bool = True) -> None:
        """List the fakes into the informers (their handlers queue keys, as a relist does)."""
        sides = [*(self.rt.informers.values() if tenant else ()),
                 *(self.syncer.super_informers.values() if super_ else ())]
        for inf in sides:
            items, _rv = await inf.api.list_all(inf.resource, label_selector=inf.label_selector)
            inf.replace(items)

    async def start(self) -> None:
        """What the engine does when a tenant's informers have listed: queue everything."""
        await self.sync()
        self.rt.synced.set()
        self.syncer.enqueue_all(self.rt)

    def take(self) -> list[SyncKey]:
        out = []
        queue = self.syncer.queue
        while (item := queue.get_nowait()) is not None:
            queue.done(item[0])
            queue.forget(item[0])
            out.append(item[0])
        return out

    async def settle(self, *, rounds: int = 12) -> list[SyncKey]:
        """Sync caches and reconcile queued keys until nothing is queued; the keys reconciled, in order.

        A key whose reconcile fails is recorded in :attr:`errors` and queued again (no back-off).
        """
        done: list[SyncKey] = []
        for _ in range(rounds):
            await self.sync()
            keys = self.take()
            if not keys:
                return done
            for key in keys:
                done.append(key)
                try:
                    await self.syncer.reconcile(key)
                except (RetryLater, ApiError) as exc:
                    self.errors.append((key, exc))
                    self.syncer.queue.add(key)
        raise AssertionError(f"not settled after {rounds} rounds; last errors: {self.errors[-3:]}")

    def super_event(self, p_event: Obj) -> None:
        """A super Event as the syncer's event informer hands it over (it queues the upward key)."""
        routing.on_super_event(self.syncer.shared, "ADDED", p_event)

    def ops(self, kind: str, direction: str, op: str) -> float:
        """``vc_syncer_operations_total`` for one (kind, direction, op)."""
        value: float = self.syncer.metrics.operations.labels(kind, direction, op)._value.get()
        return value

    async def down(self, kind: str, namespace: str, name: str) -> None:
        """Reconcile one downward key now, with the caches as they are."""
        await self.syncer.reconcile(SyncKey(KEY, kind, DOWN, namespace, name))

    async def up(self, kind: str, namespace: str, name: str) -> None:
        await self.syncer.reconcile(SyncKey(KEY, kind, UP, namespace, name))

    # ---- objects ---------------------------------------------------------------------------------------
    def p_ns(self, namespace: str) -> str:
        return naming.super_namespace(KEY, namespace)

    def super_obj(self, kind: str, namespace: str, name: str) -> Obj | None:
        resource = self.syncer.shared.by_kind[kind].resource
        if not resource.namespaced:
            return self.super_.get(resource, naming.super_namespace(KEY, name))
        return self.super_.get(resource, name, self.p_ns(namespace))

    def tenant_obj(self, kind: str, namespace: str, name: str) -> Obj | None:
        resource = self.syncer.shared.by_kind[kind].resource
        return self.tenant.get(resource, name, namespace if resource.namespaced else None)

    def events(self, namespace: str) -> list[Obj]:
        return [e for e in self.tenant.all(resources.EVENTS) if e["metadata"]["namespace"] == namespace]


def make_world(*, kinds: tuple[Kind, ...] = REGISTRY, policy: PodPolicy | None = None,
               spec: dict[str, Any] | None = None, metadata: MetadataRules = NO_RULES,
               super_: FakeServer | None = None, tenant: FakeServer | None = None,
               settings: SyncerSettings | None = None, quota: TenantQuota | None = None) -> World:
    """Tenant ``acme`` (:data:`KEY`) served by a syncer; pass the servers of another world to serve the same
    clusters again (a restarted syncer, or the tenant re-added with another policy)."""
    super_ = super_ or FakeServer("super", ip_prefix="10.200.0.")
    tenant = tenant or FakeServer("tenant")
    nodes = RecordingNodes()
    super_api, tenant_api = super_.api(), tenant.api()
    syncer = Syncer(cast(ApiClient, super_api), StaticTenantSource(), settings=settings or SyncerSettings(),
                    nodes=nodes, kinds=kinds)
    policy = policy or PodPolicy()
    info = TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig="", policy=policy, spec=spec or {}, quota=quota)
    rt = TenantRuntime(info=info, api=cast(ApiClient, tenant_api), kinds=kinds,
                       ctx=TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u1", policy=policy,
                                            metadata=metadata))
    for kind in kinds:
        rt.informers[kind.kind] = extra_kinds.tenant_informer(syncer.shared, rt, kind, f"{KEY}/{kind.kind}")
    syncer.tenants[KEY] = rt
    return World(syncer=syncer, rt=rt, super_=super_, tenant=tenant, nodes=nodes, super_api=super_api,
                 tenant_api=tenant_api)


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name: str, ns: str = "shop", **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def pod(name: str, ns: str = "shop", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "app", "image": "busybox:1"}], **spec}}


def service(name: str, ns: str = "shop", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}
