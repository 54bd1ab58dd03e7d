"""Upward writes: what the super cluster decided, written back to the tenant.

Why: tenants must see their pods bound and running, their services' super
cluster IPs, the PVs their claims are bound to, super-owned metadata under
transparent prefixes, and the Events about their objects.  The kinds compute
these writes as pure :class:`~syncer.resources.base.UpAction` lists; this
module performs them (bind, status, patch, ensure) and copies super Events
into the tenant namespace.
"""

from __future__ import annotations

import contextlib

from syncer.queue import UP, SyncKey
from syncer.resources import event as event_mod
from syncer.resources.base import Kind, UpAction, object_uid, transparent_patch
from syncer.routing import EVENT, extra_of
from syncer.runtime import TenantRuntime
from syncer.shared import Shared
from vcluster import naming
from vcluster.kube import AlreadyExists, Conflict, NotFound, resources


async def up(shared: Shared, rt: TenantRuntime, kind: Kind, key: SyncKey) -> None:
    """Bring one super object's news up to its tenant object (uid-guarded)."""
    if kind.upward is None and not rt.ctx.metadata.transparent:
        return
    v_obj = rt.informers[kind.kind].get(key.namespace, key.name)
    p_ns, p_name = rt.super_ref(kind, key.namespace, key.name)
    p_slim = shared.p_slim(kind, p_ns, p_name)
    if v_obj is None or p_slim is None:
        return
    if (p_slim["metadata"].get("annotations") or {}).get(naming.ANN_OBJECT_UID) != object_uid(v_obj):
        return
    actions = kind.upward(v_obj, p_slim) if kind.upward is not None else []
    meta_patch = transparent_patch(v_obj, p_slim, rt.ctx.metadata)
    if meta_patch is not None:  # super-owned metadata under transparent prefixes, copied up
        actions = [*actions, UpAction("patch", {"metadata": meta_patch})]
    ref = (kind.kind, key.namespace, key.name)
    if not any(action.op == "bind" for action in actions):
        rt.bound.pop(ref, None)  # the informer shows the object bound (or it needs no binding)
    for action in actions:
        if action.op == "bind":
            node = action.body["target"]["name"]
            if rt.bound.get(ref) == (object_uid(v_obj), node):
                continue  # we bound it; the tenant informer has not seen the binding yet
            await shared.nodes.ensure_node(rt.info.key, node)
            with contextlib.suppress(Conflict):  # bound meanwhile
                await rt.api.create(kind.resource, action.body, namespace=key.namespace, name=key.name,
                                    subresource="binding", decode=False)
            rt.bound[ref] = (object_uid(v_obj), node)
            shared.count(kind.kind, UP, "bind")
        elif action.op == "status":
            with contextlib.suppress(NotFound):
                await rt.api.patch(kind.resource, key.name, action.body, namespace=key.namespace,
                                   subresource="status", decode=False)
                shared.count(kind.kind, UP, "status")
        elif action.op == "ensure" and action.resource is not None:
            with contextlib.suppress(AlreadyExists):
                await rt.api.create(action.resource, action.body, decode=False)
                shared.count(action.resource.kind, UP, "create")
        else:
            with contextlib.suppress(NotFound):
                await rt.api.patch(kind.resource, key.name, action.body, namespace=key.namespace or None,
                                   decode=False)
                shared.count(kind.kind, UP, "patch")


async def event_up(shared: Shared, rt: TenantRuntime, key: SyncKey) -> None:
    """Copy a super Event (kept by :func:`syncer.routing.on_super_event`) into the tenant namespace."""
    p_event = rt.pending_events.pop((key.namespace, key.name), None)
    if p_event is None:
        return
    involved = p_event.get("involvedObject") or {}
    kind = shared.by_kind.get(event_mod.event_kind(involved, extra_of(shared, rt)) or "")
    v_inf = rt.informers.get(kind.kind) if kind is not None else None
    if v_inf is None:
        return
    v_obj = v_inf.get(key.namespace, str(involved.get("name")))
    if v_obj is None:
        return
    v_event = event_mod.to_tenant(p_event, tenant_namespace=key.namespace, v_uid=object_uid(v_obj))
    try:
        await rt.api.create(resources.EVENTS, v_event, namespace=key.namespace, decode=False)
        shared.count(EVENT, UP, "create")
    except AlreadyExists:
        patch = {k: v_event[k] for k in ("count", "lastTimestamp", "message", "series") if k in v_event}
        with contextlib.suppress(NotFound):
            await rt.api.patch(resources.EVENTS, key.name, patch, namespace=key.namespace, decode=False)
            shared.count(EVENT, UP, "patch")
