"""The fair queue's directions: upward keys first within a tenant's turn, never all of them.

Why: issue 16.  In a burst, the upward keys (a pod's binding, its ``Running``) are what the tenant
user waits for, and they queued behind the tenant's remaining downward creates: for 1.5 s no tenant
pod turned Running while super pods did.  Upward keys now go first, ``up_share`` of them per waiting
downward key, so a flood of super-side changes cannot stop a tenant's creates; the turn between
tenants is unchanged.
"""

from __future__ import annotations

from syncer.queue import DOWN, UP, FairQueue, SyncKey
from syncer.settings import SyncerSettings
from tests.syncer.test_queue import drain


def down(name: str, tenant: str = "a") -> SyncKey:
    return SyncKey(tenant, "Pod", DOWN, "ns", name)


def up(name: str, tenant: str = "a") -> SyncKey:
    return SyncKey(tenant, "Pod", UP, "ns", name)


def test_upward_keys_go_before_the_downward_keys_queued_earlier() -> None:
    q = FairQueue(up_share=4)
    for key in (down("d1"), down("d2"), up("u1"), up("u2")):
        q.add(key)
    assert drain(q) == [up("u1"), up("u2"), down("d1"), down("d2")]


def test_a_flood_of_upward_keys_lets_one_downward_key_through_per_share() -> None:
    q = FairQueue(up_share=2)
    q.add(down("d1"))
    q.add(down("d2"))
    for i in range(5):
        q.add(up(f"u{i}"))
    assert drain(q) == [up("u0"), up("u1"), down("d1"), up("u2"), up("u3"), down("d2"), up("u4")]


def test_upward_keys_alone_are_not_held_back_by_the_share() -> None:
    q = FairQueue(up_share=1)
    for i in range(3):
        q.add(up(f"u{i}"))
    assert drain(q) == [up("u0"), up("u1"), up("u2")]
    q.add(down("d1"))
    q.add(up("u3"))
    assert drain(q) == [up("u3"), down("d1")]


def test_share_zero_is_one_fifo_per_tenant() -> None:
    q = FairQueue(up_share=0)
    keys = [down("d1"), up("u1"), down("d2"), up("u2")]
    for key in keys:
        q.add(key)
    assert drain(q) == keys


def test_the_turn_between_tenants_is_unchanged() -> None:
    q = FairQueue(up_share=4)
    for key in (down("a1"), up("a2"), down("b1", "b"), up("b2", "b")):
        q.add(key)
    assert drain(q) == [up("a2"), up("b2", "b"), down("a1"), down("b1", "b")]


def test_depth_counts_both_directions() -> None:
    q = FairQueue(up_share=4)
    q.add(down("d1"))
    q.add(up("u1"))
    assert (q.depth("a"), q.depths(), len(q)) == (2, {"a": 2}, 2)


def test_the_syncer_takes_four_upward_keys_per_downward_key_unless_told() -> None:
    assert SyncerSettings().up_share == 4
    assert SyncerSettings.from_env({}).up_share == 4
    assert SyncerSettings.from_env({"VC_SYNCER_UP_SHARE": "0"}).up_share == 0


def test_a_queue_built_without_a_share_is_one_fifo() -> None:
    q = FairQueue()
    keys = [down("d1"), up("u1")]
    for key in keys:
        q.add(key)
    assert drain(q) == keys
