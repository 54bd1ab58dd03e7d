"""Virtual-node heartbeats against a tenant apiserver that goes away: sooner retries, one line per state.

The manager's writes are replaced by a scripted stand-in (the Lease renewal fails while the tenant is
"down"); the clock is fake and nothing sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.clock import ManualClock
from vcluster.backoff import BackoffPolicy, Outage, RemoteMetrics
from vcluster.kube import ApiClient, ApiError, ClientConfig
from virtual_node.manager import VirtualNodeManager, _Tenant, _VNode
from virtual_node.settings import VirtualNodeSettings


class RecordingLogger:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)


def test_failed_heartbeats_retry_sooner_and_log_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    registry = CollectorRegistry()
    mgr = VirtualNodeManager(ApiClient(ClientConfig(server="https://127.0.0.1:1")),
                             VirtualNodeSettings(heartbeat_period=10.0), registry=registry, clock=clock)
    logger = RecordingLogger()
    tenant = _Tenant(key="t-123456", client=ApiClient(ClientConfig(server="https://127.0.0.1:2")))
    tenant.nodes["kwok-node-0"] = _VNode(uid="u", status={})
    tenant.outage = Outage(logger=logger, event="virtual_node.heartbeat",
                           policy=BackoffPolicy(initial=1.0, cap=10.0, jitter=0.0), clock=clock,
                           metrics=RemoteMetrics.of(registry), component="virtual-node-heartbeat",
                           target="t-123456")
    down = {"now": True}

    async def collect(*_: Any) -> bool:
        return False

    async def renew(*_: Any) -> None:
        if down["now"]:
            raise ApiError(0, "ConnectionError", "PUT leases: connection refused")

    async def post(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(mgr, "_collect_if_idle", collect)
    monkeypatch.setattr(mgr, "_renew_lease", renew)
    monkeypatch.setattr(mgr, "_post_status", post)

    async def beats(n: int) -> list[float]:
        out = []
        for _ in range(n):
            delay = await mgr._beat(tenant)
            out.append(delay)
            clock.now += delay
        return out

    waits = asyncio.run(beats(8))
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    labels = {"component": "virtual-node-heartbeat", "target": "t-123456"}
    assert registry.get_sample_value("vc_remote_up", labels) == 0.0
    assert registry.get_sample_value("vc_virtual_node_heartbeat_failures_total", {"tenant": "t-123456"}) == 8.0
    down["now"] = False
    assert asyncio.run(beats(2)) == [10.0, 10.0]
    assert registry.get_sample_value("vc_remote_up", labels) == 1.0
    assert logger.events == ["virtual_node.heartbeat.down", "virtual_node.heartbeat.back"]


def test_heartbeat_names_the_first_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = VirtualNodeManager(ApiClient(ClientConfig(server="https://127.0.0.1:1")), VirtualNodeSettings())
    tenant = _Tenant(key="t", client=ApiClient(ClientConfig(server="https://127.0.0.1:2")))
    for name in ("a", "b"):
        tenant.nodes[name] = _VNode(uid=name, status={})

    async def collect(*_: Any) -> bool:
        return False

    async def renew(_tenant: Any, name: str, _state: Any) -> None:
        raise ApiError(503, "ServiceUnavailable", f"lease {name}")

    async def post(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(mgr, "_collect_if_idle", collect)
    monkeypatch.setattr(mgr, "_renew_lease", renew)
    monkeypatch.setattr(mgr, "_post_status", post)
    failed = asyncio.run(mgr._heartbeat(tenant))
    assert failed is not None
    assert "lease a" in str(failed)
