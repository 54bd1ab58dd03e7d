"""Routing of watch events to queue keys: which keys a tenant or super event makes, and which it does not.

Why: this is the hot path's filter (every watch event of every tenant passes
here) and the place where echo suppression lives; it only reads caches and
adds keys to the queue, so it is pure enough to test by feeding it events and
reading the queue.  The functions are public because the engine wires them
into informers and the tests drive them directly.  Kind-specific routing
(pods' echo fingerprints, Service → Endpoints) comes from the kinds' hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from syncer.queue import DOWN, UP, SyncKey
from syncer.resources import event as event_mod
from syncer.resources import extra as extra_mod
from syncer.resources.base import USAGE, Kind, Obj, fingerprint, tenant_ref
from syncer.runtime import TenantRuntime
from syncer.shared import Shared
from vcluster import naming, quota

#: The queue's pseudo-kind for super Events copied up (Events are not a synced kind).
EVENT = "Event"

Handler = Callable[[str, Obj], None]


def tenant_handler(shared: Shared, rt: TenantRuntime, kind: Kind) -> Handler:
    """The handler of one tenant informer: queue the downward key of what changed (and ``also_queue``)."""
    tenant = rt.info.key
    queue = shared.queue
    down_fp = kind.down_fingerprint
    down_seen = rt.down_seen
    also = kind.also_queue

    def handle(event: str, v_obj: Obj) -> None:
        if not rt.synced.is_set():
            return  # queued all at once when every informer of the tenant has listed
        meta = v_obj["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        if down_fp is not None:
            ref = (kind.kind, ns, name)
            if event == "DELETED":
                down_seen.pop(ref, None)
            else:
                fp = down_fp(v_obj)
                if event == "MODIFIED" and down_seen.get(ref) == fp:
                    return  # only what our upward writes set changed (their echo)
                down_seen[ref] = fp
        queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name))
        for other in also:
            queue.add(SyncKey(tenant, other, DOWN, ns, name))
    return handle


def super_handler(shared: Shared, kind: Kind) -> Handler:
    """The handler of one super informer (shared by every tenant)."""
    def handle(event: str, p_slim: Obj) -> None:
        count_usage(shared, kind, p_slim, event=event)
        enqueue_super(shared, kind, p_slim, event=event)
    return handle


def count_usage(shared: Shared, kind: Kind, p_slim: Obj, *, event: str) -> None:
    """Keep the tenant's quota ledger equal to the super cache; when its usage went down, queue again
    the creates that were waiting for room (their back-off may be long)."""
    meta = p_slim["metadata"]
    tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
    if not tenant:
        return
    if event != "DELETED" and USAGE not in p_slim and tenant not in shared.ledgers:
        return  # counts for nothing, and nothing counted yet: no ledger to make
    ref = (kind.kind, meta.get("namespace") or "", meta.get("name") or "")
    usage = quota.load(p_slim.get(USAGE)) if event != "DELETED" else None
    freed = shared.ledger(tenant).observe(ref, usage)
    rt = shared.tenants.get(tenant)
    if freed and rt is not None and rt.quota_waiting:
        waiting, rt.quota_waiting = rt.quota_waiting, set()
        for key in waiting:  # (routing sits below downward: its wake_quota_waiters, inlined)
            shared.queue.add(key)


def enqueue_super(
    shared: Shared, kind: Kind, p_slim: Obj, *, only_tenant: str | None = None, event: str | None = None,
    resync: bool = False,
) -> None:
    """Queue the downward and upward keys a super object stands for (``event`` None: a resync;
    ``resync``: queued as re-checks, behind live keys)."""
    meta = p_slim["metadata"]
    tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
    if tenant is None or (only_tenant is not None and tenant != only_tenant):
        return
    rt = shared.tenants.get(tenant)
    if rt is None or not rt.synced.is_set():
        return
    unlisted = kind.kind in shared.extra_kinds and kind.kind not in rt.informers
    if unlisted and extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
        return  # an extra kind the tenant lists but has not started (yet)
    if kind.foreign_super is not None and kind.foreign_super(p_slim):
        return
    ref_of = tenant_ref(p_slim, namespaced=kind.namespaced)
    if ref_of is None:
        return
    ns, name, p_uid = ref_of
    if unlisted:  # an extra kind the tenant no longer lists: its super copy goes
        if event != "DELETED":
            shared.queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name), resync=resync)
        return
    ref = (kind.kind, ns, name)
    live_event = event is not None and event != "DELETED" and not meta.get("deletionTimestamp")
    if live_event and rt.written.get(ref) == (p_uid or None, p_slim.get("fp")):
        pass  # the echo of our own write: nothing to do downward (a tenant change queues its own key)
    else:
        if event == "DELETED":
            rt.forget(kind.kind, ns, name)
        shared.queue.add(SyncKey(tenant, kind.kind, DOWN, ns, name), resync=resync)
    rules = rt.ctx.metadata
    if kind.upward is None and not rules.transparent:
        return
    if kind.upward_idle is not None and kind.upward_idle(p_slim) and not rules.transparent:
        return  # e.g. a pod with neither node nor status (our create's echo): nothing to bring up
    if live_event and (kind.upward_echo or kind.upward is None):
        # What upward reads (node, status, transparent metadata) unchanged since the last queued upward key.
        up_fp = fingerprint((p_uid or None, p_slim.get("nodeName"), p_slim.get("status"),
                             rules.transparent_of(meta) if rules.transparent else None))
        if rt.upward_seen.get(ref) == up_fp:
            return
        rt.upward_seen[ref] = up_fp
    shared.queue.add(SyncKey(tenant, kind.kind, UP, ns, name), resync=resync)


def on_super_event(shared: Shared, event_type: str, p_event: Obj) -> None:
    """A super Event about an object the syncer made: keep it and queue its upward key."""
    if event_type == "DELETED":
        return
    p_ns = p_event["metadata"].get("namespace") or ""
    if naming.SEPARATOR not in p_ns:
        return
    involved = p_event.get("involvedObject") or {}
    if involved.get("kind") not in event_mod.UPWARD_KINDS and not shared.extra_kinds:
        return
    ns_kind = shared.namespace_kind
    p_ns_obj = shared.p_slim(ns_kind, None, p_ns) if ns_kind is not None else None
    ann = ((p_ns_obj or {}).get("metadata") or {}).get("annotations") or {}
    try:
        ref = naming.parse_super_namespace(p_ns, ann)
    except naming.NamingError:
        return
    rt = shared.tenants.get(ref.cluster_key)
    if rt is None or ref.tenant_namespace is None or not rt.synced.is_set():
        return
    if event_mod.event_kind(involved, extra_of(shared, rt)) is None:
        return
    name = p_event["metadata"]["name"]
    rt.pending_events[(ref.tenant_namespace, name)] = p_event
    shared.queue.add(SyncKey(ref.cluster_key, EVENT, UP, ref.tenant_namespace, name))


def extra_of(shared: Shared, rt: TenantRuntime) -> Iterator[Kind]:
    """The extra kinds the tenant syncs now (lazily: on the super event path it is rarely read)."""
    return (k for k in rt.kinds if k.kind in shared.extra_kinds)


def enqueue_all(shared: Shared, rt: TenantRuntime) -> None:
    """Queue every tenant object and every super object of the tenant (start-up, resync).

    Tenant objects without a super copy come first (kinds in registry order, so namespaces before
    what lives in them), as live keys: after a restart the work that was missed is done before the
    re-check of everything already synced, which mostly finds nothing to do and is queued as re-checks
    (behind every tenant's live keys, see :mod:`syncer.queue`).
    """
    key = rt.info.key
    for kind in rt.kinds:
        p_items = shared.super_informers[kind.kind]
        for ns, name in rt.informers[kind.kind].refs():
            p_ns, p_name = rt.super_ref(kind, ns, name)
            if (p_ns or "", p_name) not in p_items:
                shared.queue.add(SyncKey(key, kind.kind, DOWN, ns, name))
    for kind in rt.kinds:
        enqueue_kind(shared, rt, kind, resync=True)  # the rest (queued keys are not queued twice)


def enqueue_kind(shared: Shared, rt: TenantRuntime, kind: Kind, *, resync: bool = False) -> None:
    """Queue every tenant object and super copy of one kind of one tenant (``resync``: as re-checks)."""
    key = rt.info.key
    for ns, name in rt.informers[kind.kind].refs():
        shared.queue.add(SyncKey(key, kind.kind, DOWN, ns, name), resync=resync)
    for _pkey, p_slim in shared.super_informers[kind.kind].items():
        enqueue_super(shared, kind, p_slim, only_tenant=key, resync=resync)
