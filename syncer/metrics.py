"""Prometheus metrics of the syncer, in a registry of its own.

Why: operators of the syncer need queue depth per tenant (is one tenant
flooding?), operation and error counts per kind and direction, sync latency
per tenant, how much drift the patrol repairs, and which replica leads.  A registry per
:class:`Metrics` keeps tests and several syncers in one process apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vcluster.backoff import RemoteMetrics

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _QueueDepth(Collector):
    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("vc_syncer_queue_depth", "Keys waiting in the work queue", labels=["tenant"])
        for tenant, depth in sorted(self._depths().items()):
            family.add_metric([tenant], depth)
        yield family


class _FailingKeys(Collector):
    def __init__(self, failing: Callable[[], dict[str, int]]) -> None:
        self._failing = failing

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("vc_syncer_failing_keys", "Keys whose last reconcile failed (retried with back-off)",
                                   labels=["tenant"])
        for tenant, count in sorted(self._failing().items()):
            family.add_metric([tenant], count)
        yield family


class Metrics:
    """The syncer's counters and histograms."""

    def __init__(
        self, *, depths: Callable[[], dict[str, int]] = dict, registry: CollectorRegistry | None = None
    ) -> None:
        #: Registry of every syncer series; ``python -m syncer`` passes its own so the virtual-node
        #: manager's ``vc_virtual_node*`` series land in the same ``/metrics``.
        self.registry = registry if registry is not None else CollectorRegistry()
        #: Queue depth per tenant; may be set after construction (the queue lives in the engine).
        self.depths = depths
        #: Failing keys per tenant (``syncer.retries.RetryLog.failing``), set by the engine.
        self.failing: Callable[[], dict[str, int]] = dict
        self.operations = Counter(
            "vc_syncer_operations", "Writes done, by kind, direction and operation",
            ["kind", "direction", "op"], registry=self.registry,
        )
        self.errors = Counter(
            "vc_syncer_errors", "Failed reconciles, by kind and direction", ["kind", "direction"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vc_syncer_sync_latency_seconds", "From a key being queued to its reconcile finishing",
            ["tenant"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.drift = Counter(
            "vc_syncer_patrol_drift", "Differences the patrol found and queued for repair", ["kind", "reason"],
            registry=self.registry,
        )
        self.tenant_updates = Counter(
            "vc_syncer_tenant_updates", "Changes of a served tenant's settings, by what they took: relist (served "
            "anew), reconnect (new client, caches kept), context (objects compared again), kept (nothing)",
            ["action"], registry=self.registry,
        )
        self.refused = Counter(
            "vc_syncer_refused", "Tenant objects refused by the isolation policy", ["kind"], registry=self.registry,
        )
        self.leader = Gauge(
            "vc_syncer_leader", "1 while this replica does the syncer's work (leader, or no election); 0 standing by",
            registry=self.registry,
        )
        self.registry.register(_QueueDepth(self._queue_depths))
        self.registry.register(_FailingKeys(self._failing_keys))
        #: ``vc_remote_up`` / ``vc_remote_failures_total`` of the informers (shared with the virtual nodes).
        self.remote = RemoteMetrics.of(self.registry)

    def _queue_depths(self) -> dict[str, int]:
        return self.depths()

    def _failing_keys(self) -> dict[str, int]:
        return self.failing()

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (a background thread)."""
        start_http_server(port, registry=self.registry)
