"""The one interface every per-kind syncer implements, and the helpers they share.

Why: the engine's three-way branch (tenant only → create, super only →
delete, both → update) is the same for every kind; what differs is pure
translation.  A :class:`Kind` bundles those pure functions so each kind's
module holds only what is special about it and the engine never branches on
kind names.  Equality is a *fingerprint* of the synced part of an object,
computed the same way on the desired super object (from the tenant object)
and on the observed one, so drift made by hand in the super cluster is
seen too.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from vcluster import naming
from vcluster.kube import Resource
from vcluster.policy import PodPolicy

Obj = dict[str, Any]

#: Metadata prefixes that belong to us: a tenant cannot set them on its super copies.
OUR_PREFIX = f"{naming.GROUP}/"


def strip_tenant(v_obj: Obj) -> Obj:
    """Tenant objects are cached whole, minus managedFields."""
    meta = v_obj.get("metadata")
    if meta:
        meta.pop("managedFields", None)
    return v_obj


@dataclass(frozen=True, slots=True)
class TranslateContext:
    """What translation needs to know about a tenant (no I/O behind it)."""

    key: str
    tenant_name: str
    tenant_uid: str
    policy: PodPolicy = field(default_factory=PodPolicy)
    #: The tenant apiserver as pods must reach it (host and port).
    apiserver_host: str = ""
    apiserver_port: str = ""
    #: Super cluster IP of the tenant's DNS service, when it has one.
    dns_ip: str | None = None
    #: Tenant cluster domain for DNS search paths.
    cluster_domain: str = "cluster.local"
    #: Tenant Services of the pod's namespace as (name, super cluster IP, ports), for the
    #: ``FOO_SERVICE_HOST`` variables; filled by the engine for pod creation only.
    service_links: tuple[tuple[str, str, tuple[Obj, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Update:
    """How to bring a super object in line: a full ``replace`` or a merge ``patch``."""

    method: Literal["replace", "patch"]
    body: Obj


@dataclass(frozen=True, slots=True)
class UpAction:
    """One write to the tenant side: bind a pod, patch status, patch the object, or ensure another object.

    ``ensure`` creates ``body`` (an object of ``resource``) in the tenant cluster unless it exists.
    """

    op: Literal["bind", "status", "patch", "ensure"]
    body: Obj
    resource: Resource | None = None


@dataclass(frozen=True, slots=True)
class Kind:
    """The pure functions of one kind; the engine does the I/O."""

    kind: str
    resource: Resource
    #: Desired super object for a tenant object.
    to_super: Callable[[Obj, TranslateContext], Obj]
    #: The part of a super-shaped object that the syncer keeps equal.
    synced: Callable[[Obj], Obj]
    #: Tenant objects that are not synced (system objects the super cluster has its own of).
    skip: Callable[[Obj], bool] = lambda _v: False
    #: How the tenant cache stores objects.
    slim_tenant: Callable[[Obj], Obj] = strip_tenant
    #: Extra fields the super cache keeps for upward sync (beyond metadata and fingerprint).
    super_extras: Callable[[Obj], Obj] = lambda _p: {}
    #: Update by merge patch (kinds whose spec is mostly immutable) instead of replace.
    patch_update: Callable[[Obj, Obj], Obj] | None = None
    #: Upward actions from (tenant object, slim super object).
    upward: Callable[[Obj, Obj], list[UpAction]] | None = None
    #: Why a tenant object must not go down at all (policy, reserved names); empty: fine.  The engine
    #: tells the tenant with a Warning Event on the object and does not create it.
    check: Callable[[Obj, TranslateContext], list[str]] | None = None

    @property
    def namespaced(self) -> bool:
        return self.resource.namespaced

    def fingerprint(self, obj: Obj) -> str:
        return fingerprint(self.synced(obj))

    def slim_super(self, p_obj: Obj) -> Obj:
        """What the super cache keeps: identity, our metadata, the fingerprint, kind extras."""
        meta = p_obj.get("metadata") or {}
        slim_meta: Obj = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "deletionTimestamp")
            if k in meta
        }
        out: Obj = {"metadata": slim_meta, "fp": self.fingerprint(p_obj)}
        out.update(self.super_extras(p_obj))
        return out

    def update(self, desired: Obj, p_slim: Obj) -> Update:
        if self.patch_update is not None:
            return Update("patch", self.patch_update(desired, p_slim))
        body = copy.copy(desired)
        body["metadata"] = {**desired["metadata"], "resourceVersion": p_slim["metadata"].get("resourceVersion")}
        return Update("replace", body)


def fingerprint(data: Any) -> str:
    return hashlib.blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


#: :func:`vcluster.naming.super_namespace` memoised: it validates and hashes on every call, and the hot
#: path asks for the same few namespaces for every object.
super_namespace = functools.lru_cache(maxsize=4096)(naming.super_namespace)


def tenant_metadata(meta: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The tenant's labels and annotations without keys in our prefix (those are ours to set)."""
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(OUR_PREFIX)}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(OUR_PREFIX)}
    return labels, annotations


def super_metadata(v_obj: Obj, ctx: TranslateContext, *, super_namespace: str | None) -> Obj:
    """Metadata of the super copy of a tenant object: name kept, namespace mapped, ownership stamped."""
    meta = v_obj.get("metadata") or {}
    labels, annotations = tenant_metadata(meta)
    labels.update(naming.owner_labels(ctx.key, ctx.tenant_name))
    annotations.update(
        {
            naming.ANN_CLUSTER_KEY: ctx.key,
            naming.ANN_TENANT_NAME: ctx.tenant_name,
            naming.ANN_TENANT_UID: ctx.tenant_uid,
            naming.ANN_OBJECT_NAME: meta.get("name", ""),
            naming.ANN_OBJECT_UID: meta.get("uid", ""),
        }
    )
    out: Obj = {"name": meta.get("name"), "labels": labels, "annotations": annotations}
    if super_namespace is not None:
        out["namespace"] = super_namespace
        annotations[naming.ANN_TENANT_NAMESPACE] = meta.get("namespace", "")
    return out


def meta_synced(obj: Obj, *, ignore_labels: frozenset[str] = frozenset()) -> Obj:
    meta = obj.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in ignore_labels}
    return {"labels": labels, "annotations": meta.get("annotations") or {}}


def metadata_patch(desired: Obj, p_slim: Obj) -> Obj:
    """Merge patch of labels/annotations: new values set, vanished keys nulled."""
    patch: Obj = {}
    for field_name in ("labels", "annotations"):
        want = desired["metadata"].get(field_name) or {}
        have = (p_slim.get("metadata") or {}).get(field_name) or {}
        diff: Obj = {k: v for k, v in want.items() if have.get(k) != v}
        diff.update({k: None for k in have if k not in want})
        if diff:
            patch[field_name] = diff
    return patch


def tenant_ref(p_obj: Obj) -> tuple[str, str, str] | None:
    """(tenant namespace, tenant name, tenant uid) a super object stands for, from its annotations."""
    ann = (p_obj.get("metadata") or {}).get("annotations") or {}
    name = ann.get(naming.ANN_OBJECT_NAME)
    if not name:
        return None
    return ann.get(naming.ANN_TENANT_NAMESPACE, ""), name, ann.get(naming.ANN_OBJECT_UID, "")


def object_uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")
