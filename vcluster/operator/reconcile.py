"""Reconcile one Tenant: validate, provision, bootstrap, isolate, report.

Why this module exists: the whole life of a tenant's control plane is one
idempotent function (:meth:`Reconciler.reconcile`) plus its teardown
(:meth:`Reconciler.teardown`), written over plain dicts and
:mod:`vcluster.kube` so that Kopf stays a thin trigger layer
(:mod:`vcluster.operator.handlers`).  Idempotent means: killed at any line
and run again, it converges to exactly one healthy control plane —

* everything that can be wrong with a spec is checked *before* the first
  write (schema model, policy conflicts, ClusterVersion, builder, binaries),
  so a bad spec gives ``Ready=False`` with a reason and an Event and provisions
  nothing half-way;
* the PKI is generated once and stored in the root namespace; later runs
  reuse it (see :mod:`vcluster.controlplane.certs`);
* local processes are re-adopted from their pid files; pods-backend objects
  are server-side applied;
* the status and an Event change only when the outcome changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from tenant_crd import ClusterVersionSpec, SpecError, TenantSpec, TenantStatus
from tenant_crd.models import OPERATOR_CONDITIONS, IsolationSpec, merge_conditions
from tenant_crd.schema import DEFAULT_BACKEND
from vcluster import clock, kubelet_ca, naming, policy
from vcluster.controlplane import builder, certs, dns, pods
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import BackendError, LocalBackend, VersionUnavailable
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, ApiError, ClientConfig, Conflict, NotFound
from vcluster.kube import resources as r
from vcluster.operator.settings import (
    DEFAULT_CONTAINER_REQUESTS,
    DEFAULT_TENANT_QUOTA,
    ControlPlanePlacement,
    TenantDnsSettings,
)

log = structlog.get_logger(__name__)

FIELD_MANAGER = "vc-operator"
OWNERS_BINDING = "virtualcluster:owners"
#: On a Tenant: uid/generation of the ClusterVersion last seen; a change triggers a reconcile.
ANN_CLUSTER_VERSION = naming.ANN_CLUSTER_VERSION_SEEN
#: Events of cluster-scoped Tenants go to this namespace.
EVENT_NAMESPACE = "default"


#: Condition (pods backend): the etcd storage in place is the one the spec asks for.
STORAGE_CONDITION = "StorageApplied"
#: How often a status write is tried again after a 409 Conflict (another writer changed the Tenant).
REPORT_ATTEMPTS = 5
#: Its reason when a claim-template change was not applied (immutable in Kubernetes).
STORAGE_NEEDS_MIGRATION = "StorageChangeNeedsMigration"


class Retry(VClusterError):
    """Not done yet (or a transient failure): run again after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class Invalid(VClusterError):
    """The spec cannot work as written: wait for the admin to change it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`Reconciler.reconcile` ended with (for logs and tests)."""

    cluster_key: str
    endpoint: str
    backend: str


def resolve_backend(wanted: str | None, current: str | None, default: str) -> str:
    """The backend a Tenant gets: the one it names; else the one it already has (``status.backend``: an
    operator restarted with another default never moves a running control plane); else the default."""
    return wanted or current or default
def _replacing(new: Mapping[str, Any], old: Any) -> dict[str, Any]:
    """A merge-patch map that makes ``old`` equal to ``new`` (keys no longer there are nulled)."""
    out: dict[str, Any] = {k: None for k in (old if isinstance(old, Mapping) else {}) if k not in new}
    out.update(new)
    return out


def policy_status(
    old_status: Mapping[str, Any] | None, asked: IsolationSpec, in_force: IsolationSpec
) -> dict[str, Any]:
    """``status.quota`` (hard, source) and ``status.limitRange``: the policy in force, and whose it is.

    The syncer enforces the quota tenant-wide and fills ``status.quota.used``; it reads ``hard`` and the
    LimitRange from here because the operator's defaults are the operator's settings.  A merge patch:
    names dropped since the last write are nulled; no quota at all removes ``status.quota``.
    """
    old = old_status or {}
    out: dict[str, Any] = {}
    hard = {k: str(v) for k, v in sorted((in_force.resource_quota or {}).items())}
    if hard:
        old_quota = old.get("quota") or {}
        out["quota"] = {"hard": _replacing(hard, old_quota.get("hard")),
                        "source": "Tenant" if asked.resource_quota is not None else "OperatorDefault"}
    else:
        out["quota"] = None
    lr = in_force.limit_range
    if lr is not None and (lr.defaults or lr.default_requests):
        old_lr = old.get("limitRange") or {}
        out["limitRange"] = {
            "defaults": _replacing({k: str(v) for k, v in lr.defaults.items()}, old_lr.get("defaults")),
            "defaultRequests": _replacing({k: str(v) for k, v in lr.default_requests.items()},
                                          old_lr.get("defaultRequests")),
            "source": "Tenant" if asked.limit_range is not None else "OperatorDefault",
        }
    else:
        out["limitRange"] = None
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_secret(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v) for k, v in data.items()}


class Reconciler:
    """Provisions and tears down tenants against one super cluster."""

    def __init__(
        self, *, api: ApiClient, local: LocalBackend, bootstrap_timeout: float = 90.0,
        dns: TenantDnsSettings | None = None, placement: ControlPlanePlacement | None = None,
        default_backend: str = DEFAULT_BACKEND,
        default_quota: Mapping[str, str] = DEFAULT_TENANT_QUOTA,
        default_limits: Mapping[str, str] | None = None,
        default_requests: Mapping[str, str] = DEFAULT_CONTAINER_REQUESTS,
        image_repository: str = builder.DEFAULT_REGISTRY, etcd_image: str = "",
        lifetimes: certs.Lifetimes | None = None,
    ) -> None:
        #: Control-plane images of Tenants whose ClusterVersion names none (``OperatorSettings``).
        self.image_repository = image_repository
        self.etcd_image = etcd_image
        #: Certificate lifetimes and renewal windows (``OperatorSettings.certificates``).
        self.lifetimes = lifetimes if lifetimes is not None else certs.Lifetimes()
        #: Cluster keys whose control plane is being restarted on purpose (new certificates): the
        #: health loop does not count the restart as a failure (:mod:`vcluster.operator.health`).
        self.rolling: set[str] = set()
        #: The backend of a Tenant that names none (``OperatorSettings.default_backend``).
        self.default_backend = default_backend
        self.api = api
        #: The operator's defaults for Tenants that name no quota / LimitRange (OperatorSettings).
        self.default_quota = default_quota
        self.default_limits = default_limits or {}
        self.default_requests = default_requests
        self.local = local
        self.dns = dns if dns is not None else TenantDnsSettings()
        self.placement = placement if placement is not None else ControlPlanePlacement()
        self.pods = pods.PodsBackend()
        self.bootstrap_timeout = bootstrap_timeout
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # ---- status and events ---------------------------------------------------------
    async def _report(
        self,
        body: Mapping[str, Any],
        *,
        phase: str,
        ready: bool,
        reason: str,
        message: str,
        extra: Mapping[str, Any] | None = None,
        event_type: str | None = None,
        conditions: Sequence[tuple[str, bool, str, str]] | None = None,
    ) -> None:
        """Write status (phase, Ready condition, ...); post an Event when a condition changed.

        ``conditions`` are the other conditions as ``(type, status, reason, message)``; they replace
        the ones in the status (``None``: keep those as they are).  A new one that is ``True`` gets
        no Event; any other change of its status or reason does (``Warning`` when it is ``False``).  A
        new message alone is written without an Event: the health loop ("serving again") and a repair's
        reconcile ("serving") both report one recovery, which is one transition.
        """
        meta = body["metadata"]
        for attempt in range(REPORT_ATTEMPTS):
            # The status as it is now, not as ``body`` saw it: the health loop may have written it
            # meanwhile (a reconcile can wait minutes on a hung apiserver), and every change of a
            # condition since must get its Event.
            current = await self.api.get_or_none(r.TENANTS, meta["name"])
            if current is None:
                return
            events, status = self._status(current, generation=meta.get("generation"), phase=phase, ready=ready,
                                          reason=reason, message=message, extra=extra, event_type=event_type,
                                          conditions=conditions)
            # ``conditions`` is one list shared with the syncer (``Synced``): a merge patch replaces it
            # whole, so it is written only over the version it was read from (409 Conflict: read again).
            patch = {"metadata": {"resourceVersion": current["metadata"].get("resourceVersion")}, "status": status}
            try:
                await self.api.patch(r.TENANTS, meta["name"], patch, subresource="status")
                break
            except NotFound:
                return
            except Conflict:
                if attempt == REPORT_ATTEMPTS - 1:
                    raise
        for type_, why, text in events:
            await self.event(body, type_=type_, reason=why, message=text)

    def _status(
        self, current: Mapping[str, Any], *, generation: Any, phase: str, ready: bool, reason: str, message: str,
        extra: Mapping[str, Any] | None, event_type: str | None,
        conditions: Sequence[tuple[str, bool, str, str]] | None,
    ) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
        """The Events to post and the status to write over ``current`` (pure): the operator's
        conditions replaced, every other writer's (``Synced``) kept as it is."""
        old = TenantStatus.from_dict(current.get("status"))
        events: list[tuple[str, str, str]] = []

        def condition(type_: str, ok: bool, why: str, text: str, *, event: str | None) -> dict[str, Any]:
            old_cond = old.condition(type_)
            status_str = "True" if ok else "False"
            changed = old_cond is None or (old_cond.status, old_cond.reason) != (status_str, why)
            if changed and (old_cond is not None or not ok or type_ == "Ready"):
                events.append((event or ("Normal" if ok else "Warning"), why, text))
            transition = (
                old_cond.last_transition_time
                if old_cond is not None and old_cond.status == status_str and old_cond.last_transition_time
                else clock.timestamp()
            )
            return {"type": type_, "status": status_str, "reason": why, "message": text,
                    "observedGeneration": generation, "lastTransitionTime": transition}

        ours = [condition("Ready", ready, reason, message, event=event_type)]
        if conditions is None:  # keep the operator's other conditions as they are
            ours += [c.to_dict() for c in old.conditions if c.type in OPERATOR_CONDITIONS and c.type != "Ready"]
        else:
            ours += [condition(type_, ok, why, text, event=None) for type_, ok, why, text in conditions]
        found = [c.to_dict() for c in old.conditions]
        status: dict[str, Any] = {
            "phase": phase,
            "observedGeneration": generation,
            "conditions": merge_conditions(found, ours, owned=OPERATOR_CONDITIONS),
            **(extra or {}),
        }
        return events, status

    async def event(self, body: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        now = clock.timestamp()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": EVENT_NAMESPACE},
            "involvedObject": {
                "apiVersion": naming.API_VERSION, "kind": "Tenant", "name": meta["name"], "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.create(r.EVENTS, event, namespace=EVENT_NAMESPACE)
        except ApiError as exc:  # an Event is best effort; never fail a reconcile for it
            log.warning("operator.event_failed", tenant=meta["name"], reason=reason, error=str(exc))

    async def _invalid(self, body: Mapping[str, Any], *, reason: str, message: str) -> Invalid:
        await self._report(body, phase="Failed", ready=False, reason=reason, message=message)
        return Invalid(message)

    # ---- the reconcile ---------------------------------------------------------------
    async def reconcile(self, body: Mapping[str, Any]) -> Outcome:
        """Bring the tenant's control plane in line with its spec; raise Retry/Invalid when not done."""
        meta = body["metadata"]
        name, uid = meta["name"], meta["uid"]
        logger = log.bind(tenant=name)
        status = TenantStatus.from_dict(body.get("status"))
        was_ready = status.ready and status.phase == "Ready"
        # Degraded: provisioned, but the health loop (vcluster.operator.health) found it unhealthy;
        # a reconcile then is a repair, not a new provisioning.
        degraded = status.phase == "Degraded"
        settled = "Ready" if was_ready else ("Degraded" if degraded else "Provisioning")

        # 1. everything that can be wrong, before any write ------------------------------
        try:
            key = naming.cluster_key(name, uid)
            spec = TenantSpec.from_dict(body.get("spec"))
            problems = spec.problems()
            if problems:
                raise SpecError("; ".join(problems))
        except (SpecError, naming.NamingError) as exc:
            raise await self._invalid(body, reason="InvalidSpec", message=str(exc)) from None
        cluster_version = None
        ref = spec.control_plane.cluster_version_ref
        if ref:
            cv = await self.api.get_or_none(r.CLUSTERVERSIONS, ref)
            if cv is None:
                message = f"ClusterVersion {ref!r} not found"
                await self._report(body, phase="Pending" if not was_ready else "Ready", ready=was_ready,
                                   reason="ClusterVersionNotFound", message=message, event_type="Warning")
                raise Retry(message, delay=10)
            try:
                cluster_version = ClusterVersionSpec.from_dict(cv.get("spec"))
            except SpecError as exc:
                raise await self._invalid(
                    body, reason="InvalidClusterVersion", message=f"ClusterVersion {ref!r}: {exc}"
                ) from None
        backend = resolve_backend(spec.control_plane.backend, status.backend, self.default_backend)
        if backend == "local" and spec.control_plane.replicas != 1:
            raise await self._invalid(body, reason="InvalidSpec", message=(
                f"spec.controlPlane.replicas {spec.control_plane.replicas}: the local backend (the operator's "
                "default here) runs exactly one replica; set spec.controlPlane.backend: pods"))
        spec = dataclasses.replace(spec, control_plane=dataclasses.replace(spec.control_plane, backend=backend))
        layout = self.local.layout(key) if backend == "local" else pods.layout(key, host=spec.control_plane.expose.host)
        try:
            plane = builder.build(
                tenant_name=name, cluster_key=key, tenant=spec, cluster_version=cluster_version, layout=layout,
                registry=self.image_repository, etcd_image=self.etcd_image or None,
            )
        except SpecError as exc:
            raise await self._invalid(body, reason="InvalidSpec", message=str(exc)) from None
        if backend == "local":
            try:
                self.local.binaries_for(plane.version)
            except VersionUnavailable as exc:
                await self._report(body, phase="Pending" if not was_ready else "Ready", ready=was_ready,
                                   reason="VersionUnavailable", message=str(exc), event_type="Warning")
                raise Retry(str(exc), delay=60) from None

        # 2. provision ------------------------------------------------------------------------
        common = {"clusterKey": key, "backend": backend, "version": plane.version}
        if not was_ready and status.phase not in ("Provisioning", "Degraded"):
            await self._report(body, phase="Provisioning", ready=False, reason="Provisioning",
                               message=f"provisioning the {backend} control plane", extra=common,
                               event_type="Normal")
        await self._ensure_root_namespace(key, name, uid)
        proxy_ca = await self._kubelet_ca()
        files, renewed = await self._ensure_pki(key, name, plane.certs, proxy_ca)
        plan = certs.renewal(files, plane.certs, self.lifetimes)
        if renewed:
            # told as soon as the new PKI is stored: a later step may wait (pods rolling) and the next
            # reconcile finds nothing left to renew; the new status.certificates marks the rollout done
            await self.event(body, type_="Normal", reason="CertificatesRenewed", message=(
                f"renewed {', '.join(renewed)}; rolling them out to the {backend} control plane and the "
                f"kubeconfig Secret {key}/{naming.kubeconfig_secret_name()}; next renewal after "
                f"{clock.timestamp(plan.renew_after)} ({plan.first})"))
            logger.info("operator.certificates.renewed", key=key, renewed=renewed,
                        renew_after=clock.timestamp(plan.renew_after))
        cm_kubeconfig = certs.kubeconfig_for(
            cp.CONTROLLER_MANAGER, server=plane.internal_endpoint, files=files, cluster_name=key
        )
        conditions: list[tuple[str, bool, str, str]] = []
        if backend == "pods":
            plane, storage = await self._pods_storage(plane, key)
            conditions.append(storage)
        try:
            if backend == "local":
                if renewed:  # the restarts of components with new certificates are no failures
                    self.rolling.add(key)
                try:
                    await asyncio.to_thread(self.local.apply, plane, pki_files=files, cm_kubeconfig=cm_kubeconfig)
                finally:
                    self.rolling.discard(key)
            else:
                await self.pods.apply(self.api, pods.render(plane, namespace=key, cm_kubeconfig=cm_kubeconfig,
                                                            placement=self.placement.pod_spec(), pki_files=files))
                waiting = await self.pods.progress(self.api, plane, namespace=key)
                if waiting:
                    # A Ready tenant whose pods roll (a new version, image or flag) still serves: it stays
                    # Ready (the syncer keeps serving it) and says what is rolling.
                    rolling = was_ready and await self.pods.serving(self.api, namespace=key)
                    message = (f"rolling {', '.join(waiting)} in namespace {key}" if rolling
                               else f"waiting for {', '.join(waiting)} in namespace {key}")
                    await self._report(body, phase="Ready" if rolling else "Provisioning", ready=rolling,
                                       reason="RollingUpdate" if rolling else "WaitingForControlPlane",
                                       message=message, extra=common, event_type="Normal",
                                       conditions=conditions)
                    raise Retry(message, delay=5)
        except BackendError as exc:
            await self._report(body, phase="Provisioning", ready=False, reason="ControlPlaneFailed",
                               message=str(exc), extra=common, conditions=conditions)
            raise Retry(str(exc), delay=15) from None
        admin_kubeconfig = certs.kubeconfig_for(cp.ADMIN, server=plane.endpoint, files=files, cluster_name=key)
        await self._apply(r.SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": naming.kubeconfig_secret_name(), "namespace": key,
                         "labels": naming.owner_labels(key, name, managed_by=naming.MANAGED_BY_OPERATOR)},
            "data": {naming.KUBECONFIG_SECRET_KEY: _b64(admin_kubeconfig.encode())},
        })

        # 3. inside the tenant control plane -------------------------------------------------
        try:
            await self._bootstrap_tenant(admin_kubeconfig, spec)
        except (ApiError, TimeoutError) as exc:
            message = f"tenant apiserver {plane.endpoint} not usable yet: {exc}"
            await self._report(body, phase=settled, ready=was_ready,
                               reason="WaitingForApiserver", message=message, extra=common,
                               conditions=conditions)
            raise Retry(message, delay=10) from None

        # 4. the tenant's DNS, isolation of its existing super namespaces ---------------------
        try:
            dns_status = await self.ensure_dns(key, name, backend, domain=spec.dns.cluster_domain)
        except (BackendError, ApiError) as exc:
            message = f"tenant DNS: {exc}"
            await self._report(body, phase="Provisioning" if not was_ready else "Ready", ready=was_ready,
                               reason="ControlPlaneFailed", message=message, extra=common, conditions=conditions)
            raise Retry(message, delay=15) from None
        isolation = policy.with_defaults(spec.isolation, quota=self.default_quota, limits=self.default_limits,
                                         requests=self.default_requests)
        count = await self.apply_isolation(key, name, isolation, endpoint=plane.endpoint,
                                           dns=policy.host_port((dns_status or {}).get("endpoint")))

        # 5. report --------------------------------------------------------------------------
        await self._report(
            body, phase="Ready", ready=True, reason="Ready",
            message=f"control plane ({backend}, {plane.version}) is serving at {plane.endpoint}",
            extra={
                **common,
                "endpoint": plane.endpoint,
                "kubeconfigSecret": {"namespace": key, "name": naming.kubeconfig_secret_name()},
                "counts": {"superNamespaces": count},
                "certificates": plan.to_status(),
                **({"dns": dns_status} if dns_status else {}),
                **policy_status(body.get("status"), spec.isolation, isolation),
            },
            conditions=conditions,
        )
        logger.info("operator.tenant.ready", key=key, endpoint=plane.endpoint, backend=backend)
        return Outcome(cluster_key=key, endpoint=plane.endpoint, backend=backend)

    # ---- steps -------------------------------------------------------------------------
    async def _pods_storage(
        self, plane: cp.ControlPlaneSpec, key: str
    ) -> tuple[cp.ControlPlaneSpec, tuple[str, bool, str, str]]:
        """The plane to apply, with the etcd storage an existing StatefulSet already has, and the
        ``StorageApplied`` condition: a claim template is immutable, so a changed
        ``spec.controlPlane.storage`` is reported (False, Event) and not applied — the rest of the
        control plane is still reconciled, etcd's data stays where it is."""
        exists, current = await self.pods.current_storage(self.api, namespace=naming.root_namespace(key))
        if not exists:
            return plane, (STORAGE_CONDITION, True, "Applied",
                           f"etcd data on a PersistentVolumeClaim ({pods.describe_storage(plane.etcd_storage)})")
        change = pods.storage_change(plane.etcd_storage, current)
        kept = dataclasses.replace(plane, etcd_storage=current)
        if change is not None:
            log.warning("operator.storage.not_applied", key=key, reason=change)
            return kept, (STORAGE_CONDITION, False, STORAGE_NEEDS_MIGRATION, change)
        return kept, (STORAGE_CONDITION, True, "Applied",
                      f"etcd data on a PersistentVolumeClaim ({pods.describe_storage(current)})")

    async def _put_exact(self, resource: r.Resource, obj: dict[str, Any]) -> None:
        """Create ``obj``, or replace the live one whose spec differs, so the spec is exactly ``obj``'s.

        Not a server-side apply: a policy object the syncer created (a new super namespace) is owned by
        its create, and an apply would keep every field the applied object no longer names (a quota
        key dropped from the spec would stay enforced).
        """
        meta = obj["metadata"]
        for _ in range(3):
            live = await self.api.get_or_none(resource, meta["name"], namespace=meta["namespace"])
            if live is None:
                try:
                    await self.api.create(resource, obj, namespace=meta["namespace"])
                    return
                except AlreadyExists:
                    continue
            live_labels = (live.get("metadata") or {}).get("labels") or {}
            if live.get("spec") == obj["spec"] and all(live_labels.get(k) == v for k, v in meta["labels"].items()):
                return
            body = {**obj, "metadata": {**meta, "resourceVersion": live["metadata"]["resourceVersion"]}}
            try:
                await self.api.replace(resource, body, namespace=meta["namespace"])
                return
            except Conflict:
                continue
        raise Retry(f"{resource.kind} {meta['namespace']}/{meta['name']} keeps changing", delay=5)

    async def _apply(self, resource: r.Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return await self.api.patch(
            resource, meta["name"], obj, namespace=meta.get("namespace"),
            patch_type="apply", field_manager=FIELD_MANAGER, force=True,
        )

    async def _ensure_root_namespace(self, key: str, name: str, uid: str) -> None:
        labels = {
            **naming.owner_labels(key, name, managed_by=naming.MANAGED_BY_OPERATOR),
            naming.LABEL_NAMESPACE_ROLE: naming.ROLE_ROOT,
        }
        annotations = {naming.ANN_TENANT_NAME: name, naming.ANN_TENANT_UID: uid, naming.ANN_CLUSTER_KEY: key}
        existing = await self.api.get_or_none(r.NAMESPACES, naming.root_namespace(key))
        if existing is not None and (existing.get("metadata") or {}).get("deletionTimestamp"):
            raise Retry(f"namespace {key} is still terminating", delay=5)
        await self._apply(r.NAMESPACES, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": naming.root_namespace(key), "labels": labels, "annotations": annotations},
        })

    async def _kubelet_ca(self) -> Any:
        # Shared with the kubelet proxy; whoever needs it first creates it; the operator renews it when due.
        return await kubelet_ca.ensure_ca_secret(self.api, validity=self.lifetimes.ca_validity,
                                                 renew_before=self.lifetimes.ca_renew_before)

    async def _ensure_pki(
        self, key: str, name: str, requests: tuple[cp.CertRequest, ...], kubelet_ca: Any
    ) -> tuple[dict[str, bytes], list[str]]:
        """The tenant's PKI from its Secret, completed (and stored) where something is missing or due;
        and what of an existing PKI was renewed (reissued: due, or no longer matching; empty for a
        new tenant's first PKI)."""
        ns = naming.root_namespace(key)
        for _ in range(3):
            existing = await self.api.get_or_none(r.SECRETS, cp.PKI_SECRET, namespace=ns)
            files = _decode_secret(existing)
            full, changed = await asyncio.to_thread(
                certs.complete_pki, files, requests, kubelet_ca=kubelet_ca, tenant_name=name, lifetimes=self.lifetimes
            )
            if not changed:
                return full, []
            body: dict[str, Any] = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": cp.PKI_SECRET, "namespace": ns,
                             "labels": naming.owner_labels(key, name, managed_by=naming.MANAGED_BY_OPERATOR)},
                "data": {k: _b64(v) for k, v in sorted(full.items())},
            }
            try:
                if existing is None:
                    await self.api.create(r.SECRETS, body, namespace=ns)
                else:
                    body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                    await self.api.replace(r.SECRETS, body, namespace=ns)
            except (AlreadyExists, Conflict):
                continue  # someone (an earlier run of ours) wrote it meanwhile: read and reuse
            log.info("operator.pki.stored", key=key, issued=changed)
            return full, (changed if existing is not None else [])
        raise Retry(f"PKI Secret {ns}/{cp.PKI_SECRET} keeps changing", delay=5)

    async def _bootstrap_tenant(self, admin_kubeconfig: str, spec: TenantSpec) -> None:
        """Owners → cluster-admin; wait until the controller-manager serves (default ServiceAccount)."""
        config = ClientConfig.from_kubeconfig(admin_kubeconfig, request_timeout=10.0, retries=3)
        async with ApiClient(config) as tenant:
            subjects = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u}
                        for u in spec.owners.users]
            subjects += [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}
                         for g in spec.owners.groups]
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": OWNERS_BINDING, "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY_OPERATOR}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": subjects,
            }
            await tenant.patch(r.CLUSTERROLEBINDINGS, OWNERS_BINDING, binding, patch_type="apply",
                               field_manager=FIELD_MANAGER, force=True)
            deadline = asyncio.get_running_loop().time() + self.bootstrap_timeout
            while await tenant.get_or_none(r.SERVICEACCOUNTS, "default", namespace="default") is None:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("the default ServiceAccount did not appear (kube-controller-manager down?)")
                await asyncio.sleep(0.2)  # on the way to Ready (issue 16): 0.5 s cost 0.25 s on average

    # ---- tenant DNS (vcluster.controlplane.dns) -------------------------------------------
    async def ensure_dns(self, key: str, name: str, backend: str, *,
                         domain: str = dns.CLUSTER_DOMAIN) -> dict[str, str] | None:
        """Provide the tenant's DNS server and its super Service; the status part (``status.dns``).

        The identity first (ClusterRole, ServiceAccount, binding), then the server (a local CoreDNS
        process or the pods backend's Deployment), then the Service whose ClusterIP the syncer makes
        the nameserver of ClusterFirst pods.  A local server on a loopback address gets no Service:
        pods could not reach it (the test bed without real nodes).
        """
        if not self.dns.enabled:
            return None
        if backend == "local" and ipaddress.ip_address(self.local.host).is_loopback:
            # no pod can reach a loopback address (the test bed without real nodes): a DNS server
            # there would only cost memory, CPU and start-up time
            return None
        for obj in (dns.cluster_role(), *dns.identity_objects(key, name)):
            await self._apply(r.BY_KIND[obj["kind"]], obj)
        root = naming.root_namespace(key)
        if backend == "local":
            # the apiserver's Service first: the Corefile's ``kubernetes.default`` answers its ClusterIP
            await self._apply(r.SERVICES, dns.apiserver_service(key, name))
            api_port = (await asyncio.to_thread(self.local.ports, key)).apiserver
            await self._apply(r.ENDPOINTSLICES,
                              dns.apiserver_endpoint_slice(key, name, address=self.local.host, port=api_port))
            corefile = await self._local_corefile(key, domain)
            age = self.local.dns_token_age(key)
            token = await self._dns_token(key) if age is None or age > self.dns.token_seconds / 2 else None
            files = self.local.dns_files(key)
            config = self.api.config
            kubeconfig = json.dumps(dns.super_kubeconfig(server=config.server, ca_pem=config.ca_pem,
                                                         token_file=str(files.token)), indent=1)
            await asyncio.to_thread(self.local.apply_dns, key, corefile=corefile, kubeconfig=kubeconfig, token=token)
            port = self.local.dns_ports(key).dns
            status = {"endpoint": f"{self.local.host}:{port}"}
            await self._apply(r.SERVICES, dns.service(key, name, target_port=port, selector=False))
            await self._apply(r.ENDPOINTSLICES, dns.endpoint_slice(key, name, address=self.local.host, port=port))
        else:
            corefile = dns.corefile(
                key=key, port=dns.POD_PORT, bind=None, ready=f":{dns.POD_READY_PORT}", kubeconfig=None,
                apiserver_ip=await self._apiserver_service_ip(key), apiserver_names=(pods.internal_host(key),),
                upstream=await self._dns_upstream(),
                long_namespaces=await self._long_namespaces(key), domain=domain, super_domain=self.dns.super_domain,
            )
            for obj in dns.pod_objects(key, name, image=self.dns.image, corefile_text=corefile,
                                       placement=self.placement.pod_spec()):
                await self._apply(r.BY_KIND[obj["kind"]], obj)
            await self._apply(r.SERVICES, dns.service(key, name, target_port=dns.POD_PORT, selector=True))
            status = {}
        svc = await self.api.get(r.SERVICES, naming.TENANT_DNS_SERVICE, namespace=root)
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            status["clusterIP"] = ip
        return status

    async def _apiserver_service_ip(self, key: str) -> str | None:
        """What ``kubernetes.default`` answers: the tenant's apiserver Service's ClusterIP (both backends;
        ``None`` while it has none: a headless Service or none yet; the next reconcile adds it)."""
        svc = await self.api.get_or_none(r.SERVICES, naming.TENANT_APISERVER_SERVICE,
                                         namespace=naming.root_namespace(key))
        ip = ((svc or {}).get("spec") or {}).get("clusterIP")
        return str(ip) if ip and ip != "None" else None

    async def _local_corefile(self, key: str, domain: str) -> str:
        ports = await asyncio.to_thread(self.local.dns_ports, key)
        host = self.local.host
        return dns.corefile(
            key=key, port=ports.dns, bind=host, ready=f"{host}:{ports.ready}",
            kubeconfig=str(self.local.dns_files(key).kubeconfig),
            # the Service in front of the apiserver (443 and 6443); the host address until it has an IP
            apiserver_ip=await self._apiserver_service_ip(key) or host,
            upstream=await self._dns_upstream(), long_namespaces=await self._long_namespaces(key),
            domain=domain, super_domain=self.dns.super_domain,
        )

    async def _dns_upstream(self) -> tuple[str, ...]:
        if self.dns.upstream:
            return self.dns.upstream
        super_dns = await self.api.get_or_none(r.SERVICES, "kube-dns", namespace="kube-system")
        ip = ((super_dns or {}).get("spec") or {}).get("clusterIP")
        return (ip,) if ip and ip != "None" else ()

    async def _long_namespaces(self, key: str) -> dict[str, str]:
        """The tenant's namespaces whose super namespace name is shortened (one rewrite rule each)."""
        namespaces, _ = await self.api.list_all(r.NAMESPACES, label_selector=dns.namespace_selector(key))
        names = [ns for obj in namespaces
                 if (ns := ((obj["metadata"].get("annotations") or {}).get(naming.ANN_TENANT_NAMESPACE)))]
        return dns.shortened(key, [n for n in names if naming.is_dns_label(n)])

    async def _dns_token(self, key: str) -> str:
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": self.dns.token_seconds}}
        answer = await self.api.create(r.SERVICEACCOUNTS, request, namespace=naming.root_namespace(key),
                                       name=naming.TENANT_DNS_SERVICE_ACCOUNT, subresource="token")
        return str(answer["status"]["token"])

    async def local_dns_stale(self, key: str, domain: str = dns.CLUSTER_DOMAIN) -> bool:
        """Whether the local tenant DNS needs the reconcile: not running, token past half its life, or
        its Corefile no longer the one the tenant's namespaces ask for (a new shortened namespace)."""
        if not self.dns.enabled or ipaddress.ip_address(self.local.host).is_loopback:
            return False  # no tenant DNS on a loopback host (see ensure_dns)
        if not await asyncio.to_thread(self.local.dns_healthy, key):
            return True
        age = self.local.dns_token_age(key)
        if age is None or age > self.dns.token_seconds / 2:
            return True
        try:
            current = self.local.dns_files(key).corefile.read_text()
        except OSError:
            return True
        return current != await self._local_corefile(key, domain)

    async def apply_isolation(self, key: str, name: str, isolation: IsolationSpec, *, endpoint: str = "",
                              dns: tuple[str, int] | None = None) -> int:
        """Apply the policy to every existing workload super namespace of the tenant; return their count.

        ``endpoint`` (the tenant apiserver URL) and ``dns`` (the tenant DNS server's ``status.dns.endpoint``)
        open the NetworkPolicy's egress to them, as the syncer does.
        """
        url = urlsplit(endpoint) if endpoint else None
        apiserver = (url.hostname, url.port or 443) if url is not None and url.hostname else None
        selector = f"{naming.LABEL_CLUSTER_KEY}={key},{naming.LABEL_NAMESPACE_ROLE}={naming.ROLE_WORKLOAD}"
        namespaces, _ = await self.api.list_all(r.NAMESPACES, label_selector=selector)
        stale = policy.stale_policy_kinds(isolation)
        for ns in namespaces:
            ns_name = ns["metadata"]["name"]
            if ns["metadata"].get("deletionTimestamp"):
                continue
            await self.api.patch(r.NAMESPACES, ns_name, {"metadata": {"labels": policy.namespace_labels(isolation)}})
            for obj in policy.policy_objects(isolation, super_namespace=ns_name, cluster_key=key, tenant_name=name,
                                             apiserver=apiserver, dns=dns):
                await self._put_exact(r.BY_KIND[obj["kind"]], obj)
            for kind in stale:
                with contextlib.suppress(NotFound):
                    await self.api.delete(r.BY_KIND[kind], policy.POLICY_OBJECT_NAMES[kind], namespace=ns_name)
        return len(namespaces)

    # ---- health and teardown ----------------------------------------------------------
    async def touch_tenants_of(self, cluster_version: Mapping[str, Any]) -> list[str]:
        """Annotate the Tenants that use a ClusterVersion with its generation, so they reconcile now."""
        meta = cluster_version["metadata"]
        tenants, _ = await self.api.list_all(r.TENANTS)
        touched: list[str] = []
        for tenant in tenants:
            ref = ((tenant.get("spec") or {}).get("controlPlane") or {}).get("clusterVersionRef")
            if ref != meta["name"] or (tenant["metadata"].get("deletionTimestamp")):
                continue
            stamp = f"{meta.get('uid')}/{meta.get('generation')}"
            if (tenant["metadata"].get("annotations") or {}).get(ANN_CLUSTER_VERSION) == stamp:
                continue
            with contextlib.suppress(NotFound):
                await self.api.patch(r.TENANTS, tenant["metadata"]["name"],
                                     {"metadata": {"annotations": {ANN_CLUSTER_VERSION: stamp}}})
                touched.append(tenant["metadata"]["name"])
        return touched

    async def teardown(self, body: Mapping[str, Any]) -> None:
        """Remove every process, namespace and secret of the tenant."""
        meta = body["metadata"]
        name = meta["name"]
        try:
            key = naming.cluster_key(name, meta["uid"])
        except naming.NamingError:
            return  # never provisioned: a name the schema should have refused
        with contextlib.suppress(ApiError):
            await self._report(body, phase="Terminating", ready=False, reason="Terminating",
                               message="removing the control plane", event_type="Normal")
        await asyncio.to_thread(self.local.destroy, key)
        with contextlib.suppress(NotFound):
            await self.api.delete(r.CLUSTERROLEBINDINGS, naming.tenant_dns_binding_name(key))
        selector = f"{naming.LABEL_CLUSTER_KEY}={key}"
        namespaces, _ = await self.api.list_all(r.NAMESPACES, label_selector=selector)
        for ns in namespaces:
            labels = ns["metadata"].get("labels") or {}
            if labels.get(naming.LABEL_NAMESPACE_ROLE) not in (naming.ROLE_ROOT, naming.ROLE_WORKLOAD):
                continue
            with contextlib.suppress(NotFound):
                await self.api.delete(r.NAMESPACES, ns["metadata"]["name"])
        log.info("operator.tenant.deleted", tenant=name, key=key, namespaces=len(namespaces))
