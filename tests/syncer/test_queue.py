"""The fair queue: de-duplication, in-flight semantics, weighted fairness, back-off."""

from __future__ import annotations

import asyncio

import pytest

from syncer.queue import DOWN, FairQueue, SyncKey


def k(tenant: str, name: str) -> SyncKey:
    return SyncKey(tenant, "Pod", DOWN, "ns", name)


def drain(q: FairQueue) -> list[SyncKey]:
    out = []
    while (item := q.get_nowait()) is not None:
        out.append(item[0])
        q.done(item[0])
    return out


def test_duplicates_are_queued_once() -> None:
    q = FairQueue()
    for _ in range(3):
        q.add(k("a", "x"))
    assert drain(q) == [k("a", "x")]


def test_key_added_while_processing_comes_back_once_after_done() -> None:
    q = FairQueue()
    q.add(k("a", "x"))
    item = q.get_nowait()
    assert item is not None
    q.add(k("a", "x"))
    q.add(k("a", "x"))
    assert q.get_nowait() is None, "a key must never be handed to two workers"
    q.done(item[0])
    assert drain(q) == [k("a", "x")]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param({}, ["a", "b", "a", "b", "a", "a"], id="equal-weights-alternate"),
        pytest.param({"a": 2}, ["a", "a", "b", "a", "a", "b"], id="weight-two"),
    ],
)
def test_round_robin_across_tenants(weights: dict[str, int], expected: list[str]) -> None:
    q = FairQueue(weight=lambda t: weights.get(t, 1))
    for i in range(4):
        q.add(k("a", f"a{i}"))
    for i in range(2):
        q.add(k("b", f"b{i}"))
    assert [key.tenant for key in drain(q)] == expected


def test_a_flood_does_not_starve_a_quiet_tenant() -> None:
    q = FairQueue()
    for i in range(10_000):
        q.add(k("greedy", f"g{i}"))
    q.get_nowait()
    q.add(k("quiet", "q"))
    order = [key.tenant for key in drain(q)]
    assert order.index("quiet") <= 2


def test_backoff_grows_and_is_capped() -> None:
    q = FairQueue(backoff_base=0.01, backoff_max=0.05, backoff_jitter=0.0)
    assert [q.backoff_delay(n) for n in (1, 2, 3, 4, 10)] == [0.01, 0.02, 0.04, 0.05, 0.05]


def test_backoff_jitter_only_shortens() -> None:
    q = FairQueue(backoff_base=0.01, backoff_max=0.05, backoff_jitter=0.2, rng=lambda: 0.5)
    assert [q.backoff_delay(n) for n in (1, 10)] == pytest.approx([0.009, 0.045])
    top = FairQueue(backoff_base=0.01, backoff_max=0.05, backoff_jitter=0.2, rng=lambda: 0.0)
    assert top.backoff_delay(10) == 0.05


async def test_retry_requeues_after_the_delay_and_forget_resets() -> None:
    q = FairQueue(backoff_base=0.01)
    key = k("a", "x")
    q.add(key)
    item = q.get_nowait()
    assert item is not None
    q.done(key)
    q.retry(key)
    q.retry(key)
    assert q.failures(key) == 2
    assert q.get_nowait() is None
    got, _ = await asyncio.wait_for(q.get(), 2)
    assert got == key
    q.done(key)
    q.forget(key)
    assert q.failures(key) == 0


async def test_get_waits_for_an_add() -> None:
    q = FairQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add(k("a", "x"))
    got, _ = await asyncio.wait_for(waiter, 2)
    assert got == k("a", "x")


async def test_drop_tenant_forgets_its_keys_and_timers() -> None:
    q = FairQueue()
    q.add(k("a", "x"))
    q.add(k("b", "y"))
    q.add_after(k("a", "z"), 0.01)
    q.drop_tenant("a")
    await asyncio.sleep(0.03)
    assert drain(q) == [k("b", "y")]
    assert q.depths() == {}
