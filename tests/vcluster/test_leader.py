"""The pure part of the shared leader election (vcluster.leader): who may take the Lease, what is written.

The round trips (create, replace with resourceVersion, Conflict) run against a
real apiserver in e2e/test_syncer_ha.py and e2e/test_operator_ha.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from vcluster.leader import Observation, may_take, next_spec, record_of

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def lease(holder: str = "", renew: str = "r1", duration: int = 15, transitions: int = 0) -> dict[str, Any]:
    return {"spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": duration,
                     "leaseTransitions": transitions}}


@pytest.mark.parametrize(
    ("seen", "seen_at", "now", "identity", "expected"),
    [
        pytest.param(lease("a"), 100.0, 101.0, "a", True, id="own-lease-renew"),
        pytest.param(lease(""), 100.0, 100.0, "b", True, id="released-lease-acquire"),
        pytest.param(None, 100.0, 100.0, "b", True, id="no-lease-acquire"),
        pytest.param(lease("a"), 100.0, 110.0, "b", False, id="held-and-fresh"),
        pytest.param(lease("a"), 100.0, 115.0, "b", False, id="exactly-duration-not-expired"),
        pytest.param(lease("a"), 100.0, 115.5, "b", True, id="expired-takeover"),
        pytest.param(lease("a", duration=2), 100.0, 102.5, "b", True, id="short-lease-expired"),
    ],
)
def test_may_take(seen: dict[str, Any] | None, seen_at: float, now: float, identity: str, expected: bool) -> None:
    obs = Observation()
    obs.see(seen, now=seen_at)
    assert may_take(obs, identity=identity, now=now) is expected


def test_expiry_is_counted_from_the_last_change_seen_not_from_the_first_sighting() -> None:
    obs = Observation()
    obs.see(lease("a", renew="r1"), now=100.0)
    obs.see(lease("a", renew="r1"), now=110.0)  # unchanged: the clock keeps running from 100
    assert may_take(obs, identity="b", now=116.0)
    obs.see(lease("a", renew="r2"), now=116.0)  # the holder renewed: a fresh duration
    assert not may_take(obs, identity="b", now=130.0)
    assert may_take(obs, identity="b", now=131.5)


def test_record_ignores_everything_but_the_liveness_fields() -> None:
    a = lease("a")
    b = {**lease("a"), "metadata": {"resourceVersion": "9"}}
    assert record_of(a) == record_of(b) == ("a", "r1", 15, 0)
    assert record_of(None) == ("", "", 0, 0)


@pytest.mark.parametrize(
    ("old", "identity", "acquire", "transitions"),
    [
        pytest.param(None, "a", "2026-01-02T03:04:05.678901Z", 0, id="create"),
        pytest.param({"holderIdentity": "a", "acquireTime": "T0", "leaseTransitions": 3}, "a", "T0", 3,
                     id="renew-keeps-acquire-time"),
        pytest.param({"holderIdentity": "a", "acquireTime": "T0", "leaseTransitions": 3}, "b",
                     "2026-01-02T03:04:05.678901Z", 4, id="takeover-counts-transition"),
        pytest.param({"holderIdentity": "", "acquireTime": "T0", "leaseTransitions": 3}, "b",
                     "2026-01-02T03:04:05.678901Z", 3, id="after-release-no-transition"),
    ],
)
def test_next_spec(old: dict[str, Any] | None, identity: str, acquire: str, transitions: int) -> None:
    spec = next_spec(old, identity=identity, duration=4.6, now=NOW)
    assert spec == {
        "holderIdentity": identity, "leaseDurationSeconds": 5, "acquireTime": acquire,
        "renewTime": "2026-01-02T03:04:05.678901Z", "leaseTransitions": transitions,
    }
