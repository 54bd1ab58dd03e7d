"""Tenant pod → (super kubelet endpoint, super path): the proxy's only reads of the super cluster.

Why: each logs/exec request needs the super pod (to check it is the caller's
and find its node) and the node (for its kubelet address).  This module does
those two GETs, with a short cache so a burst of requests (``kubectl logs -f``
reconnects, port-forward streams) does not hammer the super apiserver, and
leaves every decision to :mod:`.routing`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vcluster.kube import ApiClient
from vcluster.kube import resources as r
from virtual_node.proxy import routing


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send one tenant request."""

    host: str
    port: int
    path: str
    node: str
    super_namespace: str


class PodResolver:
    def __init__(
        self,
        super_client: ApiClient,
        *,
        address_types: tuple[str, ...],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = super_client
        self._address_types = address_types
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}

    async def _get(self, resource: r.Resource, name: str, namespace: str | None) -> dict[str, Any] | None:
        cache_key = (resource.kind, namespace or "", name)
        now = self._clock()
        hit = self._cache.get(cache_key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        obj = await self._client.get_or_none(resource, name, namespace=namespace)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[cache_key] = (now, obj)
        return obj

    async def resolve(self, key: str, request: routing.KubeletRequest) -> Target:
        """Resolve or raise :class:`routing.Denied`."""
        super_ns = routing.super_namespace_for(key, request)
        p_pod = await self._get(r.PODS, request.pod, super_ns)
        node_name = routing.check_super_pod(key, request, p_pod)
        if p_pod is None:  # check_super_pod refused it already; this narrows the type
            raise routing.Denied(404, f"pod {request.namespace}/{request.pod} not found")
        p_node = await self._get(r.NODES, node_name, None)
        if p_node is None:
            raise routing.Denied(502, f"node of pod {request.namespace}/{request.pod} is gone")
        host, port = routing.node_endpoint(p_node, address_types=self._address_types)
        path = routing.super_path(
            request, super_namespace=super_ns, super_uid=(p_pod.get("metadata") or {}).get("uid")
        )
        return Target(host=host, port=port, path=path, node=node_name, super_namespace=super_ns)
