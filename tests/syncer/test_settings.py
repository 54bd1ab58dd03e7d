"""Syncer settings from the environment: defaults, overrides, clear errors."""

from __future__ import annotations

import pytest

from syncer.settings import SettingsError, SyncerSettings


def test_defaults() -> None:
    s = SyncerSettings.from_env({})
    assert s.workers == 32
    assert s.metrics_port == 0
    assert s.weight("any") == 1


def test_overrides_and_weights() -> None:
    s = SyncerSettings.from_env({"VC_SYNCER_WORKERS": "8", "VC_SYNCER_WEIGHTS": "a-1=3, b-2=1",
                                 "VC_SYNCER_PATROL_PERIOD": "0"})
    assert (s.workers, s.patrol_period) == (8, 0.0)
    assert (s.weight("a-1"), s.weight("b-2"), s.weight("c")) == (3, 1, 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"VC_SYNCER_WORKERS": "x"}, "VC_SYNCER_WORKERS must be an integer", id="not-int"),
        pytest.param({"VC_SYNCER_WORKERS": "0"}, "VC_SYNCER_WORKERS must be >= 1", id="zero-workers"),
        pytest.param({"VC_SYNCER_WEIGHTS": "a=0"}, "positive integer", id="zero-weight"),
        pytest.param({"VC_SYNCER_WEIGHTS": "a"}, "expected", id="no-equals"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SyncerSettings.from_env(env)


@pytest.mark.parametrize(("workers", "asked", "limit"), [(32, 0, 28), (8, 0, 7), (1, 0, 1), (32, 40, 32), (32, 5, 5)])
def test_tenant_limit(workers: int, asked: int, limit: int) -> None:
    assert SyncerSettings(workers=workers, tenant_in_flight=asked).tenant_limit() == limit
