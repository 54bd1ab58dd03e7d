"""The syncer's lease settings (VC_SYNCER_LEASE_*) and how they become its LeaseConfig.

The protocol's pure functions are tested in tests/vcluster/test_leader.py.
"""

from __future__ import annotations

import pytest

from syncer.leader import lease_config
from syncer.settings import SettingsError, SyncerSettings
from vcluster import naming


@pytest.mark.parametrize(
    ("env", "duration", "deadline", "retry"),
    [
        pytest.param({}, 15.0, 10.0, 2.0, id="defaults"),
        pytest.param({"VC_SYNCER_LEASE_DURATION": "3"}, 3.0, 2.0, 0.5, id="short-lease-derives-the-rest"),
        pytest.param({"VC_SYNCER_LEASE_DURATION": "6", "VC_SYNCER_LEASE_RENEW_DEADLINE": "4",
                      "VC_SYNCER_LEASE_RETRY_PERIOD": "1"}, 6.0, 4.0, 1.0, id="explicit"),
    ],
)
def test_lease_settings(env: dict[str, str], duration: float, deadline: float, retry: float) -> None:
    s = SyncerSettings.from_env(env)
    assert (s.lease.duration, s.lease.renew_deadline, s.lease.retry_period) == (duration, deadline, retry)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"VC_SYNCER_LEASE_DURATION": "5", "VC_SYNCER_LEASE_RENEW_DEADLINE": "5"},
                     "RENEW_DEADLINE=5 must be less than the lease duration 5", id="deadline-not-below-duration"),
        pytest.param({"VC_SYNCER_LEASE_RENEW_DEADLINE": "2", "VC_SYNCER_LEASE_RETRY_PERIOD": "3"},
                     "RETRY_PERIOD=3 must be less than the renew deadline 2", id="retry-not-below-deadline"),
        pytest.param({"VC_SYNCER_LEASE_DURATION": "x"}, "VC_SYNCER_LEASE_DURATION must be a number", id="not-a-number"),
    ],
)
def test_bad_lease_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SyncerSettings.from_env(env)


def test_lease_config_names_the_syncer_lease() -> None:
    cfg = lease_config(SyncerSettings.from_env({"VC_SYNCER_IDENTITY": "replica-a", "VC_SYNCER_LEASE_DURATION": "6"}))
    assert (cfg.namespace, cfg.name, cfg.identity) == (naming.SYSTEM_NAMESPACE, naming.SYNCER_LEASE_NAME, "replica-a")
    assert (cfg.duration, cfg.renew_deadline, cfg.retry_period) == (6.0, 4.0, 1.0)
