"""VirtualNodeManager: virtual Nodes in tenant control planes, kept alive and collected.

Why: a tenant pod is bound to the name of the super node it runs on, so that
Node must exist in the tenant's control plane, look healthy while the super
node is healthy (with a Lease, as a kubelet keeps it; tenants run no
node-lifecycle controller, so nothing taints or evicts when heartbeats stop),
turn NotReady when the super node is lost (the super cluster evicts), and go
away once nothing of the tenant runs there.  The syncer owns the tenants and calls this manager:

* ``await attach_tenant(key, tenant_client, node_in_use=...)`` when it starts
  serving a tenant (existing virtual nodes are adopted, so a restart loses
  nothing); ``node_in_use`` answers "is a tenant pod bound to this node?" from
  the syncer's pod cache (a dict lookup), so the heartbeat's idle check sends
  the tenant apiserver no LIST; when it answers None (cache not current) or is
  not given, the manager lists (``spec.nodeName=<node>``, limit 1): a stale
  cache must never get a node with pods deleted (the tenant's pod GC would
  then delete the pods);
* ``await ensure_node(key, node_name)`` before it binds a tenant pod to
  ``node_name``;
* ``await detach_tenant(key)`` when it stops serving one;
* ``run()`` in the background: watches super nodes, and runs each tenant's
  heartbeat (Lease renewals, status posts) and garbage collection.

Each tenant has its own loop task, so a slow or dead tenant apiserver never
delays another tenant's heartbeats.  A failed heartbeat is retried sooner
(back-off with jitter from 1 s up to the heartbeat period) and logged once
per outage (``virtual_node.heartbeat.down`` / ``.still_down`` / ``.back``,
``vc_remote_up{component="virtual-node-heartbeat",target=<key>}``); the
super node watch the same way (``virtual_node.super_watch.*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from vcluster import naming
from vcluster.backoff import BackoffPolicy, Outage, RemoteMetrics
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, ApiError, Gone, NotFound
from vcluster.kube import resources as r
from virtual_node import node as vnode
from virtual_node.settings import VirtualNodeSettings

log = structlog.get_logger(__name__)


#: Whether a tenant pod is bound to the node (by name), e.g. from the syncer's pod cache; None when the
#: answer source cannot tell now (not synced, relisting, the tenant apiserver down): the manager then asks
#: the tenant apiserver.
NodeInUse = Callable[[str], bool | None]


class VirtualNodeError(VClusterError):
    """A virtual node could not be provided (unknown tenant, tenant apiserver refused it)."""


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(slots=True)
class _VNode:
    """What we know of one virtual node in one tenant."""

    uid: str | None = None
    #: The status we last posted (to compare against) and when (monotonic).
    status: dict[str, Any] = field(default_factory=dict)
    status_posted_at: float = 0.0
    #: Monotonic time of the last ensure_node (a pod is about to be bound).
    ensured_at: float = 0.0
    #: Monotonic time since which no tenant pod is bound, or None.
    empty_since: float | None = None


@dataclass(slots=True)
class _Tenant:
    key: str
    client: ApiClient
    nodes: dict[str, _VNode] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    #: The tenant apiserver as the heartbeats see it (back-off, one log line per state change).
    outage: Outage | None = None
    #: The syncer's answer to "is a pod bound to this node?" (its pod cache); None: always list.
    node_in_use: NodeInUse | None = None


@dataclass(frozen=True, slots=True)
class _Metrics:
    nodes: Gauge
    heartbeat_failures: Counter
    collected: Counter
    pod_checks: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Metrics:
        return cls(
            nodes=Gauge("vc_virtual_nodes", "Virtual nodes per tenant", ["tenant"], registry=registry),
            heartbeat_failures=Counter(
                "vc_virtual_node_heartbeat_failures_total", "Failed lease/status writes per tenant",
                ["tenant"], registry=registry,
            ),
            collected=Counter(
                "vc_virtual_nodes_collected_total", "Virtual nodes deleted after the grace period",
                ["tenant"], registry=registry,
            ),
            pod_checks=Counter(
                "vc_virtual_node_pod_checks_total",
                "Checks whether a tenant pod is bound to a virtual node, by answer source (cache: the "
                "syncer's pod cache; list: a LIST to the tenant apiserver)",
                ["tenant", "source"], registry=registry,
            ),
        )


class VirtualNodeManager:
    """Virtual nodes of every attached tenant; see the module docstring for the protocol."""

    def __init__(
        self,
        super_client: ApiClient,
        settings: VirtualNodeSettings,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._super = super_client
        self._settings = settings
        self._clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self._metrics = _Metrics.create(self.registry)
        self._remote = RemoteMetrics.of(self.registry)
        self._tenants: dict[str, _Tenant] = {}
        self._super_nodes: dict[str, dict[str, Any]] = {}
        self._super_synced = asyncio.Event()

    # ---- the syncer's interface ---------------------------------------------------------
    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        """Start serving ``key``: adopt its existing virtual nodes and start its heartbeat loop.

        ``node_in_use`` (the syncer's pod cache) answers the idle check instead of a LIST whenever it
        does not answer None."""
        if key in self._tenants:
            await self.detach_tenant(key, cleanup=False)
        tenant = _Tenant(key=key, client=tenant_client, node_in_use=node_in_use)
        tenant.outage = Outage(
            logger=log.bind(tenant=key), event="virtual_node.heartbeat",
            policy=BackoffPolicy(initial=1.0, cap=self._settings.heartbeat_period, jitter=0.2),
            clock=self._clock, metrics=self._remote, component="virtual-node-heartbeat", target=key,
        )
        self._tenants[key] = tenant
        try:
            items, _ = await tenant_client.list_all(r.NODES, label_selector=f"{naming.LABEL_VIRTUAL_NODE}=true")
        except ApiError as exc:
            log.warning("virtual_node.adopt_failed", tenant=key, error=str(exc))
            items = []
        now = self._clock()
        for v_node in items:
            meta = v_node.get("metadata") or {}
            # Adopted nodes get a full grace period before they can be collected.
            name = str(meta["name"])
            tenant.nodes[name] = _VNode(uid=meta.get("uid"), status=v_node.get("status") or {}, ensured_at=now)
            # Labels and taints as for a node found at create (e.g. lifecycle taints left by a
            # controller-manager that still ran node-lifecycle).
            try:
                patch = vnode.metadata_patch(v_node, name, await self._super_node(name))
                if patch:
                    await tenant_client.patch(r.NODES, name, patch)
                    log.info("virtual_node.repaired", tenant=key, node=name)
            except ApiError as exc:
                log.warning("virtual_node.repair_failed", tenant=key, node=name, error=str(exc))
        self._metrics.nodes.labels(key).set(len(tenant.nodes))
        tenant.task = asyncio.get_running_loop().create_task(self._tenant_loop(tenant), name=f"vnode-{key}")
        log.info("virtual_node.tenant_attached", tenant=key, adopted=sorted(tenant.nodes))

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        """Heartbeats and node writes of ``key`` go through ``tenant_client`` from now on (new credentials)."""
        tenant = self._tenants.get(key)
        if tenant is not None:
            tenant.client = tenant_client

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        """Stop serving ``key``; delete its virtual nodes that no tenant pod is bound to.

        Nodes that still have pods stay (deleting them would make the tenant's
        pod GC delete those pods); without heartbeats they turn NotReady.
        """
        tenant = self._tenants.pop(key, None)
        if tenant is None:
            return
        if tenant.task is not None:
            tenant.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await tenant.task
        if cleanup:
            try:
                async with asyncio.timeout(self._settings.detach_timeout):
                    await self._cleanup(tenant)
            except TimeoutError:
                log.warning("virtual_node.detach_cleanup_timeout", tenant=key, left=sorted(tenant.nodes))
        with contextlib.suppress(KeyError):
            self._metrics.nodes.remove(key)
        with contextlib.suppress(KeyError):
            self._metrics.heartbeat_failures.remove(key)
        with contextlib.suppress(KeyError):
            self._metrics.collected.remove(key)
        for source in ("cache", "list"):
            with contextlib.suppress(KeyError):
                self._metrics.pod_checks.remove(key, source)
        if tenant.outage is not None:
            tenant.outage.forget()
        log.info("virtual_node.tenant_detached", tenant=key)

    async def _cleanup(self, tenant: _Tenant) -> None:
        for name in list(tenant.nodes):
            try:
                if not await self._has_pods(tenant, name):
                    await self._delete_node(tenant, name)
            except ApiError as exc:
                log.warning("virtual_node.detach_cleanup_failed", tenant=tenant.key, node=name, error=str(exc))

    async def ensure_node(self, key: str, node_name: str) -> None:
        """Make sure tenant ``key`` has the virtual node ``node_name`` (call before binding a pod to it)."""
        tenant = self._tenants.get(key)
        if tenant is None:
            raise VirtualNodeError(f"tenant {key!r} is not attached to the virtual-node manager")
        async with tenant.lock:
            state = tenant.nodes.get(node_name)
            now = self._clock()
            if state is not None:
                state.ensured_at = now
                state.empty_since = None
                return
            p_node = await self._super_node(node_name)
            await self._create_node(tenant, node_name, p_node)

    async def run(self) -> None:
        """Watch super nodes until cancelled; tenants' loops are stopped when this ends."""
        try:
            await self._watch_super_nodes()
        finally:
            for key in list(self._tenants):
                tenant = self._tenants[key]
                if tenant.task is not None:
                    tenant.task.cancel()
            tasks = [t.task for t in self._tenants.values() if t.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    # ---- introspection (tests, CLI) ---------------------------------------------------------
    def virtual_nodes(self, key: str) -> set[str]:
        tenant = self._tenants.get(key)
        return set(tenant.nodes) if tenant else set()

    # ---- super nodes ------------------------------------------------------------------------
    async def _super_node(self, name: str) -> dict[str, Any] | None:
        if self._super_synced.is_set():
            return self._super_nodes.get(name)
        return await self._super.get_or_none(r.NODES, name)

    def _super_node_changed(self, name: str) -> None:
        for tenant in self._tenants.values():
            if name in tenant.nodes:
                tenant.dirty.add(name)
                tenant.wake.set()

    async def _watch_super_nodes(self) -> None:
        super_outage = Outage(logger=log, event="virtual_node.super_watch",
                              policy=BackoffPolicy(initial=0.5, cap=15.0, jitter=0.2), clock=self._clock,
                              metrics=self._remote, component="virtual-node-super-watch", target="super/nodes")
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    items, rv = await self._super.list_all(r.NODES)
                    fresh = {str(n["metadata"]["name"]): n for n in items}
                    changed = set(fresh) ^ set(self._super_nodes)
                    changed |= {n for n in fresh if self._super_nodes.get(n) != fresh[n]}
                    self._super_nodes = fresh
                    self._super_synced.set()
                    super_outage.succeeded()
                    for name in changed:
                        self._super_node_changed(name)
                async for event in self._super.watch(r.NODES, resource_version=rv):
                    obj = event.object
                    if event.type == "BOOKMARK":
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        continue
                    name = str((obj.get("metadata") or {}).get("name"))
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event.type == "DELETED":
                        self._super_nodes.pop(name, None)
                    else:
                        self._super_nodes[name] = obj
                    self._super_node_changed(name)
            except Gone:
                rv = None
            except (ApiError, OSError, TimeoutError) as exc:
                rv = None
                await asyncio.sleep(super_outage.failed(exc))

    # ---- one tenant's loop --------------------------------------------------------------------
    async def _tenant_loop(self, tenant: _Tenant) -> None:
        period = self._settings.heartbeat_period
        next_beat = self._clock()
        while True:
            timeout = max(0.0, next_beat - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tenant.wake.wait(), timeout=timeout)
            tenant.wake.clear()
            try:
                if self._clock() >= next_beat:
                    next_beat = self._clock() + period  # if _beat raises, the next try is a period away
                    next_beat = self._clock() + await self._beat(tenant)
                elif tenant.dirty:
                    dirty, tenant.dirty = tenant.dirty, set()
                    async with tenant.lock:
                        for name in dirty:
                            if name in tenant.nodes:
                                await self._post_status(tenant, name, force=False)
            except ApiError as exc:
                self._metrics.heartbeat_failures.labels(tenant.key).inc()
                if tenant.outage is not None:
                    next_beat = min(next_beat, self._clock() + tenant.outage.failed(exc))
            except Exception:  # never let one bad round end a tenant's heartbeats
                self._metrics.heartbeat_failures.labels(tenant.key).inc()
                log.exception("virtual_node.heartbeat_crashed", tenant=tenant.key)

    async def _beat(self, tenant: _Tenant) -> float:
        """One heartbeat of every node of ``tenant``; the seconds until the next one.

        A failed write makes it sooner (back-off from 1 s up to the period, with jitter) and is
        logged once per outage (``virtual_node.heartbeat.down`` / ``.still_down`` / ``.back``).
        """
        failed = await self._heartbeat(tenant)
        period = self._settings.heartbeat_period
        if tenant.outage is None:
            return period
        if failed is None:
            tenant.outage.succeeded()
            return period
        return min(period, tenant.outage.failed(failed))

    async def _heartbeat(self, tenant: _Tenant) -> ApiError | None:
        """Renew every node's Lease and post status where due; the first write that failed, if any."""
        failed: ApiError | None = None
        tenant.dirty.clear()
        for name in list(tenant.nodes):
            async with tenant.lock:
                state = tenant.nodes.get(name)
                if state is None:
                    continue
                try:
                    if await self._collect_if_idle(tenant, name, state):
                        continue
                    await self._renew_lease(tenant, name, state)
                    await self._post_status(tenant, name, force=False)
                except NotFound:
                    # Someone deleted the virtual node: bring it back, as a kubelet re-registers.
                    log.info("virtual_node.recreated", tenant=tenant.key, node=name)
                    del tenant.nodes[name]
                    await self._create_node(tenant, name, await self._super_node(name))
                except ApiError as exc:
                    self._metrics.heartbeat_failures.labels(tenant.key).inc()
                    failed = failed or exc
        return failed

    # ---- writes -------------------------------------------------------------------------------
    async def _create_node(self, tenant: _Tenant, name: str, p_node: dict[str, Any] | None) -> None:
        now = _utcnow()
        body = vnode.build_virtual_node(
            name, p_node, proxy_address=self._settings.proxy_address, proxy_port=self._settings.proxy_port, now=now,
        )
        try:
            created = await tenant.client.create(r.NODES, body)
            status = body["status"]
            log.info("virtual_node.created", tenant=tenant.key, node=name, ready=vnode.is_ready(body))
        except AlreadyExists:
            created = await tenant.client.get(r.NODES, name)
            status = {}
            log.info("virtual_node.adopted", tenant=tenant.key, node=name)
        except ApiError as exc:
            raise VirtualNodeError(f"tenant {tenant.key}: cannot create virtual node {name}: {exc.message}") from exc
        # Also right after a create: admission added the not-ready taint nobody else removes in a tenant.
        try:
            patch = vnode.metadata_patch(created, name, p_node)
            if patch:
                created = await tenant.client.patch(r.NODES, name, patch)
        except ApiError as exc:
            raise VirtualNodeError(f"tenant {tenant.key}: cannot repair virtual node {name}: {exc.message}") from exc
        state = _VNode(uid=(created.get("metadata") or {}).get("uid"), status=status,
                       ensured_at=self._clock(), status_posted_at=self._clock() if status else 0.0)
        tenant.nodes[name] = state
        self._metrics.nodes.labels(tenant.key).set(len(tenant.nodes))
        if not status:
            await self._post_status(tenant, name, force=True)
        await self._renew_lease(tenant, name, state)

    async def _post_status(self, tenant: _Tenant, name: str, *, force: bool) -> None:
        state = tenant.nodes[name]
        p_node = await self._super_node(name)
        desired = vnode.virtual_status(
            p_node, proxy_address=self._settings.proxy_address, proxy_port=self._settings.proxy_port,
            now=_utcnow(), previous=state.status,
        )
        stale = self._clock() - state.status_posted_at >= self._settings.status_report_period
        if not force and not stale and not vnode.status_changed(state.status, desired):
            return
        await tenant.client.patch(r.NODES, name, {"status": desired}, subresource="status")
        if vnode.status_changed(state.status, desired):
            log.info("virtual_node.status_changed", tenant=tenant.key, node=name,
                     ready=vnode.is_ready({"status": desired}), super_node_present=p_node is not None)
        state.status = desired
        state.status_posted_at = self._clock()

    async def _renew_lease(self, tenant: _Tenant, name: str, state: _VNode) -> None:
        lease = vnode.build_lease(
            name, now=_utcnow(), duration_seconds=self._settings.lease_duration_seconds, node_uid=state.uid,
        )
        try:
            await tenant.client.patch(r.LEASES, name, {"spec": lease["spec"]}, namespace=naming.NODE_LEASE_NAMESPACE)
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await tenant.client.create(r.LEASES, lease, namespace=naming.NODE_LEASE_NAMESPACE)

    async def _has_pods(self, tenant: _Tenant, name: str) -> bool:
        """Whether a tenant pod is bound to ``name``: the syncer's cache answers when it can, else a LIST."""
        if tenant.node_in_use is not None:
            answer = tenant.node_in_use(name)
            if answer is not None:
                self._metrics.pod_checks.labels(tenant.key, "cache").inc()
                return answer
        page = await tenant.client.list(r.PODS, field_selector=f"spec.nodeName={name}", limit=1)
        self._metrics.pod_checks.labels(tenant.key, "list").inc()
        return bool(page.get("items"))

    async def _collect_if_idle(self, tenant: _Tenant, name: str, state: _VNode) -> bool:
        """Delete the node once no pod was bound for the grace period; True if deleted."""
        now = self._clock()
        grace = self._settings.gc_grace_period
        if await self._has_pods(tenant, name):
            state.empty_since = None
            return False
        if state.empty_since is None:
            state.empty_since = now
        if now - state.empty_since < grace or now - state.ensured_at < grace:
            return False
        await self._delete_node(tenant, name)
        self._metrics.collected.labels(tenant.key).inc()
        return True

    async def _delete_node(self, tenant: _Tenant, name: str) -> None:
        state = tenant.nodes.pop(name, None)
        # The Lease first: once the Node is gone (what users and tests watch), nothing of it is left.
        with contextlib.suppress(NotFound):
            await tenant.client.delete(r.LEASES, name, namespace=naming.NODE_LEASE_NAMESPACE)
        with contextlib.suppress(NotFound):
            await tenant.client.delete(r.NODES, name, uid=state.uid if state else None)
        self._metrics.nodes.labels(tenant.key).set(len(tenant.nodes))
        log.info("virtual_node.deleted", tenant=tenant.key, node=name)
