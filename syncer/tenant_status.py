"""The syncer's word on each Tenant: the ``Synced`` condition and ``status.sync``.

Why: the operator's ``Ready`` says whether a tenant's control plane serves;
it cannot say whether the tenant's objects reach the super cluster.  Only
the syncer knows that: whether it reaches the tenant apiserver, when it
last compared everything (the initial list, then each patrol), and how many
objects wait (queued or failing).  A tenant that cannot be served at all --
its kubeconfig Secret deleted or unreadable, or not Ready -- says why here
too, so broken input is told on the Tenant and not only in a log line.

The status is shared with the operator: ``status.conditions`` is one list
(``x-kubernetes-list-type: map``), and a JSON merge patch replaces a list
whole.  The syncer therefore reads the Tenant, replaces only its own entry
(:func:`tenant_crd.models.merge_conditions`) and writes over the
resourceVersion it read (409 Conflict: read again); the operator does the
same with its own conditions.  ``status.sync`` is the syncer's alone.  A
write happens only when something changed; an Event marks each change of
the condition's status or reason (``Warning`` when it turns False).

:func:`synced_condition` and :func:`status_patch` are pure; the writer does
the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from syncer.resources import event as event_mod
from tenant_crd.models import SYNCED_CONDITION, TenantStatus, merge_conditions
from vcluster import clock
from vcluster.kube import ApiClient, ApiError, Conflict, NotFound, resources

log = structlog.get_logger(__name__)

#: Reasons of ``Synced``.
SYNCED = "Synced"
SYNCING = "Syncing"
TENANT_UNREACHABLE = "TenantUnreachable"
KUBECONFIG_UNREADABLE = "KubeconfigUnreadable"
NOT_SERVED = "NotServed"
#: How often a status write is tried after a 409 Conflict.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SyncState:
    """What the syncer knows of one tenant right now."""

    #: Every informer of the tenant reaches its apiserver.
    reachable: bool = True
    #: The initial list of every kind is done (objects are being reconciled).
    listed: bool = False
    #: Keys queued or failing for this tenant.
    pending: int = 0
    #: When the syncer last compared all of the tenant's objects (initial list or patrol).
    last_full_sync: str | None = None
    #: Why the tenant cannot be served at all: (reason, message); overrides the rest.
    problem: tuple[str, str] | None = None


def synced_condition(state: SyncState) -> tuple[str, str, str]:
    """(status, reason, message) of ``Synced`` for ``state`` (pure)."""
    if state.problem is not None:
        return "False", state.problem[0], state.problem[1]
    if not state.reachable:
        return "False", TENANT_UNREACHABLE, "the syncer cannot reach the tenant apiserver (retrying with back-off)"
    if not state.listed:
        return "False", SYNCING, "listing the tenant's objects"
    return "True", SYNCED, f"{state.pending} objects pending"


def sync_fields(state: SyncState) -> dict[str, Any]:
    """``status.sync`` for ``state`` (pure)."""
    out: dict[str, Any] = {"reachable": state.problem is None and state.reachable, "pending": state.pending}
    if state.last_full_sync is not None:
        out["lastFullSync"] = state.last_full_sync
    return out


def status_patch(tenant: Mapping[str, Any], state: SyncState, *, now: str) -> tuple[dict[str, Any] | None, bool]:
    """The merge patch that writes ``state`` over ``tenant`` as read (``None``: nothing changed), and
    whether the condition's status or reason changed (worth an Event) (pure)."""
    meta = tenant.get("metadata") or {}
    raw_status = tenant.get("status") or {}
    old = TenantStatus.from_dict(raw_status).condition(SYNCED_CONDITION)
    status, reason, message = synced_condition(state)
    fields = sync_fields(state)
    same_condition = old is not None and (old.status, old.reason, old.message) == (status, reason, message)
    if same_condition and raw_status.get("sync") == fields:
        return None, False
    transition = old.last_transition_time if old is not None and old.status == status and \
        old.last_transition_time else now
    condition = {"type": SYNCED_CONDITION, "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": transition}
    if isinstance(meta.get("generation"), int):
        condition["observedGeneration"] = meta["generation"]
    conditions = merge_conditions(raw_status.get("conditions") or [], [condition], owned={SYNCED_CONDITION})
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
             "status": {"conditions": conditions, "sync": fields}}
    changed = old is None or (old.status, old.reason) != (status, reason)
    return patch, changed and not (old is None and status == "True")


class TenantStatusWriter:
    """Writes ``Synced`` and ``status.sync`` on Tenant objects (only when they change)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def report(self, name: str, state: SyncState) -> bool:
        """Write ``state`` on Tenant ``name``; whether anything was written.  Never raises for the
        apiserver's answers (a gone Tenant, a refusal): the next round tries again."""
        try:
            for attempt in range(ATTEMPTS):
                tenant = await self.api.get_or_none(resources.TENANTS, name)
                if tenant is None:
                    return False
                patch, changed = status_patch(tenant, state, now=clock.timestamp())
                if patch is None:
                    return False
                try:
                    await self.api.patch(resources.TENANTS, name, patch, subresource="status", decode=False)
                except Conflict:
                    if attempt == ATTEMPTS - 1:
                        raise
                    continue
                if changed:
                    await self._event(tenant, state)
                return True
        except NotFound:
            return False
        except (ApiError, OSError) as exc:
            log.warning("sync.status_write_failed", tenant=name, error=str(exc))
        return False

    async def _event(self, tenant: Mapping[str, Any], state: SyncState) -> None:
        meta = tenant.get("metadata") or {}
        status, reason, message = synced_condition(state)
        say = log.info if status == "True" else log.warning
        say("sync.tenant_synced_condition", tenant=meta.get("name"), status=status, reason=reason, message=message)
        body = event_mod.tenant_event(tenant_name=str(meta.get("name")), tenant_uid=str(meta.get("uid")),
                                      type_="Normal" if status == "True" else "Warning", reason=reason,
                                      message=message, now=clock.timestamp())
        try:
            await self.api.create(resources.EVENTS, body, namespace=event_mod.TENANT_EVENT_NAMESPACE, decode=False)
        except (ApiError, OSError) as exc:
            log.warning("sync.tenant_event_failed", tenant=meta.get("name"), reason=reason, error=str(exc))
