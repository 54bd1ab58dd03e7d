"""The fair queue's resync tier: re-checks wait behind every tenant's live keys, never forever.

Why: issue 16, the drain.  After a restart every object already synced is queued once more to be
compared (thousands of keys that mostly find nothing to do); a tenant listed early re-checked them in
turn with the creates of a tenant listed later, and the backlog the restart found took twice as long
to reach the super cluster.  Re-checks now go to a second tier, taken when no live key can be, or once
per ``resync_share`` live keys.
"""

from __future__ import annotations

import asyncio

import pytest

from syncer.queue import DOWN, UP, FairQueue, SyncKey
from syncer.settings import SyncerSettings
from tests.syncer.test_queue import drain


def key(tenant: str, name: str, direction: str = DOWN) -> SyncKey:
    return SyncKey(tenant, "Pod", direction, "ns", name)


def test_rechecks_wait_behind_the_live_keys_of_every_tenant() -> None:
    q = FairQueue(resync_share=16)
    for name in ("r1", "r2", "r3"):
        q.add(key("a", name), resync=True)
    q.add(key("b", "new1"))
    q.add(key("b", "new2"))
    assert drain(q) == [key("b", "new1"), key("b", "new2"), key("a", "r1"), key("a", "r2"), key("a", "r3")]


def test_without_the_tier_rechecks_are_live_keys() -> None:
    q = FairQueue(resync_share=0)
    q.add(key("a", "r1"), resync=True)
    q.add(key("b", "new1"))
    q.add(key("a", "r2"), resync=True)
    assert drain(q) == [key("a", "r1"), key("b", "new1"), key("a", "r2")]
    assert q.idle()


@pytest.mark.parametrize("share", [1, 2, 3])
def test_one_recheck_per_share_of_live_keys_while_both_wait(share: int) -> None:
    q = FairQueue(resync_share=share)
    for i in range(3):
        q.add(key("a", f"r{i}"), resync=True)
    for i in range(3 * share):
        q.add(key("b", f"l{i}"))
    order = [k.name for k in drain(q)]
    expected: list[str] = []
    for i in range(3):
        expected += [f"l{j}" for j in range(i * share, (i + 1) * share)] + [f"r{i}"]
    assert order == expected


def test_rechecks_take_turns_between_tenants() -> None:
    q = FairQueue(resync_share=4)
    for name in ("a1", "a2", "a3"):
        q.add(key("a", name), resync=True)
    for name in ("b1", "b2"):
        q.add(key("b", name), resync=True)
    assert [k.name for k in drain(q)] == ["a1", "b1", "a2", "b2", "a3"]


def test_a_live_add_moves_a_waiting_recheck_up_and_it_is_handed_out_once() -> None:
    q = FairQueue(resync_share=16)
    for name in ("r1", "r2", "r3"):
        q.add(key("a", name), resync=True)
    q.add(key("a", "r2"))  # e.g. a watch event for an object waiting to be re-checked
    assert q.resync_depth() == 2
    assert len(q) == 3
    assert drain(q) == [key("a", "r2"), key("a", "r1"), key("a", "r3")]
    assert q.idle()


def test_a_recheck_add_leaves_a_waiting_live_key_live() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "x"))
    q.add(key("a", "x"), resync=True)
    q.add(key("b", "y"), resync=True)
    assert q.resync_depth() == 1
    assert drain(q) == [key("a", "x"), key("b", "y")]


def test_a_moved_up_key_queued_again_as_a_recheck_is_handed_out_once() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2"), resync=True)
    q.add(key("a", "r1"))  # moved up: its place in the tier is left behind
    got = q.get_nowait()
    assert got is not None
    assert got[0] == key("a", "r1")
    q.done(key("a", "r1"))
    q.add(key("a", "r1"), resync=True)  # the tier now holds its old place and a new one
    assert drain(q) == [key("a", "r1"), key("a", "r2")]
    assert q.idle()
    assert len(q) == 0


def test_a_recheck_added_while_processing_is_handed_out_after_the_live_keys() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "x"))
    got = q.get_nowait()
    assert got is not None
    q.add(key("a", "x"), resync=True)
    q.add(key("b", "live"))
    q.done(key("a", "x"))
    assert q.resync_depth() == 1
    assert drain(q) == [key("b", "live"), key("a", "x")]


def test_a_live_add_while_processing_makes_a_pending_recheck_live() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "x"))
    got = q.get_nowait()
    assert got is not None
    q.add(key("a", "x"), resync=True)
    q.add(key("a", "x"))
    q.add(key("b", "live"))
    q.done(key("a", "x"))
    assert q.resync_depth() == 0
    assert drain(q) == [key("b", "live"), key("a", "x")]


def test_rechecks_count_in_depths_and_go_with_their_tenant() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2", UP), resync=True)
    q.add(key("a", "l1"))
    q.add(key("b", "r1"), resync=True)
    assert q.depth("a") == 3
    assert q.depths() == {"a": 3, "b": 1}
    assert len(q) == 4
    assert not q.idle()
    q.drop_tenant("a")
    assert q.depth("a") == 0
    assert q.depths() == {"b": 1}
    q.add(key("a", "r1"), resync=True)  # queued anew after the drop
    assert drain(q) == [key("b", "r1"), key("a", "r1")]
    assert q.idle()


def test_the_tenant_cap_holds_for_rechecks() -> None:
    q = FairQueue(resync_share=16, tenant_limit=1)
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2"), resync=True)
    q.add(key("b", "r1"), resync=True)
    first = q.get_nowait()
    second = q.get_nowait()
    assert first is not None
    assert second is not None
    assert {first[0].tenant, second[0].tenant} == {"a", "b"}
    assert q.get_nowait() is None  # a's next re-check waits for a's key in progress
    q.done(first[0] if first[0].tenant == "a" else second[0])
    third = q.get_nowait()
    assert third is not None
    assert third[0] == key("a", "r2")


def test_a_capped_live_tenant_lets_a_recheck_through() -> None:
    q = FairQueue(resync_share=16, tenant_limit=1)
    q.add(key("a", "l1"))
    q.add(key("a", "l2"))
    q.add(key("b", "r1"), resync=True)
    first = q.get_nowait()
    assert first is not None
    assert first[0] == key("a", "l1")
    second = q.get_nowait()
    assert second is not None
    assert second[0] == key("b", "r1")


async def test_a_waiting_worker_wakes_for_a_recheck() -> None:
    q = FairQueue(resync_share=16)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add(key("a", "r1"), resync=True)
    got = await asyncio.wait_for(getter, 1.0)
    assert got[0] == key("a", "r1")


def test_the_default_share_and_its_setting() -> None:
    assert SyncerSettings().resync_share == 16
    assert SyncerSettings.from_env({}).resync_share == 16
    assert SyncerSettings.from_env({"VC_SYNCER_RESYNC_SHARE": "0"}).resync_share == 0


def test_without_a_share_given_rechecks_are_live_keys() -> None:
    q = FairQueue()
    q.add(key("a", "r1"), resync=True)
    q.add(key("b", "new1"))
    assert drain(q) == [key("a", "r1"), key("b", "new1")]


def test_rechecks_take_turns_between_three_tenants_in_order() -> None:
    q = FairQueue(resync_share=4)
    for tenant in ("a", "b", "c"):
        for i in (1, 2):
            q.add(key(tenant, f"{tenant}{i}"), resync=True)
    assert [k.name for k in drain(q)] == ["a1", "b1", "c1", "a2", "b2", "c2"]


def test_depths_count_down_as_rechecks_are_taken() -> None:
    q = FairQueue(resync_share=4)
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2"), resync=True)
    got = q.get_nowait()
    assert got is not None
    assert q.depth("a") == 1
    got = q.get_nowait()
    assert got is not None
    assert q.depth("a") == 0
    assert q.depths() == {}


def test_a_capped_tenant_first_in_turn_lets_the_next_tenants_recheck_through() -> None:
    q = FairQueue(resync_share=16, tenant_limit=1)
    q.add(key("a", "l1"))
    first = q.get_nowait()
    assert first is not None
    assert first[0] == key("a", "l1")  # a is at its cap now
    q.add(key("a", "r1"), resync=True)
    q.add(key("b", "r1"), resync=True)
    second = q.get_nowait()
    assert second is not None
    assert second[0] == key("b", "r1")


def test_a_recheck_taken_counts_towards_its_tenants_cap() -> None:
    q = FairQueue(resync_share=16, tenant_limit=2)
    q.add(key("a", "l1"))
    assert q.get_nowait() is not None
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2"), resync=True)
    taken = q.get_nowait()
    assert taken is not None
    assert taken[0] == key("a", "r1")
    assert q.get_nowait() is None  # two of a's keys in progress: its cap


async def test_a_worker_waiting_on_a_capped_tenant_wakes_when_its_recheck_may_go() -> None:
    q = FairQueue(resync_share=16, tenant_limit=1)
    q.add(key("a", "r1"), resync=True)
    q.add(key("a", "r2"), resync=True)
    first = await q.get()
    waiting = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiting.done()  # a is at its cap
    q.done(first[0])
    got = await asyncio.wait_for(waiting, 1.0)
    assert got[0] == key("a", "r2")


def test_a_key_handed_out_again_goes_back_to_the_tier_it_was_last_added_to() -> None:
    """A re-check added while the key was in progress goes to the tier; the next time, a live add is live."""
    q = FairQueue(resync_share=16)
    q.add(key("a", "x"))
    assert q.get_nowait() is not None
    q.add(key("a", "x"), resync=True)
    q.done(key("a", "x"))  # to the resync tier
    got = q.get_nowait()
    assert got is not None
    assert got[0] == key("a", "x")
    q.add(key("a", "x"))  # live this time, while in progress
    q.add(key("b", "r"), resync=True)
    q.done(key("a", "x"))
    assert drain(q) == [key("a", "x"), key("b", "r")]


def test_a_dropped_tenants_pending_recheck_does_not_follow_its_key_when_it_comes_back() -> None:
    q = FairQueue(resync_share=16)
    q.add(key("a", "x"))
    assert q.get_nowait() is not None
    q.add(key("a", "x"), resync=True)  # a re-check waiting for the key in progress
    q.drop_tenant("a")
    q.done(key("a", "x"))
    assert q.idle()
    q.add(key("a", "x"))  # the tenant is served again
    assert q.get_nowait() is not None
    q.add(key("a", "x"))  # live, while in progress
    q.add(key("b", "r"), resync=True)
    q.done(key("a", "x"))
    assert drain(q) == [key("a", "x"), key("b", "r")]
