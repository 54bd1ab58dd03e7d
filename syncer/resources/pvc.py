"""PersistentVolumeClaims: down with the storage-class policy, status and the bound volume up.

Why: a tenant pod's claim must exist in its super namespace for the super
pod to mount it, and only storage classes the tenant's policy allows may be
used (:func:`vcluster.policy.check_pvc`).  Binding happens in the super
cluster; the tenant must see it the way Kubernetes shows it: the claim's
``spec.volumeName`` and ``status`` (phase, capacity, access modes) and a
PersistentVolume of that name.  The tenant's own PV controller runs too, so
the tenant PV carries a ``claimRef`` to the claim (the controller then
agrees it is bound instead of marking the claim Lost) and a placeholder CSI
source (the super volume's real source is the super cluster's business);
its reclaim policy is ``Retain`` so the tenant controller never tries to
delete a volume it cannot reach; the syncer deletes that PV itself when the
claim is gone (:func:`tenant_leftovers`).  Annotations the PV controllers write
(``pv.kubernetes.io/...``, ``volume.kubernetes.io/...``) stay on their side.
"""

from __future__ import annotations

import copy

from syncer.resources.base import (
    Kind,
    Leftover,
    Obj,
    TranslateContext,
    UpAction,
    meta_synced,
    metadata_patch,
    super_metadata,
)
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import check_pvc

#: Annotation prefixes owned by the PV controllers of each cluster.
_CONTROLLER_PREFIXES = ("pv.kubernetes.io/", "volume.kubernetes.io/", "volume.beta.kubernetes.io/")
#: CSI driver name of the placeholder source of tenant PVs (never called: no node runs it).
PLACEHOLDER_DRIVER = naming.GROUP


def _own_annotations(annotations: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not k.startswith(_CONTROLLER_PREFIXES)}


def check(v_obj: Obj, ctx: TranslateContext) -> list[str]:
    return check_pvc(v_obj.get("spec") or {}, ctx.policy)


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    meta = super_metadata(v_obj, ctx, super_namespace=ns)
    meta["annotations"] = _own_annotations(meta["annotations"])
    spec = copy.deepcopy(v_obj.get("spec") or {})
    spec.pop("volumeName", None)  # tenant PV names mean nothing in the super cluster
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def synced(obj: Obj) -> Obj:
    out = meta_synced(obj)
    out["annotations"] = _own_annotations(out["annotations"])
    out["requests"] = ((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return out


def patch_update(desired: Obj, p_slim: Obj) -> Obj:
    """Claims are immutable but for metadata and a storage request that grows."""
    have = copy.deepcopy(p_slim)
    have.setdefault("metadata", {})["annotations"] = _own_annotations(
        (p_slim.get("metadata") or {}).get("annotations") or {})
    patch: Obj = {}
    meta = metadata_patch(desired, have)
    if meta:
        patch["metadata"] = meta
    requests = ((desired.get("spec") or {}).get("resources") or {}).get("requests")
    if requests:
        patch["spec"] = {"resources": {"requests": requests}}
    return patch


def super_extras(p_obj: Obj) -> Obj:
    return {"volumeName": (p_obj.get("spec") or {}).get("volumeName"), "status": p_obj.get("status") or {},
            "storageClassName": (p_obj.get("spec") or {}).get("storageClassName"),
            "volumeMode": (p_obj.get("spec") or {}).get("volumeMode")}


def tenant_volume(v_obj: Obj, p_slim: Obj) -> Obj:
    """The PersistentVolume the tenant sees for its bound claim, named after the super PV."""
    meta = v_obj["metadata"]
    status = p_slim.get("status") or {}
    spec: Obj = {
        "capacity": status.get("capacity") or {},
        "accessModes": status.get("accessModes") or (v_obj.get("spec") or {}).get("accessModes") or [],
        "persistentVolumeReclaimPolicy": "Retain",
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                     "name": meta["name"], "uid": meta.get("uid")},
        "csi": {"driver": PLACEHOLDER_DRIVER, "volumeHandle": str(p_slim.get("volumeName"))},
    }
    if p_slim.get("storageClassName"):
        spec["storageClassName"] = p_slim["storageClassName"]
    if p_slim.get("volumeMode"):
        spec["volumeMode"] = p_slim["volumeMode"]
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": p_slim["volumeName"], "labels": {naming.LABEL_MIRRORED_FROM_SUPER: "true"}},
            "spec": spec}


def upward(v_obj: Obj, p_slim: Obj) -> list[UpAction]:
    actions: list[UpAction] = []
    volume = p_slim.get("volumeName")
    v_spec = v_obj.get("spec") or {}
    if volume and not v_spec.get("volumeName"):
        actions.append(UpAction("ensure", tenant_volume(v_obj, p_slim), resources.PVS))
        actions.append(UpAction("patch", {"spec": {"volumeName": volume}}))
    p_status = p_slim.get("status") or {}
    v_status = v_obj.get("status") or {}
    want = {k: p_status[k] for k in ("phase", "capacity", "accessModes") if k in p_status}
    if volume and v_spec.get("volumeName") not in (None, volume):
        return actions  # bound in the tenant to something else: leave its status alone
    if want and any(v_status.get(k) != v for k, v in want.items()):
        actions.append(UpAction("status", {"status": want}))
    return actions


def tenant_leftovers(p_slim: Obj) -> list[Leftover]:
    """The tenant PV made for a bound claim: deleted with the claim, as a dynamically provisioned
    volume is (its ``Retain`` policy only keeps the tenant's PV controller from trying)."""
    volume = p_slim.get("volumeName")
    if not volume:
        return []
    claim_uid = ((p_slim.get("metadata") or {}).get("annotations") or {}).get(naming.ANN_OBJECT_UID)

    def is_ours(v_pv: Obj) -> bool:
        labels = (v_pv.get("metadata") or {}).get("labels") or {}
        spec = v_pv.get("spec") or {}
        return (labels.get(naming.LABEL_MIRRORED_FROM_SUPER) == "true"
                and (spec.get("csi") or {}).get("driver") == PLACEHOLDER_DRIVER
                and bool(claim_uid) and (spec.get("claimRef") or {}).get("uid") == claim_uid)

    return [Leftover(resources.PVS, str(volume), is_ours)]


PVC = Kind(kind="PersistentVolumeClaim", resource=resources.PVCS, to_super=to_super, synced=synced,
           patch_update=patch_update, super_extras=super_extras, upward=upward, check=check,
           tenant_leftovers=tenant_leftovers)
