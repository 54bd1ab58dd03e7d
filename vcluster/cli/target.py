"""Which super cluster a tenant command talks to, and the client for it.

Why: ``kubectl vc create`` must work against any super cluster (``--kubeconfig``
or ``KUBECONFIG``, as kubectl does) and, with neither, against the embedded
default when it is up.  When there is no cluster to talk to, the user gets one
line saying how to get one -- not a connection error with a stack trace.
"""

from __future__ import annotations

from pathlib import Path

from vcluster.cli.settings import CliSettings
from vcluster.errors import VClusterError
from vcluster.kube import ApiClient, ApiError, ClientConfig, NotFound
from vcluster.kubeconfig import KubeconfigError


class NoClusterError(VClusterError):
    """No super cluster to talk to."""


def super_kubeconfig(settings: CliSettings) -> Path:
    """The super cluster's kubeconfig: explicit, else the embedded default's if it is up."""
    if settings.kubeconfig is not None:
        if not settings.kubeconfig.is_file():
            raise NoClusterError(f"kubeconfig {settings.kubeconfig} does not exist")
        return settings.kubeconfig
    from vcluster.cli.embedded import Layout, super_cluster_running

    layout = Layout(settings.state_dir)
    if super_cluster_running(layout):
        return layout.super_kubeconfig
    raise NoClusterError(
        f"no super cluster: the embedded default is not up in {layout.root} (start it with 'kubectl vc up'), "
        "and neither --kubeconfig nor KUBECONFIG is set"
    )


def super_client(settings: CliSettings) -> ApiClient:
    """An API client of the super cluster (few retries: a CLI should fail fast)."""
    return ApiClient(ClientConfig.from_kubeconfig(super_kubeconfig(settings), retries=2, request_timeout=20.0))


def missing_type(exc: NotFound) -> bool:
    """Whether a 404 means the resource type is unknown (no CRD) rather than a missing object."""
    details = exc.body.get("details") or {}
    return not details.get("name")


def explain(exc: ApiError, *, what: str, missing: str | None = None) -> VClusterError:
    """A one-line error for an API failure while doing ``what``; ``missing`` for a 404 on the object itself."""
    if isinstance(exc, KubeconfigError):  # credentials could not be got: the message says what to fix
        return VClusterError(f"{what}: {exc}")
    if isinstance(exc, NotFound):
        if missing_type(exc):
            return VClusterError(
                f"{what}: the super cluster does not serve Tenants (tenancy.virtualcluster.dev CRDs not installed; "
                "apply manifests/crds or use 'kubectl vc up')"
            )
        if missing is not None:
            return VClusterError(missing)
    if exc.status == 0:
        return VClusterError(f"{what}: cannot reach the super cluster ({exc.message})")
    return VClusterError(f"{what}: {exc.message or exc.reason}")
