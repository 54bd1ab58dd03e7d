"""A Syncer with one served tenant and no apiserver, and a drain of its queue, for engine unit tests.

Why: the enqueue and echo tests drive the engine's pure queueing paths
(``enqueue_all``, ``routing.enqueue_super``, the tenant handlers) without any I/O;
each needs the same offline Syncer with one synced tenant and a way to take
every key off the queue, so they share these two helpers.
"""

from __future__ import annotations

from typing import cast

from syncer.engine import Syncer, TenantRuntime
from syncer.queue import SyncKey
from syncer.resources.base import NO_RULES, Kind, MetadataRules, TranslateContext
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from vcluster import naming
from vcluster.kube import ApiClient

KEY = naming.cluster_key("acme", "u1")


def offline_syncer(
    *, info: TenantInfo | None = None, metadata: MetadataRules = NO_RULES, kinds: tuple[Kind, ...] = (),
    served: bool = True,
) -> tuple[Syncer, TenantRuntime]:
    """A Syncer and the synced runtime of tenant ``acme`` (``KEY``) with the given TenantInfo, rules and kinds.

    ``served=False`` leaves the runtime out of ``syncer.tenants`` (the caller adds it), so super
    events applied before that queue nothing for the tenant.
    """
    syncer = Syncer(cast(ApiClient, object()), StaticTenantSource(), settings=SyncerSettings())
    rt = TenantRuntime(info=info or TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig=""),
                       api=cast(ApiClient, object()), kinds=kinds,
                       ctx=TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u1", metadata=metadata))
    rt.synced.set()
    if served:
        syncer.tenants[KEY] = rt
    return syncer, rt


def drain(syncer: Syncer) -> list[SyncKey]:
    """Every key on the queue, in the order the workers would take them (each marked done and forgotten)."""
    out = []
    while (item := syncer.queue.get_nowait()) is not None:
        key = item[0]
        syncer.queue.done(key)
        syncer.queue.forget(key)
        out.append(key)
    return out
