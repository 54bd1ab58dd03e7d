"""Prometheus metrics of the kubelet proxy, in an explicit registry.

Why: per-tenant request counts and open streams are how an operator sees who
uses logs/exec and whether cross-tenant attempts happen (403/404 by tenant).
The registry is created per app (no import-time global), so tests and two
proxies in one process do not share series.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class ProxyMetrics:
    registry: CollectorRegistry
    requests: Counter
    streams: Gauge
    lookup_seconds: Histogram

    @classmethod
    def create(cls) -> ProxyMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "vc_kubelet_proxy_requests_total", "Kubelet API requests by tenant, action and HTTP status",
                ["tenant", "action", "code"], registry=registry,
            ),
            streams=Gauge(
                "vc_kubelet_proxy_open_streams", "Upgraded (exec/attach/port-forward) connections open now",
                ["tenant", "action"], registry=registry,
            ),
            lookup_seconds=Histogram(
                "vc_kubelet_proxy_lookup_seconds", "Time to resolve a tenant pod to its super kubelet",
                registry=registry,
            ),
        )
