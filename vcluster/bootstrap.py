"""The super cluster's prerequisites: the ``vc-system`` namespace and our CRDs, Established.

Why: the operator (async, on every start) and the CLI's embedded ``up``
(sync, before the first ``create``) both prepare the super cluster; one
module says what "prepared" means — which namespace, which CRDs, when a CRD
counts as Established — so the two cannot drift.  The CLI has no async
client at that point and does its own round trips with these definitions.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from tenant_crd import all_crds
from vcluster import naming
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, resources

log = structlog.get_logger(__name__)

Obj = dict[str, Any]


def system_namespace() -> Obj:
    """The namespace of our system objects (Leases, the kubelet proxy CA)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": naming.SYSTEM_NAMESPACE}}


def crds() -> list[Obj]:
    """Every CRD of ours (Tenant, ClusterVersion), as rendered from :mod:`tenant_crd`."""
    return list(all_crds().values())


def is_established(crd: Obj | None) -> bool:
    """Whether a CRD read from the apiserver is served (condition ``Established=True``)."""
    conds = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


async def ensure_system_namespace(api: ApiClient) -> None:
    """Create the system namespace if it is missing (idempotent under races)."""
    if await api.get_or_none(resources.NAMESPACES, naming.SYSTEM_NAMESPACE) is not None:
        return
    with contextlib.suppress(AlreadyExists):
        await api.create(resources.NAMESPACES, system_namespace())
        log.info("bootstrap.namespace_created", namespace=naming.SYSTEM_NAMESPACE)


async def install_crds(api: ApiClient, *, field_manager: str = "vc-operator", attempts: int = 200,
                       interval: float = 0.1) -> None:
    """Server-side apply the CRDs (ours win: ``force``) and wait until each is Established."""
    wanted = crds()
    for crd in wanted:
        await api.patch(resources.CRDS, crd["metadata"]["name"], crd, patch_type="apply",
                        field_manager=field_manager, force=True)
    for crd in wanted:
        for _ in range(attempts):
            if is_established(await api.get(resources.CRDS, crd["metadata"]["name"])):
                break
            await asyncio.sleep(interval)
        else:
            raise VClusterError(f"CRD {crd['metadata']['name']} did not become Established")
