"""Extra kinds (Tenant ``spec.sync.extraKinds``): namespaced resources copied down as they are.

Why: a tenant often needs a custom resource its super-cluster operator acts on
(a database claim, a certificate request); the admin lists it per Tenant and
the syncer copies the tenant's objects into the tenant's super namespaces like
ConfigMaps (metadata translated by the same rules, every payload field copied,
status left to the super side).  Which resources these are is known only at
run time, so a :class:`~syncer.resources.base.Kind` is *built* from the
resource by :func:`extra_kind` (no registry entry, no import side effect).
Kinds the syncer already handles, or that act on the cluster they live in
(workloads, nodes, events, leases, RBAC, quotas …), are never copied:
:func:`never_synced` says why, and the engine tells the admin with an Event on
the Tenant.  A kind the Tenant no longer lists (:func:`is_listed`) is not synced
for it any more and the super copies made for it are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from syncer.resources.base import Kind, Obj, TranslateContext, meta_synced, super_metadata, super_namespace
from vcluster import naming
from vcluster.kube import Resource

#: Top-level fields that are not the payload: identity, metadata (translated) and status (the super side's).
_NOT_PAYLOAD = frozenset({"apiVersion", "kind", "metadata", "status"})
#: API groups of Kubernetes itself whose kinds act where they live (besides every ``*.k8s.io`` group).
_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "autoscaling", "policy", "extensions"})
#: Built-in resources that are inert data and may be copied.
_ALLOWED_BUILTIN = frozenset({("podtemplates", "")})
#: Verbs the syncer uses on both sides.
_VERBS = frozenset({"list", "watch", "get", "create", "update", "patch", "delete"})


def parse(entry: str) -> tuple[str, str]:
    """``<plural>.<group>`` or a core ``<plural>`` → (plural, group)."""
    plural, _dot, group = entry.partition(".")
    return plural, group


def entry_of(resource: Resource) -> str:
    """How ``spec.sync.extraKinds`` spells ``resource``: ``<plural>.<group>`` (a core ``<plural>``)."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def key_of(resource: Resource) -> str:
    """The engine's name of an extra kind (queue keys, caches, metrics): ``<plural>.<group>/<version>``."""
    return f"{entry_of(resource)}/{resource.version}"


def is_listed(resource: Resource, entries: Iterable[str]) -> bool:
    """Whether some ``extraKinds`` entry names ``resource`` (any version: the entry has none).

    An extra kind a tenant does not list (any more) is not synced for it, and the super copies the
    syncer made of it for that tenant are deleted.
    """
    return any(parse(entry) == (resource.plural, resource.group) for entry in entries)


def never_synced(plural: str, group: str, *, synced: Iterable[Resource]) -> str | None:
    """Why the syncer must never copy this resource as an extra kind (None: it may)."""
    if any(r.plural == plural and r.group == group for r in synced):
        return "is synced by the syncer already"
    if group == naming.GROUP or group.endswith(f".{naming.GROUP}"):
        return "belongs to virtualcluster itself"
    if (plural, group) in _ALLOWED_BUILTIN:
        return None
    if group in _BUILTIN_GROUPS or group == "k8s.io" or group.endswith(".k8s.io"):
        return ("is a built-in Kubernetes resource that acts in the cluster it lives in "
                "(workloads, nodes, events, leases, RBAC, quotas…); only custom resources are copied")
    return None


def preferred_version(group_doc: Mapping[str, Any] | None) -> str | None:
    """The preferred version from an ``APIGroup`` (``/apis/<group>``) or ``APIVersions`` (``/api``)."""
    if not group_doc:
        return None
    preferred = (group_doc.get("preferredVersion") or {}).get("version")
    if preferred:
        return str(preferred)
    versions = group_doc.get("versions") or []
    if versions and isinstance(versions[0], str):
        return versions[0]
    return None


def find_resource(resource_list: Mapping[str, Any] | None, *, plural: str, group: str,
                  version: str) -> Resource | str:
    """The :class:`Resource` for ``plural`` in an ``APIResourceList``, or why it cannot be synced."""
    for entry in (resource_list or {}).get("resources") or []:
        if entry.get("name") != plural:
            continue
        if not entry.get("namespaced"):
            return "is cluster-scoped; only namespaced resources are copied into the tenant's super namespaces"
        missing = _VERBS - set(entry.get("verbs") or ())
        if missing:
            return f"does not allow {', '.join(sorted(missing))}"
        return Resource(group, version, plural, str(entry.get("kind")), namespaced=True)
    return f"is not served ({group + '/' if group else ''}{version} has no resource {plural!r})"


def extra_kind(resource: Resource) -> Kind:
    """A :class:`Kind` that copies objects of ``resource`` down as they are."""

    def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
        p_ns = super_namespace(ctx.key, v_obj["metadata"]["namespace"])
        out: Obj = {"apiVersion": resource.api_version, "kind": resource.kind,
                    "metadata": super_metadata(v_obj, ctx, super_namespace=p_ns)}
        out.update({k: v for k, v in v_obj.items() if k not in _NOT_PAYLOAD})
        return out

    def synced(obj: Obj) -> Obj:
        out = meta_synced(obj)
        out["payload"] = {k: v for k, v in obj.items() if k not in _NOT_PAYLOAD}
        return out

    def super_extras(p_obj: Obj) -> Obj:
        # A replace must carry the super side's status (kept as is when there is no status subresource).
        return {"status": p_obj["status"]} if "status" in p_obj else {}

    return Kind(kind=key_of(resource), resource=resource, to_super=to_super, synced=synced,
                super_extras=super_extras, keep_status=True)
