"""The patrol's full diff, as pure functions over cache contents.

Why: watches can miss nothing in theory, but a hand edit in the super
cluster, a bug, or a write that failed past its retries leaves the two sides
apart.  Periodically the engine compares every tenant object with its super
copy (presence, incarnation uid, fingerprint of the synced part, pending
upward changes) and queues what differs; the counts become metrics.
:func:`diff_kind` and :func:`group_by_tenant` are pure; :func:`scan` applies
them to the syncer's caches and queues the differences (no I/O either).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from syncer.queue import DOWN, UP, SyncKey
from syncer.resources.base import (
    Kind,
    Obj,
    TranslateContext,
    object_uid,
    tenant_ref,
    transparent_patch,
    with_super_owned,
)
from syncer.shared import Shared
from vcluster import clock, naming

log = structlog.get_logger(__name__)

Ref = tuple[str, str]


def group_by_tenant(super_items: Iterable[tuple[Ref, Obj]]) -> dict[str, dict[Ref, Obj]]:
    """Super objects by cluster key, keyed by the (tenant namespace, name) they stand for."""
    out: dict[str, dict[Ref, Obj]] = {}
    for _ref, p_slim in super_items:
        meta = p_slim.get("metadata") or {}
        tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
        ref = tenant_ref(p_slim, namespaced=bool(meta.get("namespace")))
        if not tenant or ref is None or naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in (meta.get("annotations") or {}):
            continue
        out.setdefault(tenant, {})[ref[:2]] = p_slim
    return out


def diff_kind(
    kind: Kind,
    tenant_items: Mapping[Ref, Obj],
    super_items: Mapping[Ref, Obj],
    ctx: TranslateContext,
    *,
    refused: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[Ref, str, str]]:
    """Every (tenant ref, direction, reason) where the two sides differ."""
    out: list[tuple[Ref, str, str]] = []
    for ref, v_obj in tenant_items.items():
        p_slim = super_items.get(ref)
        v_meta = v_obj.get("metadata") or {}
        if p_slim is None:
            if object_uid(v_obj) not in refused and not v_meta.get("deletionTimestamp"):
                out.append((ref, DOWN, "missing"))
            continue
        p_meta = p_slim.get("metadata") or {}
        if (p_meta.get("annotations") or {}).get(naming.ANN_OBJECT_UID) != object_uid(v_obj):
            out.append((ref, DOWN, "stale"))
            continue
        if v_meta.get("deletionTimestamp"):
            if not p_meta.get("deletionTimestamp"):
                out.append((ref, DOWN, "terminating"))
            continue
        if kind.fingerprint(with_super_owned(kind.to_super(v_obj, ctx), p_slim, ctx.metadata)) != p_slim.get("fp"):
            out.append((ref, DOWN, "changed"))
        if (kind.upward is not None and kind.upward(v_obj, p_slim)) or transparent_patch(v_obj, p_slim, ctx.metadata):
            out.append((ref, UP, "upward"))
    for ref, p_slim in super_items.items():
        if ref not in tenant_items and not (p_slim.get("metadata") or {}).get("deletionTimestamp"):
            out.append((ref, DOWN, "orphan"))
    return out


def scan(shared: Shared) -> dict[str, int]:
    """One full diff of every kind of every synced tenant; differences are queued and counted.

    Reads only the caches (the engine calls it every ``VC_SYNCER_PATROL_PERIOD`` seconds).
    """
    counts: dict[str, int] = {}
    super_by_tenant = {name: group_by_tenant(inf.items()) for name, inf in shared.super_informers.items()}
    now = clock.timestamp()
    for rt in list(shared.tenants.values()):
        if not rt.synced.is_set():
            continue
        rt.last_full_sync = now
        for kind in rt.kinds:
            # each cached object decoded once (asking tenant_object() per ref decoded it a second time)
            tenant_items = {k: v for k, v in rt.informers[kind.kind].items() if shared.to_sync(rt, kind, v) is not None}
            ctx = shared.context(rt, kind, None, creating=False)
            diffs = diff_kind(kind, tenant_items, super_by_tenant[kind.kind].get(rt.info.key, {}), ctx,
                              refused=rt.refused)
            for (ns, name), direction, reason in diffs:
                shared.metrics.drift.labels(kind.kind, reason).inc()
                counts[reason] = counts.get(reason, 0) + 1
                shared.queue.add(SyncKey(rt.info.key, kind.kind, direction, ns, name))
    if counts:
        log.info("patrol.drift", counts=counts)
    return counts
