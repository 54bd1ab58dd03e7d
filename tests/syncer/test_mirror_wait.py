"""The mirror's wait: a cancellation arriving with the wake-up must still cancel the loop."""

from __future__ import annotations

import asyncio

import pytest

from syncer.mirror import wait_or_timeout


@pytest.mark.parametrize("set_event", [True, False], ids=["woken-meanwhile", "idle"])
async def test_cancel_is_not_swallowed(set_event: bool) -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_or_timeout(event, 60)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    if set_event:
        event.set()  # in the same turn as the cancel below (asyncio.wait_for returned here)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)


async def test_returns_on_event_and_on_timeout() -> None:
    event = asyncio.Event()
    await wait_or_timeout(event, 0.01)  # times out quietly
    event.set()
    await wait_or_timeout(event, 60)  # returns at once
