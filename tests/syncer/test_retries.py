"""RetryLog: a key that keeps failing is one warning per state change, not one per retry."""

from __future__ import annotations

from typing import Any

from syncer.queue import DOWN, SyncKey
from syncer.retries import RetryLog, error_state
from tests.clock import ManualClock
from vcluster.kube import ApiError

KEY = SyncKey("acme", "Pod", DOWN, "shop", "web")
OTHER = SyncKey("beta", "ConfigMap", DOWN, "ns", "cfg")


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, kw: dict[str, Any]) -> None:
        self.lines.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._add("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, kw)

    def loud(self) -> list[tuple[str, str]]:
        return [(level, event) for level, event, _ in self.lines if level != "debug"]


def forbidden(msg: str = "exceeded quota") -> ApiError:
    return ApiError(403, "Forbidden", msg)


def make() -> tuple[RetryLog, Recorder, ManualClock]:
    rec, clock = Recorder(), ManualClock(100.0)
    return RetryLog(logger=rec, threshold=5, clock=clock), rec, clock


def test_a_key_failing_forever_is_one_warning() -> None:
    retries, rec, _ = make()
    for n in range(1, 200):
        retries.failed(KEY, forbidden(f"exceeded quota (rv {n})"), failures=n, retry_in=1.0)
    assert rec.loud() == [("warning", "sync.failing")]
    assert [e for _, e, _ in rec.lines].count("sync.retry") == 4  # the first four: debug
    _, _, fields = next(line for line in rec.lines if line[0] == "warning")
    assert fields["tenant"] == "acme"
    assert fields["key"] == "shop/web"
    assert fields["failures"] == 5
    assert fields["changed"] is False


def test_below_the_threshold_nothing_loud_and_no_recovery_line() -> None:
    retries, rec, _ = make()
    for n in range(1, 5):
        retries.failed(KEY, forbidden(), failures=n, retry_in=0.1)
    retries.succeeded(KEY)
    assert rec.loud() == []
    assert retries.failing() == {}


def test_a_new_kind_of_error_is_a_state_change() -> None:
    retries, rec, _ = make()
    for n in range(1, 8):
        retries.failed(KEY, forbidden(), failures=n, retry_in=1.0)
    retries.failed(KEY, ApiError(404, "NotFound", "namespace gone"), failures=8, retry_in=1.0)
    retries.failed(KEY, ApiError(404, "NotFound", "namespace gone again"), failures=9, retry_in=1.0)
    assert rec.loud() == [("warning", "sync.failing"), ("warning", "sync.failing")]
    changed = [kw["changed"] for level, _, kw in rec.lines if level == "warning"]
    assert changed == [False, True]


def test_recovery_is_told_once_with_how_long() -> None:
    retries, rec, clock = make()
    for n in range(1, 6):
        retries.failed(KEY, forbidden(), failures=n, retry_in=1.0)
        clock.now += 2
    retries.succeeded(KEY)
    retries.succeeded(KEY)
    assert rec.loud() == [("warning", "sync.failing"), ("info", "sync.recovered")]
    assert rec.lines[-1][2]["failed_for"] == 10.0
    # failing again later starts over: quiet below the threshold
    retries.failed(KEY, forbidden(), failures=1, retry_in=1.0)
    assert rec.loud() == [("warning", "sync.failing"), ("info", "sync.recovered")]


def test_unexpected_errors_are_reported_at_once_with_their_traceback() -> None:
    retries, rec, _ = make()
    boom = KeyError("spec")
    retries.failed(KEY, boom, failures=1, retry_in=0.1, unexpected=True)
    retries.failed(KEY, boom, failures=2, retry_in=0.2, unexpected=True)
    assert rec.loud() == [("error", "sync.failing")]
    assert rec.lines[0][2]["exc_info"] is boom


def test_failing_counts_per_tenant_and_drop() -> None:
    retries, _, _ = make()
    retries.failed(KEY, forbidden(), failures=1, retry_in=1.0)
    retries.failed(SyncKey("acme", "Pod", DOWN, "shop", "db"), forbidden(), failures=1, retry_in=1.0)
    retries.failed(OTHER, forbidden(), failures=1, retry_in=1.0)
    assert retries.failing() == {"acme": 2, "beta": 1}
    retries.drop_tenant("acme")
    assert retries.failing() == {"beta": 1}
    retries.succeeded(OTHER)
    assert retries.failing() == {}


def test_error_state_ignores_the_message() -> None:
    assert error_state(forbidden("rv 1")) == error_state(forbidden("rv 2"))
    assert error_state(forbidden()) != error_state(ApiError(409, "Conflict", "x"))
    assert error_state(OSError("reset")) == "OSError"


def test_error_state_names_type_code_and_reason() -> None:
    assert error_state(forbidden()) == "ApiError:403:Forbidden"
    assert error_state(ApiError(500, "", "no reason given")) == "ApiError:500"  # empty parts left out
    assert error_state(KeyError("spec")) == "KeyError"


FIELDS = {"tenant": "acme", "kind": "Pod", "direction": DOWN, "key": "shop/web"}


def test_each_line_says_which_key_what_and_when_again() -> None:
    """The fields of every line, exactly: an operator greps them (which tenant, kind, key; the error;
    the retry's delay in ms precision)."""
    retries, rec, clock = make()
    err = forbidden()
    retries.failed(KEY, err, failures=1, retry_in=0.12345)
    for n in range(2, 6):
        retries.failed(KEY, err, failures=n, retry_in=1.23456)
    clock.now += 2.34567
    retries.succeeded(KEY)
    common = {**FIELDS, "error": str(err)}
    assert rec.lines[0] == ("debug", "sync.retry", {**common, "failures": 1, "retry_in": 0.123})
    assert rec.lines[4] == ("warning", "sync.failing", {**common, "failures": 5, "retry_in": 1.235,
                                                          "changed": False})
    assert rec.lines[5] == ("info", "sync.recovered", {**FIELDS, "failed_for": 2.346})
    boom = KeyError("spec")
    retries.failed(OTHER, boom, failures=1, retry_in=0.5, unexpected=True)
    retries.failed(OTHER, ValueError("x"), failures=2, retry_in=0.5, unexpected=True)
    assert rec.lines[6] == ("error", "sync.failing", {
        "tenant": "beta", "kind": "ConfigMap", "direction": DOWN, "key": "ns/cfg", "error": str(boom),
        "failures": 1, "retry_in": 0.5, "changed": False, "exc_info": boom})
    assert rec.lines[7][2]["changed"] is True  # the second, a new kind of error: said as a change


# ---- the workers (engine) with a key the super cluster refuses forever ------------------------------------


async def test_workers_log_a_refused_key_once_not_per_retry() -> None:
    import asyncio

    import structlog

    from tests.syncer.engine_world import KEY as TENANT_KEY
    from tests.syncer.engine_world import configmap, make_world, namespace
    from vcluster.kube import Forbidden, Resource, resources

    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    await w.start()
    await w.settle()
    queue = w.syncer.queue
    queue._backoff_base = queue._backoff_max = 0.001  # retry at once (the test counts retries, not time)

    def refuse(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == resources.CONFIGMAPS and name == "cm":
            raise Forbidden(403, "Forbidden", "exceeded quota: vc-tenant-quota")

    w.super_.admission.append(refuse)
    w.tenant.put(resources.CONFIGMAPS, configmap("cm", a="1"))
    await w.sync()
    errors = w.syncer.metrics.errors.labels("ConfigMap", "down")
    with structlog.testing.capture_logs() as logs:
        worker = asyncio.create_task(w.syncer._worker())
        try:
            for _ in range(2000):
                if errors._value.get() >= 30:
                    break
                await asyncio.sleep(0.002)
            assert errors._value.get() >= 30  # retried again and again (the metric counts each)
            assert w.syncer.metrics.registry.get_sample_value("vc_syncer_failing_keys", {"tenant": TENANT_KEY}) == 1
            w.super_.admission.remove(refuse)  # the quota is raised: the next retry succeeds
            for _ in range(2000):
                if w.super_obj("ConfigMap", "shop", "cm") is not None and not w.syncer.shared.retries.failing():
                    break
                await asyncio.sleep(0.002)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    loud = [(e["log_level"], e["event"]) for e in logs if e["log_level"] != "debug"]
    assert loud == [("warning", "sync.failing"), ("info", "sync.recovered")]
    assert w.super_obj("ConfigMap", "shop", "cm") is not None
    assert w.syncer.shared.retries.failing() == {}
