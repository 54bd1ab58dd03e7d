"""ConfigMaps, Secrets and ServiceAccounts: copied down as they are.

Why one module for three kinds: their translation is the same (metadata
mapped, payload copied; Secret names the syncer reserves for tokens
refused); what differs is the payload fields and which system objects the
super cluster already has its own of.  Each is still its own :class:`~syncer.resources.base.Kind` in the registry.
A ServiceAccount that goes takes its token Secret with it (its ``on_gone``
hook); token Secrets are not the Secret kind's to sync (``foreign_super``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from syncer.resources.base import Kind, KindIO, Obj, TranslateContext, meta_synced, super_metadata
from syncer.resources.tokens import delete_token, is_token_secret
from vcluster import naming
from vcluster.kube import resources


def _payload_kind(kind: str, resource: resources.Resource, fields: tuple[str, ...], skip_names: frozenset[str],
                  skip_types: frozenset[str] = frozenset(), *,
                  check: Callable[[Obj, TranslateContext], list[str]] | None = None) -> Kind:
    def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
        ns = naming.super_namespace(ctx.key, v_obj["metadata"]["namespace"])
        out: Obj = {"apiVersion": "v1", "kind": kind, "metadata": super_metadata(v_obj, ctx, super_namespace=ns)}
        for f in fields:
            if f in v_obj:
                out[f] = v_obj[f]
        return out

    def synced(obj: Obj) -> Obj:
        out = meta_synced(obj)
        for f in fields:
            out[f] = obj.get(f)
        return out

    def skip(v_obj: Obj) -> bool:
        return v_obj["metadata"].get("name") in skip_names or v_obj.get("type") in skip_types

    return Kind(kind=kind, resource=resource, to_super=to_super, synced=synced, skip=skip, check=check)


def check_secret(v_obj: Obj, _ctx: TranslateContext) -> list[str]:
    """A tenant Secret must not take a token Secret's name (the pod would mount the tenant's data as
    its service-account token, or the token would overwrite the tenant's Secret)."""
    name = v_obj["metadata"].get("name", "")
    if naming.is_reserved_secret_name(name):
        return [f"Secret names starting with {naming.TOKEN_SECRET_PREFIX!r} are reserved for the syncer's "
                "service-account tokens in the super cluster; rename the Secret"]
    return []


#: ``kube-root-ca.crt`` is the super cluster's own in every namespace; pods get the tenant CA another way.
CONFIGMAP = _payload_kind("ConfigMap", resources.CONFIGMAPS, ("data", "binaryData", "immutable"),
                          frozenset({"kube-root-ca.crt"}))
#: Legacy token Secrets are the tenant's credentials for the tenant apiserver; pods get tokens another way.
#: The syncer's own token Secrets (for pods) are left to the pods' and service accounts' hooks.
SECRET = dataclasses.replace(
    _payload_kind("Secret", resources.SECRETS, ("data", "type", "immutable"), frozenset(),
                  frozenset({"kubernetes.io/service-account-token"}), check=check_secret),
    foreign_super=is_token_secret,
)

#: ``default`` exists in every super namespace already (the super controller-manager makes it).
_SA_SKIP = frozenset({"default"})


async def service_account_gone(io: KindIO, ns: str, name: str) -> None:
    """The token Secret of a service account that is gone (``default`` is the super cluster's own)."""
    if name not in _SA_SKIP:
        await delete_token(io, ns, name)


SERVICEACCOUNT = dataclasses.replace(
    _payload_kind("ServiceAccount", resources.SERVICEACCOUNTS, ("automountServiceAccountToken",), _SA_SKIP),
    on_gone=service_account_gone,
)
