"""Services down (without cluster IPs and node ports), their super cluster IP and load balancer up.

Why: a tenant Service must get a real cluster IP in the super cluster so
that super pods can reach it; the tenant learns that IP through the
:data:`vcluster.naming.ANN_SUPER_CLUSTER_IP` annotation.  IPs and node ports
allocated by the tenant apiserver mean nothing in the super cluster, so they
are dropped and the super cluster allocates its own.  What a Service may
expose beyond the super cluster (NodePort, LoadBalancer, externalIPs,
ExternalName) is the admin's to allow (:func:`vcluster.policy.check_service`):
a refused Service never goes down, also when an allowed one is changed into
it (``recheck``).  An allowed LoadBalancer Service gets the super load balancer's
``status.loadBalancer.ingress`` copied up, so the tenant sees its address.
"""

from __future__ import annotations

import copy

from syncer.resources.base import Kind, Obj, TranslateContext, UpAction, meta_synced, super_metadata
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import check_service

_DROP = ("clusterIP", "clusterIPs", "healthCheckNodePort", "ipFamilies", "ipFamilyPolicy", "externalIPs")


def skip(v_obj: Obj) -> bool:
    meta = v_obj["metadata"]
    return bool(meta.get("namespace") == "default" and meta.get("name") == "kubernetes")


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    spec = copy.deepcopy(v_obj.get("spec") or {})
    for f in _DROP:
        if f != "externalIPs" or not ctx.policy.external_ips:
            spec.pop(f, None)
    ports = []
    for v_port in spec.get("ports") or []:
        port = dict(v_port)
        port.pop("nodePort", None)
        ports.append(port)
    if ports:
        spec["ports"] = ports
    if spec.get("clusterIP") is None and (v_obj.get("spec") or {}).get("clusterIP") == "None":
        spec["clusterIP"] = "None"  # headless stays headless
    if spec.get("type") == "ExternalName" and isinstance(spec.get("externalName"), str):
        spec["externalName"] = super_external_name(spec["externalName"], ctx.key, ctx.cluster_domain)
    return {"apiVersion": "v1", "kind": "Service", "metadata": super_metadata(v_obj, ctx, super_namespace=ns),
            "spec": spec}


def super_external_name(target: str, key: str, domain: str) -> str:
    """An ExternalName target in the tenant's cluster domain, named as the super cluster has it (pure).

    ``web.shop.svc.<domain>`` means the tenant's Service ``web`` in ``shop`` (and
    ``db-0.db.shop.svc...`` its StatefulSet pod): the tenant DNS answers the alias' CNAME and
    CoreDNS resolves an in-zone target inside its ``kubernetes`` plugin, past the rewrite that
    maps tenant names to super namespaces, so the target must already be the super name (the
    answer rewrite maps it back).  Anything else (a name outside the domain, a label that is not
    a DNS label) is left as the tenant wrote it; a target naming a super namespace, e.g. another
    tenant's, becomes a namespace of this tenant that cannot exist.
    """
    suffix = f".svc.{domain}"
    name = target.rstrip(".")
    if not name.endswith(suffix):
        return target
    *names, namespace = name[: -len(suffix)].split(".")
    if not names or not all(naming.is_dns_label(p) for p in (*names, namespace)):
        return target
    return f"{'.'.join(names)}.{naming.super_namespace(key, namespace)}{suffix}"


def synced(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    ports = [
        (p.get("name", ""), p.get("port"), p.get("protocol", "TCP"), p.get("targetPort", p.get("port")))
        for p in spec.get("ports") or []
    ]
    out = meta_synced(obj)
    out["spec"] = {"selector": spec.get("selector") or {}, "ports": ports, "type": spec.get("type", "ClusterIP"),
                   "headless": spec.get("clusterIP") == "None", "externalName": spec.get("externalName")}
    return out


def super_extras(p_obj: Obj) -> Obj:
    out: Obj = {"clusterIP": (p_obj.get("spec") or {}).get("clusterIP")}
    ingress = ((p_obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    if ingress:
        out["lbIngress"] = ingress  # what the super cluster's load-balancer controller assigned
    return out


def upward(v_obj: Obj, p_slim: Obj) -> list[UpAction]:
    out = []
    ip = p_slim.get("clusterIP")
    have = ((v_obj.get("metadata") or {}).get("annotations") or {}).get(naming.ANN_SUPER_CLUSTER_IP)
    if ip and ip != have:
        out.append(UpAction("patch", {"metadata": {"annotations": {naming.ANN_SUPER_CLUSTER_IP: ip}}}))
    # A LoadBalancer Service (only synced when the admin allows them) shows the super load balancer's
    # addresses, as it would in a cluster of its own; gone from the super one, gone from the tenant's.
    if (v_obj.get("spec") or {}).get("type") == "LoadBalancer":
        want = p_slim.get("lbIngress") or None
        current = ((v_obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or None
        if want != current:
            out.append(UpAction("status", {"status": {"loadBalancer": {"ingress": want}}}))
    return out


def check(v_obj: Obj, ctx: TranslateContext) -> list[str]:
    return check_service(v_obj.get("spec") or {}, ctx.policy)


def has_selector(v_service: Obj) -> bool:
    return bool((v_service.get("spec") or {}).get("selector"))


#: A Service change queues its Endpoints too: whether they are synced depends on the selector.
SERVICE = Kind(kind="Service", resource=resources.SERVICES, to_super=to_super, synced=synced, skip=skip,
               super_extras=super_extras, upward=upward, also_queue=("Endpoints",), check=check,
               recheck=True)
