"""The syncer's engine: tenants come and go, workers take keys off the queue and dispatch them.

Why: this is the loop that owns the syncer's tasks and the order in which
they start and stop; everything else is a module of its own, each taking the
:class:`~syncer.shared.Shared` state:

* :mod:`syncer.routing` turns watch events into queue keys (echo suppression);
* :mod:`syncer.downward` is the three-way branch (create, update, delete),
  guarded by the tenant object's uid; :mod:`syncer.upward` writes back;
* :mod:`syncer.extra_kinds` starts and drops Tenant ``spec.sync.extraKinds``;
* :mod:`syncer.patrol` is the periodic full diff.

The engine names no kind: what is special about a kind is in its module
under :mod:`syncer.resources` (pure functions and hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import structlog

from syncer import downward, extra_kinds, reporting, routing, upward
from syncer import patrol as patrol_mod
from syncer.informer import Informer
from syncer.metrics import Metrics
from syncer.mirror import Mirror
from syncer.nodes import NodeProvider, NullNodeProvider
from syncer.queue import DOWN, FairQueue, SyncKey
from syncer.resources import REGISTRY, tokens
from syncer.resources import extra as extra_mod
from syncer.resources.base import Kind, MetadataRules, Obj, RetryLater, TranslateContext, cluster_key_of
from syncer.routing import EVENT
from syncer.runtime import TenantRuntime
from syncer.settings import SyncerSettings
from syncer.shared import Shared
from syncer.tenant_status import TenantStatusWriter
from syncer.tenants import TenantDown, TenantInfo, TenantSource, TenantUp, Update, update_of
from vcluster import clock, quota
from vcluster.kube import ApiClient, ApiError, ClientConfig, NotFound, resources

__all__ = ["EVENT", "RetryLater", "Syncer", "TenantRuntime"]

log = structlog.get_logger(__name__)
#: Seconds a tenant client replaced by a reconnect stays open for the requests still under way on it.
RETIRED_CLIENT_SECONDS = 60.0


def _context(info: TenantInfo, config: ClientConfig) -> TranslateContext:
    """The translation context of a served tenant (pure)."""
    url = urlsplit(config.server)
    return TranslateContext(
        key=info.key, tenant_name=info.name, tenant_uid=info.uid, policy=info.policy,
        apiserver_host=url.hostname or "", apiserver_port=str(url.port or 443), dns_ip=info.dns_ip,
        cluster_domain=info.cluster_domain,
        dns_endpoint=info.dns_endpoint, operator_dns=bool(info.dns_ip),
        metadata=MetadataRules.from_prefixes(opaque=info.sync.opaque_metadata_prefixes,
                                             transparent=info.sync.transparent_metadata_prefixes),
    )


class Syncer:
    """Serves every tenant the source announces."""

    def __init__(
        self,
        super_api: ApiClient,
        source: TenantSource,
        *,
        settings: SyncerSettings | None = None,
        nodes: NodeProvider | None = None,
        metrics: Metrics | None = None,
        kinds: tuple[Kind, ...] = REGISTRY,
        client_factory: Callable[[ClientConfig], ApiClient] = ApiClient,
    ) -> None:
        settings = settings or SyncerSettings()
        queue = FairQueue(weight=settings.weight, backoff_base=settings.backoff_base,
                          backoff_max=settings.backoff_max, tenant_limit=settings.tenant_limit(),
                          up_share=settings.up_share, resync_share=settings.resync_share)
        self.shared = shared = Shared(
            settings=settings, super_api=super_api, queue=queue,
            metrics=metrics or Metrics(depths=queue.depths), nodes=nodes or NullNodeProvider(), kinds=kinds,
        )
        self.source = source
        #: How a tenant's client is made from its kubeconfig (tests give clients of fake apiservers).
        self._client_factory = client_factory
        self._detaching: dict[str, asyncio.Task[None]] = {}
        for k in kinds:
            shared.super_informers[k.kind] = extra_kinds.super_informer(shared, k, f"super/{k.resource.plural}")
        self.event_informer = Informer(
            super_api, resources.EVENTS, handler=lambda event, p_event: routing.on_super_event(shared, event, p_event),
            store=False, watch_timeout=settings.watch_timeout, name="super/events", remote=self.metrics.remote,
        )
        self._lease_lost = False
        self.ready = asyncio.Event()
        #: Public super StorageClasses/PriorityClasses copied into every synced tenant.
        self.mirror = Mirror(super_api, resync_period=max(settings.patrol_period, 10.0),
                             watch_timeout=settings.watch_timeout)
        self._latencies: dict[str, Any] = {}

    # The shared state under the names the syncer's users and tests know.
    @property
    def settings(self) -> SyncerSettings:
        return self.shared.settings

    @property
    def super_api(self) -> ApiClient:
        return self.shared.super_api

    @property
    def queue(self) -> FairQueue:
        return self.shared.queue

    @property
    def metrics(self) -> Metrics:
        return self.shared.metrics

    @property
    def nodes(self) -> NodeProvider:
        return self.shared.nodes

    @property
    def tenants(self) -> dict[str, TenantRuntime]:
        return self.shared.tenants

    @property
    def super_informers(self) -> dict[str, Informer]:
        return self.shared.super_informers

    # ---- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled; tenants are added and removed as the source says."""
        tasks = self.shared.tasks
        try:
            for name, inf in [*self.super_informers.items(), ("events", self.event_informer)]:
                tasks.append(asyncio.create_task(inf.run(), name=f"super-informer-{name}"))
            await asyncio.gather(*(inf.synced.wait() for inf in self.super_informers.values()))
            tasks.extend(asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.settings.workers))
            tasks.append(asyncio.create_task(self.nodes.run(), name="node-provider"))
            tasks.append(asyncio.create_task(self.mirror.run(), name="mirror"))
            if self.settings.patrol_period > 0:
                tasks.append(asyncio.create_task(self._patrol_loop(), name="patrol"))
            if self.settings.status_period > 0:  # the Synced condition on each served Tenant
                tasks.append(asyncio.create_task(reporting.run(self.shared, TenantStatusWriter(self.super_api),
                                                               period=self.settings.status_period), name="status"))
            tasks.append(asyncio.create_task(self._token_loop(), name="token-renewal"))
            if self.settings.quota_status_period > 0:
                tasks.append(asyncio.create_task(self._quota_status_loop(), name="quota-status"))
            self.ready.set()
            log.info("syncer.started", workers=self.settings.workers)
            async for change in self.source.changes():
                try:  # one tenant's broken input must not stop the loop that serves every tenant
                    if isinstance(change, TenantUp):
                        await self.add_tenant(change.info)
                    elif isinstance(change, TenantDown):
                        # the tenant-side clean-up goes on in the background: a hung tenant apiserver
                        # must not hold up the next tenant's change
                        await self.remove_tenant(change.key, reason=change.reason, wait=False)
                except Exception:
                    log.exception("syncer.tenant_change_failed", change=type(change).__name__)
        finally:
            await self.close(cleanup_nodes=not self._lease_lost)

    def lease_lost(self) -> None:
        """Leadership is gone: the coming stop must not write to tenants (no virtual-node clean-up).

        Call before cancelling :meth:`run`; the new leader owns the tenants' nodes from now on.
        """
        self._lease_lost = True

    def adopt_task(self, task: asyncio.Task[Any]) -> None:
        """A long-running task of the syncer's own, cancelled by :meth:`close` before tenants are detached."""
        self.shared.tasks.append(task)

    async def close(self, *, cleanup_nodes: bool = True) -> None:
        """Stop every writer first (workers, patrol, mirror, node provider, tenant tasks), then
        detach the tenants; ``cleanup_nodes=False`` leaves their virtual nodes alone (a replica
        that lost the Lease must not write to tenants any more)."""
        writers = [*self.shared.tasks, *(t for rt in self.tenants.values() for t in rt.tasks)]
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        self.shared.tasks.clear()
        await asyncio.gather(
            *(self.remove_tenant(key, reason="syncer stopping", cleanup_nodes=cleanup_nodes)
              for key in list(self.tenants)),
            return_exceptions=True,
        )
        # clean-ups of tenants removed earlier (each bounded by the node provider, VC_VNODE_DETACH_TIMEOUT);
        # a replica that lost the Lease stops them: it must not write to tenants any more
        pending = list(self._detaching.values())
        if not cleanup_nodes:
            for task in pending:
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.queue.close()

    async def add_tenant(self, info: TenantInfo) -> None:
        """Serve ``info``; a tenant served already is changed in place where possible (:func:`update_of`):
        only a new Tenant object, apiserver address or extra-kinds list drops it and lists it anew."""
        old = self.tenants.get(info.key)
        if old is not None and old.info == info:
            return
        config = ClientConfig.from_kubeconfig(
            info.kubeconfig, max_connections=self.settings.max_connections, user_agent="vc-syncer"
        )
        if old is not None:
            update = update_of(old.info, info, old_server=old.api.config.server, new_server=config.server)
            if not update.relist:
                await self._update_tenant(old, info, config, update)
                return
            await self.remove_tenant(info.key, reason=f"tenant changed ({update.relist})", wait=False)
            self.metrics.tenant_updates.labels("relist").inc()
        api = self._client_factory(config)
        rt = TenantRuntime(info=info, api=api, ctx=_context(info, config), kinds=self.shared.kinds)
        self.tenants[info.key] = rt
        for kind in self.shared.kinds:
            inf = extra_kinds.tenant_informer(self.shared, rt, kind, f"{info.key}/{kind.resource.plural}")
            rt.informers[kind.kind] = inf
            rt.tasks.append(asyncio.create_task(inf.run(), name=f"informer-{info.key}-{kind.kind}"))
        rt.tasks.append(asyncio.create_task(self._start_tenant(rt), name=f"start-{info.key}"))
        if info.sync.extra_kinds:
            rt.tasks.append(asyncio.create_task(extra_kinds.run_for(self.shared, rt), name=f"extra-kinds-{info.key}"))
        log.info("syncer.tenant_added", tenant=info.key)

    async def _update_tenant(self, rt: TenantRuntime, info: TenantInfo, config: ClientConfig, update: Update) -> None:
        """Serve the changed ``info`` with the runtime kept: caches, echo memos and queue stay."""
        key = info.key
        rt.info = info
        if update.reconnect:
            # New credentials (a renewed client certificate, a rotated token) for the same apiserver: the
            # informers watch on from their resourceVersions through the new client, no list.
            retired, rt.api = rt.api, self._client_factory(config)
            names = {f"informer-{key}-{kind}" for kind in rt.informers}
            restart = [t for t in rt.tasks if t.get_name() in names]
            for task in restart:
                task.cancel()
            await asyncio.gather(*restart, return_exceptions=True)
            rt.tasks[:] = [t for t in rt.tasks if t not in restart]
            for kind, inf in rt.informers.items():
                inf.api = rt.api
                rt.tasks.append(asyncio.create_task(inf.run(), name=f"informer-{key}-{kind}"))
            if rt.synced.is_set():  # else _start_tenant hands the new client over when the lists are in
                self.nodes.replace_client(key, rt.api)
                self.mirror.attach(key, rt.api)
            # requests already under way finish on the old client; it is closed a while later
            rt.retired.append(retired)
            rt.tasks.append(asyncio.create_task(self._close_retired(rt, retired), name=f"retire-{key}"))
            self.metrics.tenant_updates.labels("reconnect").inc()
        if update.context:
            rt.ctx = _context(info, config)
            if rt.synced.is_set():
                self.enqueue_all(rt)  # compared once with the new context; nothing is listed
            self.metrics.tenant_updates.labels("context").inc()
        if update.quota and rt.quota_waiting:
            waiting, rt.quota_waiting = rt.quota_waiting, set()
            for waiting_key in waiting:
                self.queue.add(waiting_key)
        if not (update.reconnect or update.context or update.quota):
            self.metrics.tenant_updates.labels("kept").inc()
        log.info("syncer.tenant_updated", tenant=key, reconnect=update.reconnect, context=update.context,
                 quota=update.quota)

    async def _close_retired(self, rt: TenantRuntime, api: ApiClient) -> None:
        await asyncio.sleep(RETIRED_CLIENT_SECONDS)
        if api in rt.retired:
            rt.retired.remove(api)
        await api.close()

    async def _start_tenant(self, rt: TenantRuntime) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in rt.informers.values()))
        detaching = self._detaching.get(rt.info.key)
        if detaching is not None:  # the same key served before (a relist): its nodes are let go of first
            await asyncio.wait([detaching])
        with contextlib.suppress(Exception):
            await self.nodes.attach_tenant(rt.info.key, rt.api, node_in_use=rt.node_in_use)
        rt.synced.set()
        rt.last_full_sync = clock.timestamp()
        self.mirror.attach(rt.info.key, rt.api)
        self.enqueue_all(rt)
        log.info("syncer.tenant_synced", tenant=rt.info.key,
                 objects={k: len(inf) for k, inf in rt.informers.items()})
        await extra_kinds.drop_all_unlisted(self.shared, rt)

    def enqueue_all(self, rt: TenantRuntime) -> None:
        """Queue every tenant object and every super object of the tenant (see :func:`routing.enqueue_all`)."""
        routing.enqueue_all(self.shared, rt)

    async def remove_tenant(self, key: str, *, reason: str, cleanup_nodes: bool = True, wait: bool = True) -> None:
        """Stop serving ``key``: its tasks, queue keys and retries go at once; then the tenant-side
        clean-up (unused virtual nodes deleted in the tenant, clients closed), awaited, or with
        ``wait=False`` left running in the background (:attr:`detaching`): it talks to the tenant's
        apiserver, which may hang (bounded by the node provider: ``VC_VNODE_DETACH_TIMEOUT``)."""
        rt = self.tenants.pop(key, None)
        if rt is None:
            return
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        self.queue.drop_tenant(key)
        self.shared.retries.drop_tenant(key)
        self.mirror.detach(key)
        previous = self._detaching.get(key)
        cleanup = self._detach(rt, previous, cleanup_nodes=cleanup_nodes, reason=reason)
        if wait:
            await cleanup
            return
        task = asyncio.create_task(cleanup, name=f"detach-{key}")
        self._detaching[key] = task
        task.add_done_callback(lambda t: self._detaching.pop(key) if self._detaching.get(key) is t else None)

    @property
    def detaching(self) -> dict[str, asyncio.Task[None]]:
        """Tenant-side clean-ups of removed tenants still running, by cluster key."""
        return self._detaching

    async def _detach(self, rt: TenantRuntime, previous: asyncio.Task[None] | None, *, cleanup_nodes: bool,
                      reason: str) -> None:
        key = rt.info.key
        if previous is not None:  # one clean-up of a key at a time, in order
            await asyncio.wait([previous])
        try:
            with contextlib.suppress(Exception):
                await self.nodes.detach_tenant(key, cleanup=cleanup_nodes)
        finally:
            for retired in rt.retired:
                await retired.close()
            await rt.api.close()
            log.info("syncer.tenant_removed", tenant=key, reason=reason)

    # ---- workers ---------------------------------------------------------------------
    async def _worker(self) -> None:
        queue = self.queue
        latency = self.metrics.latency
        latencies = self._latencies
        while True:
            key, queued_at = await queue.get()
            try:
                await self.reconcile(key)
                queue.forget(key)
                self.shared.retries.succeeded(key)
            except Exception as exc:  # logged per state change of the key (syncer.retries)
                self.metrics.errors.labels(key.kind, key.direction).inc()
                delay = queue.retry(key)
                self.shared.retries.failed(key, exc, failures=queue.failures(key), retry_in=delay,
                                           unexpected=not isinstance(exc, (RetryLater, ApiError, OSError)))
            finally:
                queue.done(key)
                child = latencies.get(key.tenant)
                if child is None:
                    child = latencies[key.tenant] = latency.labels(key.tenant)
                child.observe(time.monotonic() - queued_at)

    async def reconcile(self, key: SyncKey) -> None:
        """One key: a super Event to copy up, or one object of one kind, downward or upward."""
        shared = self.shared
        rt = shared.tenants.get(key.tenant)
        if rt is None or not rt.synced.is_set():
            return  # not listed yet: every key is queued once it is (a worker never waits on a tenant)
        if key.kind == EVENT:
            await upward.event_up(shared, rt, key)
            return
        kind = shared.by_kind[key.kind]
        if kind.kind in shared.extra_kinds and kind.kind not in rt.informers:
            # An extra kind this tenant does not sync: not started yet, or no longer listed (copy deleted).
            if key.direction == DOWN and not extra_mod.is_listed(kind.resource, rt.info.sync.extra_kinds):
                await downward.delete_unlisted(shared, rt, kind, key)
            return
        if key.direction == DOWN:
            await downward.down(shared, rt, kind, key)
        else:
            await upward.up(shared, rt, kind, key)

    # ---- patrol --------------------------------------------------------------------------
    async def _patrol_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.patrol_period)
            try:
                self.patrol()
            except Exception:
                log.exception("patrol.failed")

    async def _quota_status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.quota_status_period)
            for rt in list(self.tenants.values()):
                try:
                    await self.report_quota(rt)
                except (ApiError, OSError) as exc:
                    log.warning("quota.status_failed", tenant=rt.info.key, error=str(exc))

    async def _token_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.token_refresh_period)
            try:
                await self.renew_tokens()
            except Exception:
                log.exception("tokens.renewal_failed")

    async def renew_tokens(self) -> int:
        """Renew every served tenant's pod tokens that are due (:func:`syncer.resources.tokens.renew_due`)."""
        inf = self.super_informers.get("Secret")
        if inf is None:
            return 0
        by_tenant: dict[str, list[Obj]] = {}
        for _ref, p_slim in inf.items():
            if tokens.is_token_secret(p_slim) and (key := cluster_key_of(p_slim)) in self.tenants:
                by_tenant.setdefault(key, []).append(p_slim)
        renewed = 0
        for key, p_slims in by_tenant.items():
            rt = self.tenants.get(key)
            if rt is None:
                continue
            try:
                renewed += await tokens.renew_due(downward.TenantIO(self.shared, rt), p_slims, now=clock.now(),
                                                  refresh_at=self.settings.token_refresh_at)
            except (ApiError, OSError) as exc:
                log.warning("tokens.renewal_failed", tenant=key, error=str(exc))
        return renewed

    async def report_quota(self, rt: TenantRuntime) -> bool:
        """Write the tenant's usage of its quota to ``status.quota.used`` if it changed; True if written."""
        limits = rt.info.quota
        if limits is None:
            return False
        used = quota.status_used(self.shared.ledgers.get(rt.info.key), limits.names)
        if used == rt.quota_reported:
            return False
        old = rt.quota_reported
        if old is None:  # names a previous incarnation wrote and the quota no longer has are removed
            tenant = await self.super_api.get_or_none(resources.TENANTS, rt.info.name)
            old = (((tenant or {}).get("status") or {}).get("quota") or {}).get("used") or {}
        patch = {"status": {"quota": {"used": {**{k: None for k in old if k not in used}, **used}}}}
        try:
            await self.super_api.patch(resources.TENANTS, rt.info.name, patch, subresource="status")
        except NotFound:
            return False
        rt.quota_reported = used
        return True

    def patrol(self) -> dict[str, int]:
        """One full diff of every kind of every synced tenant; differences are queued. Returns counts."""
        return patrol_mod.scan(self.shared)

    def tenant_object(self, rt: TenantRuntime, kind: Kind, ns: str, name: str) -> Obj | None:
        """The tenant object that should be synced (None if absent, skipped or filtered by its kind)."""
        return self.shared.tenant_object(rt, kind, ns, name)
