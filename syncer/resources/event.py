"""Events of synced objects, copied up into the tenant namespace.

Why: ``kubectl describe pod`` in the tenant must show what the super
scheduler and nodes said about the pod.  A super Event about one of our
objects becomes a tenant Event about the tenant object (its namespace, name
and uid translated back); events are not cached — they pass through.
"""

from __future__ import annotations

from syncer.resources.base import Obj

#: Kinds whose super events are copied up.
UPWARD_KINDS = frozenset({"Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "Endpoints"})
_KEEP = ("reason", "message", "type", "count", "firstTimestamp", "lastTimestamp", "eventTime", "action",
         "reportingComponent", "reportingInstance", "series")


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


def refusal(v_obj: Obj, *, kind: str, reasons: list[str], now: str) -> Obj:
    """A Warning Event telling the tenant why its object was not created in the super cluster."""
    meta = v_obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "reason": "PolicyViolation",
        "message": "refused by the tenant's isolation policy: " + "; ".join(reasons),
        "type": "Warning",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "vc-syncer"},
    }
