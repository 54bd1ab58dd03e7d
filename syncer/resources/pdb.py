"""PodDisruptionBudgets (policy/v1): copied down, so that super-cluster evictions respect them.

Why: a tenant's PDB protects its pods against voluntary disruption, but the
evictions that matter happen in the super cluster (an admin draining a node
evicts *super* pods), where the tenant's own disruption controller cannot
see them.  The super copy lives in the tenant's super namespace, whose pods
keep the tenant pods' labels, so the selector needs no translation.  Nothing
flows up: the tenant's disruption controller computes the tenant PDB's
status from the tenant pods (whose status the syncer copies up), and the
super one's Events would only repeat it.

Note for admins: a budget that allows no disruption (``maxUnavailable: 0``)
blocks a drain of the nodes those pods run on, in the super cluster as in
any cluster; the eviction API reports which budget refused.
"""

from __future__ import annotations

from syncer.resources.base import Kind, Obj, TranslateContext, meta_synced, super_metadata
from vcluster import naming
from vcluster.kube import Resource

PODDISRUPTIONBUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
#: The spec fields copied down (all of policy/v1's; a field added by a later API version is not).
SPEC_FIELDS = ("selector", "minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy")


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    v_spec = v_obj.get("spec") or {}
    return {"apiVersion": PODDISRUPTIONBUDGETS.api_version, "kind": PODDISRUPTIONBUDGETS.kind,
            "metadata": super_metadata(v_obj, ctx, super_namespace=ns),
            "spec": {f: v_spec[f] for f in SPEC_FIELDS if f in v_spec}}


def synced(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    out = meta_synced(obj)
    out["spec"] = {f: spec.get(f) for f in SPEC_FIELDS}
    return out


PDB = Kind(kind=PODDISRUPTIONBUDGETS.kind, resource=PODDISRUPTIONBUDGETS, to_super=to_super, synced=synced)
