"""Super Node → virtual Node, its status, and its Lease: pure functions.

Why: what a tenant sees of a super node is a policy decision (which labels,
which addresses, which taint) that must be testable without an apiserver and
must never leak the super node's real address.  The manager does the I/O and
calls these functions; they only build dicts.

Choices (see docs/architecture.md, "Virtual nodes"):

* The address and kubelet port are the kubelet proxy's, never the super node's.
  Only the proxy's address is published (``InternalIP``, or ``Hostname`` and
  ``InternalDNS`` for a name): kube-apiserver tries ``Hostname`` first, and
  the super node's host name would lead it past the proxy.
* Virtual nodes carry the ``NoSchedule`` taint :data:`naming.TAINT_VIRTUAL_NODE`
  instead of ``spec.unschedulable``: the syncer binds tenant pods itself, a
  tenant scheduler (if any) must not, and DaemonSet controllers tolerate
  ``unschedulable`` but not a foreign taint, so a tenant DaemonSet does not fan
  out one pod per virtual node (which would keep every virtual node alive).
  The node still reads ``Ready`` in ``kubectl get nodes`` (not
  ``SchedulingDisabled``, which would look like a cordon).
* Conditions follow the super node; their ``lastHeartbeatTime`` is ours (the
  time we posted).  A lost super node reads ``Unknown`` everywhere.
* Tenants run without the node-lifecycle controller (a syncer outage must not
  taint and evict), so nobody else removes the ``node.kubernetes.io/not-ready``
  taint kube-apiserver's ``TaintNodesByCondition`` admission puts on every new
  Node: while the super node is Ready, :func:`metadata_patch` drops the
  ``not-ready``/``unreachable`` taints, as that controller would.  It never adds
  them: node loss is handled in the super cluster.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from typing import Any

from vcluster import naming

#: Super-node labels a tenant may see (everything else, like custom pool labels, stays private).
COPIED_LABELS = (
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
)
#: ``status.nodeInfo`` fields a tenant may see.
COPIED_NODE_INFO = (
    "architecture",
    "operatingSystem",
    "kubeletVersion",
    "kubeProxyVersion",
    "containerRuntimeVersion",
    "kernelVersion",
    "osImage",
)
READY = "Ready"
#: Reason on conditions of a virtual node whose super node is gone.
REASON_SUPER_NODE_LOST = "SuperNodeLost"


def _ts(now: _dt.datetime) -> str:
    return now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_ts(now: _dt.datetime) -> str:
    """A Kubernetes ``MicroTime`` (Lease renewTime)."""
    return now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_virtual(v_node: dict[str, Any]) -> bool:
    """Whether a tenant Node is one of ours."""
    return ((v_node.get("metadata") or {}).get("labels") or {}).get(naming.LABEL_VIRTUAL_NODE) == "true"


def proxy_addresses(proxy_address: str) -> list[dict[str, str]]:
    """The node addresses that lead kube-apiserver to the kubelet proxy and nowhere else."""
    try:
        ipaddress.ip_address(proxy_address)
    except ValueError:
        # A name: Hostname is what kube-apiserver tries first (and the operator's
        # --kubelet-preferred-address-types=InternalIP,Hostname includes it).
        return [{"type": "Hostname", "address": proxy_address}, {"type": "InternalDNS", "address": proxy_address}]
    return [{"type": "InternalIP", "address": proxy_address}]


def virtual_labels(node_name: str, p_node: dict[str, Any] | None) -> dict[str, str]:
    super_labels = ((p_node or {}).get("metadata") or {}).get("labels") or {}
    labels = {k: str(super_labels[k]) for k in COPIED_LABELS if k in super_labels}
    labels.setdefault("kubernetes.io/os", "linux")
    labels.setdefault("kubernetes.io/arch", "amd64")
    labels["kubernetes.io/hostname"] = node_name
    labels[naming.LABEL_VIRTUAL_NODE] = "true"
    return labels


def virtual_taints() -> list[dict[str, str]]:
    return [{"key": naming.TAINT_VIRTUAL_NODE, "value": "true", "effect": "NoSchedule"}]


def virtual_conditions(p_node: dict[str, Any] | None, *, now: _dt.datetime) -> list[dict[str, Any]]:
    """The virtual node's conditions: the super node's, heartbeat now; all Unknown if it is gone."""
    stamp = _ts(now)
    super_conditions = ((p_node or {}).get("status") or {}).get("conditions") or []
    if p_node is None or not super_conditions:
        message = "the super-cluster node is gone" if p_node is None else "the super-cluster node reports no status"
        return [
            {
                "type": READY, "status": "Unknown", "reason": REASON_SUPER_NODE_LOST, "message": message,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
            }
        ]
    out = []
    for cond in super_conditions:
        entry = {k: cond[k] for k in ("type", "status", "reason", "message", "lastTransitionTime") if k in cond}
        entry["lastHeartbeatTime"] = stamp
        out.append(entry)
    return out


def virtual_status(
    p_node: dict[str, Any] | None, *, proxy_address: str, proxy_port: int, now: _dt.datetime,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``status`` of a virtual node.

    Capacity and node info follow the super node; when it is gone, they stay
    what they were (``previous``) and only the conditions change.
    """
    super_status = (p_node or {}).get("status") or {}
    previous = previous or {}
    conditions = virtual_conditions(p_node, now=now)
    if p_node is None and previous.get("conditions"):
        # Keep the other condition types but turn them Unknown as well.
        seen = {c["type"] for c in conditions}
        for cond in previous["conditions"]:
            if cond.get("type") not in seen:
                conditions.append({
                    "type": cond.get("type"), "status": "Unknown", "reason": REASON_SUPER_NODE_LOST,
                    "message": "the super-cluster node is gone", "lastHeartbeatTime": _ts(now),
                    "lastTransitionTime": _ts(now),
                })
    info_source = super_status.get("nodeInfo") or previous.get("nodeInfo") or {}
    return {
        "capacity": dict(super_status.get("capacity") or previous.get("capacity") or {}),
        "allocatable": dict(super_status.get("allocatable") or previous.get("allocatable") or {}),
        "conditions": conditions,
        "addresses": proxy_addresses(proxy_address),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": proxy_port}},
        "nodeInfo": {k: str(info_source.get(k, "")) for k in COPIED_NODE_INFO},
    }


def build_virtual_node(
    node_name: str, p_node: dict[str, Any] | None, *, proxy_address: str, proxy_port: int, now: _dt.datetime,
) -> dict[str, Any]:
    """A complete tenant Node for the super node ``node_name`` (``p_node`` may be ``None``)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node_name, "labels": virtual_labels(node_name, p_node)},
        "spec": {"taints": virtual_taints()},
        "status": virtual_status(p_node, proxy_address=proxy_address, proxy_port=proxy_port, now=now),
    }


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    conditions = sorted(
        ((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []),
        key=lambda t: str(t[0]),
    )
    return {
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "conditions": conditions,
        "addresses": status.get("addresses") or [],
        "daemonEndpoints": status.get("daemonEndpoints") or {},
        "nodeInfo": {k: v for k, v in (status.get("nodeInfo") or {}).items() if k in COPIED_NODE_INFO},
    }


def status_changed(v_status: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether the tenant node's status differs from ``desired`` beyond heartbeat times."""
    return _comparable(v_status) != _comparable(desired)


#: Taints the node-lifecycle controller keeps in step with the Ready condition (any effect).
LIFECYCLE_TAINT_KEYS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


def metadata_patch(v_node: dict[str, Any], node_name: str, p_node: dict[str, Any] | None) -> dict[str, Any] | None:
    """A merge patch that brings labels and our taint back, or ``None`` if nothing to do.

    While the super node is Ready it also drops the lifecycle taints (see the module docstring).
    """
    meta = v_node.get("metadata") or {}
    want_labels = virtual_labels(node_name, p_node)
    have_labels = meta.get("labels") or {}
    patch: dict[str, Any] = {}
    changed_labels = {k: v for k, v in want_labels.items() if have_labels.get(k) != v}
    if changed_labels:
        patch["metadata"] = {"labels": changed_labels}
    taints = (v_node.get("spec") or {}).get("taints") or []
    keep = taints
    if p_node is not None and is_ready(p_node):
        keep = [t for t in taints if t.get("key") not in LIFECYCLE_TAINT_KEYS]
    if not any(t.get("key") == naming.TAINT_VIRTUAL_NODE and t.get("effect") == "NoSchedule" for t in keep):
        keep = [*keep, *virtual_taints()]
    if keep != taints:
        patch["spec"] = {"taints": keep}
    return patch or None


def is_ready(v_node_or_p_node: dict[str, Any]) -> bool:
    for cond in (v_node_or_p_node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == READY:
            return bool(cond.get("status") == "True")
    return False


def build_lease(node_name: str, *, now: _dt.datetime, duration_seconds: int, node_uid: str | None) -> dict[str, Any]:
    """The node Lease a kubelet would keep in ``kube-node-lease`` (owned by the Node)."""
    meta: dict[str, Any] = {"name": node_name, "namespace": naming.NODE_LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}
        ]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": micro_ts(now),
        },
    }
