"""The per-tenant cap of keys in progress (``tenant_limit``, ``VC_SYNCER_TENANT_IN_FLIGHT``): exactly
which tenant takes the turn when the one at the head of the ring is at its cap, and the order of the
ring afterwards (fairness must survive a capped tenant), plus the back-off defaults."""

from __future__ import annotations

from syncer.queue import DOWN, FairQueue, SyncKey


def k(tenant: str, name: str) -> SyncKey:
    return SyncKey(tenant, "Pod", DOWN, "ns", name)


def take(q: FairQueue) -> SyncKey | None:
    item = q.get_nowait()
    return None if item is None else item[0]


def filled(limit: int, keys: dict[str, int], weights: dict[str, int] | None = None) -> FairQueue:
    q = FairQueue(tenant_limit=limit, weight=lambda t: (weights or {}).get(t, 1))
    for tenant, n in keys.items():
        for i in range(1, n + 1):
            q.add(k(tenant, f"{tenant}{i}"))
    return q


def test_the_first_tenant_below_its_cap_takes_the_turn_skipping_every_capped_one() -> None:
    q = filled(1, {"a": 2, "b": 2, "c": 2})
    assert take(q) == k("a", "a1")
    assert take(q) == k("b", "b1")
    q.done(k("a", "a1"))  # a below its cap again, b and c not (c has nothing in progress)
    assert take(q) == k("c", "c1")
    assert take(q) == k("a", "a2")
    assert take(q) is None  # b and c at their cap, a has nothing left


def test_two_capped_tenants_are_skipped_to_reach_the_third() -> None:
    q = filled(1, {"a": 3, "b": 3, "c": 1}, weights={"a": 5, "b": 5})
    assert take(q) == k("a", "a1")  # a's credit (5) would keep the turn, but it is at its cap
    assert take(q) == k("b", "b1")  # b's credit too
    assert take(q) == k("c", "c1")  # a and b at their cap: c, two places on
    assert take(q) is None


def test_after_every_tenant_was_capped_the_ring_starts_where_it_stood() -> None:
    q = filled(1, {"a": 2, "b": 2, "c": 2})
    firsts = [key for key in (take(q), take(q), take(q)) if key is not None]
    assert firsts == [k("a", "a1"), k("b", "b1"), k("c", "c1")]
    assert take(q) is None  # everyone at the cap: the ring turned round once, back to a
    for key in firsts:
        q.done(key)
    assert [take(q), take(q), take(q)] == [k("a", "a2"), k("b", "b2"), k("c", "c2")]


def test_a_capped_tenants_turn_passes_with_the_next_tenants_own_credit() -> None:
    q = filled(1, {"a": 3, "b": 6}, weights={"a": 5, "b": 3})
    assert take(q) == k("a", "a1")  # a keeps the turn (credit 4 left) but is at its cap ...
    assert take(q) == k("b", "b1")  # ... so b takes it, with b's credit: 3
    q.done(k("a", "a1"))
    q.done(k("b", "b1"))
    order = []
    for _ in range(5):
        key = take(q)
        assert key is not None
        order.append(key.name)
        q.done(key)
    assert order == ["b2", "b3", "a2", "a3", "b4"]


def test_the_tenant_that_takes_the_turn_gets_its_own_weight_of_turns() -> None:
    q = filled(1, {"a": 2, "b": 4}, weights={"a": 1, "b": 3})
    assert take(q) == k("a", "a1")
    # a is at its cap: b takes the turn with b's credit (3), but b is capped at one in progress ...
    assert take(q) == k("b", "b1")
    q.done(k("b", "b1"))
    q.done(k("a", "a1"))
    # ... so the credit shows once both are free: b keeps the turn for the rest of its three
    assert take(q) == k("b", "b2")
    q.done(k("b", "b2"))
    assert take(q) == k("b", "b3")


def test_a_tenants_count_in_progress_goes_down_one_per_done() -> None:
    q = filled(2, {"a": 5})
    assert [take(q), take(q)] == [k("a", "a1"), k("a", "a2")]
    assert take(q) is None  # two in progress: the cap
    q.done(k("a", "a1"))  # one left in progress
    assert take(q) == k("a", "a3")
    assert take(q) is None  # two again, not one
    q.done(k("a", "a2"))
    q.done(k("a", "a3"))
    assert [take(q), take(q), take(q)] == [k("a", "a4"), k("a", "a5"), None]


def test_backoff_defaults() -> None:
    """First retry after 5 ms, doubling, at most 30 s, up to 20 % taken off at random."""
    assert FairQueue(rng=lambda: 0.0).backoff_delay(1) == 0.005
    assert FairQueue(rng=lambda: 0.0).backoff_delay(3) == 0.02
    assert FairQueue(rng=lambda: 0.0).backoff_delay(40) == 30.0
    assert FairQueue(rng=lambda: 1.0).backoff_delay(40) == 24.0


def test_backoff_exponent_stops_at_30_doublings() -> None:
    q = FairQueue(backoff_base=1.0, backoff_max=1e12, rng=lambda: 0.0)
    assert q.backoff_delay(31) == 2.0 ** 30
    assert q.backoff_delay(100) == 2.0 ** 30
