"""Downward writes: the three-way branch that brings a super copy in line with its tenant object.

Why: tenant only → create, super only → delete, both → update, always
guarded by the tenant object's uid recorded on the super copy (a super copy
of an older incarnation is deleted, never adopted; a name taken by an object
we do not own is left alone).  The branch is the same for every kind; what a
kind needs beyond its pure translation it does in its hooks, through
:class:`TenantIO` (the :class:`~syncer.resources.base.KindIO` this module
implements).  Refusals (a kind's ``check``, or the super apiserver's 403/422)
become Warning Events on the tenant object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from syncer.queue import DOWN, UP, SyncKey
from syncer.resources import event as event_mod
from syncer.resources.base import (
    Kind,
    Leftover,
    MetadataRules,
    Obj,
    RetryLater,
    cluster_key_of,
    object_uid,
    with_super_owned,
)
from syncer.runtime import TenantRuntime
from syncer.shared import Shared, TenantCaches
from vcluster import clock, naming, quota
from vcluster.kube import AlreadyExists, ApiClient, ApiError, Conflict, Forbidden, Invalid, NotFound, resources

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TenantIO(TenantCaches):
    """What the kinds' hooks may do for one tenant (:class:`~syncer.resources.base.KindIO`)."""

    @property
    def tenant_api(self) -> ApiClient:
        return self.rt.api

    @property
    def super_api(self) -> ApiClient:
        return self.shared.super_api

    @property
    def tenant_spec(self) -> Mapping[str, Any]:
        return self.rt.info.spec

    @property
    def token_expiration(self) -> int:
        return self.shared.settings.token_expiration

    @property
    def refused(self) -> set[str]:
        return self.rt.refused

    async def create_super(self, kind: str, body: Obj, *, tenant_namespace: str) -> None:
        meta = body["metadata"]
        await create_in_namespace(self.shared, self.rt, self.shared.by_kind[kind], body,
                                  p_ns=meta.get("namespace"), tenant_ns=tenant_namespace)

    async def delete_super(self, kind: str, p_slim: Obj) -> None:
        await delete_super(self.shared, self.shared.by_kind[kind], p_slim)

    async def delete_tenant(self, kind: str, v_obj: Obj, *, grace: int | None = None) -> None:
        meta = v_obj["metadata"]
        with contextlib.suppress(NotFound, Conflict):
            await self.rt.api.delete(self.shared.by_kind[kind].resource, meta["name"], namespace=meta.get("namespace"),
                                     uid=meta.get("uid"), grace_period_seconds=grace)
            self.shared.count(kind, UP, "delete")

    def count(self, kind: str, direction: str, op: str) -> None:
        self.shared.count(kind, direction, op)


async def down(shared: Shared, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
    """Reconcile one tenant object (or its absence) with its super copy."""
    v_raw = rt.informers[kind.kind].get(key.namespace, key.name)
    if v_raw is not None and kind.skip(v_raw):
        return  # a system object the super cluster has its own of; never touch the super one
    v_obj = shared.to_sync(rt, kind, v_raw)
    p_ns, p_name = rt.super_ref(kind, key.namespace, key.name)
    p_slim = shared.p_slim(kind, p_ns, p_name)
    if p_slim is not None and kind.foreign_super is not None and kind.foreign_super(p_slim):
        return
    if p_slim is not None and cluster_key_of(p_slim) != rt.info.key:
        # Made for another tenant (the super cache holds every tenant's copies): never ours to touch.
        log.warning("sync.name_taken", tenant=rt.info.key, kind=kind.kind, namespace=p_ns, name=p_name)
        return
    if v_obj is None:
        rt.forget(kind.kind, key.namespace, key.name)
        if kind.on_gone is not None:
            await kind.on_gone(TenantIO(shared, rt), key.namespace, key.name)
        if p_slim is not None and kind.tenant_leftovers is not None:
            await delete_leftovers(shared, rt, kind.tenant_leftovers(p_slim))
        if p_slim is not None and not p_slim["metadata"].get("deletionTimestamp"):
            await delete_super(shared, kind, p_slim)
        return
    v_uid = object_uid(v_obj)
    p_uid = ((p_slim or {}).get("metadata", {}).get("annotations") or {}).get(naming.ANN_OBJECT_UID)
    if v_obj["metadata"].get("deletionTimestamp"):
        await _terminating(shared, rt, kind, v_obj, p_slim if p_uid == v_uid else None)
        return
    if p_slim is not None and p_uid != v_uid:
        # A super copy of an older incarnation of this name: delete, then create on the next pass.
        if not p_slim["metadata"].get("deletionTimestamp"):
            await delete_super(shared, kind, p_slim)
        raise RetryLater(f"stale super copy of {kind.kind} {key.namespace}/{key.name} (uid {p_uid})")
    if p_slim is None:
        await create(shared, rt, kind, v_obj, p_ns)
        return
    ctx = shared.context(rt, kind, v_obj, creating=False)
    if kind.recheck and kind.check is not None and (reasons := kind.check(v_obj, ctx)):
        # The tenant changed an allowed object into a refused one: the old copy must not stay either.
        await refuse(shared, rt, kind, v_obj, reasons)
        rt.forget(kind.kind, key.namespace, key.name)
        if not p_slim["metadata"].get("deletionTimestamp"):
            await delete_super(shared, kind, p_slim)
        return
    # Super-owned metadata (Tenant spec.sync prefixes) is the super object's: kept as it is.
    desired = with_super_owned(kind.to_super(v_obj, ctx), p_slim, ctx.metadata)
    fp = kind.fingerprint(desired)
    ref = (kind.kind, key.namespace, key.name)
    if fp == p_slim.get("fp"):
        rt.written[ref] = (v_uid, fp)
        return
    p_ref = admit_growth(shared, rt, kind, desired, p_slim)
    if isinstance(p_ref, list):
        # The super copy stays as it was; the change waits for room, told once.
        await refuse(shared, rt, kind, v_obj, p_ref, told=rt.quota_told)
        rt.quota_waiting.add(key)
        raise RetryLater("over the tenant-wide quota: " + "; ".join(p_ref))
    rt.quota_told.discard(v_uid)
    # Recorded before the write: the super watch may deliver its echo before the write returns.
    rt.written[ref] = (v_uid, fp)
    try:
        await update(shared, kind, desired, p_slim)
    except BaseException:
        rt.written.pop(ref, None)
        if p_ref is not None:
            release_quota(shared, rt, p_ref)
        raise


async def _terminating(shared: Shared, rt: TenantRuntime, kind: Kind, v_obj: Obj, p_slim: Obj | None) -> None:
    if p_slim is not None:
        if kind.tenant_leftovers is not None:
            await delete_leftovers(shared, rt, kind.tenant_leftovers(p_slim))
        if not p_slim["metadata"].get("deletionTimestamp"):
            grace = v_obj["metadata"].get("deletionGracePeriodSeconds") if kind.tenant_grace else None
            await delete_super(shared, kind, p_slim, grace=grace)
        return
    if kind.on_super_gone is not None:
        await kind.on_super_gone(TenantIO(shared, rt), v_obj)


async def delete_leftovers(shared: Shared, rt: TenantRuntime, leftovers: list[Leftover]) -> None:
    """Delete tenant objects the syncer made for a tenant object that is gone (uid-guarded)."""
    for left in leftovers:
        v_left = await rt.api.get_or_none(left.resource, left.name)
        if v_left is None or not left.is_ours(v_left):
            continue
        with contextlib.suppress(NotFound, Conflict):
            await rt.api.delete(left.resource, left.name, uid=object_uid(v_left))
            shared.count(left.resource.kind, UP, "delete")


async def create(shared: Shared, rt: TenantRuntime, kind: Kind, v_obj: Obj, p_ns: str | None) -> None:
    """Create the super copy of a tenant object (after the kind's hooks and ``check`` allow it)."""
    meta = v_obj["metadata"]
    io = TenantIO(shared, rt)
    if kind.before_create is not None and not await kind.before_create(io, v_obj):
        return
    ctx = shared.context(rt, kind, v_obj, creating=True)
    reasons = kind.check(v_obj, ctx) if kind.check is not None else []
    if reasons:
        await refuse(shared, rt, kind, v_obj, reasons)
        return
    p_ref = admit_quota(shared, rt, kind, v_obj, p_ns)
    if isinstance(p_ref, list):
        # Told once, but not "refused" (a refused pod stays refused): it waits for room.
        await refuse(shared, rt, kind, v_obj, p_ref, told=rt.quota_told)
        rt.quota_waiting.add(SyncKey(rt.info.key, kind.kind, DOWN, meta.get("namespace", ""), meta["name"]))
        raise RetryLater("over the tenant-wide quota: " + "; ".join(p_ref))
    rt.refused.discard(object_uid(v_obj))  # allowed now: a later refusal is told again
    rt.quota_told.discard(object_uid(v_obj))
    # Recorded before the write: the super watch may deliver its echo before the write returns.
    ref = (kind.kind, meta.get("namespace", "") if kind.namespaced else "", meta["name"])
    try:
        if kind.prepare is not None:
            await kind.prepare(io, v_obj)
        desired = kind.to_super(v_obj, ctx)
    except BaseException:
        if p_ref is not None:
            release_quota(shared, rt, p_ref)
        raise
    rt.written[ref] = (object_uid(v_obj), kind.fingerprint(desired))
    making_namespace = kind is shared.namespace_kind
    if making_namespace:
        rt.namespaces_ready.discard(meta_name(desired))
    try:
        await create_in_namespace(shared, rt, kind, desired, p_ns=p_ns, tenant_ns=meta.get("namespace", ""))
    except AlreadyExists:
        rt.written.pop(ref, None)
        if p_ref is not None:
            release_quota(shared, rt, p_ref)
        await adopt_or_clear(shared, kind, desired, rules=ctx.metadata)
        return
    except (Invalid, RetryLater) as exc:
        rt.written.pop(ref, None)
        if p_ref is not None:
            release_quota(shared, rt, p_ref)
        # Refused by the super apiserver (quota, admission, validation): tell the tenant, keep retrying.
        cause = exc if isinstance(exc, Invalid) else exc.__cause__
        if isinstance(cause, ApiError):
            await tell_super_refusal(shared, rt, kind, v_obj, cause)
            raise RetryLater(cause.message) from cause
        raise
    except BaseException:
        rt.written.pop(ref, None)
        if p_ref is not None:
            release_quota(shared, rt, p_ref)
        raise
    shared.count(kind.kind, DOWN, "create")
    if kind.after_create is not None:
        await kind.after_create(io, desired)
    if making_namespace:
        rt.namespaces_ready.add(meta_name(desired))


def admit_quota(
    shared: Shared, rt: TenantRuntime, kind: Kind, v_obj: Obj, p_ns: str | None
) -> tuple[str, str, str] | list[str] | None:
    """The tenant-wide quota gate of one create (pure but for the ledger's reservation).

    Returns why the object does not fit (a list: refuse, keep it waiting), or the ledger reference
    reserved for it (release it if the create fails), or None when no quota applies.  Reserving here,
    with no ``await`` between the check and the reservation, is what keeps concurrent workers from
    overshooting: the next create sees this one's usage before the super watch does.
    """
    limits = rt.info.quota
    if limits is None:
        return None
    usage = quota.object_usage(kind.resource.group, kind.resource.plural, v_obj, limits.limit_range)
    if not usage:
        return None
    meta = v_obj["metadata"]
    ref_ns, p_name = rt.super_ref(kind, meta.get("namespace", ""), meta["name"])
    p_ref = (kind.kind, ref_ns or "", p_name)
    reasons = shared.ledger(rt.info.key).admit(p_ref, usage, limits.hard, where=limits.source)
    if reasons:
        return [f"tenant-wide quota exceeded: {r}" for r in reasons]
    return p_ref


def admit_growth(
    shared: Shared, rt: TenantRuntime, kind: Kind, desired: Obj, p_slim: Obj
) -> tuple[str, str, str] | list[str] | None:
    """The tenant-wide quota gate of one update: what the super copy counts for once updated, against what
    it counts for now (counted the way the ledger counts super objects).  Like :func:`admit_quota`:
    why it does not fit, or the reference whose growth was reserved, or None (nothing grows)."""
    limits = rt.info.quota
    if limits is None:
        return None
    usage = quota.object_usage(kind.resource.group, kind.resource.plural, desired)
    if not usage:
        return None
    meta = p_slim["metadata"]
    p_ref = (kind.kind, meta.get("namespace") or "", meta["name"])
    reasons = shared.ledger(rt.info.key).admit_growth(p_ref, usage, limits.hard, where=limits.source)
    if reasons:
        return [f"tenant-wide quota exceeded: {r}" for r in reasons]
    return p_ref


def release_quota(shared: Shared, rt: TenantRuntime, p_ref: tuple[str, str, str]) -> None:
    """An admitted create did not happen: its reservation ends, and creates waiting for room try again."""
    shared.ledger(rt.info.key).release(p_ref)
    wake_quota_waiters(shared, rt)


def wake_quota_waiters(shared: Shared, rt: TenantRuntime) -> None:
    """Queue again the creates that wait for room in the tenant-wide quota (their back-off may be long)."""
    if rt.quota_waiting:
        waiting, rt.quota_waiting = rt.quota_waiting, set()
        for key in waiting:
            shared.queue.add(key)


def meta_name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


async def namespace_ready(shared: Shared, rt: TenantRuntime, p_ns: str) -> None:
    """The super namespace ``p_ns`` holds the tenant's policy objects before anything else is made in it.

    Why: the namespace's own worker makes it and then, in the namespace kind's ``after_create``, its
    LimitRange, ResourceQuota and NetworkPolicy.  Another worker's pod created in between would never get
    the LimitRange's default requests, would escape the quota backstop and run outside the NetworkPolicy
    until it arrives.  So the first create in a super namespace this syncer has not seen made complete
    runs that hook itself (each object is created unless it exists: a repeat costs one AlreadyExists per
    policy object, once per namespace and syncer).  Workers whose first creates in one namespace come at
    once (a backlog after a restart) take turns: the first runs the hook, the others find it done; a hook
    that failed is run again by the next.  NotFound: the namespace itself is missing.
    """
    ns_kind = shared.namespace_kind
    if p_ns in rt.namespaces_ready or ns_kind is None or ns_kind.after_create is None:
        return
    turn = rt.namespaces_making.setdefault(p_ns, asyncio.Lock())
    async with turn:
        if p_ns in rt.namespaces_ready:
            return
        await ns_kind.after_create(TenantIO(shared, rt), {"metadata": {"name": p_ns}})
        rt.namespaces_ready.add(p_ns)
        if rt.namespaces_making.get(p_ns) is turn:
            del rt.namespaces_making[p_ns]  # later callers find it ready; the ones waiting hold the lock


async def create_in_namespace(
    shared: Shared, rt: TenantRuntime, kind: Kind, desired: Obj, *, p_ns: str | None, tenant_ns: str
) -> None:
    """Create a super object once its super namespace is ready (:func:`namespace_ready`); when that
    namespace is missing, make it first (not wait for its key)."""
    try:
        if p_ns is not None:
            await namespace_ready(shared, rt, p_ns)
        await shared.super_api.create(kind.resource, desired, decode=False)
    except NotFound:
        ns_kind = shared.namespace_kind
        if p_ns is None or ns_kind is None:
            raise
        v_ns = rt.informers[ns_kind.kind].get("", tenant_ns)
        if v_ns is None:
            raise RetryLater(f"tenant namespace {tenant_ns} is not known yet") from None
        if shared.p_slim(ns_kind, None, p_ns) is None:
            with contextlib.suppress(AlreadyExists):
                await create(shared, rt, ns_kind, v_ns, None)
        await namespace_ready(shared, rt, p_ns)  # made meanwhile by another worker: maybe not ready yet
        await shared.super_api.create(kind.resource, desired, decode=False)
    except Forbidden as exc:
        # Typically: the super namespace's default ServiceAccount is not made yet.
        raise RetryLater(exc.message) from exc


async def adopt_or_clear(shared: Shared, kind: Kind, desired: Obj, *, rules: MetadataRules) -> None:
    """Create found the name taken: update our copy, delete a stale one, leave others' alone."""
    meta = desired["metadata"]
    live = await shared.super_api.get_or_none(kind.resource, meta["name"], namespace=meta.get("namespace"))
    if live is None:
        raise RetryLater("object vanished after AlreadyExists")
    if cluster_key_of(live) != meta["labels"][naming.LABEL_CLUSTER_KEY]:
        log.warning("sync.name_taken", kind=kind.kind, namespace=meta.get("namespace"), name=meta["name"])
        return
    p_slim = kind.slim_super(live)
    live_uid = (live["metadata"].get("annotations") or {}).get(naming.ANN_OBJECT_UID)
    if live_uid != meta["annotations"][naming.ANN_OBJECT_UID]:
        await delete_super(shared, kind, p_slim)
        raise RetryLater("stale super copy removed")
    desired = with_super_owned(desired, p_slim, rules)
    if kind.fingerprint(desired) != p_slim["fp"]:
        await update(shared, kind, desired, p_slim)


async def update(shared: Shared, kind: Kind, desired: Obj, p_slim: Obj) -> None:
    """Replace or patch a super copy (as the kind says)."""
    upd = kind.update(desired, p_slim)
    meta = p_slim["metadata"]
    if upd.method == "replace":
        # Conflict → retry with a fresher cache
        await shared.super_api.replace(kind.resource, upd.body, decode=False)
    else:
        if not upd.body:
            return
        await shared.super_api.patch(kind.resource, meta["name"], upd.body, namespace=meta.get("namespace"),
                                     patch_type=upd.patch_type, decode=False)
    shared.count(kind.kind, DOWN, "update")


async def delete_super(shared: Shared, kind: Kind, p_slim: Obj, *, grace: int | None = None) -> None:
    """Delete a super copy (uid precondition: another incarnation is not ours to delete)."""
    meta = p_slim["metadata"]
    try:
        await shared.super_api.delete(kind.resource, meta["name"], namespace=meta.get("namespace"),
                                      uid=meta.get("uid"), grace_period_seconds=grace)
        shared.count(kind.kind, DOWN, "delete")
    except (NotFound, Conflict):
        pass  # gone already, or another incarnation (precondition failed): not ours to delete


async def delete_unlisted(shared: Shared, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
    """Delete the super copy of an extra kind the tenant no longer lists (only if made for this tenant)."""
    p_ns, p_name = rt.super_ref(kind, key.namespace, key.name)
    p_slim = shared.p_slim(kind, p_ns, p_name)
    if p_slim is None or p_slim["metadata"].get("deletionTimestamp") or cluster_key_of(p_slim) != rt.info.key:
        return
    rt.written.pop((kind.kind, key.namespace, key.name), None)
    await delete_super(shared, kind, p_slim)


async def refuse(shared: Shared, rt: TenantRuntime, kind: Kind, v_obj: Obj, reasons: list[str], *,
                 told: set[str] | None = None) -> None:
    """Tell the tenant (once per object) why its object is not synced: a Warning Event on it.

    ``told`` is the set of uids already told (default: the refused ones, which are never created).
    """
    uid = object_uid(v_obj)
    told = rt.refused if told is None else told
    if uid in told:
        return
    meta = v_obj["metadata"]
    log.info("sync.refused", tenant=rt.info.key, kind=kind.kind, key=f"{meta.get('namespace')}/{meta['name']}",
             reasons=reasons)
    body = event_mod.refusal(v_obj, kind=kind.resource.kind, reasons=reasons, now=clock.timestamp(),
                             api_version=kind.resource.api_version)
    await rt.api.create(resources.EVENTS, body, namespace=meta["namespace"])
    told.add(uid)
    shared.metrics.refused.labels(kind.kind).inc()


async def tell_super_refusal(shared: Shared, rt: TenantRuntime, kind: Kind, v_obj: Obj, exc: ApiError) -> None:
    """A Warning Event (one per object and reason, updated on each retry) with the super message."""
    body = event_mod.super_refusal(v_obj, kind=kind.resource.kind, api_version=kind.resource.api_version,
                                   status=exc.status, message=exc.message, now=clock.timestamp())
    if body is None:
        return
    ns = body["metadata"]["namespace"]
    try:
        await rt.api.create(resources.EVENTS, body, namespace=ns)
        shared.metrics.refused.labels(kind.kind).inc()
    except AlreadyExists:
        with contextlib.suppress(NotFound):
            await rt.api.patch(resources.EVENTS, body["metadata"]["name"],
                               {"message": body["message"], "lastTimestamp": body["lastTimestamp"]},
                               namespace=ns)
