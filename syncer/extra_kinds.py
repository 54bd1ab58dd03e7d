"""The lifecycle of extra kinds (Tenant ``spec.sync.extraKinds``): found, started, told, dropped.

Why: an extra kind is discovered at run time, per tenant, once both the
tenant and the super cluster serve it (CRDs come and go); its super informer
is shared by every tenant that lists it, and the super copies of a tenant
that stops listing it are deleted.  The admin is told on the Tenant with
Events (once per entry and message).  The translation of extra kinds is
pure and lives in :mod:`syncer.resources.extra`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from syncer.informer import Informer
from syncer.resources import event as event_mod
from syncer.resources import extra as extra_mod
from syncer.resources.base import Kind, Obj, cluster_key_of
from syncer.routing import enqueue_kind, enqueue_super, super_handler, tenant_handler
from syncer.runtime import TenantRuntime
from syncer.shared import MANAGED_SELECTOR, Shared
from vcluster import clock
from vcluster.kube import ApiClient, ApiError, Forbidden, NotFound, Resource, resources

log = structlog.get_logger(__name__)

#: Seconds between checks for an extra kind that one of the clusters does not serve yet.
EXTRA_KIND_RETRY = 30.0


async def run_for(shared: Shared, rt: TenantRuntime) -> None:
    """Start syncing each extra kind once both clusters serve it; tell the admin what cannot be."""
    await rt.synced.wait()
    pending = list(dict.fromkeys(rt.info.sync.extra_kinds))
    while pending:
        waiting = []
        for entry in pending:
            try:
                found = await resolve(shared, rt, entry)
            except (ApiError, OSError) as exc:
                found = (f"could not be looked up ({exc}); retrying", False)
            if isinstance(found, Kind):
                await start(shared, rt, found)
                await tell_tenant(shared, rt, entry, type_="Normal", reason=event_mod.EXTRA_KIND_SYNCED,
                                  message=f"spec.sync.extraKinds: {entry} ({found.resource.api_version} "
                                  f"{found.resource.kind}) is synced into the tenant's super namespaces")
                continue
            problem, permanent = found
            reason = event_mod.EXTRA_KIND_REFUSED if permanent else event_mod.EXTRA_KIND_UNAVAILABLE
            later = "it is not synced" if permanent else f"not synced yet, checked every {EXTRA_KIND_RETRY:g} s"
            await tell_tenant(shared, rt, entry, type_="Warning", reason=reason,
                              message=f"spec.sync.extraKinds: {entry} {problem}; {later}")
            if not permanent:
                waiting.append(entry)
        pending = waiting
        if pending:
            await asyncio.sleep(EXTRA_KIND_RETRY)


async def _get_path(api: ApiClient, path: str) -> Obj | None:
    """A discovery document, or None when the apiserver does not serve it."""
    try:
        doc: Obj = await api.request("GET", path)
    except NotFound:
        return None
    return doc


async def resolve(shared: Shared, rt: TenantRuntime, entry: str) -> Kind | tuple[str, bool]:
    """The Kind for an extra-kinds entry, or (why not, whether that is final)."""
    plural, group = extra_mod.parse(entry)
    why = extra_mod.never_synced(plural, group, synced=(k.resource for k in shared.kinds))
    if why is not None:
        return why, True
    found: Resource | str = ""
    version = ""
    for side, api in (("the tenant", rt.api), ("the super cluster", shared.super_api)):
        if not version:
            group_doc = await _get_path(api, f"/apis/{group}" if group else "/api")
            version = extra_mod.preferred_version(group_doc) or ""
            if not version:
                return f"is not served by {side} (no API group {group or 'core'!r})", False
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        found = extra_mod.find_resource(await _get_path(api, path), plural=plural, group=group, version=version)
        if isinstance(found, str):
            return f"{found} in {side}", "not served" not in found
    assert isinstance(found, Resource)
    try:  # the syncer's own permission in the super cluster (RBAC is the admin's to grant)
        await shared.super_api.list(found, label_selector=MANAGED_SELECTOR, limit=1)
    except Forbidden as exc:
        return f"may not be listed by the syncer in the super cluster (grant it access): {exc.message}", False
    kind = extra_mod.extra_kind(found)
    return shared.by_kind.get(kind.kind, kind)


def super_informer(shared: Shared, kind: Kind, name: str) -> Informer:
    """The super informer of one kind, shared by every tenant (managed objects only)."""
    return Informer(shared.super_api, kind.resource, handler=super_handler(shared, kind), transform=kind.slim_super,
                    label_selector=MANAGED_SELECTOR, watch_timeout=shared.settings.watch_timeout, name=name,
                    remote=shared.metrics.remote)


def tenant_informer(shared: Shared, rt: TenantRuntime, kind: Kind, name: str) -> Informer:
    """One tenant's informer of one kind."""
    return Informer(rt.api, kind.resource, handler=tenant_handler(shared, rt, kind), transform=kind.slim_tenant,
                    watch_timeout=shared.settings.watch_timeout, name=name, remote=shared.metrics.remote,
                    index=kind.tenant_node)


async def start(shared: Shared, rt: TenantRuntime, kind: Kind) -> None:
    """Informers for an extra kind (the super one shared by every tenant), then its keys."""
    first = kind.kind not in shared.super_informers
    if first:
        shared.by_kind[kind.kind] = kind
        shared.extra_kinds.add(kind.kind)
        p_inf = shared.super_informers[kind.kind] = super_informer(shared, kind, f"super/{kind.kind}")
        shared.tasks.append(asyncio.create_task(p_inf.run(), name=f"super-informer-{kind.kind}"))
    v_inf = tenant_informer(shared, rt, kind, f"{rt.info.key}/{kind.kind}")
    rt.informers[kind.kind] = v_inf
    rt.tasks.append(asyncio.create_task(v_inf.run(), name=f"informer-{rt.info.key}-{kind.kind}"))
    await asyncio.gather(v_inf.synced.wait(), shared.super_informers[kind.kind].synced.wait())
    rt.kinds = (*rt.kinds, kind)
    enqueue_kind(shared, rt, kind)
    log.info("sync.extra_kind_started", tenant=rt.info.key, kind=kind.kind, objects=len(v_inf))
    if first:  # e.g. after a syncer restart: copies of tenants that no longer list the kind
        for other in list(shared.tenants.values()):
            if other is not rt and other.synced.is_set():
                await drop_unlisted(shared, other, kind)


async def drop_unlisted(shared: Shared, rt: TenantRuntime, kind: Kind) -> None:
    """An extra kind the tenant does not list (any more): queue the deletion of the super copies the
    syncer made for this tenant (its cluster-key label; the super informer selects ``managed-by``)
    and tell the admin.  Kinds the tenant lists but has not started yet are left alone."""
    if kind.kind in rt.informers or extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
        return
    p_inf = shared.super_informers[kind.kind]
    await p_inf.synced.wait()
    copies = [p_slim for _ref, p_slim in p_inf.items() if cluster_key_of(p_slim) == rt.info.key]
    if not copies:
        return
    for p_slim in copies:
        enqueue_super(shared, kind, p_slim, only_tenant=rt.info.key)
    entry = extra_mod.entry_of(kind.resource)
    await tell_tenant(shared, rt, entry, type_="Normal", reason=event_mod.EXTRA_KIND_REMOVED,
                      message=f"spec.sync.extraKinds no longer lists {entry}: it is not synced any more; "
                      f"deleting the super copies the syncer made for this tenant ({len(copies)})")


async def drop_all_unlisted(shared: Shared, rt: TenantRuntime) -> None:
    """Every extra kind some tenant syncs, checked for this tenant (after it synced)."""
    for kind_key in sorted(shared.extra_kinds):
        await drop_unlisted(shared, rt, shared.by_kind[kind_key])


async def tell_tenant(shared: Shared, rt: TenantRuntime, entry: str, *, type_: str, reason: str,
                      message: str) -> None:
    """An Event on the Tenant (once per entry and message) and a log line; never fails the caller."""
    if rt.extra_told.get(entry) == message:
        return
    rt.extra_told[entry] = message
    say: Callable[..., object] = log.info if type_ == "Normal" else log.warning
    say("sync.extra_kind", tenant=rt.info.key, entry=entry, reason=reason, message=message)
    body = event_mod.tenant_event(tenant_name=rt.info.name, tenant_uid=rt.info.uid, type_=type_,
                                  reason=reason, message=message, now=clock.timestamp())
    try:
        await shared.super_api.create(resources.EVENTS, body, namespace=event_mod.TENANT_EVENT_NAMESPACE,
                                      decode=False)
    except (ApiError, OSError) as exc:
        log.warning("sync.tenant_event_failed", tenant=rt.info.key, reason=reason, error=str(exc))
