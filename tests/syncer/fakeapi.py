"""An in-memory apiserver for the engine's unit tests: the part of ``vcluster.kube.ApiClient`` the syncer uses.

Why: the downward/upward reconcile (``syncer/downward.py``, ``syncer/upward.py``) is a three-way branch
guarded by uids, resourceVersions and typed errors; a recording mock would only repeat what the engine
asked for, so these tests need a fake that *answers* like an apiserver: uids and resourceVersions are
assigned, a stale ``resourceVersion`` is a Conflict, a taken name is AlreadyExists, a uid precondition
that does not match is a Conflict, a missing namespace is NotFound.  The rule is: no behaviour the real
apiserver lacks (it may lack behaviour the engine does not use — then it raises ``NotImplementedError``
rather than guess).  What other controllers do (the scheduler binding super pods, kubelets reporting
status, the namespace controller emptying terminating namespaces) the tests do by hand through
:class:`FakeServer` methods whose names say so.

Behaviour kept from kube-apiserver, as the engine meets it:

* create: ``uid``, ``resourceVersion`` and ``creationTimestamp`` assigned; ``generateName``; a name taken →
  ``AlreadyExists`` (409); a namespaced object in a missing namespace → ``NotFound`` (404), in a
  terminating one → ``Forbidden`` (403); Services get a cluster IP unless headless.
* replace: a ``resourceVersion`` that is not the stored one → ``Conflict``; none → unconditional;
  status is not written through the main resource of kinds that have a ``status`` subresource.
* patch: JSON merge; strategic merge for the pod lists the engine patches (containers by name);
  the ``status`` subresource writes only status; ``pods/binding`` sets the node once (a second binding or
  a uid that is not the pod's → ``Conflict``) and the ``PodScheduled`` condition.
* ``serviceaccounts/token`` (TokenRequest): ``NotFound`` for a missing service account, else the request
  answered with a token that names the account (requests are kept in :attr:`FakeServer.token_requests`).
* delete: ``preconditions.uid`` not the stored uid → ``Conflict``; an object with finalizers, a namespace
  and a pod bound to a node (grace not 0) only get ``deletionTimestamp`` (the namespace controller and
  kubelet finish them: :meth:`FakeServer.finish_deletions`).
* list (label selectors ``k=v``, ``k!=v``, ``k``, ``!k``; field selectors ``metadata.name``,
  ``metadata.namespace`` and, for pods, ``spec.nodeName``, with ``=``, ``==``, ``!=``; every list is kept
  in :attr:`FakeServer.lists`) and watch from a resourceVersion (a resourceVersion older than the kept
  history → ``Gone``).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from vcluster.kube import (
    AlreadyExists,
    ClientConfig,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    Resource,
    WatchEvent,
    resources,
)

Obj = dict[str, Any]

#: Plurals whose ``status`` is a subresource: a write through the main resource leaves it alone.
STATUS_SUBRESOURCE = frozenset({"pods", "services", "namespaces", "persistentvolumeclaims", "persistentvolumes",
                                "nodes", "ingresses", "poddisruptionbudgets", "deployments", "statefulsets"})
#: patchMergeKey of the lists a strategic merge patch of a pod merges (the rest of the pod's lists the
#: engine never patches).
_POD_MERGE_KEYS = {"containers": "name", "initContainers": "name"}
#: A fixed creation time (no clock in these tests).
CREATED = "2024-01-01T00:00:00Z"


@dataclass(slots=True)
class _Event:
    rv: int
    type: str
    plural: str
    obj: Obj


@dataclass(slots=True)
class FakeServer:
    """The stored objects of one apiserver, and what its controllers would do (by hand)."""

    name: str = "fake"
    #: Cluster IPs handed to Services are this prefix and a counter (different per cluster in tests).
    ip_prefix: str = "10.96.0."
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    history: list[_Event] = field(default_factory=list)
    #: Every write, as (verb, plural, namespace, name[, subresource]); what a test may count.
    writes: list[tuple[str, ...]] = field(default_factory=list)
    #: Called with (verb, resource, namespace, name) before a write; may raise (a refusing admission).
    admission: list[Any] = field(default_factory=list)
    #: Every list (also each page of a ``list_all``), as (plural, label selector, field selector).
    lists: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    #: Every TokenRequest answered, as (namespace, service account, the request's ``spec``).
    token_requests: list[tuple[str, str, Obj]] = field(default_factory=list)
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uid: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ip: itertools.count[int] = field(default_factory=lambda: itertools.count(10))
    _waiters: set[asyncio.Event] = field(default_factory=set)

    def api(self) -> FakeApi:
        return FakeApi(self)

    # ---- what tests read and what other controllers do ---------------------------------------------------
    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj | None:
        obj = self.objects.get((resource.plural, _ns(resource, namespace), name))
        return copy.deepcopy(obj) if obj is not None else None

    def all(self, resource: Resource) -> builtins.list[Obj]:
        return [copy.deepcopy(o) for (p, _ns, _n), o in sorted(self.objects.items()) if p == resource.plural]

    def put(self, resource: Resource, obj: Obj) -> Obj:
        """Store ``obj`` as a client would create it (namespaces are not checked: seed data)."""
        return self._create(resource, copy.deepcopy(obj), check_namespace=False)

    def set_status(self, resource: Resource, name: str, namespace: str | None, status: Obj) -> Obj:
        """What a kubelet (or another status writer) does: replace the object's status."""
        obj = self._stored(resource, namespace, name)
        obj["status"] = copy.deepcopy(status)
        return self._modified(resource, obj)

    def schedule(self, name: str, namespace: str, node: str) -> Obj:
        """What the super scheduler does to a pod: bind it to ``node``."""
        obj = self._stored(resources.PODS, namespace, name)
        obj.setdefault("spec", {})["nodeName"] = node
        _set_scheduled(obj)
        return self._modified(resources.PODS, obj)

    def finish_deletions(self) -> None:
        """What the namespace controller, kubelets and finalizer owners would do: remove every terminating
        object (a terminating namespace with everything in it)."""
        for key, obj in sorted(self.objects.items()):
            if key in self.objects and obj["metadata"].get("deletionTimestamp"):
                if key[0] == "namespaces":
                    for inner in [k for k in self.objects if k[1] == key[2]]:
                        self._remove(inner)
                self._remove(key)

    # ---- the verbs ---------------------------------------------------------------------------------------------
    def _admit(self, verb: str, resource: Resource, namespace: str | None, name: str) -> None:
        for hook in self.admission:
            hook(verb, resource, namespace, name)

    def _stored(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get((resource.plural, _ns(resource, namespace), name))
        if obj is None:
            raise NotFound(404, "NotFound", f'{resource.plural} "{name}" not found')
        return obj

    def _bump(self, obj: Obj) -> int:
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        return rv

    def _record(self, rv: int, type_: str, resource: Resource, obj: Obj) -> None:
        self.history.append(_Event(rv, type_, resource.plural, copy.deepcopy(obj)))
        for waiter in self._waiters:
            waiter.set()

    def _modified(self, resource: Resource, obj: Obj) -> Obj:
        self._record(self._bump(obj), "MODIFIED", resource, obj)
        return copy.deepcopy(obj)

    def _remove(self, key: tuple[str, str, str]) -> None:
        obj = self.objects.pop(key)
        self._record(self._bump(obj), "DELETED", _plural(key[0]), obj)

    def _create(self, resource: Resource, body: Obj, *, check_namespace: bool = True) -> Obj:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise Invalid(422, "Invalid", "name or generateName is required")
            meta["name"] = f"{meta['generateName']}{next(self._uid):05d}"
        ns = (meta.get("namespace") or "") if resource.namespaced else ""
        if resource.namespaced:
            if not ns:
                raise Invalid(422, "Invalid", "the namespace of the object is required")
            owner = self.objects.get(("namespaces", "", ns))
            if check_namespace and owner is None:
                raise NotFound(404, "NotFound", f'namespaces "{ns}" not found')
            if check_namespace and owner is not None and owner["metadata"].get("deletionTimestamp"):
                raise Forbidden(403, "Forbidden", f"unable to create new content in namespace {ns} because it is "
                                "being terminated")
        else:
            meta.pop("namespace", None)
        key = (resource.plural, ns, meta["name"])
        if key in self.objects:
            raise AlreadyExists(409, "AlreadyExists", f'{resource.plural} "{meta["name"]}" already exists')
        meta["uid"] = f"{self.name}-uid-{next(self._uid)}"
        meta["creationTimestamp"] = CREATED
        for drop in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(drop, None)
        if resource == resources.SERVICES:
            spec = body.setdefault("spec", {})
            if spec.get("clusterIP") != "None":
                spec["clusterIP"] = f"{self.ip_prefix}{next(self._ip)}"
        self.objects[key] = body
        self._record(self._bump(body), "ADDED", resource, body)
        return copy.deepcopy(body)

    def create(self, resource: Resource, body: Obj, *, namespace: str | None, subresource: str | None,
               name: str | None) -> Obj:
        body = copy.deepcopy(body)
        if subresource is not None:
            if resource == resources.SERVICEACCOUNTS and subresource == "token" and name is not None:
                return self._token(name, namespace or "", body)
            if resource != resources.PODS or subresource != "binding" or name is None:
                raise NotImplementedError(f"POST {resource.plural}/{subresource}")
            return self._bind(name, namespace or "", body)
        if namespace is not None and resource.namespaced:
            body.setdefault("metadata", {})["namespace"] = namespace
        meta = body.get("metadata") or {}
        self._admit("create", resource, meta.get("namespace"), meta.get("name") or "")
        out = self._create(resource, body)
        self.writes.append(("create", resource.plural, out["metadata"].get("namespace", ""), out["metadata"]["name"]))
        return out

    def _token(self, name: str, namespace: str, request: Obj) -> Obj:
        self._stored(resources.SERVICEACCOUNTS, namespace, name)  # NotFound for a missing account
        spec = copy.deepcopy(request.get("spec") or {})
        self.token_requests.append((namespace, name, spec))
        self.writes.append(("create", "serviceaccounts", namespace, name, "token"))
        token = f"{self.name}-token-{namespace}-{name}-{next(self._uid)}"
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec,
                "status": {"token": token, "expirationTimestamp": CREATED}}

    def _bind(self, name: str, namespace: str, binding: Obj) -> Obj:
        pod = self._stored(resources.PODS, namespace, name)
        want_uid = (binding.get("metadata") or {}).get("uid")
        if want_uid and want_uid != pod["metadata"]["uid"]:
            raise Conflict(409, "Conflict", f"Precondition failed: UID in precondition: {want_uid}, "
                           f"UID in object meta: {pod['metadata']['uid']}")
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise Conflict(409, "Conflict", f"pod {name} is already assigned to node {spec['nodeName']!r}")
        spec["nodeName"] = binding["target"]["name"]
        _set_scheduled(pod)
        self.writes.append(("create", "pods", namespace, name, "binding"))
        self._modified(resources.PODS, pod)
        return {"kind": "Status", "status": "Success"}

    def replace(self, resource: Resource, body: Obj, *, namespace: str | None, subresource: str | None) -> Obj:
        if subresource is not None:
            raise NotImplementedError(f"PUT {resource.plural}/{subresource}")
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        stored = self._stored(resource, namespace if namespace is not None else meta.get("namespace"), meta["name"])
        rv = meta.get("resourceVersion")
        if rv and rv != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", f'Operation cannot be fulfilled on {resource.plural} "{meta["name"]}": '
                           "the object has been modified; please apply your changes to the latest version and "
                           "try again")
        if meta.get("uid") and meta["uid"] != stored["metadata"]["uid"]:
            raise Conflict(409, "Conflict", "Precondition failed: UID in precondition does not match")
        self._admit("update", resource, stored["metadata"].get("namespace"), meta["name"])
        for keep in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if keep in stored["metadata"]:
                meta[keep] = stored["metadata"][keep]
            else:
                meta.pop(keep, None)
        if resource.plural in STATUS_SUBRESOURCE:
            body.pop("status", None)
            if "status" in stored:
                body["status"] = stored["status"]
        if resource == resources.SERVICES and stored.get("spec", {}).get("clusterIP"):
            body.setdefault("spec", {}).setdefault("clusterIP", stored["spec"]["clusterIP"])
        _check_immutable(resource, stored, body)
        self.objects[(resource.plural, meta.get("namespace", ""), meta["name"])] = body
        self.writes.append(("replace", resource.plural, meta.get("namespace", ""), meta["name"]))
        return self._modified(resource, body)

    def patch(self, resource: Resource, name: str, patch: Any, *, namespace: str | None, patch_type: str,
              subresource: str | None) -> Obj:
        if patch_type not in ("merge", "strategic") or subresource not in (None, "status"):
            raise NotImplementedError(f"PATCH {resource.plural}/{subresource} as {patch_type}")
        stored = self._stored(resource, namespace, name)
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        if rv and rv != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", f'Operation cannot be fulfilled on {resource.plural} "{name}"')
        self._admit("patch", resource, namespace, name)
        if subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif resource.plural in STATUS_SUBRESOURCE:
            patch = {k: v for k, v in patch.items() if k != "status"}
        merge_keys = _POD_MERGE_KEYS if patch_type == "strategic" and resource == resources.PODS else None
        if patch_type == "strategic" and merge_keys is None:
            raise NotImplementedError(f"strategic merge patch of {resource.plural}")
        new = _merge(copy.deepcopy(stored), copy.deepcopy(patch), merge_keys)
        for keep in ("uid", "name", "namespace", "creationTimestamp", "deletionTimestamp", "resourceVersion"):
            if keep in stored["metadata"]:
                new["metadata"][keep] = stored["metadata"][keep]
        _check_immutable(resource, stored, new)
        self.objects[(resource.plural, _ns(resource, namespace), name)] = new
        self.writes.append(("patch", resource.plural, namespace or "", name, *([subresource] if subresource else [])))
        return self._modified(resource, new)

    def delete(self, resource: Resource, name: str, *, namespace: str | None, options: Obj) -> Obj:
        stored = self._stored(resource, namespace, name)
        meta = stored["metadata"]
        want_uid = (options.get("preconditions") or {}).get("uid")
        if want_uid and want_uid != meta["uid"]:
            raise Conflict(409, "Conflict", f"Precondition failed: UID in precondition: {want_uid}, "
                           f"UID in object meta: {meta['uid']}")
        self._admit("delete", resource, namespace, name)
        self.writes.append(("delete", resource.plural, namespace or "", name))
        grace = options.get("gracePeriodSeconds")
        graceful = resource == resources.PODS and (stored.get("spec") or {}).get("nodeName") and grace != 0
        if meta.get("finalizers") or resource == resources.NAMESPACES or graceful:
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = CREATED
                if graceful:
                    meta["deletionGracePeriodSeconds"] = (
                        grace if grace is not None else (stored.get("spec") or {}).get(
                            "terminationGracePeriodSeconds", 30))
                return self._modified(resource, stored)
            return copy.deepcopy(stored)
        self._remove((resource.plural, _ns(resource, namespace), name))
        return {"kind": "Status", "status": "Success"}

    def list(self, resource: Resource, *, namespace: str | None, label_selector: str | None,
             field_selector: str | None = None) -> Obj:
        self.lists.append((resource.plural, label_selector, field_selector))
        match, fields = _selector(label_selector), _field_selector(resource, field_selector)
        items = [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items())
                 if p == resource.plural and (namespace is None or ns == namespace) and match(o) and fields(o)]
        rv = self.history[-1].rv if self.history else 0
        return {"kind": f"{resource.kind}List", "metadata": {"resourceVersion": str(rv)}, "items": items}


def token_kubeconfig(server: str = "https://tenant.fake", token: str = "first") -> str:
    """Kubeconfig text for a tenant apiserver at ``server`` with a bearer ``token`` (what a tenant's
    kubeconfig Secret holds, for :class:`~syncer.tenants.TenantInfo`)."""
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters: [{{name: t, cluster: {{server: \"{server}\"}}}}]\n"
            f"users: [{{name: t, user: {{token: {token}}}}}]\n"
            f"contexts: [{{name: t, context: {{cluster: t, user: t}}}}]\n")


def _ns(resource: Resource, namespace: str | None) -> str:
    return (namespace or "") if resource.namespaced else ""


def _plural(plural: str) -> Resource:
    return next((r for r in resources.BY_KIND.values() if r.plural == plural), Resource("", "v1", plural, plural))


def _set_scheduled(pod: Obj) -> None:
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    status["conditions"] = [*conditions, {"type": "PodScheduled", "status": "True"}]


def _check_immutable(resource: Resource, old: Obj, new: Obj) -> None:
    """What pod validation refuses: changing a pod's spec beyond images, activeDeadlineSeconds, tolerations."""
    if resource != resources.PODS:
        return

    def frozen(pod: Obj) -> Obj:
        spec = copy.deepcopy(pod.get("spec") or {})
        for name in ("containers", "initContainers"):
            for c in spec.get(name) or []:
                c.pop("image", None)
        for loose in ("activeDeadlineSeconds", "tolerations", "nodeName"):
            spec.pop(loose, None)
        return spec

    if frozen(old) != frozen(new):
        raise Invalid(422, "Invalid", "Pod is invalid: spec: Forbidden: pod updates may not change fields other "
                      "than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                      "`spec.activeDeadlineSeconds`, `spec.tolerations`")


def _merge(target: Any, patch: Any, merge_keys: dict[str, str] | None) -> Any:
    """RFC 7386 merge (``None`` removes), and with ``merge_keys`` lists of those names merged by key."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif merge_keys is not None and key in merge_keys and isinstance(value, list):
            mk = merge_keys[key]
            have = {item[mk]: item for item in target.get(key) or []}
            for item in value:
                have[item[mk]] = _merge(have.get(item[mk], {}), item, None)
            target[key] = list(have.values())
        else:
            target[key] = _merge(target.get(key), value, merge_keys)
    return target


#: The field selectors the fake knows, by plural (None: every resource); kube-apiserver has more per kind.
_FIELDS: dict[str | None, dict[str, tuple[str, str]]] = {
    None: {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")},
    "pods": {"spec.nodeName": ("spec", "nodeName")},
}


def _field_selector(resource: Resource, text: str | None) -> Any:
    known = {**_FIELDS[None], **_FIELDS.get(resource.plural, {})}
    terms: builtins.list[tuple[tuple[str, str], str, bool]] = []
    for term in (t.strip() for t in (text or "").split(",") if t.strip()):
        negate = "!=" in term
        name, value = term.split("!=" if negate else "=", 1)
        name, value = name.strip(), value.removeprefix("=").strip()
        if name not in known:
            raise NotImplementedError(f"field selector {name!r} on {resource.plural}")
        terms.append((known[name], value, negate))

    def match(obj: Obj) -> bool:
        for (part, key), value, negate in terms:
            actual = str((obj.get(part) or {}).get(key) or "")
            if (actual == value) == negate:
                return False
        return True
    return match


def _selector(text: str | None) -> Any:
    terms = [t.strip() for t in (text or "").split(",") if t.strip()]

    def match(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for term in terms:
            if "!=" in term:
                k, v = term.split("!=", 1)
                if labels.get(k) == v:
                    return False
            elif "=" in term:
                k, v = term.split("=", 1)
                if labels.get(k.rstrip("=")) != v:
                    return False
            elif term.startswith("!"):
                if term[1:] in labels:
                    return False
            elif term not in labels:
                return False
        return True
    return match


class FakeApi:
    """The ``vcluster.kube.ApiClient`` surface the syncer calls, answered by one :class:`FakeServer`.

    Pass it where an ``ApiClient`` is expected with ``typing.cast``; a method the syncer does not call is
    missing on purpose (a call to it fails the test loudly).
    """

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        #: What ``ApiClient.config`` holds; nothing connects to it (the CA is what token Secrets carry).
        self.config = ClientConfig(server=f"https://{server.name}.fake", ca_pem=f"CA of {server.name}\n".encode())
        #: Writes whose caller asked for the answer decoded (``decode`` not False), as (verb, plural).
        self.decoded: builtins.list[tuple[str, str]] = []

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Obj:
        return copy.deepcopy(self.server._stored(resource, namespace, name))

    async def get_or_none(self, resource: Resource, name: str, *, namespace: str | None = None) -> Obj | None:
        try:
            return await self.get(resource, name, namespace=namespace)
        except NotFound:
            return None

    async def list(self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None, resource_version: str | None = None, limit: int | None = None,
                   continue_: str | None = None) -> Obj:
        if continue_:
            raise NotImplementedError("continue tokens")
        out = self.server.list(resource, namespace=namespace, label_selector=label_selector,
                               field_selector=field_selector)
        if limit:
            out["items"] = out["items"][:limit]
        return out

    async def list_all(self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None,
                       field_selector: str | None = None, page_size: int = 500) -> tuple[builtins.list[Obj], str]:
        page = await self.list(resource, namespace=namespace, label_selector=label_selector,
                               field_selector=field_selector)
        return page["items"], page["metadata"]["resourceVersion"]

    async def create(self, resource: Resource, body: Obj, *, namespace: str | None = None,
                     subresource: str | None = None, name: str | None = None, decode: bool = True) -> Obj:
        out = self.server.create(resource, body, namespace=namespace, subresource=subresource, name=name)
        return self._answer("create", resource, out, decode)

    async def replace(self, resource: Resource, body: Obj, *, namespace: str | None = None,
                      subresource: str | None = None, decode: bool = True) -> Obj:
        out = self.server.replace(resource, body, namespace=namespace, subresource=subresource)
        return self._answer("replace", resource, out, decode)

    async def patch(self, resource: Resource, name: str, patch: Any, *, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str | None = None, field_manager: str | None = None,
                    force: bool = False, decode: bool = True) -> Obj:
        out = self.server.patch(resource, name, patch, namespace=namespace, patch_type=patch_type,
                                subresource=subresource)
        return self._answer("patch", resource, out, decode)

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None, uid: str | None = None,
                     grace_period_seconds: int | None = None, propagation: str | None = "Background") -> Obj | None:
        options: Obj = {}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        return self.server.delete(resource, name, namespace=namespace, options=options)

    async def watch(self, resource: Resource, *, namespace: str | None = None, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int = 300, allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (Gone when that is older than the kept history), then new ones
        as they happen, until ``timeout_seconds`` pass (the server ending the watch)."""
        server = self.server
        if field_selector:
            raise NotImplementedError("field selectors")
        match = _selector(label_selector)
        since = int(resource_version or 0)
        if server.history and since < server.history[0].rv - 1:
            raise Gone(410, "Expired", f"too old resource version: {since} ({server.history[0].rv - 1})")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while True:
            for event in [e for e in server.history if e.rv > since]:
                since = event.rv
                ns = event.obj["metadata"].get("namespace")
                if event.plural == resource.plural and (namespace is None or ns == namespace) and match(event.obj):
                    yield WatchEvent(event.type, copy.deepcopy(event.obj))
            changed = asyncio.Event()
            server._waiters.add(changed)
            try:
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            except TimeoutError:
                return
            finally:
                server._waiters.discard(changed)

    async def close(self) -> None:
        return None

    def _answer(self, verb: str, resource: Resource, out: Obj, decode: bool) -> Obj:
        if decode is not False:
            self.decoded.append((verb, resource.plural))
            return out
        return {}
