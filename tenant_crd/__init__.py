"""The Tenant and ClusterVersion custom resources, defined once in Python.

Why this package exists: the CRD YAML the apiserver enforces, the models the
operator/syncer/CLI read, and the defaults both rely on must never disagree.
So the OpenAPI schema is Python data here (:mod:`tenant_crd.schema`), the
frozen spec/status models validate the same rules (:mod:`tenant_crd.models`),
and ``python -m tenant_crd.render`` writes ``manifests/crds/*.yaml`` from it
(a unit test fails when the committed YAML drifts).
"""

from __future__ import annotations

from tenant_crd.models import (
    ClusterVersionSpec,
    Condition,
    ControlPlaneSpec,
    DnsSpec,
    ExposeSpec,
    ExposureSpec,
    IsolationSpec,
    LimitRangeSpec,
    OwnersSpec,
    SpecError,
    StorageSpec,
    SyncSpec,
    TenantSpec,
    TenantStatus,
    Toleration,
)
from tenant_crd.schema import (
    CLUSTER_VERSION_KIND,
    CLUSTER_VERSION_PLURAL,
    TENANT_KIND,
    TENANT_PLURAL,
    all_crds,
    cluster_version_crd,
    tenant_crd,
)

__all__ = [
    "CLUSTER_VERSION_KIND",
    "CLUSTER_VERSION_PLURAL",
    "TENANT_KIND",
    "TENANT_PLURAL",
    "ClusterVersionSpec",
    "Condition",
    "ControlPlaneSpec",
    "DnsSpec",
    "ExposeSpec",
    "ExposureSpec",
    "IsolationSpec",
    "LimitRangeSpec",
    "OwnersSpec",
    "SpecError",
    "StorageSpec",
    "SyncSpec",
    "TenantSpec",
    "TenantStatus",
    "Toleration",
    "all_crds",
    "cluster_version_crd",
    "tenant_crd",
]
