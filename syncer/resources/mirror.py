"""Public super StorageClasses and PriorityClasses, as read-only copies for every tenant.

Why: a tenant writes ``storageClassName`` and ``priorityClassName`` against
*its own* API; to pick a class the super cluster offers it must see the
class there.  Only classes the super admin labels
:data:`vcluster.naming.LABEL_PUBLIC` ``=true`` are shown, and copies are
labelled :data:`vcluster.naming.LABEL_MIRRORED_FROM_SUPER` so the syncer
only ever touches its own copies.  Whether a tenant may *use* a class is
still its isolation policy's business (``allowedStorageClasses``,
``allowedPriorityClasses``).  The copy never claims to be the default: a
tenant-side default would make the tenant apiserver name the class on every
claim or pod, which the policy then refuses.  Pure functions; the I/O is in
:mod:`syncer.mirror`.
"""

from __future__ import annotations

from syncer.resources.base import Obj, fingerprint
from vcluster import naming
from vcluster.kube import resources
from vcluster.kube.resources import Resource

#: Fields copied, per mirrored kind.
FIELDS: dict[str, tuple[str, ...]] = {
    "StorageClass": ("provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion",
                     "volumeBindingMode", "allowedTopologies"),
    "PriorityClass": ("value", "description", "preemptionPolicy"),
}
MIRRORED: tuple[Resource, ...] = (resources.STORAGECLASSES, resources.PRIORITYCLASSES)
PUBLIC_SELECTOR = f"{naming.LABEL_PUBLIC}={naming.PUBLIC_TRUE}"
MIRRORED_SELECTOR = f"{naming.LABEL_MIRRORED_FROM_SUPER}=true"
_DEFAULT_CLASS_ANNOTATIONS = frozenset({"storageclass.kubernetes.io/is-default-class",
                                        "storageclass.beta.kubernetes.io/is-default-class"})


def wanted(p_obj: Obj) -> bool:
    """Whether a super class is shown to tenants (``system-`` priority classes exist in every cluster)."""
    meta = p_obj.get("metadata") or {}
    return ((meta.get("labels") or {}).get(naming.LABEL_PUBLIC) == naming.PUBLIC_TRUE
            and not str(meta.get("name", "")).startswith("system-"))


def to_tenant(p_obj: Obj, resource: Resource) -> Obj:
    """The tenant's read-only copy of a public super class."""
    meta = p_obj.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(f"{naming.GROUP}/")}
    labels[naming.LABEL_MIRRORED_FROM_SUPER] = "true"
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in _DEFAULT_CLASS_ANNOTATIONS and not k.startswith("kubectl.kubernetes.io/")}
    out: Obj = {"apiVersion": resource.api_version, "kind": resource.kind,
                "metadata": {"name": meta["name"], "labels": labels, "annotations": annotations}}
    for f in FIELDS[resource.kind]:
        if f in p_obj:
            out[f] = p_obj[f]
    if resource.kind == "PriorityClass":
        out["globalDefault"] = False
    return out


def synced(obj: Obj, resource: Resource) -> str:
    """Fingerprint of what the copy keeps equal (labels, annotations, copied fields)."""
    meta = obj.get("metadata") or {}
    return fingerprint({"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                        **{f: obj.get(f) for f in FIELDS[resource.kind]}})


def plan(desired: list[Obj], existing: list[Obj], resource: Resource) -> tuple[list[Obj], list[Obj], list[str]]:
    """(to create, to replace, names to delete) to turn the tenant's copies into ``desired``.

    ``existing`` are the tenant's objects labelled as mirrored; replacements carry their resourceVersion.
    """
    have = {o["metadata"]["name"]: o for o in existing}
    want = {o["metadata"]["name"]: o for o in desired}
    create = [o for n, o in want.items() if n not in have]
    replace = []
    for n, o in want.items():
        if n in have and synced(o, resource) != synced(have[n], resource):
            body = {**o, "metadata": {**o["metadata"], "resourceVersion": have[n]["metadata"].get("resourceVersion")}}
            replace.append(body)
    delete = [n for n in have if n not in want]
    return create, replace, delete
