"""Endpoints of selector-less tenant Services, copied down.

Why: for a Service with a selector the super cluster computes endpoints from
the super pods itself; a selector-less Service's endpoints are written by the
tenant user (often pointing outside the cluster), so the syncer copies them.
Which Services are selector-less is decided from the cache of tenant
Services (:func:`sync_filter`; ``skip`` only drops the apiserver's own), and
the Service kind queues its Endpoints key with its own.
"""

from __future__ import annotations

from syncer.resources.base import CacheView, Kind, Obj, TranslateContext, meta_synced, super_metadata
from syncer.resources.service import has_selector
from vcluster import naming
from vcluster.kube import resources


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


ENDPOINTS = Kind(kind="Endpoints", resource=resources.ENDPOINTS, to_super=to_super, synced=synced, skip=skip,
                 sync_filter=sync_filter)
