"""The state every part of the syncer shares: the super client and caches, the queue, the counters.

Why: the engine loop, the routing of watch events, the downward and upward
writers, the extra-kind lifecycle and the patrol are separate modules; each
takes one :class:`Shared` instead of reaching into a class of fifty methods.
:class:`TenantCaches` is the read-only view of one tenant that the kinds'
hooks and the pure routing get (the :class:`~syncer.resources.base.CacheView`
protocol).  Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from syncer.informer import Informer
from syncer.metrics import Metrics
from syncer.nodes import NodeProvider
from syncer.queue import FairQueue
from syncer.resources.base import Kind, Obj, TranslateContext
from syncer.retries import RetryLog
from syncer.runtime import TenantRuntime
from syncer.settings import SyncerSettings
from vcluster import naming, quota
from vcluster.kube import ApiClient, resources

#: Super informers select what the syncer made.
MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY_SYNCER}"


@dataclass(slots=True)
class Shared:
    """Super client, super caches, the kinds, the queue, metrics, and every served tenant."""

    settings: SyncerSettings
    super_api: ApiClient
    queue: FairQueue
    metrics: Metrics
    nodes: NodeProvider
    kinds: tuple[Kind, ...]
    by_kind: dict[str, Kind] = field(default_factory=dict)
    #: Keys of the extra kinds some tenant syncs (Tenant spec.sync.extraKinds); their super informers
    #: are started with the first such tenant and run until the syncer stops.
    extra_kinds: set[str] = field(default_factory=set)
    tenants: dict[str, TenantRuntime] = field(default_factory=dict)
    super_informers: dict[str, Informer] = field(default_factory=dict)
    #: The syncer's long-running tasks (informers, workers, patrol, ...), cancelled by ``close``.
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    #: The workers' failing keys, logged per state change (``vc_syncer_failing_keys``).
    retries: RetryLog = field(default_factory=RetryLog)
    #: Prometheus children by label values (``labels()`` costs a lock and a tuple per call).
    counters: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    #: The kind every namespaced object lives in (found by its resource, not by name); None in tests
    #: that sync no namespaces.
    namespace_kind: Kind | None = field(init=False, default=None)
    #: Tenant-wide quota usage by cluster key, fed by the super informers (every tenant's, served or not).
    ledgers: dict[str, quota.Ledger] = field(default_factory=dict)
    #: The patrol's memo of the super caches, by kind: by super (namespace, name), the cached bytes and
    #: the (cluster key, tenant ref) they stand for (:func:`syncer.patrol.tenant_of`), so that an
    #: object not touched since the last patrol is not decoded again to group it.
    patrol_refs: dict[str, dict[tuple[str, str], tuple[bytes, tuple[str, tuple[str, str]] | None]]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        self.by_kind.update({k.kind: k for k in self.kinds})
        self.namespace_kind = next((k for k in self.kinds if k.resource == resources.NAMESPACES), None)
        self.metrics.failing = self.retries.failing

    def count(self, kind: str, direction: str, op: str) -> None:
        child = self.counters.get((kind, direction, op))
        if child is None:
            child = self.counters[(kind, direction, op)] = self.metrics.operations.labels(kind, direction, op)
        child.inc()

    def ledger(self, key: str) -> quota.Ledger:
        ledger = self.ledgers.get(key)
        if ledger is None:
            ledger = self.ledgers[key] = quota.Ledger()
        return ledger

    def p_slim(self, kind: Kind, p_ns: str | None, p_name: str) -> Obj | None:
        """A slim super object from the super cache."""
        return self.super_informers[kind.kind].get(p_ns or "", p_name)

    def view(self, rt: TenantRuntime) -> TenantCaches:
        return TenantCaches(self, rt)

    def tenant_object(self, rt: TenantRuntime, kind: Kind, ns: str, name: str) -> Obj | None:
        """The tenant object that should be synced (None if absent, skipped or filtered by its kind)."""
        return self.to_sync(rt, kind, rt.informers[kind.kind].get(ns, name))

    def to_sync(self, rt: TenantRuntime, kind: Kind, v_obj: Obj | None) -> Obj | None:
        if v_obj is None or kind.skip(v_obj):
            return None
        if kind.sync_filter is not None and not kind.sync_filter(self.view(rt), v_obj):
            return None
        return v_obj

    def context(self, rt: TenantRuntime, kind: Kind, v_obj: Obj | None, *, creating: bool) -> TranslateContext:
        """The translation context of ``kind`` (its ``context`` hook, else the tenant's)."""
        if kind.context is None:
            return rt.ctx
        return kind.context(self.view(rt), v_obj, creating)


@dataclass(frozen=True, slots=True)
class TenantCaches:
    """One tenant's caches and the super caches, read-only (a :class:`~syncer.resources.base.CacheView`)."""

    shared: Shared
    rt: TenantRuntime

    @property
    def ctx(self) -> TranslateContext:
        return self.rt.ctx

    @property
    def scratch(self) -> dict[str, Any]:
        return self.rt.scratch

    def tenant_get(self, kind: str, namespace: str, name: str) -> Obj | None:
        inf = self.rt.informers.get(kind)
        return inf.get(namespace, name) if inf is not None else None

    def tenant_in(self, kind: str, namespace: str | None) -> list[Obj]:
        inf = self.rt.informers.get(kind)
        if inf is None:
            return []
        if namespace is None:
            return [v_obj for _key, v_obj in inf.items()]
        out = []
        for v_ns, name in inf.refs():  # decode only this namespace's objects
            if v_ns == namespace and (v_obj := inf.get(v_ns, name)) is not None:
                out.append(v_obj)
        return out

    def super_get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        inf = self.shared.super_informers.get(kind)
        return inf.get(namespace or "", name) if inf is not None else None
