"""The patrol's full diff, as pure functions over cache contents.

Why: watches can miss nothing in theory, but a hand edit in the super
cluster, a bug, or a write that failed past its retries leaves the two sides
apart.  Periodically the engine compares every tenant object with its super
copy (presence, incarnation uid, fingerprint of the synced part, pending
upward changes) and queues what differs; the counts become metrics.
:func:`diff_kind` and :func:`tenant_of` are pure; :func:`scan` applies
them to the syncer's caches and queues the differences (no I/O either).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import structlog

from syncer.informer import Informer
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


def tenant_of(p_slim: Obj) -> tuple[str, Ref] | None:
    """The (cluster key, tenant namespace and name) a super object stands for; None for the objects the
    patrol does not compare (not made for a tenant object, or a pod's token Secret)."""
    meta = p_slim.get("metadata") or {}
    tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
    ref = tenant_ref(p_slim, namespaced=bool(meta.get("namespace")))
    if not tenant or ref is None or naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in (meta.get("annotations") or {}):
        return None
    return tenant, ref[:2]


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


def _group_raw(shared: Shared, kind: str, inf: Informer) -> dict[str, dict[Ref, bytes]]:
    """Super objects by cluster key, keyed by the (tenant namespace, name) they stand for
    (:func:`tenant_of`), over the cached bytes of one super informer; an object whose bytes are the
    ones the last patrol saw is not decoded again (:attr:`Shared.patrol_refs`)."""
    last = shared.patrol_refs.get(kind, {})
    seen: dict[Ref, tuple[bytes, tuple[str, Ref] | None]] = {}
    out: dict[str, dict[Ref, bytes]] = {}
    for p_key, raw in inf.raw_items():
        memo = last.get(p_key)
        found = memo[1] if memo is not None and memo[0] is raw else tenant_of(orjson.loads(raw))
        seen[p_key] = (raw, found)
        if found is not None:
            out.setdefault(found[0], {})[found[1]] = raw
    shared.patrol_refs[kind] = seen
    return out


def scan(shared: Shared) -> dict[str, int]:
    """One full diff of every kind of every synced tenant; differences are queued and counted.

    Reads only the caches (the engine calls it every ``VC_SYNCER_PATROL_PERIOD`` seconds).  A pair
    (tenant object, super copy) that the last patrol found equal, whose cached bytes are the same
    objects now (an informer replaces them on every event and list that touches the object) and whose
    kind's translation context is equal, is equal now: :func:`diff_kind` is a pure function of them.
    Such pairs are not decoded and translated again (:attr:`TenantRuntime.patrol_clean`); kinds whose
    ``sync_filter`` reads other objects are always compared whole.
    """
    counts: dict[str, int] = {}
    super_by_tenant = {name: _group_raw(shared, name, inf) for name, inf in shared.super_informers.items()}
    now = clock.timestamp()
    for rt in list(shared.tenants.values()):
        if not rt.synced.is_set():
            continue
        rt.last_full_sync = now
        for kind in rt.kinds:
            ctx = shared.context(rt, kind, None, creating=False)
            p_raws = super_by_tenant[kind.kind].get(rt.info.key, {})
            memo = kind.sync_filter is None
            last = rt.patrol_clean.get(kind.kind) if memo else None
            clean_before = last[1] if last is not None and last[0] == ctx else {}
            clean: dict[Ref, tuple[bytes, bytes]] = {}
            tenant_items: dict[Ref, Obj] = {}
            tenant_raws: dict[Ref, bytes] = {}
            for ref, v_raw in rt.informers[kind.kind].raw_items():
                p_raw = p_raws.get(ref)
                pair = clean_before.get(ref)
                if pair is not None and pair[0] is v_raw and pair[1] is p_raw:
                    clean[ref] = pair
                    continue
                v_obj = orjson.loads(v_raw)
                if shared.to_sync(rt, kind, v_obj) is not None:
                    tenant_items[ref] = v_obj
                    tenant_raws[ref] = v_raw
            super_items = {ref: orjson.loads(raw) for ref, raw in p_raws.items() if ref not in clean}
            diffs = diff_kind(kind, tenant_items, super_items, ctx, refused=rt.refused)
            differing = set()
            for (ns, name), direction, reason in diffs:
                differing.add((ns, name))
                shared.metrics.drift.labels(kind.kind, reason).inc()
                counts[reason] = counts.get(reason, 0) + 1
                shared.queue.add(SyncKey(rt.info.key, kind.kind, direction, ns, name))
            if memo:
                for ref, v_raw in tenant_raws.items():
                    if ref not in differing and (p_raw := p_raws.get(ref)) is not None:
                        clean[ref] = (v_raw, p_raw)
                rt.patrol_clean[kind.kind] = (ctx, clean)
    if counts:
        log.info("patrol.drift", counts=counts)
    return counts
