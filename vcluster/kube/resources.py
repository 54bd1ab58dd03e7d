"""Frozen resource descriptors instead of a model class per kind.

Why: a kind is just (group, version, plural, namespaced); one request builder
turns a descriptor and a (namespace, name) into a URL path.  The explicit
table below is the registry of the kinds the project uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from vcluster import naming


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: enough to build every URL for it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection, an object or an object's subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
EVENTS = Resource("", "v1", "events", "Event")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota")
LIMITRANGES = Resource("", "v1", "limitranges", "LimitRange")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
NETWORKPOLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTERROLEBINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
PRIORITYCLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False)
TENANTS = Resource(naming.GROUP, naming.VERSION, "tenants", "Tenant", namespaced=False)
CLUSTERVERSIONS = Resource(naming.GROUP, naming.VERSION, "clusterversions", "ClusterVersion", namespaced=False)

#: Every descriptor above, by kind.
BY_KIND: dict[str, Resource] = {
    r.kind: r
    for r in (
        NAMESPACES, NODES, PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, SERVICEACCOUNTS, EVENTS,
        PVCS, PVS, RESOURCEQUOTAS, LIMITRANGES, LEASES, NETWORKPOLICIES, INGRESSES, DEPLOYMENTS,
        STATEFULSETS, ENDPOINTSLICES, CLUSTERROLES, CLUSTERROLEBINDINGS, CRDS, STORAGECLASSES, PRIORITYCLASSES,
        TENANTS, CLUSTERVERSIONS,
    )
}
