"""Where the syncer learns which tenants to serve.

Why: tenants come and go while the syncer runs.  In production the source is
the super cluster's ``Tenant`` objects: a tenant is served once its ``Ready``
condition is True and its status names a cluster key and a kubeconfig Secret
(docs/architecture.md, CONTRACTS), and dropped when it is deleted or stops
being Ready.  The engine only sees a stream of :class:`TenantUp` /
:class:`TenantDown` changes through the small :class:`TenantSource`
interface, so tests can register tenants directly.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from syncer.informer import DELETED, Informer
from tenant_crd.models import IsolationSpec, SpecError, SyncSpec, TenantSpec, TenantStatus
from vcluster import naming, quota
from vcluster.kube import ApiClient, ApiError, resources
from vcluster.policy import PodPolicy, pod_policy

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """Everything the syncer needs to serve one tenant."""

    #: The cluster key (root namespace, prefix of super namespaces).
    key: str
    #: The Tenant object's name and uid.
    name: str
    uid: str
    #: Admin kubeconfig (YAML text) of the tenant control plane.
    kubeconfig: str
    #: Pod-level isolation policy (node selector, tolerations, runtime class, pod security level).
    policy: PodPolicy = field(default_factory=PodPolicy)
    #: The Tenant's ``spec`` as read (for namespace-level policy objects); empty for test tenants.
    spec: Mapping[str, Any] = field(default_factory=dict)
    #: The Tenant's sync options (extra kinds, opaque/transparent metadata prefixes).
    sync: SyncSpec = field(default_factory=SyncSpec)
    #: ``status.dns.clusterIP``: the tenant DNS the operator provides (nameserver of ClusterFirst pods).
    dns_ip: str | None = None
    #: ``status.dns.endpoint``: where the tenant DNS Service forwards to (its NetworkPolicy egress).
    dns_endpoint: str | None = None
    #: The tenant-wide quota the syncer enforces on creates (None: no quota).
    quota: quota.TenantQuota | None = None


def tenant_quota(isolation: IsolationSpec, *, from_default: bool = False) -> quota.TenantQuota | None:
    """The tenant-wide quota of a policy in force (pure); None when it limits nothing."""
    if not isolation.resource_quota:
        return None
    source = quota.SOURCE_DEFAULT if from_default else quota.SOURCE_TENANT
    return quota.TenantQuota(hard=quota.parse_hard(isolation.resource_quota), limit_range=isolation.limit_range,
                             source=source, names=tuple(sorted(isolation.resource_quota)))


def spec_in_force(spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """The Tenant spec with the operator's defaults in force filled in (pure), and whether the quota is
    the operator's default.

    The operator writes the quota and LimitRange in force to ``status.quota.hard`` /
    ``status.limitRange`` (its defaults are its own settings); a spec that names its own keeps it.
    """
    status = status or {}
    isolation = dict(spec.get("isolation") or {})
    from_default = False
    hard = (status.get("quota") or {}).get("hard")
    if "resourceQuota" not in isolation and isinstance(hard, Mapping) and hard:
        isolation["resourceQuota"] = {"hard": {str(k): str(v) for k, v in hard.items() if v is not None}}
        from_default = True
    lr = status.get("limitRange")
    if "limitRange" not in isolation and isinstance(lr, Mapping):
        isolation["limitRange"] = {key: {str(k): str(v) for k, v in (lr.get(key) or {}).items() if v is not None}
                                   for key in ("defaults", "defaultRequests")}
    return {**spec, "isolation": isolation}, from_default


@dataclass(frozen=True, slots=True)
class TenantUp:
    """Serve (or re-serve with changed settings) this tenant."""

    info: TenantInfo


@dataclass(frozen=True, slots=True)
class TenantDown:
    """Stop serving the tenant with this cluster key; its super objects are left alone."""

    key: str
    reason: str


TenantChange = TenantUp | TenantDown


class TenantSource(Protocol):
    """A stream of tenant changes; the engine serves what it says."""

    def changes(self) -> AsyncIterator[TenantChange]: ...


class StaticTenantSource:
    """Tenants registered by hand (tests, or a syncer started for fixed control planes)."""

    def __init__(self, tenants: tuple[TenantInfo, ...] = ()) -> None:
        self._queue: asyncio.Queue[TenantChange] = asyncio.Queue()
        for info in tenants:
            self.add(info)

    def add(self, info: TenantInfo) -> None:
        self._queue.put_nowait(TenantUp(info))

    def remove(self, key: str, *, reason: str = "removed") -> None:
        self._queue.put_nowait(TenantDown(key, reason))

    async def changes(self) -> AsyncIterator[TenantChange]:
        while True:
            yield await self._queue.get()


def _secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if raw:
        return base64.b64decode(raw).decode()
    text = (secret.get("stringData") or {}).get(key)
    return str(text) if text else None


def _dns_endpoint(status: Mapping[str, Any] | None) -> str | None:
    dns = (status or {}).get("dns")
    endpoint = dns.get("endpoint") if isinstance(dns, Mapping) else None
    return str(endpoint) if endpoint else None


def readiness(tenant: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a Tenant object may be served, and why not (pure)."""
    status = TenantStatus.from_dict(tenant.get("status"))
    if not status.ready:
        cond = status.condition("Ready")
        return False, f"not Ready ({cond.reason if cond else 'no Ready condition'})"
    if not status.cluster_key:
        return False, "status.clusterKey is empty"
    if status.kubeconfig_secret is None:
        return False, "status.kubeconfigSecret is empty"
    if (tenant.get("metadata") or {}).get("deletionTimestamp"):
        return False, "being deleted"
    return True, ""


class CrdTenantSource:
    """Tenants from ``Tenant`` objects of the super cluster (the production source)."""

    def __init__(self, super_api: ApiClient, *, watch_timeout: int = 300) -> None:
        self._api = super_api
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._informer = Informer(
            super_api, resources.TENANTS, handler=self._on_event, watch_timeout=watch_timeout, name="tenants"
        )
        #: Served tenants: Tenant name → (cluster key, resourceVersion of the object served).
        self._served: dict[str, tuple[str, str]] = {}

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self._queue.put_nowait((kind, obj))

    async def changes(self) -> AsyncIterator[TenantChange]:
        task = asyncio.create_task(self._informer.run(), name="tenant-informer")
        try:
            while True:
                kind, obj = await self._queue.get()
                change = await self._evaluate(kind, obj)
                if change is not None:
                    yield change
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _evaluate(self, kind: str, tenant: dict[str, Any]) -> TenantChange | None:
        meta = tenant.get("metadata") or {}
        name = str(meta.get("name") or "")
        served = self._served.get(name)
        ok, why = (False, "deleted") if kind == DELETED else readiness(tenant)
        if not ok:
            if served is not None:
                del self._served[name]
                return TenantDown(served[0], why)
            log.info("tenants.waiting", tenant=name, reason=why)
            return None
        status = TenantStatus.from_dict(tenant.get("status"))
        key = str(status.cluster_key)
        # Re-read only when something that matters changed: the spec (generation) or the key/secret.
        raw_status = tenant.get("status") or {}
        in_force = ((raw_status.get("quota") or {}).get("hard"), raw_status.get("limitRange"),
                    _dns_endpoint(raw_status))
        fingerprint = f"{meta.get('generation')}/{key}/{status.kubeconfig_secret}/{status.dns_cluster_ip}/{in_force}"
        if served is not None and served[1] == fingerprint:
            return None
        info = await self._load(tenant, key, status)
        if info is None:
            if served is not None:
                del self._served[name]
                return TenantDown(served[0], "kubeconfig unreadable")
            return None
        if served is not None and served[0] != key:
            # The key changed (a recreated Tenant): stop the old incarnation first.
            self._queue.put_nowait(("MODIFIED", tenant))
            del self._served[name]
            return TenantDown(served[0], "cluster key changed")
        self._served[name] = (key, fingerprint)
        return TenantUp(info)

    async def _load(self, tenant: dict[str, Any], key: str, status: TenantStatus) -> TenantInfo | None:
        meta = tenant.get("metadata") or {}
        assert status.kubeconfig_secret is not None
        ns, secret_name = status.kubeconfig_secret
        try:
            secret = await self._api.get(resources.SECRETS, secret_name, namespace=ns)
        except ApiError as exc:
            log.warning("tenants.kubeconfig_unreadable", tenant=meta.get("name"), secret=f"{ns}/{secret_name}",
                        error=str(exc))
            return None
        kubeconfig = _secret_value(secret, naming.KUBECONFIG_SECRET_KEY)
        if not kubeconfig:
            log.warning("tenants.kubeconfig_missing", tenant=meta.get("name"), secret=f"{ns}/{secret_name}")
            return None
        spec, from_default = spec_in_force(tenant.get("spec") or {}, tenant.get("status"))
        limits: quota.TenantQuota | None = None
        try:
            parsed = TenantSpec.from_dict(spec)
            policy, sync = pod_policy(parsed.isolation), parsed.sync
            limits = tenant_quota(parsed.isolation, from_default=from_default)
        except SpecError as exc:
            # The operator refuses such specs; if one slips through, serve with the safe default.
            log.warning("tenants.bad_spec", tenant=meta.get("name"), error=str(exc))
            policy, sync = PodPolicy(), SyncSpec()
        return TenantInfo(
            key=key, name=str(meta.get("name")), uid=str(meta.get("uid")), kubeconfig=kubeconfig,
            policy=policy, spec=spec, sync=sync, dns_ip=status.dns_cluster_ip, quota=limits,
            dns_endpoint=_dns_endpoint(tenant.get("status")),
        )
