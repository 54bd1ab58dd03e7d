"""NetworkPolicies: tenant policies rewritten so they can only ever mean the tenant's own pods.

Why: a NetworkPolicy in a super namespace works on the super pods there, so
pod selectors need no change; but namespace selectors in a tenant policy
mean *tenant* namespaces, and copied as they are they would select super
namespaces of anybody.  Policies are additive, so a careless rule could open
a tenant's pods to every other tenant.  The rules here:

* every ``namespaceSelector`` is ANDed with the tenant's cluster-key label;
  ``kubernetes.io/metadata.name`` becomes the tenant-namespace label
  (:data:`vcluster.naming.LABEL_TENANT_NAMESPACE`, set on every synced super
  namespace); every other key ``k`` becomes :func:`vcluster.naming.tenant_label_key`
  of ``k``, under which the syncer copies the tenant namespace's own labels;
* an ingress rule without peers (from anywhere) becomes "from every
  namespace of this tenant";
* ``ipBlock`` ingress peers are refused (they would match other tenants'
  pod IPs); egress is kept as written apart from namespace selectors
  (other tenants are protected by their own isolation policy).
"""

from __future__ import annotations

import copy

from syncer.resources.base import Kind, Obj, TranslateContext, meta_synced, super_metadata
from vcluster import naming
from vcluster.kube import resources
from vcluster.policy import tenant_namespace_selector


def check(v_obj: Obj, _ctx: TranslateContext) -> list[str]:
    out = []
    for i, rule in enumerate((v_obj.get("spec") or {}).get("ingress") or []):
        for peer in rule.get("from") or []:
            if "ipBlock" in peer:
                out.append(f"ingress[{i}]: ipBlock peers could admit other tenants' pods and are not allowed")
    return out


def namespace_selector(v_selector: Obj, key: str) -> Obj:
    """A tenant namespace selector as a selector of the same tenant's super namespaces."""
    return tenant_namespace_selector(v_selector, key)


def _peers(peers: list[Obj], key: str) -> list[Obj]:
    out = []
    for v_peer in peers:
        peer = dict(v_peer)
        if "namespaceSelector" in peer:
            peer["namespaceSelector"] = namespace_selector(peer["namespaceSelector"] or {}, key)
        out.append(peer)
    return out


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
    spec = copy.deepcopy(v_obj.get("spec") or {})
    tenant_wide = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: ctx.key}}}
    if "ingress" in spec:
        rules = []
        for rule in spec["ingress"] or []:
            r = dict(rule)
            peers = [p for p in r.get("from") or [] if "ipBlock" not in p]
            r["from"] = _peers(peers, ctx.key) if peers else [tenant_wide]
            rules.append(r)
        spec["ingress"] = rules
    if "egress" in spec:
        rules = []
        for rule in spec["egress"] or []:
            r = dict(rule)
            if r.get("to"):
                r["to"] = _peers(r["to"], ctx.key)
            rules.append(r)
        spec["egress"] = rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": super_metadata(v_obj, ctx, super_namespace=ns), "spec": spec}


def synced(obj: Obj) -> Obj:
    out = meta_synced(obj)
    out["spec"] = obj.get("spec") or {}
    return out


NETWORKPOLICY = Kind(kind="NetworkPolicy", resource=resources.NETWORKPOLICIES, to_super=to_super, synced=synced,
                     check=check)
