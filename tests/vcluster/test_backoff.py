"""Back-off delays and outage logging of vcluster.backoff, on a fake clock (no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from vcluster.backoff import BackoffPolicy, Outage, RemoteMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [
        pytest.param(0, 0.0, 1.0, id="first-failure-initial"),
        pytest.param(1, 0.0, 2.0, id="doubles"),
        pytest.param(5, 0.0, 32.0, id="fifth"),
        pytest.param(6, 0.0, 60.0, id="capped"),
        pytest.param(10_000, 0.0, 60.0, id="huge-attempt-no-overflow"),
        pytest.param(3, 0.5, 8.0 * 0.9, id="jitter-takes-off-a-fraction"),
        pytest.param(20, 0.999, 60.0 * (1 - 0.2 * 0.999), id="jitter-below-cap"),
    ],
)
def test_delay(attempt: int, rng: float, expected: float) -> None:
    policy = BackoffPolicy(initial=1.0, factor=2.0, cap=60.0, jitter=0.2)
    assert policy.delay(attempt, rng=lambda: rng) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs", [
    pytest.param({"initial": 0.0}, id="zero-initial"),
    pytest.param({"initial": 5.0, "cap": 1.0}, id="cap-below-initial"),
    pytest.param({"factor": 0.5}, id="shrinking"),
    pytest.param({"jitter": 1.0}, id="jitter-whole-delay"),
])
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid back-off policy"):
        BackoffPolicy(**kwargs)


class RecordingLogger:
    """Records ``(level, event, fields)``; stands in for a bound structlog logger."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append({"level": "warning", "event": event, **kw})

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append({"level": "info", "event": event, **kw})


def _outage(clock: FakeClock, metrics: RemoteMetrics | None = None, logger: RecordingLogger | None = None) -> Outage:
    return Outage(logger=logger or RecordingLogger(), event="informer.remote",
                  policy=BackoffPolicy(initial=1.0, cap=30.0, jitter=0.0), remind_every=300.0, clock=clock,
                  metrics=metrics, component="informer", target="a/pods")


def test_one_line_per_state_change_and_reminders() -> None:
    clock = FakeClock()
    logger = RecordingLogger()
    outage = _outage(clock, logger=logger)
    delays = []
    for _ in range(40):  # 40 failed attempts over ~10 minutes of fake time
        delays.append(outage.failed(ConnectionError("refused")))
        clock.now += 15
    outage.succeeded()
    outage.succeeded()  # still up: no second "back"
    logs = logger.lines
    events = [entry["event"] for entry in logs]
    assert events == ["informer.remote.down", "informer.remote.still_down", "informer.remote.back"]
    assert logs[0]["error"] == "refused"
    assert [entry["level"] for entry in logs] == ["warning", "warning", "info"]
    assert logs[1]["attempts"] == 21
    assert logs[2]["down_for"] == pytest.approx(600.0)
    assert logs[2]["attempts"] == 40
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(delays[5:]) == {30.0}
    assert not outage.down
    assert outage.failures == 0


def test_after_recovery_the_delay_starts_over() -> None:
    clock = FakeClock()
    outage = _outage(clock)
    for _ in range(5):
        outage.failed("x")
    outage.succeeded()
    assert outage.failed("x") == 1.0


def test_metrics_follow_the_state() -> None:
    registry = CollectorRegistry()
    metrics = RemoteMetrics(registry)
    clock = FakeClock()
    outage = _outage(clock, metrics)
    labels = {"component": "informer", "target": "a/pods"}
    assert registry.get_sample_value("vc_remote_up", labels) is None, "no value before the first attempt ended"
    outage.succeeded()
    assert registry.get_sample_value("vc_remote_up", labels) == 1.0
    outage.failed("x")
    outage.failed("x")
    assert registry.get_sample_value("vc_remote_up", labels) == 0.0
    assert registry.get_sample_value("vc_remote_failures_total", labels) == 2.0
    outage.succeeded()
    assert registry.get_sample_value("vc_remote_up", labels) == 1.0
    outage.forget()
    assert registry.get_sample_value("vc_remote_up", labels) is None


def test_a_first_attempt_that_fails_reads_down_never_up() -> None:
    registry = CollectorRegistry()
    outage = _outage(FakeClock(), RemoteMetrics(registry))
    labels = {"component": "informer", "target": "a/pods"}
    outage.failed("x")
    assert registry.get_sample_value("vc_remote_up", labels) == 0.0
