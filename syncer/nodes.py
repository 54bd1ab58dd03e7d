"""The syncer's view of virtual nodes: a small interface and a default that does nothing.

Why: before the syncer binds a tenant pod to a node, that node must exist in
the tenant control plane (its Node object, conditions and heartbeat belong to
the virtual-node component).  The engine calls a :class:`NodeProvider`; the
real one is ``virtual_node.manager.VirtualNodeManager`` (same distribution),
wired in by :func:`default_node_provider` with the syncer's metrics registry so
its ``vc_virtual_node*`` series are served on the syncer's ``/metrics``.

The syncer already caches every tenant pod; at attach it hands the provider
a :data:`NodeInUse` answer from that cache (a per-node index), so deciding
whether a virtual node is idle costs the tenant apiserver no LIST while the
cache is current.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry

from vcluster.kube import ApiClient
from virtual_node.manager import NodeInUse, VirtualNodeManager
from virtual_node.settings import VirtualNodeSettings

__all__ = ["NodeInUse", "NodeProvider", "NullNodeProvider", "default_node_provider"]


class NodeProvider(Protocol):
    """What the syncer needs from the virtual-node component."""

    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        """Start serving ``key``; ``node_in_use``, when given, answers "is a pod bound to this node?"
        instead of a tenant LIST whenever it does not answer None."""
        ...

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        """Stop serving ``key``; with ``cleanup`` also delete its unused virtual nodes (a tenant write)."""
        ...

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        """Use ``tenant_client`` for ``key`` from now on (the tenant's credentials changed); nothing else
        changes (no list, no adoption)."""
        ...

    async def ensure_node(self, key: str, node_name: str) -> None: ...

    async def run(self) -> None: ...


class NullNodeProvider:
    """Creates nothing: tenant pods are bound to node names that have no Node object."""

    async def attach_tenant(self, key: str, tenant_client: ApiClient, *, node_in_use: NodeInUse | None = None
                            ) -> None:
        return None

    async def detach_tenant(self, key: str, *, cleanup: bool = True) -> None:
        return None

    def replace_client(self, key: str, tenant_client: ApiClient) -> None:
        return None

    async def ensure_node(self, key: str, node_name: str) -> None:
        return None

    async def run(self) -> None:
        return None


def default_node_provider(super_api: ApiClient, *, registry: CollectorRegistry | None = None) -> NodeProvider:
    """The virtual-node manager, its metrics in ``registry`` (the syncer's) when given."""
    provider: NodeProvider = VirtualNodeManager(super_api, VirtualNodeSettings.from_env(), registry=registry)
    return provider
