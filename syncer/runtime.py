"""What the syncer holds for one served tenant: clients, caches, tasks and echo memos.

Why a module of its own: the engine loop, the routing of watch events, the
downward and upward writers and the patrol all read and write the same
per-tenant state; keeping its definition apart from all of them keeps the
import graph a tree (everything imports this; this imports no writer).
The echo memos are what makes the hot path cheap: a watch event that is
only the echo of the syncer's own write queues no key (see
docs/architecture.md, "Syncer hot path").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from syncer.informer import Informer
from syncer.resources.base import Kind, Obj, TranslateContext, super_namespace
from syncer.tenants import TenantInfo
from vcluster.kube import ApiClient


@dataclass(slots=True)
class TenantRuntime:
    """What the syncer holds for one served tenant."""

    info: TenantInfo
    api: ApiClient
    ctx: TranslateContext
    informers: dict[str, Informer] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    #: When all of the tenant's objects were last compared (initial list, then each patrol): ``Synced``.
    last_full_sync: str | None = None
    #: uids of tenant objects refused by policy (told once).
    refused: set[str] = field(default_factory=set)
    #: Super events waiting to be copied up, by (tenant namespace, event name).
    pending_events: dict[tuple[str, str], Obj] = field(default_factory=dict)
    #: What we last wrote to the super cluster, by (kind, tenant namespace, name): (tenant uid, fingerprint).
    #: The super watch's echo of our own write matches it and needs no downward reconcile.
    written: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    #: Kinds with ``upward_echo``: by (kind, tenant namespace, name), a fingerprint of (super uid annotation,
    #: node, status) of the last super event whose upward key was queued; an event with the same one (the
    #: echo of our own downward write) queues no upward key.
    upward_seen: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Kinds with a ``down_fingerprint``: by (kind, tenant namespace, name), that fingerprint of the last
    #: tenant event that queued a downward key.  A MODIFIED event with the same one (the echo of our own
    #: binding or status write) queues no downward key.
    down_seen: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Bindings we sent whose echo the tenant informer may not show yet, by (kind, tenant namespace, name):
    #: (tenant uid, node).  The next upward key of that object (the super pod starting, usually within
    #: milliseconds of its binding) binds no second time: that binding could only fail with Conflict,
    #: a wasted tenant request per pod in a burst.  Dropped once an upward reconcile needs no binding.
    bound: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    #: The kinds synced for this tenant: the registry, then its extra kinds once both clusters serve them.
    kinds: tuple[Kind, ...] = ()
    #: ``spec.sync.extraKinds`` entry → the last problem told on the Tenant (told again only when it changes).
    extra_told: dict[str, str] = field(default_factory=dict)
    #: Downward keys refused by the tenant-wide quota: queued again as soon as the tenant's usage drops.
    quota_waiting: set[Any] = field(default_factory=set)
    #: uids of tenant objects told they wait for the tenant-wide quota (told once).
    quota_told: set[str] = field(default_factory=set)
    #: Super namespaces whose namespace kind's ``after_create`` (the tenant's policy objects: LimitRange,
    #: ResourceQuota, NetworkPolicy) this syncer has seen done; nothing else is created in a super namespace
    #: before (:func:`syncer.downward.namespace_ready`).  A namespace the syncer makes is dropped before its
    #: create, so a name left here from an earlier namespace of that name never vouches for a new one.
    namespaces_ready: set[str] = field(default_factory=set)
    #: One lock per super namespace whose policy objects a worker is making (:func:`syncer.downward.
    #: namespace_ready`): the other workers' first creates in it wait for that turn, not ask again.
    namespaces_making: dict[str, asyncio.Lock] = field(default_factory=dict)
    #: ``status.quota.used`` as last written to the Tenant.
    quota_reported: dict[str, str] | None = None
    #: Clients replaced by a reconnect (new credentials), closed a while later or with the tenant.
    retired: list[ApiClient] = field(default_factory=list)
    #: State the kinds' hooks keep for this tenant (token Secrets made, cached contexts), by hook key.
    scratch: dict[str, Any] = field(default_factory=dict)
    #: The patrol's memo, by kind: the translation context of the last patrol and, by (tenant namespace,
    #: name), the cached bytes (tenant object, super copy) of each pair it found equal.  A pair whose
    #: bytes are the same objects again, under an equal context, is equal again (:mod:`syncer.patrol`).
    patrol_clean: dict[str, tuple[TranslateContext, dict[tuple[str, str], tuple[bytes, bytes]]]] = field(
        default_factory=dict)

    @property
    def key(self) -> str:
        return self.info.key

    def super_ref(self, kind: Kind, ns: str, name: str) -> tuple[str | None, str]:
        """(super namespace or None, super name) of the tenant object ``ns/name`` of ``kind``."""
        if kind.namespaced:
            return super_namespace(self.info.key, ns), name
        return None, super_namespace(self.info.key, name)

    def node_in_use(self, node: str) -> bool | None:
        """Whether a cached tenant object names ``node`` (its kind's ``tenant_node``: a Pod bound there),
        from the tenant informers' node index (nothing decoded); None when the caches cannot tell: no kind
        indexes nodes, or an informer that does is not :attr:`~syncer.informer.Informer.current` (not
        listed, relisting, its apiserver down, or stopped).  The virtual-node manager then lists."""
        indexed = [inf for kind in self.kinds if kind.tenant_node is not None
                   and (inf := self.informers.get(kind.kind)) is not None]
        if not indexed or not all(inf.current for inf in indexed):
            return None
        return any(inf.count_indexed(node) for inf in indexed)

    def forget(self, kind: str, ns: str, name: str) -> None:
        """Drop the echo memos of one object (it was deleted on one side)."""
        self.written.pop((kind, ns, name), None)
        self.upward_seen.pop((kind, ns, name), None)
        self.bound.pop((kind, ns, name), None)
