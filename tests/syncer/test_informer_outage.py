"""An informer whose apiserver is down: back-off delays, one log line per state change, vc_remote_up.

A fake API fails a scripted number of lists, then serves; sleeping advances a fake clock and records
the delay (no real sleeps, no timing assertions).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from syncer.informer import Informer
from vcluster.backoff import BackoffPolicy, RemoteMetrics
from vcluster.kube import ApiError, WatchEvent, resources


class Down(Exception):
    """Stops the loop once the script is played."""


class FakeApi:
    """``list_all`` fails ``failures`` times (connection refused), then lists; ``watch`` yields one event."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lists = 0
        self.watches = 0

    async def list_all(self, *_: Any, **__: Any) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        if self.lists <= self.failures:
            raise ApiError(0, "ConnectionError", "GET https://tenant/api/v1/pods: connection refused")
        return [{"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "1"}}], "1"

    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[WatchEvent]:
        self.watches += 1
        if self.watches > 1:
            raise Down
        yield WatchEvent("ADDED", {"metadata": {"namespace": "ns", "name": "b", "resourceVersion": "2"}})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


class RecordingLogger:
    def __init__(self) -> None:
        self.events: list[str] = []

    def bind(self, **_: Any) -> RecordingLogger:
        return self

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)


def _run(failures: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Informer, FakeClock, RecordingLogger,
                                                                    CollectorRegistry]:
    import syncer.informer as informer_mod

    logger = RecordingLogger()
    monkeypatch.setattr(informer_mod, "log", logger)
    clock = FakeClock()
    registry = CollectorRegistry()
    inf = Informer(FakeApi(failures), resources.PODS, name="t-123456/pods",  # type: ignore[arg-type]
                   remote=RemoteMetrics.of(registry), backoff=BackoffPolicy(initial=0.5, cap=15.0, jitter=0.2),
                   remind_every=300.0, clock=clock, sleep=clock.sleep, rng=lambda: 0.5)
    ups: list[float | None] = []

    async def run() -> None:
        original = inf.outage.failed

        def failed(error: object) -> float:
            delay = original(error)
            ups.append(registry.get_sample_value("vc_remote_up", {"component": "informer",
                                                                  "target": "t-123456/pods"}))
            return delay

        inf.outage.failed = failed  # type: ignore[method-assign]
        with pytest.raises(Down):
            await inf.run()

    asyncio.run(run())
    assert set(ups) <= {0.0}
    return inf, clock, logger, registry


def test_back_off_is_capped_with_jitter_and_logged_once_per_state(monkeypatch: pytest.MonkeyPatch) -> None:
    inf, clock, logger, _ = _run(40, monkeypatch)
    base = [0.5, 1.0, 2.0, 4.0, 8.0] + [15.0] * 35
    assert clock.slept == pytest.approx([d * 0.9 for d in base])
    # ~9 minutes down: one "down", one reminder after 5 minutes, one "back" -- not 40 warnings
    assert logger.events == ["informer.remote.down", "informer.remote.still_down", "informer.remote.back"]
    assert inf.lists == 1
    assert inf.get("ns", "b") is not None


def test_metrics_series_are_dropped_when_the_informer_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, _, registry = _run(2, monkeypatch)
    labels = {"component": "informer", "target": "t-123456/pods"}
    assert registry.get_sample_value("vc_remote_failures_total", labels) is None
    assert registry.get_sample_value("vc_remote_up", labels) is None


def test_metrics_while_running(monkeypatch: pytest.MonkeyPatch) -> None:
    import syncer.informer as informer_mod

    monkeypatch.setattr(informer_mod, "log", RecordingLogger())
    registry = CollectorRegistry()
    clock = FakeClock()
    api = FakeApi(3)
    inf = Informer(api, resources.PODS, name="x", remote=RemoteMetrics.of(registry),  # type: ignore[arg-type]
                   clock=clock, sleep=clock.sleep, rng=lambda: 0.0)
    labels = {"component": "informer", "target": "x"}
    seen: list[tuple[float | None, float | None]] = []

    async def sleep(delay: float) -> None:
        seen.append((registry.get_sample_value("vc_remote_up", labels),
                     registry.get_sample_value("vc_remote_failures_total", labels)))
        await clock.sleep(delay)

    inf._sleep = sleep

    async def run() -> None:
        with pytest.raises(Down):
            await inf.run()

    asyncio.run(run())
    assert seen == [(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)]
