"""Service-account token Secrets in the super cluster: made for pods, removed with their account.

Why: a super pod must authenticate to the *tenant* apiserver as its tenant
service account.  The syncer asks the tenant's TokenRequest API for a token
and keeps it, with the tenant CA and namespace, in a super Secret named by
:func:`vcluster.naming.token_secret_name`, which the pod's translated
``kube-api-access`` volume mounts.  Two kinds need it: Pods make the Secret
(:func:`ensure_token`, their ``prepare`` hook) and ServiceAccounts remove it
(:func:`delete_token`, their ``on_gone`` hook); both reach the clusters only
through :class:`~syncer.resources.base.KindIO`.  Tokens are short-lived
(``VC_SYNCER_TOKEN_EXPIRATION``, an hour) and renewed in place once
``VC_SYNCER_TOKEN_REFRESH_AT`` of their validity has passed (:func:`renew_due`,
run by the engine every ``VC_SYNCER_TOKEN_REFRESH_PERIOD`` seconds).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from syncer.resources.base import KindIO, Obj, RetryLater, super_namespace
from vcluster import clock, naming
from vcluster.kube import AlreadyExists, NotFound, resources

#: Keys of the token Secret (the pod's translated volumes project them).
TOKEN_KEY, CA_KEY, NAMESPACE_KEY = "token", "ca.crt", "namespace"
#: The ``vc_syncer_operations_total`` kind label of token Secret writes.
COUNT_KIND = "ServiceAccountToken"
_SCRATCH = "tokens"


@dataclass(slots=True)
class _Tokens:
    """(tenant namespace, service account) whose token Secret exists, and one lock per pair."""

    have: set[tuple[str, str]] = field(default_factory=set)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)


def _tokens(io: KindIO) -> _Tokens:
    return cast(_Tokens, io.scratch.setdefault(_SCRATCH, _Tokens()))


def token_secret(*, key: str, tenant_name: str, namespace: str, service_account: str, token: str,
                 ca_pem: bytes, issued: str = "", expires: str = "") -> Obj:
    """The super Secret holding a tenant token (pure); ``issued``/``expires`` say when it is renewed."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": naming.token_secret_name(service_account), "namespace": super_namespace(key, namespace),
            "labels": naming.owner_labels(key, tenant_name),
            "annotations": {naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT: service_account, naming.ANN_CLUSTER_KEY: key,
                            naming.ANN_TENANT_NAMESPACE: namespace, naming.ANN_TOKEN_ISSUED: issued,
                            naming.ANN_TOKEN_EXPIRES: expires},
        },
        "data": {
            TOKEN_KEY: base64.b64encode(token.encode()).decode(),
            CA_KEY: base64.b64encode(ca_pem).decode(),
            NAMESPACE_KEY: base64.b64encode(namespace.encode()).decode(),
        },
    }


def is_token_secret(p_slim: Obj) -> bool:
    """Whether a super Secret is a token Secret (it belongs to a service account, not to the Secret kind)."""
    return naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT in ((p_slim.get("metadata") or {}).get("annotations") or {})


async def ensure_token(io: KindIO, ns: str, sa: str) -> None:
    """Make the token Secret of tenant service account ``ns/sa`` unless it exists."""
    tokens = _tokens(io)
    if (ns, sa) in tokens.have:
        return
    if io.super_get("Secret", super_namespace(io.ctx.key, ns), naming.token_secret_name(sa)) is not None:
        tokens.have.add((ns, sa))
        return
    async with tokens.locks.setdefault((ns, sa), asyncio.Lock()):
        if (ns, sa) in tokens.have:
            return
        token, issued, expires = await _request(io, ns, sa)
        secret = token_secret(key=io.ctx.key, tenant_name=io.ctx.tenant_name, namespace=ns, service_account=sa,
                              token=token, ca_pem=io.tenant_api.config.ca_pem or b"", issued=issued,
                              expires=expires)
        try:
            await io.create_super("Secret", secret, tenant_namespace=ns)
            io.count(COUNT_KIND, "down", "create")
        except AlreadyExists:
            pass
        tokens.have.add((ns, sa))


async def _request(io: KindIO, ns: str, sa: str) -> tuple[str, str, str]:
    """A new token of tenant service account ``ns/sa``: (token, issued, expires)."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": io.token_expiration}}
    issued = clock.timestamp()
    try:
        answer = await io.tenant_api.create(resources.SERVICEACCOUNTS, request, namespace=ns, name=sa,
                                            subresource="token")
    except NotFound:
        raise RetryLater(f"service account {ns}/{sa} not found in the tenant") from None
    status = answer["status"]
    return str(status["token"]), issued, str(status.get("expirationTimestamp") or "")


def _parse(stamp: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def renewal_due(p_slim: Obj, *, now: dt.datetime, refresh_at: float) -> bool:
    """Whether a token Secret's token is past ``refresh_at`` of its validity (pure).  A Secret without
    (readable) issue/expiry times -- one from before renewal existed, with a token of a year -- is due."""
    ann = (p_slim.get("metadata") or {}).get("annotations") or {}
    issued, expires = _parse(ann.get(naming.ANN_TOKEN_ISSUED)), _parse(ann.get(naming.ANN_TOKEN_EXPIRES))
    if issued is None or expires is None or expires <= issued:
        return True
    return now >= issued + (expires - issued) * refresh_at


async def renew_due(io: KindIO, p_slims: Iterable[Obj], *, now: dt.datetime, refresh_at: float) -> int:
    """Renew the tokens of this tenant's token Secrets that are due: a new TokenRequest, written into the
    same Secret (the kubelet refreshes the mounted file; clients re-read it).  Returns how many."""
    renewed = 0
    for p_slim in p_slims:
        if not is_token_secret(p_slim) or not renewal_due(p_slim, now=now, refresh_at=refresh_at):
            continue
        meta = p_slim["metadata"]
        ann = meta.get("annotations") or {}
        ns, sa = ann.get(naming.ANN_TENANT_NAMESPACE, ""), ann[naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT]
        async with _tokens(io).locks.setdefault((ns, sa), asyncio.Lock()):
            try:
                token, issued, expires = await _request(io, ns, sa)
            except RetryLater:
                continue  # the service account is gone: its Secret goes with it (delete_token)
            patch = {"metadata": {"annotations": {naming.ANN_TOKEN_ISSUED: issued, naming.ANN_TOKEN_EXPIRES: expires}},
                     "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()}}
            with contextlib.suppress(NotFound):
                await io.super_api.patch(resources.SECRETS, meta["name"], patch, namespace=meta.get("namespace"),
                                         decode=False)
                io.count(COUNT_KIND, "down", "update")
                renewed += 1
    return renewed


async def delete_token(io: KindIO, ns: str, sa: str) -> None:
    """Delete the token Secret of tenant service account ``ns/sa`` (if the syncer made one)."""
    _tokens(io).have.discard((ns, sa))
    p_secret = io.super_get("Secret", super_namespace(io.ctx.key, ns), naming.token_secret_name(sa))
    if p_secret is not None:
        await io.delete_super("Secret", p_secret)
