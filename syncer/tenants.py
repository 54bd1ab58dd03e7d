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
import binascii
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from syncer.informer import DELETED, Informer
from syncer.tenant_status import KUBECONFIG_UNREADABLE, NOT_SERVED, SyncState, TenantStatusWriter
from tenant_crd.models import DnsSpec, IsolationSpec, SpecError, SyncSpec, TenantSpec, TenantStatus
from vcluster import naming, quota
from vcluster.kube import ApiClient, ApiError, ClientConfig, resources
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
    #: ``spec.dns.clusterDomain``: the pods' search path (the tenant DNS serves that zone).
    cluster_domain: str = DnsSpec().cluster_domain
    #: ``status.dns.endpoint``: where the tenant DNS Service forwards to (its NetworkPolicy egress).
    dns_endpoint: str | None = None
    #: The tenant-wide quota the syncer enforces on creates (None: no quota).
    quota: quota.TenantQuota | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """What a changed :class:`TenantInfo` of a served tenant needs of the engine (:func:`update_of`).

    ``relist``: why the tenant must be dropped and served anew (every informer lists again); empty when
    the runtime can be kept.  ``reconnect``: new credentials for the same apiserver, so a new client
    whose watches go on from the resourceVersions the caches hold.  ``context``: a translation input
    changed (policy, DNS, metadata rules), so a new :class:`~syncer.resources.base.TranslateContext` and
    every object queued once to be compared with it (no list).  ``quota``: the tenant-wide quota changed,
    so the keys waiting for room are queued again.  All false: nothing the engine uses changed (the
    new TenantInfo is simply kept, e.g. a spec change of the control plane's version).
    """

    relist: str = ""
    reconnect: bool = False
    context: bool = False
    quota: bool = False


def update_of(old: TenantInfo, new: TenantInfo, *, old_server: str, new_server: str) -> Update:
    """What it takes to serve ``new`` where ``old`` was served (pure); the servers are the kubeconfigs'
    apiserver URLs (the same URL is the same apiserver: its resourceVersions go on)."""
    if (old.key, old.name, old.uid) != (new.key, new.name, new.uid):
        return Update(relist="another Tenant object")
    if old_server != new_server:
        return Update(relist="another apiserver address")
    if old.sync.extra_kinds != new.sync.extra_kinds:
        return Update(relist="spec.sync.extraKinds changed")
    context = (old.policy, old.dns_ip, old.cluster_domain, old.dns_endpoint, old.sync) != \
        (new.policy, new.dns_ip, new.cluster_domain, new.dns_endpoint, new.sync)
    return Update(reconnect=old.kubeconfig != new.kubeconfig, context=context, quota=old.quota != new.quota)


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
#: Queued by the source itself: look at this Tenant again (its kubeconfig was unusable).
RETRY = "RETRY"
#: Queued by the source itself: read a served Tenant's kubeconfig Secret again (it may have been edited).
RECHECK = "RECHECK"


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
        return base64.b64decode(raw, validate=True).decode()
    text = (secret.get("stringData") or {}).get(key)
    return str(text) if text else None


def kubeconfig_problem(secret: Mapping[str, Any], where: str) -> tuple[str | None, str]:
    """(the kubeconfig text, '') from a Secret, or (None, why it cannot be used) (pure).

    A tenant is hostile and a Secret can be edited: anything but a kubeconfig the client can use is
    a problem told on the Tenant (``Synced=False KubeconfigUnreadable``), never an exception in the
    loop that serves every tenant.
    """
    try:
        text = _secret_value(secret, naming.KUBECONFIG_SECRET_KEY)
    except (binascii.Error, ValueError) as exc:  # not base64, or not UTF-8
        return None, f"Secret {where}: key {naming.KUBECONFIG_SECRET_KEY!r} is not a readable value ({exc})"
    if not text:
        return None, f"Secret {where} has no {naming.KUBECONFIG_SECRET_KEY!r} key"
    try:
        ClientConfig.from_kubeconfig(text)
    except Exception as exc:  # whatever a broken document makes the parser raise
        return None, f"Secret {where}: not a usable kubeconfig ({type(exc).__name__}: {str(exc)[:200]})"
    return text, ""
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

    def __init__(self, super_api: ApiClient, *, watch_timeout: int = 300, retry_after: float = 30.0,
                 secret_recheck: float = 10.0, status: TenantStatusWriter | None = None) -> None:
        self._api = super_api
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._informer = Informer(
            super_api, resources.TENANTS, handler=self._on_event, watch_timeout=watch_timeout, name="tenants"
        )
        #: Served tenants: Tenant name → (cluster key, resourceVersion of the object served).
        self._served: dict[str, tuple[str, str]] = {}
        #: Where unservable tenants are told (``Synced=False``); ``None`` in tests that only watch changes.
        self._status = status if status is not None else TenantStatusWriter(super_api)
        #: Seconds until a tenant whose kubeconfig could not be used is looked at again (the Secret
        #: may be repaired without the Tenant changing).
        self.retry_after = retry_after
        self._retries: dict[str, asyncio.TimerHandle] = {}
        #: Seconds between two reads of each served tenant's kubeconfig Secret (0: never): a Secret edited
        #: under a served tenant (corrupted, or naming another server) changes nothing on the Tenant, so
        #: only reading it again tells.
        self.secret_recheck = secret_recheck
        #: The kubeconfig each served tenant is served with (Tenant name → text).
        self._kubeconfigs: dict[str, str] = {}

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self._queue.put_nowait((kind, obj))

    async def changes(self) -> AsyncIterator[TenantChange]:
        task = asyncio.create_task(self._informer.run(), name="tenant-informer")
        tasks = [task]
        if self.secret_recheck > 0:
            tasks.append(asyncio.create_task(self._recheck_loop(), name="tenant-secret-recheck"))
        try:
            while True:
                kind, obj = await self._queue.get()
                force = kind == RECHECK
                if kind in (RETRY, RECHECK):  # look again at the Tenant as it is now (it may be gone)
                    if kind == RETRY:
                        self._retries.pop(str((obj.get("metadata") or {}).get("name")), None)
                    current = self._informer.get("", str((obj.get("metadata") or {}).get("name")))
                    if current is None or current["metadata"].get("uid") != obj["metadata"].get("uid"):
                        continue
                    kind, obj = "MODIFIED", current
                change = await self._evaluate(kind, obj, force=force)
                if change is not None:
                    yield change
        finally:
            for handle in self._retries.values():
                handle.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def recheck_served(self) -> int:
        """Queue a read of every served tenant's kubeconfig Secret; how many were queued."""
        names = list(self._served)
        for name in names:
            current = self._informer.get("", name)
            if current is not None:
                self._queue.put_nowait((RECHECK, current))
        return len(names)

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.secret_recheck)
            self.recheck_served()

    async def _evaluate(self, kind: str, tenant: dict[str, Any], *, force: bool = False) -> TenantChange | None:
        """What a Tenant event means for the engine; ``force``: read the kubeconfig Secret again even if
        the Tenant did not change (a :data:`RECHECK`)."""
        meta = tenant.get("metadata") or {}
        name = str(meta.get("name") or "")
        served = self._served.get(name)
        ok, why = (False, "deleted") if kind == DELETED else readiness(tenant)
        if not ok:
            if served is not None:
                del self._served[name]
                self._kubeconfigs.pop(name, None)
                if kind != DELETED:
                    await self._status.report(name, SyncState(problem=(NOT_SERVED, f"not synced: {why}")))
                return TenantDown(served[0], why)
            log.info("tenants.waiting", tenant=name, reason=why)
            return None
        status = TenantStatus.from_dict(tenant.get("status"))
        key = str(status.cluster_key)
        # Re-read only when something that matters changed: the spec (generation) or the key/secret, or
        # the certificates (``status.certificates``: renewed ones are in a new kubeconfig Secret, written
        # before the status; the old client certificate stops working when it expires).
        raw_status = tenant.get("status") or {}
        in_force = ((raw_status.get("quota") or {}).get("hard"), raw_status.get("limitRange"),
                    _dns_endpoint(raw_status), raw_status.get("certificates"))
        fingerprint = f"{meta.get('generation')}/{key}/{status.kubeconfig_secret}/{status.dns_cluster_ip}/{in_force}"
        if served is not None and served[1] == fingerprint and not force:
            return None
        info = await self._load(tenant, key, status)
        if isinstance(info, str):
            await self._status.report(name, SyncState(problem=(KUBECONFIG_UNREADABLE, info)))
            if (pending := self._retries.pop(name, None)) is not None:
                pending.cancel()  # one look-again per tenant, however many events came meanwhile
            self._retries[name] = asyncio.get_running_loop().call_later(
                self.retry_after, self._queue.put_nowait, (RETRY, tenant))
            if served is not None:
                del self._served[name]
                self._kubeconfigs.pop(name, None)
                return TenantDown(served[0], "kubeconfig unreadable")
            return None
        if force and served is not None and served[1] == fingerprint and self._kubeconfigs.get(name) == \
                info.kubeconfig:
            return None  # the Secret read again says what is served
        if force and served is not None:
            log.info("tenants.kubeconfig_changed", tenant=name)
        if served is not None and served[0] != key:
            # The key changed (a recreated Tenant): stop the old incarnation first.
            self._queue.put_nowait(("MODIFIED", tenant))
            del self._served[name]
            self._kubeconfigs.pop(name, None)
            return TenantDown(served[0], "cluster key changed")
        self._served[name] = (key, fingerprint)
        self._kubeconfigs[name] = info.kubeconfig
        return TenantUp(info)

    async def _load(self, tenant: dict[str, Any], key: str, status: TenantStatus) -> TenantInfo | str:
        """The tenant as the engine needs it, or why it cannot be served (its kubeconfig)."""
        meta = tenant.get("metadata") or {}
        assert status.kubeconfig_secret is not None
        ns, secret_name = status.kubeconfig_secret
        try:
            secret = await self._api.get(resources.SECRETS, secret_name, namespace=ns)
        except ApiError as exc:
            log.warning("tenants.kubeconfig_unreadable", tenant=meta.get("name"), secret=f"{ns}/{secret_name}",
                        error=str(exc))
            return f"Secret {ns}/{secret_name}: {exc}"
        kubeconfig, problem = kubeconfig_problem(secret, f"{ns}/{secret_name}")
        if kubeconfig is None:
            log.warning("tenants.kubeconfig_unusable", tenant=meta.get("name"), secret=f"{ns}/{secret_name}",
                        problem=problem)
            return problem
        spec, from_default = spec_in_force(tenant.get("spec") or {}, tenant.get("status"))
        limits: quota.TenantQuota | None = None
        try:
            parsed = TenantSpec.from_dict(spec)
            policy, sync, dns = pod_policy(parsed.isolation), parsed.sync, parsed.dns
            limits = tenant_quota(parsed.isolation, from_default=from_default)
        except SpecError as exc:
            # The operator refuses such specs; if one slips through, serve with the safe default.
            log.warning("tenants.bad_spec", tenant=meta.get("name"), error=str(exc))
            policy, sync, dns = PodPolicy(), SyncSpec(), DnsSpec()
        return TenantInfo(
            key=key, name=str(meta.get("name")), uid=str(meta.get("uid")), kubeconfig=kubeconfig,
            policy=policy, spec=spec, sync=sync, dns_ip=status.dns_cluster_ip, cluster_domain=dns.cluster_domain,
            quota=limits, dns_endpoint=_dns_endpoint(tenant.get("status")),
        )
