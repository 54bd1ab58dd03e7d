"""Endpoints of selector-less tenant Services, copied down.

Why: for a Service with a selector the super cluster computes endpoints from
the super pods itself; a selector-less Service's endpoints are written by the
tenant user (often pointing outside the cluster), so the syncer copies them.
Which Services are selector-less is decided from the cache of tenant
Services (:func:`sync_filter`; ``skip`` only drops the apiserver's own), and
the Service kind queues its Endpoints key with its own.

Hand-written addresses are the endpoint-hijack class of attack (a super
service IP, a node, a cloud metadata address behind a tenant Service name),
so :func:`check` allows only the tenant's own pods in that namespace (their
IPs read from the super pods, :func:`context`) and the admin's
``allowedEndpointCIDRs``, on create and on every update (``recheck``).
Tenant EndpointSlices are not synced at all: the super cluster mirrors the
synced Endpoints into its own slices.
"""

from __future__ import annotations

import dataclasses

from syncer.resources.base import CacheView, Kind, Obj, TranslateContext, meta_synced, super_metadata
from syncer.resources.base import super_namespace as cached_super_namespace
from syncer.resources.service import has_selector
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import check_endpoint_addresses


def skip(v_obj: Obj) -> bool:
    meta = v_obj["metadata"]
    return bool(meta.get("namespace") == "default" and meta.get("name") == "kubernetes")


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    out: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": super_metadata(v_obj, ctx, super_namespace=ns)}
    subsets = []
    for v_subset in v_obj.get("subsets") or []:
        subset = dict(v_subset)
        for field_name in ("addresses", "notReadyAddresses"):
            if field_name in subset:
                # targetRef and nodeName point at tenant objects; the super cluster has other uids/nodes.
                subset[field_name] = [
                    {k: v for k, v in a.items() if k not in ("targetRef", "nodeName")} for a in subset[field_name]
                ]
        subsets.append(subset)
    if subsets:
        out["subsets"] = subsets
    return out


def synced(obj: Obj) -> Obj:
    out = meta_synced(obj)
    out["subsets"] = obj.get("subsets") or []
    return out


def sync_filter(view: CacheView, v_obj: Obj) -> bool:
    """Only endpoints of selector-less Services: for the others the super cluster computes its own."""
    meta = v_obj["metadata"]
    v_svc = view.tenant_get("Service", meta.get("namespace") or "", meta["name"])
    return v_svc is None or not has_selector(v_svc)


def addresses(v_obj: Obj) -> list[tuple[str, str]]:
    """(where, ip) of every address the tenant wrote."""
    out = []
    for i, subset in enumerate(v_obj.get("subsets") or []):
        for field_name in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(subset.get(field_name) or []):
                out.append((f"subsets[{i}].{field_name}[{j}].ip", str(a.get("ip") or "")))
    return out


def check(v_obj: Obj, ctx: TranslateContext) -> list[str]:
    return check_endpoint_addresses(addresses(v_obj), ctx.policy, own_ips=ctx.own_pod_ips,
                                    reserved_ips=ctx.reserved_ips)


def _ips(status: Obj) -> set[str]:
    ips = {str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")}
    if status.get("podIP"):
        ips.add(str(status["podIP"]))
    return ips


def context(view: CacheView, v_obj: Obj | None, _creating: bool) -> TranslateContext:
    """The tenant context with the IPs of its super pods in the object's namespace (allowed) and the
    node (host) IPs of those pods and the super IPs of its Services there (never allowed).  A pod whose
    IP is its node's (host network) counts as a node."""
    base = view.ctx
    if v_obj is None:
        return base
    ns = v_obj["metadata"].get("namespace") or ""
    p_ns = cached_super_namespace(base.key, ns)
    own: set[str] = set()
    reserved: set[str] = set()
    for v_pod in view.tenant_in("Pod", ns):
        status = (view.super_get("Pod", p_ns, v_pod["metadata"]["name"]) or {}).get("status") or {}
        if status.get("hostIP"):
            reserved.add(str(status["hostIP"]))
        own |= _ips(status)
    for v_svc in view.tenant_in("Service", ns):
        ip = (view.super_get("Service", p_ns, v_svc["metadata"]["name"]) or {}).get("clusterIP")
        if ip and ip != "None":
            reserved.add(str(ip))
    return dataclasses.replace(base, own_pod_ips=frozenset(own - reserved), reserved_ips=frozenset(reserved))


ENDPOINTS = Kind(kind="Endpoints", resource=resources.ENDPOINTS, to_super=to_super, synced=synced, skip=skip,
                 sync_filter=sync_filter, check=check, recheck=True, context=context)
