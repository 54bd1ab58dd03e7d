"""The syncer's I/O: tenants, informers, workers, the three-way branch, upward writes, patrol.

Why: everything that talks to an apiserver lives here, and only here; the
per-kind modules are pure.  One :class:`Syncer` serves every tenant:

* super informers (one per kind, selecting ``managed-by=vc-syncer``) and a
  pass-through super Event watch, shared by all tenants;
* per tenant, one informer per kind on its control plane, started when the
  tenant appears and cancelled when it goes;
* one :class:`~syncer.queue.FairQueue` and a bounded pool of workers;
* the downward reconcile: tenant only → create, super only → delete, both →
  update, always guarded by the tenant object's uid recorded on the super
  copy (a super object of an older incarnation is deleted, never adopted);
* the upward reconcile: pod binding and status, service cluster IPs, events;
* the patrol: a periodic full diff of the caches that queues what differs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog

from syncer import patrol as patrol_mod
from syncer.informer import Informer
from syncer.metrics import Metrics
from syncer.mirror import Mirror
from syncer.nodes import NodeProvider, NullNodeProvider
from syncer.queue import DOWN, UP, FairQueue, SyncKey
from syncer.resources import REGISTRY
from syncer.resources import event as event_mod
from syncer.resources import extra as extra_mod
from syncer.resources import pod as pod_mod
from syncer.resources.base import (
    Kind,
    Leftover,
    MetadataRules,
    Obj,
    TranslateContext,
    UpAction,
    fingerprint,
    object_uid,
    super_namespace,
    transparent_patch,
    with_super_owned,
)
from syncer.resources.service import has_selector
from syncer.settings import SyncerSettings
from syncer.tenants import TenantDown, TenantInfo, TenantSource, TenantUp
from tenant_crd.models import SpecError, TenantSpec
from vcluster import naming
from vcluster.kube import (
    AlreadyExists,
    ApiClient,
    ApiError,
    ClientConfig,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Resource,
    resources,
)
from vcluster.policy import policy_objects

log = structlog.get_logger(__name__)

EVENT = "Event"
#: Name of the tenant's DNS Service (kube-system), whose super cluster IP pods use as nameserver.
DNS_NAMESPACE, DNS_SERVICE = "kube-system", "kube-dns"
_MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY_SYNCER}"
#: Seconds between checks for an extra kind that one of the clusters does not serve yet.
EXTRA_KIND_RETRY = 30.0


class RetryLater(Exception):
    """The reconcile cannot finish yet (a dependency is missing); back off and retry."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class TenantRuntime:
    """What the syncer holds for one served tenant."""

    info: TenantInfo
    api: ApiClient
    ctx: TranslateContext
    informers: dict[str, Informer] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    #: uids of tenant objects refused by policy (told once).
    refused: set[str] = field(default_factory=set)
    #: (tenant namespace, service account) whose token Secret exists in the super cluster.
    tokens: set[tuple[str, str]] = field(default_factory=set)
    token_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    #: Super events waiting to be copied up, by (tenant namespace, event name).
    pending_events: dict[tuple[str, str], Obj] = field(default_factory=dict)
    #: What we last wrote to the super cluster, by (kind, tenant namespace, name): (tenant uid, fingerprint).
    #: The super watch's echo of our own write matches it and needs no downward reconcile.
    written: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    #: Pods: by (kind, tenant namespace, name), a fingerprint of (super uid annotation, node, status) of
    #: the last super event whose upward key was queued; an event with the same one (the echo of our
    #: own downward write) queues no upward key.
    upward_seen: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Pods: by (tenant namespace, name), a fingerprint of what the downward reconcile reads of the
    #: tenant pod (metadata but its resourceVersion, spec but its nodeName, whether it was scheduled).  A
    #: MODIFIED event with the same one (the echo of our own binding or status write) queues no downward key.
    down_seen: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Per tenant namespace: (context it was made from, that context with the namespace's service links).
    link_ctx: dict[str, tuple[TranslateContext, TranslateContext]] = field(default_factory=dict)
    #: The kinds synced for this tenant: the registry, then its extra kinds once both clusters serve them.
    kinds: tuple[Kind, ...] = ()
    #: ``spec.sync.extraKinds`` entry → the last problem told on the Tenant (told again only when it changes).
    extra_told: dict[str, str] = field(default_factory=dict)


class Syncer:
    """Serves every tenant the source announces."""

    def __init__(
        self,
        super_api: ApiClient,
        source: TenantSource,
        *,
        settings: SyncerSettings | None = None,
        nodes: NodeProvider | None = None,
        metrics: Metrics | None = None,
        kinds: tuple[Kind, ...] = REGISTRY,
    ) -> None:
        self.settings = settings or SyncerSettings()
        self.super_api = super_api
        self.source = source
        self.nodes: NodeProvider = nodes or NullNodeProvider()
        self.kinds = kinds
        self.by_kind = {k.kind: k for k in kinds}
        #: Keys of the extra kinds some tenant syncs (Tenant spec.sync.extraKinds); their super informers
        #: are started with the first such tenant and run until the syncer stops.
        self.extra_kinds: set[str] = set()
        self.queue = FairQueue(
            weight=self.settings.weight, backoff_base=self.settings.backoff_base,
            backoff_max=self.settings.backoff_max,
        )
        self.metrics = metrics or Metrics(depths=self.queue.depths)
        self.tenants: dict[str, TenantRuntime] = {}
        self.super_informers: dict[str, Informer] = {
            k.kind: Informer(
                super_api, k.resource, handler=self._super_handler(k), transform=k.slim_super,
                label_selector=_MANAGED_SELECTOR, watch_timeout=self.settings.watch_timeout,
                name=f"super/{k.resource.plural}", remote=self.metrics.remote,
            )
            for k in kinds
        }
        self.event_informer = Informer(
            super_api, resources.EVENTS, handler=self._on_super_event, store=False,
            watch_timeout=self.settings.watch_timeout, name="super/events", remote=self.metrics.remote,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._lease_lost = False
        self.ready = asyncio.Event()
        #: Public super StorageClasses/PriorityClasses copied into every synced tenant.
        self.mirror = Mirror(super_api, resync_period=max(self.settings.patrol_period, 10.0),
                             watch_timeout=self.settings.watch_timeout)
        #: Prometheus children by label values (``labels()`` costs a lock and a tuple per call).
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[str, Any] = {}

    # ---- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled; tenants are added and removed as the source says."""
        try:
            for name, inf in [*self.super_informers.items(), ("events", self.event_informer)]:
                self._tasks.append(asyncio.create_task(inf.run(), name=f"super-informer-{name}"))
            await asyncio.gather(*(inf.synced.wait() for inf in self.super_informers.values()))
            self._tasks.extend(
                asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.settings.workers)
            )
            self._tasks.append(asyncio.create_task(self.nodes.run(), name="node-provider"))
            self._tasks.append(asyncio.create_task(self.mirror.run(), name="mirror"))
            if self.settings.patrol_period > 0:
                self._tasks.append(asyncio.create_task(self._patrol_loop(), name="patrol"))
            self.ready.set()
            log.info("syncer.started", workers=self.settings.workers)
            async for change in self.source.changes():
                if isinstance(change, TenantUp):
                    await self.add_tenant(change.info)
                elif isinstance(change, TenantDown):
                    await self.remove_tenant(change.key, reason=change.reason)
        finally:
            await self.close(cleanup_nodes=not self._lease_lost)

    def lease_lost(self) -> None:
        """Leadership is gone: the coming stop must not write to tenants (no virtual-node clean-up).

        Call before cancelling :meth:`run`; the new leader owns the tenants' nodes from now on.
        """
        self._lease_lost = True

    async def close(self, *, cleanup_nodes: bool = True) -> None:
        """Stop every writer first (workers, patrol, mirror, node provider, tenant tasks), then
        detach the tenants; ``cleanup_nodes=False`` leaves their virtual nodes alone (a replica
        that lost the Lease must not write to tenants any more)."""
        writers = [*self._tasks, *(t for rt in self.tenants.values() for t in rt.tasks)]
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(
            *(self.remove_tenant(key, reason="syncer stopping", cleanup_nodes=cleanup_nodes)
              for key in list(self.tenants)),
            return_exceptions=True,
        )
        self.queue.close()

    async def add_tenant(self, info: TenantInfo) -> None:
        old = self.tenants.get(info.key)
        if old is not None:
            if old.info == info:
                return
            await self.remove_tenant(info.key, reason="tenant changed")
        config = ClientConfig.from_kubeconfig(
            info.kubeconfig, max_connections=self.settings.max_connections, user_agent="vc-syncer"
        )
        api = ApiClient(config)
        url = urlsplit(config.server)
        ctx = TranslateContext(
            key=info.key, tenant_name=info.name, tenant_uid=info.uid, policy=info.policy,
            apiserver_host=url.hostname or "", apiserver_port=str(url.port or 443),
            metadata=MetadataRules.from_prefixes(opaque=info.sync.opaque_metadata_prefixes,
                                                 transparent=info.sync.transparent_metadata_prefixes),
        )
        rt = TenantRuntime(info=info, api=api, ctx=ctx, kinds=self.kinds)
        self.tenants[info.key] = rt
        for kind in self.kinds:
            inf = Informer(
                api, kind.resource, handler=self._tenant_handler(rt, kind), transform=kind.slim_tenant,
                watch_timeout=self.settings.watch_timeout, name=f"{info.key}/{kind.resource.plural}",
                remote=self.metrics.remote,
            )
            rt.informers[kind.kind] = inf
            rt.tasks.append(asyncio.create_task(inf.run(), name=f"informer-{info.key}-{kind.kind}"))
        rt.tasks.append(asyncio.create_task(self._start_tenant(rt), name=f"start-{info.key}"))
        if info.sync.extra_kinds:
            rt.tasks.append(asyncio.create_task(self._extra_kinds(rt), name=f"extra-kinds-{info.key}"))
        log.info("syncer.tenant_added", tenant=info.key)

    async def _start_tenant(self, rt: TenantRuntime) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in rt.informers.values()))
        with contextlib.suppress(Exception):
            await self.nodes.attach_tenant(rt.info.key, rt.api)
        rt.synced.set()
        self.mirror.attach(rt.info.key, rt.api)
        self.enqueue_all(rt)
        log.info("syncer.tenant_synced", tenant=rt.info.key,
                 objects={k: len(inf) for k, inf in rt.informers.items()})
        for kind_key in sorted(self.extra_kinds):
            await self._drop_unlisted(rt, self.by_kind[kind_key])

    def enqueue_all(self, rt: TenantRuntime) -> None:
        """Queue every tenant object and every super object of the tenant (start-up, resync).

        Tenant objects without a super copy come first (kinds in registry order, so namespaces before
        what lives in them): after a restart the work that was missed is done before the re-check of
        everything already synced, which mostly finds nothing to do.
        """
        key = rt.info.key
        for kind in rt.kinds:
            p_items = self.super_informers[kind.kind]
            for ns, name in rt.informers[kind.kind].refs():
                p_ns, p_name = self._super_ref(rt, kind, ns, name)
                if (p_ns or "", p_name) not in p_items:
                    self.queue.add(SyncKey(key, kind.kind, DOWN, ns, name))
        for kind in rt.kinds:
            self._enqueue_kind(rt, kind)  # the rest (queued keys are not queued twice)

    def _enqueue_kind(self, rt: TenantRuntime, kind: Kind) -> None:
        key = rt.info.key
        for ns, name in rt.informers[kind.kind].refs():
            self.queue.add(SyncKey(key, kind.kind, DOWN, ns, name))
        for _pkey, p_slim in self.super_informers[kind.kind].items():
            self._enqueue_super(kind, p_slim, only_tenant=key)

    # ---- extra kinds (Tenant spec.sync.extraKinds) ------------------------------------------
    async def _extra_kinds(self, rt: TenantRuntime) -> None:
        """Start syncing each extra kind once both clusters serve it; tell the admin what cannot be."""
        await rt.synced.wait()
        pending = list(dict.fromkeys(rt.info.sync.extra_kinds))
        while pending:
            waiting = []
            for entry in pending:
                try:
                    found = await self._resolve_extra(rt, entry)
                except (ApiError, OSError) as exc:
                    found = (f"could not be looked up ({exc}); retrying", False)
                if isinstance(found, Kind):
                    await self._start_extra(rt, found)
                    await self._tell_tenant(rt, entry, "Normal", event_mod.EXTRA_KIND_SYNCED,
                                            f"spec.sync.extraKinds: {entry} ({found.resource.api_version} "
                                            f"{found.resource.kind}) is synced into the tenant's super namespaces")
                    continue
                problem, permanent = found
                reason = event_mod.EXTRA_KIND_REFUSED if permanent else event_mod.EXTRA_KIND_UNAVAILABLE
                later = "it is not synced" if permanent else f"not synced yet, checked every {EXTRA_KIND_RETRY:g} s"
                await self._tell_tenant(rt, entry, "Warning", reason,
                                        f"spec.sync.extraKinds: {entry} {problem}; {later}")
                if not permanent:
                    waiting.append(entry)
            pending = waiting
            if pending:
                await asyncio.sleep(EXTRA_KIND_RETRY)

    async def _resolve_extra(self, rt: TenantRuntime, entry: str) -> Kind | tuple[str, bool]:
        """The Kind for an extra-kinds entry, or (why not, whether that is final)."""
        plural, group = extra_mod.parse(entry)
        why = extra_mod.never_synced(plural, group, synced=(k.resource for k in self.kinds))
        if why is not None:
            return why, True
        found: Resource | str = ""
        version = ""
        for side, api in (("the tenant", rt.api), ("the super cluster", self.super_api)):
            if not version:
                group_doc = await _get_path(api, f"/apis/{group}" if group else "/api")
                version = extra_mod.preferred_version(group_doc) or ""
                if not version:
                    return f"is not served by {side} (no API group {group or 'core'!r})", False
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            found = extra_mod.find_resource(await _get_path(api, path), plural=plural, group=group,
                                            version=version)
            if isinstance(found, str):
                return f"{found} in {side}", "not served" not in found
        assert isinstance(found, Resource)
        try:  # the syncer's own permission in the super cluster (RBAC is the admin's to grant)
            await self.super_api.list(found, label_selector=_MANAGED_SELECTOR, limit=1)
        except Forbidden as exc:
            return f"may not be listed by the syncer in the super cluster (grant it access): {exc.message}", False
        kind = extra_mod.extra_kind(found)
        return self.by_kind.get(kind.kind, kind)

    async def _start_extra(self, rt: TenantRuntime, kind: Kind) -> None:
        """Informers for an extra kind (the super one shared by every tenant), then its keys."""
        first = kind.kind not in self.super_informers
        if first:
            self.by_kind[kind.kind] = kind
            self.extra_kinds.add(kind.kind)
            p_inf = self.super_informers[kind.kind] = Informer(
                self.super_api, kind.resource, handler=self._super_handler(kind), transform=kind.slim_super,
                label_selector=_MANAGED_SELECTOR, watch_timeout=self.settings.watch_timeout,
                name=f"super/{kind.kind}", remote=self.metrics.remote,
            )
            self._tasks.append(asyncio.create_task(p_inf.run(), name=f"super-informer-{kind.kind}"))
        v_inf = Informer(
            rt.api, kind.resource, handler=self._tenant_handler(rt, kind), transform=kind.slim_tenant,
            watch_timeout=self.settings.watch_timeout, name=f"{rt.info.key}/{kind.kind}", remote=self.metrics.remote,
        )
        rt.informers[kind.kind] = v_inf
        rt.tasks.append(asyncio.create_task(v_inf.run(), name=f"informer-{rt.info.key}-{kind.kind}"))
        await asyncio.gather(v_inf.synced.wait(), self.super_informers[kind.kind].synced.wait())
        rt.kinds = (*rt.kinds, kind)
        self._enqueue_kind(rt, kind)
        log.info("sync.extra_kind_started", tenant=rt.info.key, kind=kind.kind, objects=len(v_inf))
        if first:  # e.g. after a syncer restart: copies of tenants that no longer list the kind
            for other in list(self.tenants.values()):
                if other is not rt and other.synced.is_set():
                    await self._drop_unlisted(other, kind)

    async def _drop_unlisted(self, rt: TenantRuntime, kind: Kind) -> None:
        """An extra kind the tenant does not list (any more): queue the deletion of the super copies the
        syncer made for this tenant (its cluster-key label; the super informer selects ``managed-by``)
        and tell the admin.  Kinds the tenant lists but has not started yet are left alone."""
        if kind.kind in rt.informers or extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
            return
        p_inf = self.super_informers[kind.kind]
        await p_inf.synced.wait()
        copies = [p_slim for _ref, p_slim in p_inf.items() if _cluster_key_of(p_slim) == rt.info.key]
        if not copies:
            return
        for p_slim in copies:
            self._enqueue_super(kind, p_slim, only_tenant=rt.info.key)
        entry = extra_mod.entry_of(kind.resource)
        await self._tell_tenant(rt, entry, "Normal", event_mod.EXTRA_KIND_REMOVED,
                                f"spec.sync.extraKinds no longer lists {entry}: it is not synced any more; "
                                f"deleting the super copies the syncer made for this tenant ({len(copies)})")

    async def _tell_tenant(self, rt: TenantRuntime, entry: str, type_: str, reason: str, message: str) -> None:
        """An Event on the Tenant (once per entry and message) and a log line; never fails the caller."""
        if rt.extra_told.get(entry) == message:
            return
        rt.extra_told[entry] = message
        (log.info if type_ == "Normal" else log.warning)(
            "sync.extra_kind", tenant=rt.info.key, entry=entry, reason=reason, message=message)
        body = event_mod.tenant_event(tenant_name=rt.info.name, tenant_uid=rt.info.uid, type_=type_,
                                      reason=reason, message=message, now=_now())
        try:
            await self.super_api.create(resources.EVENTS, body, namespace=event_mod.TENANT_EVENT_NAMESPACE,
                                        decode=False)
        except (ApiError, OSError) as exc:
            log.warning("sync.tenant_event_failed", tenant=rt.info.key, reason=reason, error=str(exc))

    async def remove_tenant(self, key: str, *, reason: str, cleanup_nodes: bool = True) -> None:
        rt = self.tenants.pop(key, None)
        if rt is None:
            return
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        self.queue.drop_tenant(key)
        self.mirror.detach(key)
        with contextlib.suppress(Exception):
            await self.nodes.detach_tenant(key, cleanup=cleanup_nodes)
        await rt.api.close()
        log.info("syncer.tenant_removed", tenant=key, reason=reason)

    # ---- event handlers (synchronous: they only queue keys) ---------------------------
    def _tenant_handler(self, rt: TenantRuntime, kind: Kind) -> Any:
        tenant = rt.info.key
        queue = self.queue
        is_service = kind.kind == "Service"
        is_pod = kind.kind == "Pod"
        down_seen = rt.down_seen

        def handle(event: str, v_obj: Obj) -> None:
            if not rt.synced.is_set():
                return  # queued all at once when every informer of the tenant has listed
            meta = v_obj["metadata"]
            ns, name = meta.get("namespace") or "", meta["name"]
            if is_pod:
                if event == "DELETED":
                    down_seen.pop((ns, name), None)
                else:
                    down_fp = _pod_down_fingerprint(v_obj)
                    if event == "MODIFIED" and down_seen.get((ns, name)) == down_fp:
                        return  # only status or node binding changed (our upward write's echo)
                    down_seen[(ns, name)] = down_fp
            queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name))
            if is_service:
                queue.add(SyncKey(tenant, "Endpoints", DOWN, ns, name))
        return handle

    def _super_handler(self, kind: Kind) -> Any:
        def handle(event: str, p_slim: Obj) -> None:
            self._enqueue_super(kind, p_slim, event=event)
        return handle

    def _enqueue_super(
        self, kind: Kind, p_slim: Obj, *, only_tenant: str | None = None, event: str | None = None
    ) -> None:
        meta = p_slim["metadata"]
        tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
        if tenant is None or (only_tenant is not None and tenant != only_tenant):
            return
        rt = self.tenants.get(tenant)
        if rt is None or not rt.synced.is_set():
            return
        unlisted = kind.kind in self.extra_kinds and kind.kind not in rt.informers
        if unlisted and extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
            return  # an extra kind the tenant lists but has not started (yet)
        ann = meta.get("annotations") or {}
        if naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in ann:
            return  # token Secrets belong to service accounts, not to the Secret kind
        name = ann.get(naming.ANN_OBJECT_NAME)
        if not name:
            return
        ns = ann.get(naming.ANN_TENANT_NAMESPACE, "") if kind.namespaced else ""
        if unlisted:  # an extra kind the tenant no longer lists: its super copy goes
            if event != "DELETED":
                self.queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name))
            return
        ref = (kind.kind, ns, name)
        live_event = event is not None and event != "DELETED" and not meta.get("deletionTimestamp")
        if live_event and rt.written.get(ref) == (ann.get(naming.ANN_OBJECT_UID), p_slim.get("fp")):
            pass  # the echo of our own write: nothing to do downward (a tenant change queues its own key)
        else:
            if event == "DELETED":
                rt.written.pop(ref, None)
                rt.upward_seen.pop(ref, None)
            self.queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name))
        rules = rt.ctx.metadata
        if kind.upward is None and not rules.transparent:
            return
        if (kind.kind == "Pod" and not p_slim.get("nodeName") and not p_slim.get("status")
                and not rules.transparent):
            return  # neither node nor status (our create's echo): pod.upward has nothing to bring up
        if live_event and (kind.kind == "Pod" or kind.upward is None):
            # Node, status and transparent metadata unchanged since the last queued upward key.
            up_fp = fingerprint((ann.get(naming.ANN_OBJECT_UID), p_slim.get("nodeName"), p_slim.get("status"),
                                 rules.transparent_of(meta) if rules.transparent else None))
            if rt.upward_seen.get(ref) == up_fp:
                return
            rt.upward_seen[ref] = up_fp
        self.queue.add(SyncKey(tenant, kind.kind, UP, ns, name))

    def _on_super_event(self, event_type: str, p_event: Obj) -> None:
        if event_type == "DELETED":
            return
        p_ns = p_event["metadata"].get("namespace") or ""
        if naming.SEPARATOR not in p_ns:
            return
        involved = p_event.get("involvedObject") or {}
        if involved.get("kind") not in event_mod.UPWARD_KINDS and not self.extra_kinds:
            return
        p_ns_obj = self.super_informers["Namespace"].get("", p_ns) if "Namespace" in self.super_informers else None
        ann = ((p_ns_obj or {}).get("metadata") or {}).get("annotations") or {}
        try:
            ref = naming.parse_super_namespace(p_ns, ann)
        except naming.NamingError:
            return
        rt = self.tenants.get(ref.cluster_key)
        if rt is None or ref.tenant_namespace is None or not rt.synced.is_set():
            return
        if event_mod.event_kind(involved, self._extra_of(rt)) is None:
            return
        name = p_event["metadata"]["name"]
        rt.pending_events[(ref.tenant_namespace, name)] = p_event
        self.queue.add(SyncKey(ref.cluster_key, EVENT, UP, ref.tenant_namespace, name))

    # ---- workers ---------------------------------------------------------------------
    async def _worker(self) -> None:
        queue = self.queue
        latency = self.metrics.latency
        latencies = self._latencies
        while True:
            key, queued_at = await queue.get()
            try:
                await self.reconcile(key)
                queue.forget(key)
            except asyncio.CancelledError:
                raise
            except (RetryLater, ApiError, OSError) as exc:
                self.metrics.errors.labels(key.kind, key.direction).inc()
                delay = queue.retry(key)
                level = log.debug if queue.failures(key) < 5 else log.warning
                level("sync.retry", tenant=key.tenant, kind=key.kind, direction=key.direction,
                      key=f"{key.namespace}/{key.name}", error=str(exc), retry_in=round(delay, 3))
            except Exception:
                self.metrics.errors.labels(key.kind, key.direction).inc()
                queue.retry(key)
                log.exception("sync.failed", tenant=key.tenant, kind=key.kind, direction=key.direction,
                              key=f"{key.namespace}/{key.name}")
            finally:
                queue.done(key)
                child = latencies.get(key.tenant)
                if child is None:
                    child = latencies[key.tenant] = latency.labels(key.tenant)
                child.observe(time.monotonic() - queued_at)

    async def reconcile(self, key: SyncKey) -> None:
        rt = self.tenants.get(key.tenant)
        if rt is None:
            return
        await rt.synced.wait()
        if key.kind == EVENT:
            await self._event_up(rt, key)
            return
        kind = self.by_kind[key.kind]
        if kind.kind in self.extra_kinds and kind.kind not in rt.informers:
            # An extra kind this tenant does not sync: not started yet, or no longer listed (copy deleted).
            if key.direction == DOWN and not extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
                await self._delete_unlisted(rt, kind, key)
            return
        if key.direction == DOWN:
            await self._down(rt, kind, key)
        else:
            await self._up(rt, kind, key)

    # ---- helpers -----------------------------------------------------------------------
    def _super_ref(self, rt: TenantRuntime, kind: Kind, ns: str, name: str) -> tuple[str | None, str]:
        if kind.namespaced:
            return super_namespace(rt.info.key, ns), name
        return None, super_namespace(rt.info.key, name)

    def _extra_of(self, rt: TenantRuntime) -> Iterator[Kind]:
        """The extra kinds the tenant syncs now (lazily: on the super event path it is rarely read)."""
        return (k for k in rt.kinds if k.kind in self.extra_kinds)

    async def _delete_unlisted(self, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
        """Delete the super copy of an extra kind the tenant no longer lists (only if made for this tenant)."""
        p_ns, p_name = self._super_ref(rt, kind, key.namespace, key.name)
        p_slim = self._p_slim(kind, p_ns, p_name)
        if p_slim is None or p_slim["metadata"].get("deletionTimestamp") or _cluster_key_of(p_slim) != rt.info.key:
            return
        rt.written.pop((kind.kind, key.namespace, key.name), None)
        await self._delete_super(kind, p_slim)

    def _p_slim(self, kind: Kind, p_ns: str | None, p_name: str) -> Obj | None:
        return self.super_informers[kind.kind].get(p_ns or "", p_name)

    def _count(self, kind: str, direction: str, op: str) -> None:
        child = self._counters.get((kind, direction, op))
        if child is None:
            child = self._counters[(kind, direction, op)] = self.metrics.operations.labels(kind, direction, op)
        child.inc()

    def context_for(self, rt: TenantRuntime) -> TranslateContext:
        """The tenant's translation context with the current super cluster IP of its DNS service."""
        dns = self.super_informers.get("Service")
        dns_ip = None
        if dns is not None:
            p_dns = dns.get(super_namespace(rt.info.key, DNS_NAMESPACE), DNS_SERVICE)
            ip = (p_dns or {}).get("clusterIP")
            dns_ip = ip if ip and ip != "None" else None
        if dns_ip == rt.ctx.dns_ip:
            return rt.ctx
        rt.ctx = TranslateContext(
            key=rt.ctx.key, tenant_name=rt.ctx.tenant_name, tenant_uid=rt.ctx.tenant_uid, policy=rt.ctx.policy,
            apiserver_host=rt.ctx.apiserver_host, apiserver_port=rt.ctx.apiserver_port, dns_ip=dns_ip,
            cluster_domain=rt.ctx.cluster_domain, metadata=rt.ctx.metadata,
        )
        return rt.ctx

    async def _delete_super(self, kind: Kind, p_slim: Obj, *, grace: int | None = None) -> None:
        meta = p_slim["metadata"]
        try:
            await self.super_api.delete(kind.resource, meta["name"], namespace=meta.get("namespace"),
                                        uid=meta.get("uid"), grace_period_seconds=grace)
            self._count(kind.kind, DOWN, "delete")
        except (NotFound, Conflict):
            pass  # gone already, or another incarnation (precondition failed): not ours to delete

    # ---- downward ----------------------------------------------------------------------
    def tenant_object(self, rt: TenantRuntime, kind: Kind, ns: str, name: str) -> Obj | None:
        """The tenant object that should be synced (None if absent or not synced by policy of kinds)."""
        return self._to_sync(rt, kind, rt.informers[kind.kind].get(ns, name))

    def _to_sync(self, rt: TenantRuntime, kind: Kind, v_obj: Obj | None) -> Obj | None:
        if v_obj is None or kind.skip(v_obj):
            return None
        if kind.kind == "Endpoints":
            ns, name = v_obj["metadata"].get("namespace") or "", v_obj["metadata"]["name"]
            v_svc = rt.informers["Service"].get(ns, name) if "Service" in rt.informers else None
            if v_svc is not None and has_selector(v_svc):
                return None  # the super cluster computes these itself
        return v_obj

    async def _down(self, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
        v_raw = rt.informers[kind.kind].get(key.namespace, key.name)
        if v_raw is not None and kind.skip(v_raw):
            return  # a system object the super cluster has its own of; never touch the super one
        v_obj = self._to_sync(rt, kind, v_raw)
        p_ns, p_name = self._super_ref(rt, kind, key.namespace, key.name)
        p_slim = self._p_slim(kind, p_ns, p_name)
        if p_slim is not None and naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in (p_slim["metadata"].get("annotations") or {}):
            return
        if v_obj is None:
            rt.written.pop((kind.kind, key.namespace, key.name), None)
            rt.upward_seen.pop((kind.kind, key.namespace, key.name), None)
            if kind.kind == "ServiceAccount" and key.name != "default":
                await self._delete_token(rt, key.namespace, key.name)
            if p_slim is not None and kind.tenant_leftovers is not None:
                await self._delete_leftovers(rt, kind.tenant_leftovers(p_slim))
            if p_slim is not None and not p_slim["metadata"].get("deletionTimestamp"):
                await self._delete_super(kind, p_slim)
            return
        v_uid = object_uid(v_obj)
        p_uid = ((p_slim or {}).get("metadata", {}).get("annotations") or {}).get(naming.ANN_OBJECT_UID)
        if v_obj["metadata"].get("deletionTimestamp"):
            await self._down_terminating(rt, kind, v_obj, p_slim if p_uid == v_uid else None)
            return
        if p_slim is not None and p_uid != v_uid:
            # A super copy of an older incarnation of this name: delete, then create on the next pass.
            if not p_slim["metadata"].get("deletionTimestamp"):
                await self._delete_super(kind, p_slim)
            raise RetryLater(f"stale super copy of {kind.kind} {key.namespace}/{key.name} (uid {p_uid})")
        if p_slim is None:
            await self._create(rt, kind, v_obj, p_ns)
            return
        ctx = self.context_for(rt) if kind.kind == "Pod" else rt.ctx
        # Super-owned metadata (Tenant spec.sync prefixes) is the super object's: kept as it is.
        desired = with_super_owned(kind.to_super(v_obj, ctx), p_slim, ctx.metadata)
        fp = kind.fingerprint(desired)
        ref = (kind.kind, key.namespace, key.name)
        # Recorded before the write: the super watch may deliver its echo before the write returns.
        rt.written[ref] = (v_uid, fp)
        if fp != p_slim.get("fp"):
            try:
                await self._update(kind, desired, p_slim)
            except BaseException:
                rt.written.pop(ref, None)
                raise

    async def _delete_leftovers(self, rt: TenantRuntime, leftovers: list[Leftover]) -> None:
        """Delete tenant objects the syncer made for a tenant object that is gone (uid-guarded)."""
        for left in leftovers:
            v_left = await rt.api.get_or_none(left.resource, left.name)
            if v_left is None or not left.is_ours(v_left):
                continue
            with contextlib.suppress(NotFound, Conflict):
                await rt.api.delete(left.resource, left.name, uid=object_uid(v_left))
                self._count(left.resource.kind, UP, "delete")

    async def _down_terminating(self, rt: TenantRuntime, kind: Kind, v_obj: Obj, p_slim: Obj | None) -> None:
        if p_slim is not None:
            if kind.tenant_leftovers is not None:
                await self._delete_leftovers(rt, kind.tenant_leftovers(p_slim))
            if not p_slim["metadata"].get("deletionTimestamp"):
                grace = v_obj["metadata"].get("deletionGracePeriodSeconds")
                await self._delete_super(kind, p_slim, grace=grace if kind.kind == "Pod" else None)
            return
        if kind.kind == "Pod":
            # No kubelet finishes tenant pods: once the super pod is gone, the tenant pod goes too.
            await self._delete_tenant_pod(rt, v_obj)

    async def _delete_tenant_pod(self, rt: TenantRuntime, v_obj: Obj) -> None:
        meta = v_obj["metadata"]
        with contextlib.suppress(NotFound, Conflict):
            await rt.api.delete(resources.PODS, meta["name"], namespace=meta["namespace"], uid=meta.get("uid"),
                                grace_period_seconds=0)
            self._count("Pod", UP, "delete")

    async def _create(self, rt: TenantRuntime, kind: Kind, v_obj: Obj, p_ns: str | None) -> None:
        meta = v_obj["metadata"]
        ctx = rt.ctx
        if kind.kind == "Pod":
            if object_uid(v_obj) in rt.refused:
                return
            if (v_obj.get("spec") or {}).get("nodeName") and _was_scheduled(v_obj):
                # Bound by us, and its super pod is gone (deleted or evicted): the pod is lost, as on a
                # failed node; its controller makes a new one.
                await self._delete_tenant_pod(rt, v_obj)
                return
            ctx = self.context_for(rt)
            if (v_obj.get("spec") or {}).get("enableServiceLinks") is not False:
                ctx = self._with_links(rt, ctx, meta["namespace"])
        reasons = kind.check(v_obj, ctx) if kind.check is not None else []
        if reasons:
            await self._refuse(rt, kind, v_obj, reasons)
            return
        if kind.kind == "Pod" and pod_mod.needs_token(v_obj):
            await self._ensure_token(rt, meta["namespace"], pod_mod.service_account(v_obj))
        desired = kind.to_super(v_obj, ctx)
        # Recorded before the write: the super watch may deliver its echo before the write returns.
        ref = (kind.kind, meta.get("namespace", "") if kind.namespaced else "", meta["name"])
        rt.written[ref] = (object_uid(v_obj), kind.fingerprint(desired))
        try:
            await self._create_in_namespace(rt, kind, desired, p_ns, meta.get("namespace", ""))
        except AlreadyExists:
            rt.written.pop(ref, None)
            await self._adopt_or_clear(kind, desired, rules=ctx.metadata)
            return
        except (Invalid, RetryLater) as exc:
            rt.written.pop(ref, None)
            # Refused by the super apiserver (quota, admission, validation): tell the tenant, keep retrying.
            cause = exc if isinstance(exc, Invalid) else exc.__cause__
            if isinstance(cause, ApiError):
                await self._tell_super_refusal(rt, kind, v_obj, cause)
                raise RetryLater(cause.message) from cause
            raise
        except BaseException:
            rt.written.pop(ref, None)
            raise
        self._count(kind.kind, DOWN, "create")
        if kind.kind == "Namespace":
            await self._apply_namespace_policy(rt, desired["metadata"]["name"])

    async def _create_in_namespace(
        self, rt: TenantRuntime, kind: Kind, desired: Obj, p_ns: str | None, tenant_ns: str
    ) -> None:
        try:
            await self.super_api.create(kind.resource, desired, decode=False)
        except NotFound:
            if p_ns is None:
                raise
            # The super namespace is not there yet: make it now rather than waiting for its key.
            ns_kind = self.by_kind["Namespace"]
            v_ns = rt.informers["Namespace"].get("", tenant_ns)
            if v_ns is None:
                raise RetryLater(f"tenant namespace {tenant_ns} is not known yet") from None
            if self._p_slim(ns_kind, None, p_ns) is None:
                with contextlib.suppress(AlreadyExists):
                    await self._create(rt, ns_kind, v_ns, None)
            await self.super_api.create(kind.resource, desired, decode=False)
        except Forbidden as exc:
            # Typically: the super namespace's default ServiceAccount is not made yet.
            raise RetryLater(exc.message) from exc

    async def _adopt_or_clear(self, kind: Kind, desired: Obj, *, rules: MetadataRules) -> None:
        """Create found the name taken: update our copy, delete a stale one, leave others' alone."""
        meta = desired["metadata"]
        live = await self.super_api.get_or_none(kind.resource, meta["name"], namespace=meta.get("namespace"))
        if live is None:
            raise RetryLater("object vanished after AlreadyExists")
        if _cluster_key_of(live) != meta["labels"][naming.LABEL_CLUSTER_KEY]:
            log.warning("sync.name_taken", kind=kind.kind, namespace=meta.get("namespace"), name=meta["name"])
            return
        p_slim = kind.slim_super(live)
        live_uid = (live["metadata"].get("annotations") or {}).get(naming.ANN_OBJECT_UID)
        if live_uid != meta["annotations"][naming.ANN_OBJECT_UID]:
            await self._delete_super(kind, p_slim)
            raise RetryLater("stale super copy removed")
        desired = with_super_owned(desired, p_slim, rules)
        if kind.fingerprint(desired) != p_slim["fp"]:
            await self._update(kind, desired, p_slim)

    async def _update(self, kind: Kind, desired: Obj, p_slim: Obj) -> None:
        update = kind.update(desired, p_slim)
        meta = p_slim["metadata"]
        if update.method == "replace":
            # Conflict → retry with a fresher cache
            await self.super_api.replace(kind.resource, update.body, decode=False)
        else:
            if not update.body:
                return
            await self.super_api.patch(kind.resource, meta["name"], update.body, namespace=meta.get("namespace"),
                                       patch_type=update.patch_type, decode=False)
        self._count(kind.kind, DOWN, "update")

    async def _refuse(self, rt: TenantRuntime, kind: Kind, v_obj: Obj, reasons: list[str]) -> None:
        uid = object_uid(v_obj)
        if uid in rt.refused:
            return
        meta = v_obj["metadata"]
        log.info("sync.refused", tenant=rt.info.key, kind=kind.kind, key=f"{meta.get('namespace')}/{meta['name']}",
                 reasons=reasons)
        body = event_mod.refusal(v_obj, kind=kind.resource.kind, reasons=reasons, now=_now(),
                                 api_version=kind.resource.api_version)
        await rt.api.create(resources.EVENTS, body, namespace=meta["namespace"])
        rt.refused.add(uid)
        self.metrics.refused.labels(kind.kind).inc()

    async def _tell_super_refusal(self, rt: TenantRuntime, kind: Kind, v_obj: Obj, exc: ApiError) -> None:
        """A Warning Event (one per object and reason, updated on each retry) with the super message."""
        body = event_mod.super_refusal(v_obj, kind=kind.resource.kind, api_version=kind.resource.api_version,
                                       status=exc.status, message=exc.message, now=_now())
        if body is None:
            return
        ns = body["metadata"]["namespace"]
        try:
            await rt.api.create(resources.EVENTS, body, namespace=ns)
            self.metrics.refused.labels(kind.kind).inc()
        except AlreadyExists:
            with contextlib.suppress(NotFound):
                await rt.api.patch(resources.EVENTS, body["metadata"]["name"],
                                   {"message": body["message"], "lastTimestamp": body["lastTimestamp"]},
                                   namespace=ns)

    def _with_links(self, rt: TenantRuntime, ctx: TranslateContext, ns: str) -> TranslateContext:
        """``ctx`` with the service links of ``ns``; the same object while neither changes (a
        ``dataclasses.replace`` per pod cost more than the rest of the context)."""
        links = self._service_links(rt, ns)
        cached = rt.link_ctx.get(ns)
        if cached is not None and cached[0] is ctx and cached[1].service_links == links:
            return cached[1]
        with_links = dataclasses.replace(ctx, service_links=links)
        rt.link_ctx[ns] = (ctx, with_links)
        return with_links

    def _service_links(self, rt: TenantRuntime, ns: str) -> tuple[tuple[str, str, tuple[Obj, ...]], ...]:
        """(name, super cluster IP, ports) of the tenant Services in ``ns``, for service env vars."""
        if "Service" not in rt.informers:
            return ()
        p_ns = super_namespace(rt.info.key, ns)
        out = []
        services = rt.informers["Service"]
        for v_ns, name in services.refs():  # decode only this namespace's services
            v_svc = services.get(v_ns, name) if v_ns == ns else None
            if v_svc is None:
                continue
            ip = (self.super_informers["Service"].get(p_ns, name) or {}).get("clusterIP") or ""
            out.append((name, ip, tuple((v_svc.get("spec") or {}).get("ports") or ())))
        return tuple(out)

    async def _apply_namespace_policy(self, rt: TenantRuntime, p_ns: str) -> None:
        if not rt.info.spec:
            return
        try:
            isolation = TenantSpec.from_dict(rt.info.spec).isolation
        except SpecError:
            return
        for obj in policy_objects(isolation, super_namespace=p_ns, cluster_key=rt.info.key,
                                  tenant_name=rt.info.name):
            resource = resources.BY_KIND[obj["kind"]]
            with contextlib.suppress(AlreadyExists):
                await self.super_api.create(resource, obj)

    # ---- service-account tokens ---------------------------------------------------------
    async def _ensure_token(self, rt: TenantRuntime, ns: str, sa: str) -> None:
        if (ns, sa) in rt.tokens:
            return
        p_ns = super_namespace(rt.info.key, ns)
        secret_name = naming.token_secret_name(sa)
        if (p_ns, secret_name) in self.super_informers["Secret"]:
            rt.tokens.add((ns, sa))
            return
        lock = rt.token_locks.setdefault((ns, sa), asyncio.Lock())
        async with lock:
            if (ns, sa) in rt.tokens:
                return
            request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"expirationSeconds": self.settings.token_expiration}}
            try:
                answer = await rt.api.create(resources.SERVICEACCOUNTS, request, namespace=ns, name=sa,
                                             subresource="token")
            except NotFound:
                raise RetryLater(f"service account {ns}/{sa} not found in the tenant") from None
            token = answer["status"]["token"]
            ca = rt.api.config.ca_pem or b""
            secret = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {
                    "name": secret_name, "namespace": p_ns,
                    "labels": naming.owner_labels(rt.info.key, rt.info.name),
                    "annotations": {naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT: sa, naming.ANN_CLUSTER_KEY: rt.info.key,
                                    naming.ANN_TENANT_NAMESPACE: ns},
                },
                "data": {
                    pod_mod.TOKEN_KEY: base64.b64encode(token.encode()).decode(),
                    pod_mod.CA_KEY: base64.b64encode(ca).decode(),
                    pod_mod.NAMESPACE_KEY: base64.b64encode(ns.encode()).decode(),
                },
            }
            try:
                await self._create_in_namespace(rt, self.by_kind["Secret"], secret, p_ns, ns)
                self._count("ServiceAccountToken", DOWN, "create")
            except AlreadyExists:
                pass
            rt.tokens.add((ns, sa))

    async def _delete_token(self, rt: TenantRuntime, ns: str, sa: str) -> None:
        rt.tokens.discard((ns, sa))
        p_ns = super_namespace(rt.info.key, ns)
        p_secret = self.super_informers["Secret"].get(p_ns, naming.token_secret_name(sa))
        if p_secret is not None:
            await self._delete_super(self.by_kind["Secret"], p_secret)

    # ---- upward --------------------------------------------------------------------------
    async def _up(self, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
        if kind.upward is None and not rt.ctx.metadata.transparent:
            return
        v_obj = rt.informers[kind.kind].get(key.namespace, key.name)
        p_ns, p_name = self._super_ref(rt, kind, key.namespace, key.name)
        p_slim = self._p_slim(kind, p_ns, p_name)
        if v_obj is None or p_slim is None:
            return
        if (p_slim["metadata"].get("annotations") or {}).get(naming.ANN_OBJECT_UID) != object_uid(v_obj):
            return
        actions = kind.upward(v_obj, p_slim) if kind.upward is not None else []
        meta_patch = transparent_patch(v_obj, p_slim, rt.ctx.metadata)
        if meta_patch is not None:  # super-owned metadata under transparent prefixes, copied up
            actions = [*actions, UpAction("patch", {"metadata": meta_patch})]
        for action in actions:
            if action.op == "bind":
                node = action.body["target"]["name"]
                await self.nodes.ensure_node(rt.info.key, node)
                with contextlib.suppress(Conflict):  # bound meanwhile
                    await rt.api.create(kind.resource, action.body, namespace=key.namespace, name=key.name,
                                        subresource="binding", decode=False)
                self._count(kind.kind, UP, "bind")
            elif action.op == "status":
                with contextlib.suppress(NotFound):
                    await rt.api.patch(kind.resource, key.name, action.body, namespace=key.namespace,
                                       subresource="status", decode=False)
                    self._count(kind.kind, UP, "status")
            elif action.op == "ensure" and action.resource is not None:
                with contextlib.suppress(AlreadyExists):
                    await rt.api.create(action.resource, action.body, decode=False)
                    self._count(action.resource.kind, UP, "create")
            else:
                with contextlib.suppress(NotFound):
                    await rt.api.patch(kind.resource, key.name, action.body, namespace=key.namespace or None,
                                       decode=False)
                    self._count(kind.kind, UP, "patch")

    async def _event_up(self, rt: TenantRuntime, key: SyncKey) -> None:
        p_event = rt.pending_events.pop((key.namespace, key.name), None)
        if p_event is None:
            return
        involved = p_event.get("involvedObject") or {}
        kind = self.by_kind.get(event_mod.event_kind(involved, self._extra_of(rt)) or "")
        v_inf = rt.informers.get(kind.kind) if kind is not None else None
        if v_inf is None:
            return
        v_obj = v_inf.get(key.namespace, str(involved.get("name")))
        if v_obj is None:
            return
        v_event = event_mod.to_tenant(p_event, tenant_namespace=key.namespace, v_uid=object_uid(v_obj))
        try:
            await rt.api.create(resources.EVENTS, v_event, namespace=key.namespace, decode=False)
            self._count(EVENT, UP, "create")
        except AlreadyExists:
            patch = {k: v_event[k] for k in ("count", "lastTimestamp", "message", "series") if k in v_event}
            with contextlib.suppress(NotFound):
                await rt.api.patch(resources.EVENTS, key.name, patch, namespace=key.namespace, decode=False)
                self._count(EVENT, UP, "patch")

    # ---- patrol --------------------------------------------------------------------------
    async def _patrol_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.patrol_period)
            try:
                self.patrol()
            except Exception:
                log.exception("patrol.failed")

    def patrol(self) -> dict[str, int]:
        """One full diff of every kind of every synced tenant; differences are queued. Returns counts."""
        counts: dict[str, int] = {}
        super_by_tenant = {
            name: patrol_mod.group_by_tenant(inf.items()) for name, inf in self.super_informers.items()
        }
        for rt in list(self.tenants.values()):
            if not rt.synced.is_set():
                continue
            ctx = self.context_for(rt)
            for kind in rt.kinds:
                tenant_items = {
                    k: v for k, v in rt.informers[kind.kind].items()
                    if self.tenant_object(rt, kind, k[0], k[1]) is not None
                }
                diffs = patrol_mod.diff_kind(
                    kind, tenant_items, super_by_tenant[kind.kind].get(rt.info.key, {}), ctx, refused=rt.refused,
                )
                for (ns, name), direction, reason in diffs:
                    self.metrics.drift.labels(kind.kind, reason).inc()
                    counts[reason] = counts.get(reason, 0) + 1
                    self.queue.add(SyncKey(rt.info.key, kind.kind, direction, ns, name))
        if counts:
            log.info("patrol.drift", counts=counts)
        return counts


async def _get_path(api: ApiClient, path: str) -> Obj | None:
    """A discovery document, or None when the apiserver does not serve it."""
    try:
        doc: Obj = await api.request("GET", path)
    except NotFound:
        return None
    return doc


def _cluster_key_of(p_obj: Obj) -> str | None:
    """The cluster key a super object was made for (its label), if the syncer made it."""
    labels = (p_obj.get("metadata") or {}).get("labels") or {}
    if labels.get(naming.LABEL_MANAGED_BY) != naming.MANAGED_BY_SYNCER:
        return None
    key = labels.get(naming.LABEL_CLUSTER_KEY)
    return str(key) if key else None


def _pod_down_fingerprint(v_pod: Obj) -> str:
    """What the downward reconcile of a tenant pod depends on, hashed: everything but its status, node
    name and resourceVersion (all written by the upward sync), plus whether it was scheduled (a bound
    pod whose super pod is gone is deleted, not recreated).  Key order is the apiserver's, stable for
    one object; an order change only costs a needless reconcile."""
    meta = v_pod["metadata"]
    spec = v_pod.get("spec") or {}
    return hashlib.blake2b(orjson.dumps((
        [(k, v) for k, v in meta.items() if k != "resourceVersion"],
        [(k, v) for k, v in spec.items() if k != "nodeName"],
        _was_scheduled(v_pod),
    )), digest_size=12).digest().hex()


def _was_scheduled(v_pod: Obj) -> bool:
    for cond in (v_pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return True
    return False
