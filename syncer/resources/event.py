"""Events of synced objects, copied up into the tenant namespace.

Why: ``kubectl describe pod`` in the tenant must show what the super
scheduler and nodes said about the pod.  A super Event about one of our
objects becomes a tenant Event about the tenant object (its namespace, name
and uid translated back); events are not cached — they pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from syncer.resources.base import Kind, Obj
from vcluster import naming

#: Registry kinds whose super events are copied up (extra kinds: :func:`event_kind`).
UPWARD_KINDS = frozenset({"Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "Endpoints",
                          "PersistentVolumeClaim", "Ingress", "NetworkPolicy"})
#: Reasons of the Events that say why the super apiserver refused a tenant object.
QUOTA_EXCEEDED, SYNC_FAILED = "QuotaExceeded", "SyncFailed"
#: 403 messages that mean "not yet" rather than "no": the super namespace is still being set up or
#: torn down.  Those are retried silently.
_TRANSIENT_FORBIDDEN = ("error looking up service account", "because it is being terminated",
                        "not found in namespace",
                        # a namespace's ResourceQuota before the quota controller first counted it
                        "status unknown for quota")
_KEEP = ("reason", "message", "type", "count", "firstTimestamp", "lastTimestamp", "eventTime", "action",
         "reportingComponent", "reportingInstance", "series")


def event_kind(involved: Mapping[str, Any], extra: Iterable[Kind]) -> str | None:
    """The engine's kind key of a super Event's involved object, or None when its events stay down.

    Registry kinds by kind name (:data:`UPWARD_KINDS`); extra kinds (known at run time, per tenant) by
    the API group of ``apiVersion`` and the kind, whatever the version.
    """
    kind = involved.get("kind")
    if kind in UPWARD_KINDS:
        return str(kind)
    group = str(involved.get("apiVersion") or "").rpartition("/")[0]
    return next((k.kind for k in extra if k.resource.kind == kind and k.resource.group == group), None)


def to_tenant(p_event: Obj, *, tenant_namespace: str, v_uid: str) -> Obj:
    """The tenant Event for a super Event about a synced object."""
    involved = dict(p_event.get("involvedObject") or {})
    involved["namespace"] = tenant_namespace
    involved["uid"] = v_uid
    involved.pop("resourceVersion", None)
    out: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": p_event["metadata"]["name"], "namespace": tenant_namespace},
        "involvedObject": involved,
        "source": p_event.get("source") or {"component": "vc-syncer"},
    }
    for key in _KEEP:
        if p_event.get(key) is not None:
            out[key] = p_event[key]
    if not out.get("reportingComponent"):
        out["reportingComponent"] = ""
    return out


def refusal(v_obj: Obj, *, kind: str, reasons: list[str], now: str, api_version: str = "v1") -> Obj:
    """A Warning Event telling the tenant why its object was not created in the super cluster."""
    meta = v_obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "reason": "PolicyViolation",
        "message": "refused by the tenant's isolation policy: " + "; ".join(reasons),
        "type": "Warning",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "vc-syncer"},
    }


def refusal_reason(status: int, message: str) -> str | None:
    """The Event reason for a super apiserver's refusal of a create, or None if it is transient.

    403 from a ResourceQuota (exceeded, or limits required and missing) is ``QuotaExceeded``; any
    other 403 (Pod Security admission, ...) and every 422 are ``SyncFailed``.  Both keep being
    retried with back-off by the engine: quota may free up, the tenant may fix the object.
    """
    if status == 403:
        if any(fragment in message for fragment in _TRANSIENT_FORBIDDEN):
            return None
        return QUOTA_EXCEEDED if "quota" in message else SYNC_FAILED
    if status == 422:
        return SYNC_FAILED
    return None


def super_refusal(v_obj: Obj, *, kind: str, api_version: str, status: int, message: str, now: str) -> Obj | None:
    """The Warning Event on the tenant object for a refused create (None: transient, say nothing).

    The name is stable per (object uid, reason), so retries update one Event (message and time).
    """
    reason = refusal_reason(status, message)
    if reason is None:
        return None
    meta = v_obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": naming.refusal_event_name(meta["name"], str(meta.get("uid") or ""), reason),
                     "namespace": meta.get("namespace") or "default"},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "name": meta["name"],
                           "namespace": meta.get("namespace") or "", "uid": meta.get("uid")},
        "reason": reason,
        "message": f"the super cluster refused this {kind} (retrying): {message}",
        "type": "Warning",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "vc-syncer"},
        "reportingComponent": "vc-syncer",
    }


#: Events about a (cluster-scoped) Tenant live here, where ``kubectl describe tenant`` finds them.
TENANT_EVENT_NAMESPACE = "default"
#: Reasons of the Events on a Tenant about its ``spec.sync.extraKinds``.
EXTRA_KIND_SYNCED, EXTRA_KIND_REFUSED, EXTRA_KIND_UNAVAILABLE, EXTRA_KIND_REMOVED = (
    "ExtraKindSynced", "ExtraKindRefused", "ExtraKindUnavailable", "ExtraKindRemoved")


def tenant_event(*, tenant_name: str, tenant_uid: str, type_: str, reason: str, message: str, now: str) -> Obj:
    """An Event on the Tenant object in the super cluster (what the admin sees in ``kubectl describe tnt``)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{tenant_name}.", "namespace": TENANT_EVENT_NAMESPACE},
        "involvedObject": {"apiVersion": naming.API_VERSION, "kind": "Tenant", "name": tenant_name,
                           "uid": tenant_uid},
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "vc-syncer"},
        "reportingComponent": "vc-syncer",
    }
