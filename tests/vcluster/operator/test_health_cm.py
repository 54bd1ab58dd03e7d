"""An exited kube-controller-manager beside a serving apiserver is restarted quietly, with back-off.

Why: kube-controller-manager exits when its apiserver goes away in its first seconds (it waits 10 s
for ``/healthz``), e.g. when the apiserver is restarted just after it.  The health loop then marked
the Tenant ``Ready=False ProcessExited`` (``Degraded``), and the syncer, which serves only Ready
tenants, dropped it -- although its apiserver served throughout.  Now the controller-manager alone
is restarted by the usual repair (the reconcile starts it once the apiserver's ``/readyz`` answers)
while the Tenant stays Ready, with a back-off between restarts; one that keeps exiting is reported
as before.
"""

from __future__ import annotations

import asyncio

import pytest

from tenant_crd import TenantStatus
from tests.vcluster.operator.test_health import FakeApi, FakeReconciler, _tenant
from vcluster.controlplane.spec import APISERVER_COMPONENT, CM_COMPONENT
from vcluster.operator.health import (
    CM_QUIET_RESTARTS,
    CM_RESTARTED,
    DEGRADED,
    PROCESS_EXITED,
    CmRestarts,
    HealthMonitor,
    Verdict,
    cm_restart,
)


def test_quiet_restarts_back_off_then_are_reported() -> None:
    state = CmRestarts()
    seen = []
    for now in (0.0, 1.0, 2.0, 5.0, 6.0, 9.0, 200.0):
        action, state = cm_restart(state, now)
        seen.append((now, action))
    assert seen == [(0.0, "restart"), (1.0, "wait"), (2.0, "restart"), (5.0, "wait"), (6.0, "restart"),
                    (9.0, "report"), (200.0, "report")]
    assert CM_QUIET_RESTARTS == 3


class Processes:
    """``LocalBackend.exited`` as scripted: the components gone at each round (the last one repeats)."""

    def __init__(self, script: list[list[str]]) -> None:
        self.script = script

    def exited(self, key: str) -> list[str]:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class ServingMonitor(HealthMonitor):
    """The real probe, with the apiserver answering ``/readyz`` (the HTTP part has tests of its own)."""

    async def _probe_apiserver(self, key: str, status: TenantStatus) -> Verdict:
        return Verdict(True)


def _run(gone: list[list[str]], rounds: int, *, step: float) -> FakeReconciler:
    api = FakeApi([_tenant("a")])
    reconciler = FakeReconciler(api)
    reconciler.local = Processes(gone)  # type: ignore[attr-defined]
    now = [0.0]
    monitor = ServingMonitor(api=api, reconciler=reconciler, threshold=2,  # type: ignore[arg-type]
                             clock=lambda: now[0])

    async def scenario() -> None:
        for _ in range(rounds):
            await monitor.round()
            await asyncio.gather(*list(monitor._repairs.values()))  # the repair (a reconcile) runs
            now[0] += step
        await monitor.close()

    asyncio.run(scenario())
    return reconciler


def test_an_exited_controller_manager_is_restarted_and_the_tenant_stays_ready() -> None:
    reconciler = _run([[CM_COMPONENT], []], rounds=3, step=5.0)
    assert reconciler.writes == []  # no Ready=False, no Degraded: the syncer keeps serving the tenant
    assert reconciler.reconciled == ["a"]  # the repair that starts it again
    # ... and the admin hears of it: one Warning Event, the restart counted
    ((tenant, type_, reason, message),) = reconciler.events
    assert (tenant, type_, reason) == ("a", "Warning", CM_RESTARTED)
    assert f"quiet restart 1 of {CM_QUIET_RESTARTS}" in message
    assert PROCESS_EXITED in message


def test_restarts_wait_for_their_back_off() -> None:
    # found exited at every round, one second apart: restarted at 0 s, then not before 2 s, then 6 s
    reconciler = _run([[CM_COMPONENT]], rounds=7, step=1.0)
    assert reconciler.reconciled == ["a", "a", "a"]
    assert reconciler.writes == []
    assert [message.split("(")[1].split(";")[0] for *_, message in reconciler.events] == [
        f"quiet restart {n} of {CM_QUIET_RESTARTS}" for n in (1, 2, 3)]  # one Event per restart, not per round


def test_one_that_keeps_exiting_is_reported() -> None:
    reconciler = _run([[CM_COMPONENT]], rounds=12, step=10.0)
    assert reconciler.writes[0] == ("a", False, DEGRADED, PROCESS_EXITED)
    assert reconciler.reconciled.count("a") >= CM_QUIET_RESTARTS + 1  # and still repaired, as any exit


def test_a_quiet_minute_starts_the_count_again() -> None:
    # exits, runs for two minutes, exits again: each is a first quiet restart
    reconciler = _run([[CM_COMPONENT], *[[]] * 24, [CM_COMPONENT], []], rounds=30, step=5.0)
    assert reconciler.reconciled == ["a", "a"]
    assert reconciler.writes == []


@pytest.mark.parametrize("gone", [[APISERVER_COMPONENT], [APISERVER_COMPONENT, CM_COMPONENT]])
def test_any_other_exit_is_reported_at_once(gone: list[str]) -> None:
    reconciler = _run([gone, []], rounds=2, step=5.0)
    assert reconciler.writes[0] == ("a", False, DEGRADED, PROCESS_EXITED)
    assert reconciler.reconciled == ["a"]
    assert reconciler.events == []  # the condition's change has its Event (the reconciler's report)


