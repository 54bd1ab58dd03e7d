"""Ingresses: down as they are (same namespace, same service names), load-balancer status up.

Why: backends and TLS Secrets of an Ingress name objects of its own
namespace, which keep their names in the super namespace, so the spec needs
no translation; the super ingress controller serves it and writes the
addresses into the status, which the tenant must see.
"""

from __future__ import annotations

from syncer.resources.base import Kind, Obj, TranslateContext, UpAction, meta_synced, super_metadata
from vcluster import naming
from vcluster.kube import resources


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": super_metadata(v_obj, ctx, super_namespace=ns), "spec": v_obj.get("spec") or {}}


def synced(obj: Obj) -> Obj:
    out = meta_synced(obj)
    out["spec"] = obj.get("spec") or {}
    return out


def super_extras(p_obj: Obj) -> Obj:
    return {"status": p_obj.get("status") or {}}


def upward(v_obj: Obj, p_slim: Obj) -> list[UpAction]:
    want = (p_slim.get("status") or {}).get("loadBalancer") or {}
    have = (v_obj.get("status") or {}).get("loadBalancer") or {}
    if want == have:
        return []
    return [UpAction("status", {"status": {"loadBalancer": want or None}})]


INGRESS = Kind(kind="Ingress", resource=resources.INGRESSES, to_super=to_super, synced=synced,
               super_extras=super_extras, upward=upward)
