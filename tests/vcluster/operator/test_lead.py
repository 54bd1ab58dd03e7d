"""The operator's leading phase (``_lead``): what a lost Lease and a clean stop do to Kopf and the Lease.

Kopf and the Lease round trips are stood in by plain tasks and a recording elector (this is control
flow only); the real thing runs in e2e/test_operator.py (standby, SIGTERM hand-over, SIGKILL expiry).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vcluster.errors import VClusterError
from vcluster.leader import LostLease
from vcluster.operator.__main__ import _lead
from vcluster.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(lease_duration=3.0, lease_renew_deadline=2.0, lease_retry_period=0.5)


class RecordingElector:
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

    monkeypatch.setattr("vcluster.operator.__main__.os._exit", no_hard_exit)
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
