"""The fair queue's timing and hand-offs, on virtual time: no sleeps, no timing assertions.

Why: back-off and delayed adds decide how fast a failing key is retried and
whether a key scheduled twice runs at the earlier time; the wake-up hand-off
decides whether a key can sit in the queue while a worker waits.  Real
sleeps make such tests slow and flaky, so these run on an event loop whose
clock only moves when the test moves it (:class:`VirtualTimeLoop`), and the
queue's own ``clock`` is a counter the test sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from syncer.queue import DOWN, UP, FairQueue, SyncKey


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is a number the test advances (timers fire when it passes them)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def run(test: Callable[[VirtualTimeLoop], Coroutine[Any, Any, None]]) -> None:
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(test(loop))
    finally:
        loop.close()


async def settle() -> None:
    """Let due timers and woken tasks run (a few loop iterations; virtual time does not move)."""
    for _ in range(5):
        await asyncio.sleep(0)


def k(tenant: str = "a", name: str = "x", direction: str = DOWN) -> SyncKey:
    return SyncKey(tenant, "Pod", direction, "ns", name)


def keys(q: FairQueue) -> list[SyncKey]:
    out = []
    while (item := q.get_nowait()) is not None:
        out.append(item[0])
        q.done(item[0])
    return out


# ---- delayed adds ------------------------------------------------------------------------


def test_add_after_queues_the_key_when_the_delay_has_passed() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(), 5.0)
        await settle()
        assert len(q) == 0
        assert not q.idle()  # a timer is pending
        loop.now += 4.99
        await settle()
        assert len(q) == 0
        loop.now += 0.02
        await settle()
        assert keys(q) == [k()]
        assert q.idle()

    run(body)


@pytest.mark.parametrize(
    ("first", "second", "due"),
    [
        pytest.param(5.0, 2.0, 2.0, id="earlier-second-wins"),
        pytest.param(2.0, 5.0, 2.0, id="earlier-first-stays"),
        pytest.param(3.0, 3.0, 3.0, id="same-time"),
    ],
)
def test_the_earlier_of_two_delayed_adds_wins(first: float, second: float, due: float) -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(), first)
        q.add_after(k(), second)
        loop.now += due - 0.01
        await settle()
        assert len(q) == 0
        loop.now += 0.02
        await settle()
        assert keys(q) == [k()]
        loop.now += 10
        await settle()
        assert len(q) == 0  # the later timer is gone, not merely de-duplicated
        assert q.idle()

    run(body)


@pytest.mark.parametrize("delay", [0.0, -1.0], ids=["zero", "negative"])
def test_a_delay_that_is_not_positive_adds_at_once(delay: float) -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(), delay)
        assert keys(q) == [k()]
        assert q.idle()

    run(body)


def test_an_immediate_add_while_a_timer_waits_runs_the_key_once_now_and_once_later() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(), 5.0)
        q.add(k())
        assert keys(q) == [k()]
        loop.now += 6
        await settle()
        assert keys(q) == [k()]

    run(body)


def test_timers_of_different_keys_are_independent() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(name="slow"), 5.0)
        q.add_after(k(name="fast"), 1.0)
        q.add_after(k(name="fast", direction=UP), 3.0)
        loop.now += 1.5
        await settle()
        assert keys(q) == [k(name="fast")]
        loop.now += 2
        await settle()
        assert keys(q) == [k(name="fast", direction=UP)]
        loop.now += 2
        await settle()
        assert keys(q) == [k(name="slow")]

    run(body)


def test_close_cancels_timers_and_refuses_new_keys() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        q.add_after(k(), 1.0)
        q.close()
        q.add_after(k(name="y"), 1.0)
        q.add(k(name="z"))
        loop.now += 5
        await settle()
        assert len(q) == 0
        assert q.idle()

    run(body)


# ---- back-off ----------------------------------------------------------------------------


def test_retry_waits_the_backoff_and_forget_starts_over() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue(backoff_base=1.0, backoff_max=100.0, backoff_jitter=0.0)
        for failures, delay in ((1, 1.0), (2, 2.0), (3, 4.0)):
            assert q.retry(k()) == delay
            assert q.failures(k()) == failures
            loop.now += delay - 0.01
            await settle()
            assert len(q) == 0
            loop.now += 0.02
            await settle()
            assert keys(q) == [k()]
        q.forget(k())
        assert q.failures(k()) == 0
        assert q.retry(k()) == 1.0

    run(body)


def test_back_off_is_per_key() -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue(backoff_base=1.0, backoff_jitter=0.0)
        q.retry(k(name="x"))
        q.retry(k(name="x"))
        assert q.retry(k(name="y")) == 1.0
        q.forget(k(name="y"))
        assert q.failures(k(name="x")) == 2

    run(body)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 0.5), (2, 1.0), (4, 4.0), (5, 8.0), (6, 10.0), (1000, 10.0)],
    ids=["first", "second", "fourth", "fifth", "capped", "huge-count"],
)
def test_backoff_delay_doubles_from_the_base_up_to_the_cap(failures: int, expected: float) -> None:
    assert FairQueue(backoff_base=0.5, backoff_max=10.0, backoff_jitter=0.0).backoff_delay(failures) == expected


# ---- the queued-at clock ---------------------------------------------------------------------


def test_get_reports_when_the_key_was_first_queued() -> None:
    now = [10.0]
    q = FairQueue(clock=lambda: now[0])
    q.add(k())
    now[0] = 20.0
    q.add(k())  # a duplicate does not move the time
    item = q.get_nowait()
    assert item == (k(), 10.0)
    q.add(k())  # queued again while processing: the new time counts
    now[0] = 30.0
    q.done(k())
    assert q.get_nowait() == (k(), 20.0)


# ---- waiting workers -----------------------------------------------------------------------


def test_get_wakes_a_waiting_worker_for_each_key() -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        workers = [asyncio.ensure_future(q.get()) for _ in range(2)]
        await settle()
        q.add(k(name="1"))
        q.add(k(name="2"))
        await settle()
        got = sorted(w.result()[0].name for w in workers)
        assert got == ["1", "2"]

    run(body)


def test_a_cancelled_worker_passes_its_wake_up_on() -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        first = asyncio.ensure_future(q.get())
        second = asyncio.ensure_future(q.get())
        await settle()
        q.add(k())  # wakes `first` ...
        first.cancel()  # ... which is cancelled before it takes the key
        await settle()
        assert first.cancelled()
        assert second.done()
        assert second.result()[0] == k()

    run(body)


def test_a_cancelled_worker_with_nothing_queued_wakes_nobody() -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        first = asyncio.ensure_future(q.get())
        second = asyncio.ensure_future(q.get())
        await settle()
        first.cancel()
        await settle()
        assert first.cancelled()
        assert not second.done()
        q.add(k())
        await settle()
        assert second.result()[0] == k()

    run(body)


def test_close_cancels_waiting_workers() -> None:
    async def body(_loop: VirtualTimeLoop) -> None:
        q = FairQueue()
        worker = asyncio.ensure_future(q.get())
        await settle()
        q.close()
        await settle()
        assert worker.cancelled()

    run(body)


# ---- tenants -----------------------------------------------------------------------------


def test_drop_tenant_cancels_only_its_timers_and_back_off() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        q = FairQueue(backoff_base=1.0, backoff_jitter=0.0)
        q.retry(k(tenant="a"))
        q.retry(k(tenant="b"))
        q.add(k(tenant="a", name="waiting"))
        q.drop_tenant("a")
        assert q.failures(k(tenant="a")) == 0
        assert q.failures(k(tenant="b")) == 1
        assert q.depth("a") == 0
        loop.now += 5
        await settle()
        assert keys(q) == [k(tenant="b")]
        q.add(k(tenant="a", name="waiting"))  # the tenant's keys can come back later
        assert keys(q) == [k(tenant="a", name="waiting")]

    run(body)


def test_dropping_the_head_tenant_gives_the_next_one_its_full_weight() -> None:
    weights = {"a": 1, "b": 2, "c": 1}
    q = FairQueue(weight=lambda t: weights[t])
    for tenant in "abc":
        for i in range(3):
            q.add(k(tenant=tenant, name=str(i)))
    q.drop_tenant("a")
    assert [key.tenant for key in keys(q)] == ["b", "b", "c", "b", "c", "c"]


def test_dropping_a_tenant_that_is_not_at_the_head_keeps_the_turn() -> None:
    weights = {"a": 2, "b": 1, "c": 1}
    q = FairQueue(weight=lambda t: weights[t])
    for tenant in "abc":
        for i in range(3 if tenant == "a" else 2):
            q.add(k(tenant=tenant, name=str(i)))
    first = q.get_nowait()
    assert first is not None
    q.done(first[0])
    q.drop_tenant("b")
    # a has used one of its two turns: one more, then c, then a's last, then c's last
    assert [key.tenant for key in keys(q)] == ["a", "c", "a", "c"]


def test_round_robin_visits_three_tenants_in_order() -> None:
    q = FairQueue()
    for i in range(2):
        for tenant in "abc":
            q.add(k(tenant=tenant, name=str(i)))
    assert [key.tenant for key in keys(q)] == ["a", "b", "c", "a", "b", "c"]


def test_forgetting_or_dropping_what_is_not_there_is_fine() -> None:
    q = FairQueue()
    q.forget(k())
    q.drop_tenant("nobody")
    assert q.failures(k()) == 0
    assert q.idle()


def test_depths_and_length() -> None:
    q = FairQueue()
    q.add(k(tenant="a", name="1"))
    q.add(k(tenant="a", name="2"))
    q.add(k(tenant="b", name="1"))
    assert q.depths() == {"a": 2, "b": 1}
    assert (q.depth("a"), q.depth("b"), q.depth("c"), len(q)) == (2, 1, 0, 3)
    item = q.get_nowait()
    assert item is not None
    assert q.processing == 1
    assert not q.idle()
    q.done(item[0])
    assert q.processing == 0
