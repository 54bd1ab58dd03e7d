"""Pods: mutated on the way down, status and node binding on the way up.

Why: a tenant pod must run in the super cluster yet behave as if it ran in
the tenant cluster.  On the way down the pod gets the tenant's identity (its
service-account token from the tenant's TokenRequest API and the tenant CA,
in a super Secret that replaces the ``kube-api-access`` projected volume),
the tenant apiserver as ``kubernetes.default`` (env and host aliases), the
tenant's DNS service, tenant values in downward-API env vars and volumes,
pod (anti-)affinity namespaces confined to the tenant's super namespaces,
the ``FOO_SERVICE_HOST`` variables of the tenant's services (with their
super cluster IPs, the only ones a super pod can reach), and the tenant's
isolation policy.  Pods the policy forbids never go down
(:func:`violations`).  On the way up the tenant pod is bound to the node the
super scheduler chose and gets the super pod's status.

The pod's hooks (bottom of the module) are its I/O: the token Secret before
create (:mod:`syncer.resources.tokens`), the translation context with the
tenant's DNS service and service links (read from the caches), deleting a
tenant pod that is lost or whose super pod finished terminating, and the echo
fingerprints the engine's routing uses.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
from typing import Any, cast

import orjson

from syncer.resources.base import (
    CacheView,
    Kind,
    KindIO,
    Obj,
    TranslateContext,
    UpAction,
    meta_synced,
    metadata_patch,
    object_uid,
    super_metadata,
)
from syncer.resources.base import super_namespace as cached_super_namespace
from syncer.resources.tokens import CA_KEY, NAMESPACE_KEY, TOKEN_KEY, ensure_token
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import apply_pod_policy, check_pod, confine_affinity

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
#: Name of the tenant's DNS Service (kube-system), whose super cluster IP pods use as nameserver.
DNS_NAMESPACE, DNS_SERVICE = "kube-system", "kube-dns"
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_KUBERNETES_HOSTNAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
#: The spec fields :func:`vcluster.policy.apply_pod_policy` sets (it deep-copies what it is given, so it
#: gets only these: a whole pod spec costs ~0.1 ms to copy, on the hot path of every pod).
POLICY_FIELDS = ("nodeSelector", "tolerations", "runtimeClassName")


def violations(v_pod: Obj, ctx: TranslateContext) -> list[str]:
    """Why the tenant's isolation policy refuses this pod (empty: allowed).  One switch point."""
    return check_pod(v_pod.get("spec") or {}, ctx.policy)


def service_account(v_pod: Obj) -> str:
    spec = v_pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


def needs_token(v_pod: Obj) -> bool:
    """Whether the pod needs the token Secret: it mounts a service-account token, or a downward-API
    volume shows its namespace (the Secret's ``namespace`` key stands in for it)."""
    return any(_is_token_volume(v) or _namespace_items(v) for v in (v_pod.get("spec") or {}).get("volumes") or [])


def _is_namespace_item(item: Obj) -> bool:
    return (item.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace"


def _namespace_items(volume: Obj) -> list[Obj]:
    return [i for i in (volume.get("downwardAPI") or {}).get("items") or [] if _is_namespace_item(i)]


def _downward_volume(volume: Obj, secret_name: str) -> Obj:
    """A ``downwardAPI`` volume showing ``metadata.namespace`` as a projected volume whose namespace
    file comes from the token Secret (the super pod's own namespace is the prefixed one)."""
    downward = volume["downwardAPI"]
    kept = [i for i in downward.get("items") or [] if not _is_namespace_item(i)]
    items = []
    for i in _namespace_items(volume):
        item: Obj = {"key": NAMESPACE_KEY, "path": i["path"]}
        if "mode" in i:
            item["mode"] = i["mode"]
        items.append(item)
    sources: list[Obj] = [{"secret": {"name": secret_name, "items": items}}]
    if kept:
        sources.insert(0, {"downwardAPI": {"items": kept}})
    projected: Obj = {"sources": sources}
    if "defaultMode" in downward:
        projected["defaultMode"] = downward["defaultMode"]
    return {"name": volume["name"], "projected": projected}


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def service_env(links: tuple[tuple[str, str, tuple[Obj, ...]], ...]) -> list[Obj]:
    """The docker-link style variables kubelet sets for services (same names and order as kubelet).

    ``links`` are (tenant service name, super cluster IP, ports); services without an IP are left out.
    """
    out: list[Obj] = []
    for name, ip, ports in sorted(links, key=lambda link: link[0]):
        if not ip or ip == "None" or not ports:
            continue
        prefix = _env_name(name)
        first = ports[0]
        out.append({"name": f"{prefix}_SERVICE_HOST", "value": ip})
        out.append({"name": f"{prefix}_SERVICE_PORT", "value": str(first.get("port"))})
        for port in ports:
            if port.get("name"):
                out.append({"name": f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}", "value": str(port["port"])})
        proto = str(first.get("protocol") or "TCP")
        out.append({"name": f"{prefix}_PORT", "value": f"{proto.lower()}://{ip}:{first.get('port')}"})
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{port.get('port')}_{proto.upper()}"
            out.append({"name": base, "value": f"{proto.lower()}://{ip}:{port.get('port')}"})
            out.append({"name": f"{base}_PROTO", "value": proto.lower()})
            out.append({"name": f"{base}_PORT", "value": str(port.get("port"))})
            out.append({"name": f"{base}_ADDR", "value": ip})
    return out


def _is_token_volume(volume: Obj) -> bool:
    sources = (volume.get("projected") or {}).get("sources") or []
    return any("serviceAccountToken" in s for s in sources)


def _token_volume(volume: Obj, secret_name: str) -> Obj:
    """The projected kube-api-access volume rebuilt from the token Secret (paths kept)."""
    projected = volume["projected"]
    items: list[Obj] = []
    others: list[Obj] = []
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            items.append({"key": TOKEN_KEY, "path": source["serviceAccountToken"].get("path", "token")})
        elif "configMap" in source and source["configMap"].get("name") == ROOT_CA_CONFIGMAP:
            for item in source["configMap"].get("items") or [{"key": CA_KEY, "path": CA_KEY}]:
                if item.get("key") == CA_KEY:
                    items.append({"key": CA_KEY, "path": item.get("path", CA_KEY)})
        elif "downwardAPI" in source:
            kept = []
            for item in source["downwardAPI"].get("items") or []:
                if (item.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace":
                    items.append({"key": NAMESPACE_KEY, "path": item["path"]})
                else:
                    kept.append(item)
            if kept:
                others.append({"downwardAPI": {**source["downwardAPI"], "items": kept}})
        else:
            others.append(source)
    new_projected: Obj = {"sources": [{"secret": {"name": secret_name, "items": items}}, *others]}
    if "defaultMode" in projected:
        new_projected["defaultMode"] = projected["defaultMode"]
    return {"name": volume["name"], "projected": new_projected}


def _env(env: list[Obj] | None, v_meta: Obj, ctx: TranslateContext, links: list[Obj]) -> list[Obj]:
    out: list[Obj] = []
    names = set()
    own = {v.get("name") for v in env or []}
    for var in links:  # first, as kubelet does; the container's own variables win
        if var["name"] not in own:
            out.append(var)
    for v_var in env or []:
        var = v_var
        field_path = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field_path == "metadata.namespace":
            var = {"name": var["name"], "value": v_meta.get("namespace", "")}
        elif field_path == "metadata.uid":
            var = {"name": var["name"], "value": v_meta.get("uid", "")}
        names.add(var.get("name"))
        out.append(var)
    if ctx.apiserver_host:
        for name, value in (("KUBERNETES_SERVICE_HOST", ctx.apiserver_host),
                            ("KUBERNETES_SERVICE_PORT", ctx.apiserver_port),
                            ("KUBERNETES_SERVICE_PORT_HTTPS", ctx.apiserver_port)):
            if name not in names and value:
                out.append({"name": name, "value": value})
    return out


@functools.lru_cache(maxsize=256)  # one apiserver host per tenant; ip_address() costs ~0.1 ms
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    v_meta = v_obj["metadata"]
    tenant_ns = v_meta["namespace"]
    # The tenant object is not ours to change: a copy of the spec and of its containers, the only parts
    # changed in place below; every other field that changes is replaced by a new object, and what is
    # kept is shared with the tenant object (a copy of the whole spec, even by a JSON round trip, was
    # half of this function's time and a quarter of the patrol's).
    spec: dict[str, Any] = dict(v_obj.get("spec") or {})
    for list_name in _CONTAINER_LISTS:
        if spec.get(list_name):
            spec[list_name] = [dict(c) for c in spec[list_name]]
    spec.pop("nodeName", None)  # the super scheduler decides; the tenant pod is bound afterwards
    spec.pop("serviceAccount", None)
    spec["serviceAccountName"] = service_account(v_obj)
    spec["automountServiceAccountToken"] = False
    # The super namespace's services are not the tenant's: the tenant's come from ``ctx.service_links``.
    links = service_env(ctx.service_links) if spec.pop("enableServiceLinks", True) is not False else []
    spec["enableServiceLinks"] = False
    secret_name = naming.token_secret_name(spec["serviceAccountName"])
    spec["volumes"] = [
        _token_volume(v, secret_name) if _is_token_volume(v)
        else _downward_volume(v, secret_name) if _namespace_items(v) else v
        for v in spec.get("volumes") or []
    ]
    if not spec["volumes"]:
        del spec["volumes"]
    for list_name in _CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            env = _env(container.get("env"), v_meta, ctx, links)
            if env:
                container["env"] = env
    tenant_dns = ctx.operator_dns and spec.get("dnsPolicy", "ClusterFirst") == "ClusterFirst"
    if ctx.apiserver_host and _is_ip(ctx.apiserver_host) and not tenant_dns:
        # without the operator's tenant DNS, the names by host aliases; with it, its answer: the
        # apiserver's Service, which listens on 443 as well (an alias would send 443 to the bare process)
        aliases = [a for a in spec.get("hostAliases") or [] if a.get("ip") != ctx.apiserver_host]
        hostnames = [*_KUBERNETES_HOSTNAMES, f"kubernetes.default.svc.{ctx.cluster_domain}"]
        aliases.append({"ip": ctx.apiserver_host, "hostnames": hostnames})
        spec["hostAliases"] = aliases
    if spec.get("dnsPolicy") == "None" and ctx.nameserver_ips and (spec.get("dnsConfig") or {}).get("nameservers"):
        # the tenant's own DNS, named by its tenant Service's cluster IP: the super copy's routes
        super_ips = dict(ctx.nameserver_ips)
        spec["dnsConfig"] = {**spec["dnsConfig"],
                             "nameservers": [super_ips.get(ip, ip) for ip in spec["dnsConfig"]["nameservers"]]}
    if ctx.dns_ip and spec.get("dnsPolicy", "ClusterFirst") == "ClusterFirst":
        dns_config = dict(spec.get("dnsConfig") or {})
        d = ctx.cluster_domain
        dns_config["nameservers"] = [ctx.dns_ip, *(dns_config.get("nameservers") or [])][:3]
        dns_config["searches"] = [f"{tenant_ns}.svc.{d}", f"svc.{d}", d, *(dns_config.get("searches") or [])]
        dns_config.setdefault("options", [{"name": "ndots", "value": "5"}])
        spec["dnsPolicy"] = "None"
        spec["dnsConfig"] = dns_config
    if spec.get("affinity"):
        # (anti-)affinity namespaces are the tenant's: never other tenants' super namespaces
        spec["affinity"] = confine_affinity(spec["affinity"], ctx.key)
    policy = ctx.policy
    if policy.node_selector or policy.tolerations or policy.runtime_class_name:  # else it would only copy
        spec.update(apply_pod_policy({k: spec[k] for k in POLICY_FIELDS if k in spec}, policy))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": super_metadata(v_obj, ctx, super_namespace=cached_super_namespace(ctx.key, tenant_ns)),
        "spec": spec,
    }


#: Annotations an apiserver's admission writes on a pod it creates, each side its own: compared and
#: patched by neither direction (the super LimitRanger's note on every super pod of a namespace with the
#: operator's LimitRange made each one look changed: one PATCH per synced pod, benchmarks round 9).
ADMISSION_ANNOTATIONS = frozenset({naming.ANN_LIMIT_RANGER})


def synced(obj: Obj) -> Obj:
    """Labels, annotations (but :data:`ADMISSION_ANNOTATIONS`) and images: what may change on a running pod."""
    spec = obj.get("spec") or {}
    out = meta_synced(obj)
    annotations = out["annotations"]
    if not ADMISSION_ANNOTATIONS.isdisjoint(annotations):
        out["annotations"] = {k: v for k, v in annotations.items() if k not in ADMISSION_ANNOTATIONS}
    out["images"] = [[c.get("name"), c.get("image")] for n in ("initContainers", "containers")
                     for c in spec.get(n) or []]
    out["activeDeadlineSeconds"] = spec.get("activeDeadlineSeconds")
    return out


def patch_update(desired: Obj, p_slim: Obj) -> Obj:
    patch: Obj = {}
    meta = metadata_patch(desired, p_slim)
    annotations = meta.get("annotations")
    if annotations and not ADMISSION_ANNOTATIONS.isdisjoint(annotations):
        kept = {k: v for k, v in annotations.items() if k not in ADMISSION_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]
    if meta:
        patch["metadata"] = meta
    spec = desired.get("spec") or {}
    spec_patch: Obj = {}
    for list_name in ("initContainers", "containers"):
        if spec.get(list_name):
            # Sent as a strategic merge patch (POD.patch_type): containers merge by name and only their
            # images change; a JSON merge patch would replace the list, which the apiserver refuses.
            spec_patch[list_name] = [{"name": c["name"], "image": c.get("image")} for c in spec[list_name]]
    if "activeDeadlineSeconds" in spec:
        spec_patch["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    if spec_patch:
        patch["spec"] = spec_patch
    return patch


def super_extras(p_obj: Obj) -> Obj:
    return {"nodeName": (p_obj.get("spec") or {}).get("nodeName"), "status": p_obj.get("status") or {}}


def slim_tenant(v_obj: Obj) -> Obj:
    meta = v_obj.get("metadata")
    if meta:
        meta.pop("managedFields", None)
    return v_obj


def bound_node(v_obj: Obj) -> str | None:
    """The node a tenant pod is bound to (``spec.nodeName``), None while unbound (or malformed)."""
    spec = v_obj.get("spec")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return node if isinstance(node, str) and node else None


#: Status fields each apiserver computes from its own copy of the spec, immutable once set: the tenant
#: pod keeps its own.  ``qosClass`` differs whenever the super namespace's LimitRange gave the super pod
#: requests the tenant pod does not state (the operator's default LimitRange does), and copying it up
#: made the tenant apiserver refuse every status write ("field is immutable").
_TENANT_STATUS = frozenset({"qosClass"})


def status_patch(v_status: Obj, p_status: Obj) -> Obj | None:
    """Merge patch turning the tenant pod's status into the super pod's (None when equal), except the
    fields the tenant apiserver computes itself (:data:`_TENANT_STATUS`)."""
    if v_status == p_status:
        return None
    patch: Obj = {k: v for k, v in p_status.items() if v_status.get(k) != v and k not in _TENANT_STATUS}
    patch.update({k: None for k in v_status if k not in p_status and k not in _TENANT_STATUS})
    return patch or None


def _after_binding(v_status: Obj, p_status: Obj) -> Obj:
    """The tenant pod's status as its apiserver leaves it after our Binding: the binding itself sets
    the ``PodScheduled=True`` condition (with the tenant apiserver's timestamp; here the super one's,
    which differs only in that)."""
    p_scheduled = [c for c in p_status.get("conditions") or [] if c.get("type") == "PodScheduled"]
    if not p_scheduled or p_scheduled[0].get("status") != "True":
        return v_status
    conditions = [c for c in v_status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    return {**v_status, "conditions": [*conditions, p_scheduled[0]]}


def upward(v_obj: Obj, p_slim: Obj) -> list[UpAction]:
    """Bind the tenant pod to the super pod's node, then copy the status.

    A status that differs only by what the binding sets (the scheduler's ``PodScheduled`` condition,
    the usual case right after scheduling) is not written: one tenant write per scheduled pod fewer.
    The next super status change (the pod starting) brings the super conditions over whole.
    """
    actions: list[UpAction] = []
    v_spec = v_obj.get("spec") or {}
    node = p_slim.get("nodeName")
    v_status = v_obj.get("status") or {}
    p_status = p_slim.get("status") or {}
    if node and not v_spec.get("nodeName") and not v_obj["metadata"].get("deletionTimestamp"):
        actions.append(UpAction("bind", {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": v_obj["metadata"]["name"], "namespace": v_obj["metadata"]["namespace"],
                         "uid": v_obj["metadata"].get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }))
        v_status = _after_binding(v_status, p_status)
    patch = status_patch(v_status, p_status)
    if patch is not None and (node or p_slim.get("status")):
        actions.append(UpAction("status", {"status": patch}))
    return actions


# ---- hooks: routing (pure) ----------------------------------------------------------------------------
def down_fingerprint(v_pod: Obj) -> str:
    """What the downward reconcile of a tenant pod depends on, hashed: everything but its status, node
    name and resourceVersion (all written by the upward sync), plus whether it was scheduled (a bound
    pod whose super pod is gone is deleted, not recreated).  Key order is the apiserver's, stable for
    one object; an order change only costs a needless reconcile."""
    meta = v_pod["metadata"]
    spec = v_pod.get("spec") or {}
    return hashlib.blake2b(orjson.dumps((
        [(k, v) for k, v in meta.items() if k != "resourceVersion"],
        [(k, v) for k, v in spec.items() if k != "nodeName"],
        was_scheduled(v_pod),
    )), digest_size=12).digest().hex()


def was_scheduled(v_pod: Obj) -> bool:
    """Whether the tenant pod carries ``PodScheduled=True`` (our binding set it)."""
    for cond in (v_pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return True
    return False


def upward_idle(p_slim: Obj) -> bool:
    """A super pod with neither node nor status (the echo of our create): :func:`upward` has nothing to do."""
    return not p_slim.get("nodeName") and not p_slim.get("status")


# ---- hooks: translation context (cache reads) ----------------------------------------------------------
_DNS_SCRATCH, _LINKS_SCRATCH = "pod.dns", "pod.links"


def context(view: CacheView, v_pod: Obj | None, creating: bool) -> TranslateContext:
    """The tenant context with the super cluster IP of the tenant's DNS service; when creating a pod
    whose service links are on, also the links of its namespace's Services."""
    ctx = _with_dns(view)
    if creating and v_pod is not None and (v_pod.get("spec") or {}).get("enableServiceLinks") is not False:
        ctx = _with_links(view, ctx, v_pod["metadata"]["namespace"])
    if creating and v_pod is not None and (nameservers := own_nameservers(v_pod)):
        ctx = dataclasses.replace(ctx, nameserver_ips=nameserver_ips(view, nameservers))
    return ctx


def own_nameservers(v_pod: Obj) -> frozenset[str]:
    """The nameservers a ``dnsPolicy: None`` pod names itself (a tenant that runs its own DNS)."""
    spec = v_pod.get("spec") or {}
    if spec.get("dnsPolicy") != "None":
        return frozenset()
    servers = (spec.get("dnsConfig") or {}).get("nameservers") or []
    return frozenset(ip for ip in servers if isinstance(ip, str))


def nameserver_ips(view: CacheView, asked: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """(tenant cluster IP, super cluster IP) of the tenant Services whose cluster IP is in ``asked``.

    A tenant cluster IP routes nowhere in the super cluster; the super copy's does.  Only Services
    whose copy exists when the pod is created count (as for service links).  An address that is no
    tenant Service's stays as the tenant wrote it: it reaches nothing a pod could not reach anyway.
    """
    out = []
    for v_svc in view.tenant_in("Service", None):
        spec = v_svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or ip not in asked:
            continue
        meta = v_svc["metadata"]
        p_ns = cached_super_namespace(view.ctx.key, meta["namespace"])
        p_ip = (view.super_get("Service", p_ns, meta["name"]) or {}).get("clusterIP")
        if p_ip and p_ip != "None":
            out.append((ip, p_ip))
    return tuple(sorted(out))


def _with_dns(view: CacheView) -> TranslateContext:
    base = view.ctx
    if base.dns_ip:
        return base  # the tenant DNS the operator provides (status.dns); else a tenant's own kube-dns copy
    p_dns = view.super_get("Service", cached_super_namespace(base.key, DNS_NAMESPACE), DNS_SERVICE)
    ip = (p_dns or {}).get("clusterIP")
    dns_ip = ip if ip and ip != "None" else None
    if dns_ip == base.dns_ip:
        return base
    cached = cast(tuple[TranslateContext, TranslateContext] | None, view.scratch.get(_DNS_SCRATCH))
    if cached is not None and cached[0] is base and cached[1].dns_ip == dns_ip:
        return cached[1]  # one context per DNS address (a replace per pod cost more than the rest)
    with_dns = dataclasses.replace(base, dns_ip=dns_ip)
    view.scratch[_DNS_SCRATCH] = (base, with_dns)
    return with_dns


def _with_links(view: CacheView, ctx: TranslateContext, ns: str) -> TranslateContext:
    """``ctx`` with the service links of ``ns``; the same object while neither changes."""
    links = service_links(view, ns)
    by_ns = cast(dict[str, tuple[TranslateContext, TranslateContext]], view.scratch.setdefault(_LINKS_SCRATCH, {}))
    cached = by_ns.get(ns)
    if cached is not None and cached[0] is ctx and cached[1].service_links == links:
        return cached[1]
    with_links = dataclasses.replace(ctx, service_links=links)
    by_ns[ns] = (ctx, with_links)
    return with_links


def service_links(view: CacheView, ns: str) -> tuple[tuple[str, str, tuple[Obj, ...]], ...]:
    """(name, super cluster IP, ports) of the tenant Services in ``ns``, for service env vars."""
    p_ns = cached_super_namespace(view.ctx.key, ns)
    out = []
    for v_svc in view.tenant_in("Service", ns):
        name = v_svc["metadata"]["name"]
        ip = (view.super_get("Service", p_ns, name) or {}).get("clusterIP") or ""
        out.append((name, ip, tuple((v_svc.get("spec") or {}).get("ports") or ())))
    return tuple(out)


# ---- hooks: I/O ----------------------------------------------------------------------------------------
async def _delete_tenant_pod(io: KindIO, v_pod: Obj) -> None:
    """No kubelet finishes tenant pods: the syncer deletes them (grace 0) when their super pod is gone."""
    await io.delete_tenant("Pod", v_pod, grace=0)


async def before_create(io: KindIO, v_pod: Obj) -> bool:
    """A refused pod stays refused (told once); a bound pod whose super pod is gone (deleted or
    evicted) is lost, as on a failed node, and deleted: its controller makes a new one."""
    if object_uid(v_pod) in io.refused:
        return False
    if (v_pod.get("spec") or {}).get("nodeName") and was_scheduled(v_pod):
        await _delete_tenant_pod(io, v_pod)
        return False
    return True


async def prepare(io: KindIO, v_pod: Obj) -> None:
    """The pod's service-account token Secret, when the pod mounts a token or its namespace."""
    if needs_token(v_pod):
        await ensure_token(io, v_pod["metadata"]["namespace"], service_account(v_pod))


POD = Kind(kind="Pod", resource=resources.PODS, to_super=to_super, synced=synced, slim_tenant=slim_tenant,
           super_extras=super_extras, patch_update=patch_update, upward=upward, check=violations,
           patch_type="strategic", down_fingerprint=down_fingerprint, upward_idle=upward_idle, upward_echo=True,
           context=context, before_create=before_create, prepare=prepare, on_super_gone=_delete_tenant_pod,
           tenant_grace=True, tenant_node=bound_node)
