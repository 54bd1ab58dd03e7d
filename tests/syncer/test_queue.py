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


# ---- tenant_limit: one tenant's keys in progress are capped (a hung tenant holds at most that many workers) ----


def test_a_tenant_at_its_cap_lets_the_others_take_every_turn() -> None:
    q = FairQueue(tenant_limit=2)
    for i in range(5):
        q.add(k("hung", f"h{i}"))
    q.add(k("ok", "a"))
    q.add(k("ok", "b"))
    taken = [q.get_nowait() for _ in range(4)]
    got = [item[0] for item in taken if item is not None]
    assert [key.tenant for key in got].count("hung") == 2  # the cap, though more are queued
    assert {key.name for key in got if key.tenant == "ok"} == {"a", "b"}
    assert q.get_nowait() is None  # only the capped tenant has work left
    assert q.depths() == {"hung": 3}
    q.done(next(key for key in got if key.tenant == "hung"))
    item = q.get_nowait()
    assert item is not None
    assert item[0].tenant == "hung"  # a slot freed: its next key


def test_without_a_cap_one_tenant_takes_everything() -> None:
    q = FairQueue()
    for i in range(5):
        q.add(k("busy", f"b{i}"))
    assert len(drain(q)) == 5


async def test_a_worker_waiting_on_a_capped_tenant_wakes_when_a_slot_frees() -> None:
    q = FairQueue(tenant_limit=1)
    q.add(k("hung", "one"))
    q.add(k("hung", "two"))
    first = await q.get()
    waiting = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    q.done(first[0])
    second = await asyncio.wait_for(waiting, timeout=5)
    assert second[0].name == "two"


def test_done_of_a_dropped_tenants_key_frees_its_slot_once() -> None:
    q = FairQueue(tenant_limit=1)
    q.add(k("t", "a"))
    item = q.get_nowait()
    assert item is not None
    q.drop_tenant("t")
    q.done(item[0])
    q.done(item[0])  # a second done is no second free slot
    q.add(k("t", "b"))
    q.add(k("t", "c"))
    assert [key.name for key in (i[0] for i in (q.get_nowait(), q.get_nowait()) if i is not None)] == ["b"]
