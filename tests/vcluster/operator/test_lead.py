"""Working while holding the Lease (``vcluster.leader.lead``, used by the operator's ``_lead`` and the syncer):
what a lost Lease, a clean stop and an overdue stop do to the work and the Lease.

Kopf, the syncer and the Lease round trips are stood in by plain tasks and a recording elector (this is
control flow only); the real thing runs in e2e/test_operator.py and e2e/test_syncer_ha.py (standby,
SIGTERM hand-over, SIGKILL expiry, a frozen leader).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vcluster.errors import VClusterError
from vcluster.leader import LostLease, lead
from vcluster.operator.__main__ import _lead
from vcluster.operator.settings import OperatorSettings
from vcluster.settings import LeaseTiming

SETTINGS = OperatorSettings(lease=LeaseTiming(duration=3.0, renew_deadline=2.0, retry_period=0.5))


class RecordingElector:
    duration, renew_deadline, retry_period = 3.0, 2.0, 0.5

    def __init__(self) -> None:
        self.released = 0

    async def release(self) -> None:
        self.released += 1


async def _lost() -> None:
    await asyncio.sleep(0.01)
    raise LostLease("me lost the lease vc-system/vc-operator to other")


async def _forever(seen: dict[str, Any]) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        seen["cancelled"] = True
        raise


async def _until(stop: asyncio.Event, seen: dict[str, Any]) -> None:
    await stop.wait()
    seen["stopped"] = True


def test_lost_lease_cancels_kopf_and_fails_without_releasing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hard_exit(code: int) -> None:  # a regression (Kopf not cancelled) must fail, not end pytest
        raise AssertionError(f"os._exit({code}): Kopf was not stopped in time")

    monkeypatch.setattr("vcluster.leader.os._exit", no_hard_exit)
    elector = RecordingElector()
    seen: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        keep = asyncio.create_task(_lost())
        operator = asyncio.create_task(_forever(seen))
        await _lead(elector, keep=keep, operator=operator, stop=stop, settings=SETTINGS)  # type: ignore[arg-type]

    with pytest.raises(VClusterError, match=r"lost the lease vc-system/vc-operator to other.*stands by"):
        asyncio.run(main())
    assert seen == {"cancelled": True}
    assert elector.released == 0  # the Lease belongs to the other replica now


def test_kopf_stopping_releases_the_lease_and_stops_renewing() -> None:
    elector = RecordingElector()
    seen: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        keep = asyncio.create_task(_forever(seen))
        operator = asyncio.create_task(_until(stop, seen))
        asyncio.get_running_loop().call_later(0.01, stop.set)  # as a signal would
        await _lead(elector, keep=keep, operator=operator, stop=stop, settings=SETTINGS)  # type: ignore[arg-type]

    asyncio.run(main())
    assert seen == {"stopped": True, "cancelled": True}
    assert elector.released == 1


@pytest.mark.parametrize("lost", [True, False], ids=["lost-lease", "clean-stop"])
def test_lead_stops_the_work_and_releases_only_after_a_clean_stop(lost: bool) -> None:
    elector = RecordingElector()
    seen: dict[str, Any] = {}
    calls: list[bool] = []

    async def main() -> LostLease | None:
        work = asyncio.create_task(_forever(seen))
        keep = asyncio.create_task(_lost() if lost else _forever({}))
        if not lost:
            asyncio.get_running_loop().call_later(0.01, work.cancel)  # the work ends on its own (a signal)

        def stop_work(was_lost: bool) -> None:
            calls.append(was_lost)
            work.cancel()

        return await lead(elector, work=work, keep=keep, stop_work=stop_work, component="syncer")  # type: ignore[arg-type]

    got = asyncio.run(main())
    assert (got is not None) is lost
    assert calls == [lost]
    assert seen == {"cancelled": True}
    assert elector.released == (0 if lost else 1)


def test_lead_exits_hard_when_the_work_does_not_stop_after_a_lost_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []

    class HardExit(Exception):
        pass

    def record_exit(code: int) -> None:
        exits.append(code)
        raise HardExit

    monkeypatch.setattr("vcluster.leader.os._exit", record_exit)
    elector = RecordingElector()
    elector.duration, elector.renew_deadline = 0.2, 0.1  # a standby may take over 0.1 s after the loss

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(1)  # ignores the first cancel for a while: a write stuck past the lease

    async def main() -> None:
        work = asyncio.create_task(stubborn())

        def stop_work(_lost: bool) -> None:
            work.cancel()

        try:
            await lead(elector, work=work, keep=asyncio.create_task(_lost()),  # type: ignore[arg-type]
                       stop_work=stop_work, component="syncer")
        finally:
            work.cancel()

    with pytest.raises(HardExit):
        asyncio.run(main())
    assert exits == [1]
