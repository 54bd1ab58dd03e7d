"""Attach the reconciler to an explicit Kopf registry.

Why: Kopf's decorators register into a global registry at import time; we
call them with an explicit ``registry=`` inside :func:`register` instead, so
importing this module has no side effect and only the entry point decides
what runs.  This layer only translates: Kopf causes → :class:`Reconciler`
calls, :class:`~vcluster.operator.reconcile.Retry`/``Invalid`` → Kopf's
temporary/permanent errors.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
import structlog

from tenant_crd import CLUSTER_VERSION_PLURAL, TENANT_PLURAL
from vcluster import naming
from vcluster.kube.credentials import Credential, source_for
from vcluster.kubeconfig import KubeconfigInfo
from vcluster.operator.health import HealthMonitor
from vcluster.operator.reconcile import Invalid, Reconciler, Retry
from vcluster.operator.settings import OperatorSettings

log = structlog.get_logger(__name__)

RESOURCE = (naming.GROUP, naming.VERSION, TENANT_PLURAL)
CV_RESOURCE = (naming.GROUP, naming.VERSION, CLUSTER_VERSION_PLURAL)


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """Kopf's settings: our finalizer, progress in annotations, no Kopf event spam."""
    out = kopf.OperatorSettings()
    out.persistence.finalizer = naming.FINALIZER
    out.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=f"kopf.{naming.GROUP}")
    out.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{naming.GROUP}", key="last-handled-configuration"
    )
    out.posting.level = 100  # we post our own Events (reconcile.Reconciler.event)
    # One replica acts at a time through our own Lease (vcluster.leader), so Kopf's peering (which
    # needs its own CRDs) stays off: the operator only runs Kopf while it holds the Lease.
    out.peering.standalone = True
    out.peering.clusterwide = True
    out.watching.server_timeout = 300
    out.queueing.error_delays = [1, 2, 5, 10, 20, 30]
    return out


def _body(body: Any) -> Mapping[str, Any]:
    return dict(body)


def kopf_login(info: KubeconfigInfo) -> Callable[..., Awaitable[kopf.ConnectionInfo]]:
    """Kopf's login handler for the operator's kubeconfig.

    Credentials that change (exec plugin, token file, expiring id-token) come from the same
    :class:`~vcluster.kube.credentials.CredentialSource` kind the operator's own clients use, with an
    ``expiration`` so Kopf logs in again when they are due; Kopf also logs in again after a 401, and then
    the credential it had is dropped so the source fetches a fresh one.
    """
    source = source_for(info)
    given: list[Credential] = []

    async def login(**_: Any) -> kopf.ConnectionInfo:
        token, cert, key, expiration = info.token, info.client_cert_pem, info.client_key_pem, None
        if source is not None:
            if given:  # Kopf asks again: the last one was refused or is due
                source.invalidate(given.pop())
            credential = await source.get()
            given.append(credential)
            token = credential.token
            if credential.client_cert_pem is not None:
                cert, key = credential.client_cert_pem, credential.client_key_pem
            if source.next_refresh != math.inf:
                expiration = _dt.datetime.fromtimestamp(source.next_refresh, _dt.UTC)
        return kopf.ConnectionInfo(
            server=info.server,
            ca_data=info.ca_pem.decode() if info.ca_pem else None,
            certificate_data=cert.decode() if cert else None,
            private_key_data=key.decode() if key else None,
            token=token,
            insecure=info.insecure_skip_tls_verify or None,
            default_namespace="default",
            expiration=expiration,
        )

    return login


def register(
    registry: kopf.OperatorRegistry,
    *,
    reconciler: Reconciler,
    settings: OperatorSettings,
    connection: KubeconfigInfo | None,
) -> None:
    """Register every handler of the operator into ``registry``."""

    if connection is not None:
        kopf.on.login(registry=registry)(kopf_login(connection))

    async def reconcile(body: kopf.Body, **_: Any) -> None:
        name = body.metadata.name
        async with reconciler.lock(name):
            try:
                await reconciler.reconcile(_body(body))
            except Retry as exc:
                raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
            except Invalid as exc:
                raise kopf.PermanentError(str(exc)) from None

    for cause, decorator in (("create", kopf.on.create), ("update", kopf.on.update), ("resume", kopf.on.resume)):
        decorator(*RESOURCE, registry=registry, id=f"reconcile-{cause}")(reconcile)

    async def teardown(body: kopf.Body, **_: Any) -> None:
        async with reconciler.lock(body.metadata.name):
            await reconciler.teardown(_body(body))

    kopf.on.delete(*RESOURCE, registry=registry, id="teardown")(teardown)

    async def cluster_version_changed(body: kopf.Body, **_: Any) -> None:
        """A ClusterVersion appeared or changed: the Tenants using it reconcile now (not at their next retry)."""
        touched = await reconciler.touch_tenants_of(_body(body))
        if touched:
            log.info("operator.cluster_version.changed", cluster_version=body.metadata.name, tenants=touched)

    for cause, decorator in (("create", kopf.on.create), ("update", kopf.on.update), ("resume", kopf.on.resume)):
        decorator(*CV_RESOURCE, registry=registry, id=f"cluster-version-{cause}")(cluster_version_changed)

    # One health loop for all tenants (vcluster.operator.health), not a Kopf timer per Tenant.
    monitor = HealthMonitor(api=reconciler.api, reconciler=reconciler, interval=settings.health_interval,
                            threshold=settings.health_failure_threshold, probe_timeout=settings.health_probe_timeout)
    tasks: list[asyncio.Task[None]] = []

    async def start_health(**_: Any) -> None:
        tasks.append(asyncio.create_task(monitor.run(), name="tenant-health"))

    async def stop_health(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()

    kopf.on.startup(registry=registry, id="tenant-health-start")(start_health)
    kopf.on.cleanup(registry=registry, id="tenant-health-stop")(stop_health)
