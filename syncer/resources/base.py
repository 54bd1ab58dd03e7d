"""The one interface every per-kind syncer implements, and the helpers they share.

Why: the engine's three-way branch (tenant only → create, super only →
delete, both → update) is the same for every kind; what differs is pure
translation plus, for a few kinds, a little I/O of their own (a pod's token
Secret, a namespace's isolation policy).  A :class:`Kind` bundles those pure
functions and optional *hooks* so each kind's module holds everything that is
special about it and the engine never branches on kind names.  Hooks reach
the clusters only through :class:`KindIO` (caches through :class:`CacheView`),
which the engine implements: a kind's module never imports the engine.
Equality is a *fingerprint* of the synced part of an object, computed the
same way on the desired super object (from the tenant object) and on the
observed one, so drift made by hand in the super cluster is seen too.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from vcluster import naming, quota
from vcluster.kube import ApiClient, Resource
from vcluster.policy import PodPolicy

Obj = dict[str, Any]
#: Key of a slim super object's quota usage (:func:`vcluster.quota.object_usage`, dumped).
USAGE = "u"

#: Metadata prefixes that belong to us: a tenant cannot set them on its super copies.
OUR_PREFIX = f"{naming.GROUP}/"
_OUR_SUBDOMAIN = f".{naming.GROUP}"


def is_ours(key: str) -> bool:
    """Whether a label/annotation key is in our group or a subdomain of it (the ``nslabel`` keys)."""
    domain, slash, _name = key.partition("/")
    return bool(slash) and (domain == naming.GROUP or domain.endswith(_OUR_SUBDOMAIN))


@dataclass(frozen=True, slots=True)
class MetadataRules:
    """Which label/annotation keys of a super object belong to the super cluster (Tenant ``spec.sync``).

    A key is *super-owned* when it starts with one of the opaque or transparent prefixes (a plain string
    prefix, as in VirtualCluster: end a prefix with ``/`` to mean exactly one domain) and is not ours.
    The downward sync never sets, overwrites or removes super-owned keys on a super object and never
    copies tenant values of them down; keys under transparent prefixes are also copied *up* onto the
    tenant object, which mirrors the super object's values of them (set, updated and removed).
    """

    opaque: tuple[str, ...] = ()
    transparent: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.opaque or self.transparent)

    def super_owned(self, key: str) -> bool:
        return bool(self) and key.startswith((*self.opaque, *self.transparent)) and not is_ours(key)

    def is_transparent(self, key: str) -> bool:
        return bool(self.transparent) and key.startswith(self.transparent) and not is_ours(key)

    def transparent_of(self, meta: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """The (labels, annotations) of ``meta`` under transparent prefixes."""
        return (
            {k: v for k, v in (meta.get("labels") or {}).items() if self.is_transparent(k)},
            {k: v for k, v in (meta.get("annotations") or {}).items() if self.is_transparent(k)},
        )

    @classmethod
    def from_prefixes(cls, *, opaque: Iterable[str] = (), transparent: Iterable[str] = ()) -> MetadataRules:
        return cls(opaque=tuple(opaque), transparent=tuple(transparent))


NO_RULES = MetadataRules()


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
    #: Where that service forwards to (``status.dns.endpoint``, ``host:port``): the NetworkPolicy opens it.
    dns_endpoint: str | None = None
    #: The operator's tenant DNS (``status.dns``) serves the tenant's ClusterFirst pods: it answers
    #: ``kubernetes.default`` with the apiserver's Service (443); a tenant's own kube-dns copy does not.
    operator_dns: bool = False
    #: Tenant cluster domain for DNS search paths.
    cluster_domain: str = "cluster.local"
    #: Tenant Services of the pod's namespace as (name, super cluster IP, ports), for the
    #: ``FOO_SERVICE_HOST`` variables; filled by the engine for pod creation only.
    service_links: tuple[tuple[str, str, tuple[Obj, ...]], ...] = ()
    #: (tenant cluster IP, super cluster IP) of the tenant Services a ``dnsPolicy: None`` pod names as its
    #: nameservers (a tenant running its own DNS); filled by the engine for pod creation only.
    nameserver_ips: tuple[tuple[str, str], ...] = ()
    #: Super-owned metadata keys (Tenant ``spec.sync`` opaque/transparent prefixes).
    metadata: MetadataRules = NO_RULES
    #: IPs of the tenant's super pods in the object's namespace (read from the super cache, never from
    #: what the tenant writes); filled by the Endpoints ``context`` hook for its ``check``.
    own_pod_ips: frozenset[str] = frozenset()
    #: Super node and super service addresses known next to them: never an endpoint address.
    reserved_ips: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Update:
    """How to bring a super object in line: a full ``replace`` or a ``patch`` (JSON merge or strategic)."""

    method: Literal["replace", "patch"]
    body: Obj
    patch_type: Literal["merge", "strategic"] = "merge"


@dataclass(frozen=True, slots=True)
class UpAction:
    """One write to the tenant side: bind a pod, patch status, patch the object, or ensure another object.

    ``ensure`` creates ``body`` (an object of ``resource``) in the tenant cluster unless it exists.
    """

    op: Literal["bind", "status", "patch", "ensure"]
    body: Obj
    resource: Resource | None = None


@dataclass(frozen=True, slots=True)
class Leftover:
    """A cluster-scoped tenant object the syncer made, and how to recognise that it is still that one."""

    resource: Resource
    name: str
    #: True when the tenant object found under ``name`` is the one the syncer made (pure).
    is_ours: Callable[[Obj], bool]


class RetryLater(Exception):
    """The reconcile cannot finish yet (a dependency is missing); back off and retry."""


class CacheView(Protocol):
    """What a kind's hooks may read of one served tenant: its caches and the super caches (no I/O)."""

    @property
    def ctx(self) -> TranslateContext:
        """The tenant's base translation context."""
        ...

    @property
    def scratch(self) -> dict[str, Any]:
        """Per-tenant state owned by the kinds' hooks, each under a key of its own (dropped with the tenant)."""
        ...

    def tenant_get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A cached tenant object of a synced kind (None: absent, or the kind is not synced)."""
        ...

    def tenant_in(self, kind: str, namespace: str | None) -> list[Obj]:
        """Every cached tenant object of ``kind`` in ``namespace`` (``None``: in every namespace)."""
        ...

    def super_get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """A slim super object (what :meth:`Kind.slim_super` kept) from the super cache."""
        ...


class KindIO(CacheView, Protocol):
    """What a kind's I/O hooks may do, for one served tenant; the engine implements it."""

    @property
    def tenant_api(self) -> ApiClient: ...

    @property
    def super_api(self) -> ApiClient: ...

    @property
    def tenant_spec(self) -> Mapping[str, Any]:
        """The Tenant's ``spec`` as the operator wrote it (may be empty)."""
        ...

    @property
    def token_expiration(self) -> int:
        """Seconds a service-account token requested from the tenant is valid."""
        ...

    @property
    def refused(self) -> set[str]:
        """uids of tenant objects refused by a ``check`` (told once)."""
        ...

    async def create_super(self, kind: str, body: Obj, *, tenant_namespace: str) -> None:
        """Create a super object of a synced kind, making its super namespace first when missing.

        Raises :class:`vcluster.kube.AlreadyExists` when the name is taken.
        """
        ...

    async def delete_super(self, kind: str, p_slim: Obj) -> None:
        """Delete a super object (uid precondition; gone already is fine)."""
        ...

    async def delete_tenant(self, kind: str, v_obj: Obj, *, grace: int | None = None) -> None:
        """Delete a tenant object (uid precondition; gone already is fine)."""
        ...

    def count(self, kind: str, direction: str, op: str) -> None:
        """Count one write in ``vc_syncer_operations_total``."""
        ...


@dataclass(frozen=True, slots=True)
class Kind:
    """The pure functions of one kind, and its optional hooks; the engine does the rest of the I/O.

    Hooks (all optional; ``None`` means the engine's generic behaviour):

    * routing, pure: :attr:`down_fingerprint`, :attr:`also_queue`, :attr:`upward_idle`, :attr:`upward_echo`,
      :attr:`foreign_super`;
    * reading caches: :attr:`sync_filter`, :attr:`context`;
    * I/O through :class:`KindIO`: :attr:`before_create`, :attr:`prepare`, :attr:`after_create`,
      :attr:`on_gone`, :attr:`on_super_gone`.
    """

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
    #: A replace carries the status the super cache kept (``super_extras``): the super side's, for
    #: resources whose status is not a subresource (extra kinds).
    keep_status: bool = False
    #: ``check`` also runs before an update (the update would carry the refused fields down): a refused
    #: update gets the Warning Event and the super copy is deleted.  Kinds whose updates carry only
    #: fields no check looks at (Pods: images, labels) leave it off.
    recheck: bool = False
    #: How ``patch_update`` bodies are sent: ``strategic`` merges lists by key (pod containers by name,
    #: where a JSON merge patch would replace the whole list and the apiserver refuse the change).
    patch_type: Literal["merge", "strategic"] = "merge"
    #: The node a tenant object is bound to (Pods: ``spec.nodeName``), None if none.  The tenant informer
    #: indexes it, and the virtual-node manager asks that index whether a node still has pods instead of
    #: listing them (:meth:`syncer.runtime.TenantRuntime.node_in_use`).  Pure; must not raise on any object.
    tenant_node: Callable[[Obj], str | None] | None = None
    #: Tenant objects the syncer made for this one (from the slim super copy), deleted when the tenant
    #: object is gone, before its super copy (so a crash in between leaves the super copy to retry with).
    tenant_leftovers: Callable[[Obj], list[Leftover]] | None = None
    # ---- routing hooks (pure) --------------------------------------------------------------------------
    #: A hash of what the downward reconcile reads of a tenant object; a MODIFIED tenant event with the
    #: same hash as the last one (the echo of our own upward write) queues no downward key.
    down_fingerprint: Callable[[Obj], str] | None = None
    #: Other kinds whose downward key (same namespace and name) is queued with this kind's.
    also_queue: tuple[str, ...] = ()
    #: True when a slim super object has nothing for :attr:`upward` to bring up (no upward key queued).
    upward_idle: Callable[[Obj], bool] | None = None
    #: Skip upward keys for super events whose (uid, node, status) did not change since the last one.
    upward_echo: bool = False
    #: Super objects of this kind's resource that belong to something else (the engine leaves them alone).
    foreign_super: Callable[[Obj], bool] | None = None
    # ---- hooks that read caches -------------------------------------------------------------------------
    #: False when a tenant object is not synced now, judged on other cached tenant objects.
    sync_filter: Callable[[CacheView, Obj], bool] | None = None
    #: The translation context for ``to_super`` (tenant object, or None for a patrol scan; ``creating``).
    context: Callable[[CacheView, Obj | None, bool], TranslateContext] | None = None
    # ---- I/O hooks ----------------------------------------------------------------------------------------
    #: Before creating a super copy: False when the hook settled the object itself (nothing to create).
    before_create: Callable[[KindIO, Obj], Awaitable[bool]] | None = None
    #: After ``check`` allowed the object, before its super copy is created (e.g. a token Secret).
    prepare: Callable[[KindIO, Obj], Awaitable[None]] | None = None
    #: After the super copy was created (the desired object that was written).
    after_create: Callable[[KindIO, Obj], Awaitable[None]] | None = None
    #: The tenant object (namespace, name) is gone or no longer synced.
    on_gone: Callable[[KindIO, str, str], Awaitable[None]] | None = None
    #: A terminating tenant object whose super copy is gone.
    on_super_gone: Callable[[KindIO, Obj], Awaitable[None]] | None = None
    #: Delete a terminating tenant object's super copy with the tenant's grace period.
    tenant_grace: bool = False

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
        usage = quota.object_usage(self.resource.group, self.resource.plural, p_obj)
        if usage:
            out[USAGE] = quota.dump(usage)  # what it counts for in its tenant's quota (syncer/quota ledger)
        return out

    def update(self, desired: Obj, p_slim: Obj) -> Update:
        if self.patch_update is not None:
            return Update("patch", self.patch_update(desired, p_slim), self.patch_type)
        body = copy.copy(desired)
        body["metadata"] = {**desired["metadata"], "resourceVersion": p_slim["metadata"].get("resourceVersion")}
        if self.keep_status and "status" in p_slim:
            body["status"] = p_slim["status"]
        return Update("replace", body)


def fingerprint(data: Any) -> str:
    return hashlib.blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


#: :func:`vcluster.naming.super_namespace` memoised: it validates and hashes on every call, and the hot
#: path asks for the same few namespaces for every object.
super_namespace = functools.lru_cache(maxsize=4096)(naming.super_namespace)


def tenant_metadata(
    meta: Mapping[str, Any], rules: MetadataRules = NO_RULES
) -> tuple[dict[str, str], dict[str, str]]:
    """The tenant's labels and annotations without keys in our prefix (those are ours to set) and
    without super-owned keys (the super cluster's, see :class:`MetadataRules`)."""
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(OUR_PREFIX)}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(OUR_PREFIX)}
    if rules:
        labels = {k: v for k, v in labels.items() if not rules.super_owned(k)}
        annotations = {k: v for k, v in annotations.items() if not rules.super_owned(k)}
    return labels, annotations


def super_metadata(v_obj: Obj, ctx: TranslateContext, *, super_namespace: str | None) -> Obj:
    """Metadata of the super copy of a tenant object: name kept, namespace mapped, ownership stamped."""
    meta = v_obj.get("metadata") or {}
    labels, annotations = tenant_metadata(meta, ctx.metadata)
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


def with_super_owned(desired: Obj, p_obj: Obj, rules: MetadataRules) -> Obj:
    """``desired`` with the super object's super-owned labels/annotations instead of its own.

    The engine compares and writes this (replace and merge patch alike), so an update never sets,
    changes or removes a super-owned key and such keys never make the two sides look different.
    ``desired`` itself when there are no rules (no copy on the common path).
    """
    if not rules:
        return desired
    p_meta = p_obj.get("metadata") or {}
    meta = dict(desired["metadata"])
    for field_name in ("labels", "annotations"):
        merged = {k: v for k, v in (meta.get(field_name) or {}).items() if not rules.super_owned(k)}
        merged.update({k: v for k, v in (p_meta.get(field_name) or {}).items() if rules.super_owned(k)})
        if merged or field_name in meta:
            meta[field_name] = merged
    out = dict(desired)
    out["metadata"] = meta
    return out


def transparent_patch(v_obj: Obj, p_obj: Obj, rules: MetadataRules) -> Obj | None:
    """Merge patch of the tenant object's metadata that makes its keys under transparent prefixes
    equal to the super object's (set, changed, removed); None when they are equal already."""
    if not rules.transparent:
        return None
    want = rules.transparent_of(p_obj.get("metadata") or {})
    have = rules.transparent_of(v_obj.get("metadata") or {})
    patch: Obj = {}
    for field_name, w, h in (("labels", want[0], have[0]), ("annotations", want[1], have[1])):
        diff: Obj = {k: v for k, v in w.items() if h.get(k) != v}
        diff.update({k: None for k in h if k not in w})
        if diff:
            patch[field_name] = diff
    return patch or None


def tenant_ref(p_obj: Obj, *, namespaced: bool = True) -> tuple[str, str, str] | None:
    """(tenant namespace, tenant name, tenant uid) a super object stands for, from its annotations.

    The namespace is ``""`` for a cluster-scoped kind (``namespaced=False``).  None when the object
    stands for no tenant object (no name annotation).
    """
    ann = (p_obj.get("metadata") or {}).get("annotations") or {}
    name = ann.get(naming.ANN_OBJECT_NAME)
    if not name:
        return None
    ns = ann.get(naming.ANN_TENANT_NAMESPACE, "") if namespaced else ""
    return ns, name, ann.get(naming.ANN_OBJECT_UID, "")


def cluster_key_of(p_obj: Obj) -> str | None:
    """The cluster key a super object was made for (its label), if the syncer made it."""
    labels = (p_obj.get("metadata") or {}).get("labels") or {}
    if labels.get(naming.LABEL_MANAGED_BY) != naming.MANAGED_BY_SYNCER:
        return None
    key = labels.get(naming.LABEL_CLUSTER_KEY)
    return str(key) if key else None


def object_uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")
