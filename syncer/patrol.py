"""The patrol's full diff, as pure functions over cache contents.

Why: watches can miss nothing in theory, but a hand edit in the super
cluster, a bug, or a write that failed past its retries leaves the two sides
apart.  Periodically the engine compares every tenant object with its super
copy (presence, incarnation uid, fingerprint of the synced part, pending
upward changes) and queues what differs; the counts become metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from syncer.queue import DOWN, UP
from syncer.resources.base import Kind, Obj, TranslateContext, object_uid, transparent_patch, with_super_owned
from vcluster import naming

Ref = tuple[str, str]


def group_by_tenant(super_items: Iterable[tuple[Ref, Obj]]) -> dict[str, dict[Ref, Obj]]:
    """Super objects by cluster key, keyed by the (tenant namespace, name) they stand for."""
    out: dict[str, dict[Ref, Obj]] = {}
    for _ref, p_slim in super_items:
        meta = p_slim.get("metadata") or {}
        tenant = (meta.get("labels") or {}).get(naming.LABEL_CLUSTER_KEY)
        ann = meta.get("annotations") or {}
        name = ann.get(naming.ANN_OBJECT_NAME)
        if not tenant or not name or naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in ann:
            continue
        ns = ann.get(naming.ANN_TENANT_NAMESPACE, "") if meta.get("namespace") else ""
        out.setdefault(tenant, {})[(ns, name)] = p_slim
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
