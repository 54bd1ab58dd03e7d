"""Namespaces: every tenant namespace becomes a prefixed super namespace.

Why: the super namespace is the tenant's blast radius in the shared cluster;
its name comes from :func:`vcluster.naming.super_namespace`, its labels say
whose it is (and carry the pod-security level of the tenant's policy), and
its annotation maps it back to the tenant namespace.  The tenant namespace's
own labels are copied under :func:`vcluster.naming.tenant_label_key` keys, so
that translated NetworkPolicy namespace selectors on them work, while a
tenant label can never pose as a super-cluster one (pod security, ours).
Once a super namespace is created, its isolation policy objects (quota,
limit range, network policy) are created in it (the ``after_create`` hook).
"""

from __future__ import annotations

import contextlib

from syncer.resources.base import Kind, KindIO, Obj, TranslateContext, meta_synced, metadata_patch
from tenant_crd.models import IsolationSpec, SpecError, TenantSpec
from vcluster import naming
from vcluster.kube import AlreadyExists, resources
from vcluster.policy import host_port, namespace_labels, policy_objects

#: Added by the apiserver to every namespace.
_AUTO_LABELS = frozenset({"kubernetes.io/metadata.name"})


def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
    meta = v_obj["metadata"]
    # the tenant's own labels, under keys of their own family (NetworkPolicy namespace selectors)
    labels = {naming.tenant_label_key(k): v for k, v in (meta.get("labels") or {}).items()
              if k not in _AUTO_LABELS and not ctx.metadata.super_owned(k)}
    labels.update(naming.owner_labels(ctx.key, ctx.tenant_name))
    labels[naming.LABEL_NAMESPACE_ROLE] = naming.ROLE_WORKLOAD
    labels[naming.LABEL_TENANT_NAMESPACE] = meta["name"]  # translated NetworkPolicies select on it
    labels.update(namespace_labels(IsolationSpec(pod_security=ctx.policy.pod_security)))
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": naming.super_namespace(ctx.key, meta["name"]),
            "labels": labels,
            "annotations": {
                naming.ANN_CLUSTER_KEY: ctx.key,
                naming.ANN_TENANT_NAME: ctx.tenant_name,
                naming.ANN_TENANT_UID: ctx.tenant_uid,
                naming.ANN_TENANT_NAMESPACE: meta["name"],
                naming.ANN_OBJECT_NAME: meta["name"],
                naming.ANN_OBJECT_UID: meta.get("uid", ""),
            },
        },
    }


def synced(obj: Obj) -> Obj:
    return meta_synced(obj, ignore_labels=_AUTO_LABELS)


def patch_update(desired: Obj, p_slim: Obj) -> Obj:
    have = dict(p_slim)
    meta = dict(have.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _AUTO_LABELS}
    have["metadata"] = meta
    return {"metadata": metadata_patch(desired, have)}


async def apply_policy(io: KindIO, p_ns: Obj) -> None:
    """The tenant's isolation policy objects in a super namespace just created (the operator keeps them
    current afterwards); a spec that does not parse is the operator's to report."""
    if not io.tenant_spec:
        return
    try:
        isolation = TenantSpec.from_dict(io.tenant_spec).isolation
    except SpecError:
        return
    ctx = io.ctx
    apiserver = (ctx.apiserver_host, int(ctx.apiserver_port)) if ctx.apiserver_host and ctx.apiserver_port else None
    for obj in policy_objects(isolation, super_namespace=p_ns["metadata"]["name"], cluster_key=ctx.key,
                              tenant_name=ctx.tenant_name, apiserver=apiserver, dns=host_port(ctx.dns_endpoint)):
        with contextlib.suppress(AlreadyExists):
            await io.super_api.create(resources.BY_KIND[obj["kind"]], obj)


NAMESPACE = Kind(kind="Namespace", resource=resources.NAMESPACES, to_super=to_super, synced=synced,
                 patch_update=patch_update, after_create=apply_policy)
