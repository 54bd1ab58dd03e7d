"""vcluster.settings.env_int / env_float: the one reader of numbers from the environment."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster.settings import (
    KubeRelease,
    LeaseTiming,
    LogSettings,
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_pairs,
    kube_release,
)


@pytest.mark.parametrize(
    ("raw", "kwargs", "expected"),
    [
        pytest.param(None, {}, 7, id="unset-default"),
        pytest.param("", {}, 7, id="empty-default"),
        pytest.param("42", {}, 42, id="value"),
        pytest.param("-1", {"minimum": -1}, -1, id="at-minimum"),
        pytest.param("65535", {"maximum": 65535}, 65535, id="at-maximum"),
    ],
)
def test_env_int_reads(monkeypatch: pytest.MonkeyPatch, raw: str | None, kwargs: dict[str, Any], expected: int) -> None:
    if raw is None:
        monkeypatch.delenv("VC_TEST_NUMBER", raising=False)
    else:
        monkeypatch.setenv("VC_TEST_NUMBER", raw)
    assert env_int("VC_TEST_NUMBER", 7, **kwargs) == expected


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        pytest.param("x", {}, "must be an integer", id="not-int"),
        pytest.param("1.5", {}, "must be an integer", id="float"),
        pytest.param("-2", {"minimum": -1}, "must be >= -1", id="below"),
        pytest.param("70000", {"minimum": 0, "maximum": 65535}, "must be >= 0 and <= 65535", id="above"),
    ],
)
def test_env_int_refuses(monkeypatch: pytest.MonkeyPatch, raw: str, kwargs: dict[str, Any], message: str) -> None:
    monkeypatch.setenv("VC_TEST_NUMBER", raw)
    with pytest.raises(SettingsError, match=f"VC_TEST_NUMBER {message}"):
        env_int("VC_TEST_NUMBER", 7, **kwargs)


@pytest.mark.parametrize(
    ("raw", "positive", "expected"),
    [
        pytest.param(None, False, 1.5, id="unset-default"),
        pytest.param("0", False, 0.0, id="zero-allowed"),
        pytest.param("2.25", True, 2.25, id="positive"),
        pytest.param("soon", False, "must be a number", id="not-number"),
        pytest.param("0", True, "must be positive", id="zero-not-positive"),
    ],
)
def test_env_float(monkeypatch: pytest.MonkeyPatch, raw: str | None, positive: bool, expected: float | str) -> None:
    if raw is None:
        monkeypatch.delenv("VC_TEST_NUMBER", raising=False)
    else:
        monkeypatch.setenv("VC_TEST_NUMBER", raw)
    if isinstance(expected, str):
        with pytest.raises(SettingsError, match=f"VC_TEST_NUMBER {expected}"):
            env_float("VC_TEST_NUMBER", 1.5, positive=positive)
    else:
        assert env_float("VC_TEST_NUMBER", 1.5, positive=positive) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (None, False), ("", False), ("1", True), ("TRUE", True), ("Yes", True), ("on", True),
    ("0", False), ("False", False), ("NO", False), ("off", False), ("maybe", "must be one of"),
], ids=str)
def test_env_bool(raw: str | None, expected: bool | str) -> None:
    env = {} if raw is None else {"VC_TEST_FLAG": raw}
    if isinstance(expected, str):
        with pytest.raises(SettingsError, match=f"VC_TEST_FLAG {expected}"):
            env_bool("VC_TEST_FLAG", False, env=env)
    else:
        assert env_bool("VC_TEST_FLAG", False, env=env) is expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("a=1, b = 2,", {"a": "1", "b": "2"}), ("", {}), ("a", "entry 'a'"), ("=1", "entry '=1'"), ("a=", "entry 'a='"),
], ids=["pairs", "empty", "no-equals", "no-key", "no-value"])
def test_env_pairs(raw: str, expected: dict[str, str] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(SettingsError, match=f"VC_TEST_PAIRS {expected}"):
            env_pairs("VC_TEST_PAIRS", env={"VC_TEST_PAIRS": raw})
    else:
        assert env_pairs("VC_TEST_PAIRS", env={"VC_TEST_PAIRS": raw}) == expected


def test_every_process_reads_log_json_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncer.settings import SyncerSettings
    from vcluster.operator.settings import OperatorSettings
    from virtual_node.settings import ProxySettings

    for raw, want in (("TRUE", True), ("yes", True), ("0", False)):
        monkeypatch.setenv("VC_LOG_JSON", raw)
        assert LogSettings.from_env().json is want
        assert SyncerSettings.from_env().logs.json is want
        assert OperatorSettings.from_env().logs.json is want
        assert ProxySettings.from_env().logs.json is want


def test_lease_timing_is_one_group_for_syncer_and_operator() -> None:
    from syncer.settings import SyncerSettings
    from vcluster.operator.settings import OperatorSettings

    for prefix in ("VC_SYNCER", "VC_OPERATOR"):
        env = {f"{prefix}_LEASE_DURATION": "6"}
        assert LeaseTiming.from_env(prefix, env=env) == LeaseTiming(6.0, 4.0, 1.0)
        with pytest.raises(SettingsError, match=f"{prefix}_LEASE_DURATION must be positive"):
            LeaseTiming.from_env(prefix, env={f"{prefix}_LEASE_DURATION": "0"})
    assert SyncerSettings.from_env({"VC_SYNCER_LEASE_DURATION": "6"}).lease == LeaseTiming(6.0, 4.0, 1.0)
    assert OperatorSettings.from_env({"VC_OPERATOR_LEASE_DURATION": "6"}).lease == LeaseTiming(6.0, 4.0, 1.0)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param("v1.36.3", KubeRelease(1, 36, "3"), id="plain"),
        pytest.param("1.33.10", KubeRelease(1, 33, "10"), id="no-v"),
        pytest.param("v1.36", KubeRelease(1, 36, ""), id="no-patch"),
        pytest.param("v1.36.0-rc.1", KubeRelease(1, 36, "0-rc.1"), id="pre-release"),
        pytest.param("v2.0.0", KubeRelease(2, 0, "0"), id="other-major"),
        pytest.param(" v1.30.1 ", KubeRelease(1, 30, "1"), id="spaces"),
        pytest.param("v1", None, id="major-only"),
        pytest.param("v1.x.3", None, id="minor-not-a-number"),
        pytest.param("v1.36.3.4", None, id="four-parts"),
        pytest.param("latest", None, id="word"),
        pytest.param("", None, id="empty"),
        pytest.param("vv1.36.3", None, id="two-v"),
    ],
)
def test_kube_release(version: str, expected: KubeRelease | None) -> None:
    assert kube_release(version) == expected
