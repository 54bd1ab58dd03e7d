"""vcluster.settings.env_int / env_float: the one reader of numbers from the environment."""

from __future__ import annotations

import pytest

from vcluster.settings import SettingsError, env_float, env_int


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
def test_env_int_reads(monkeypatch: pytest.MonkeyPatch, raw: str | None, kwargs: dict[str, int], expected: int) -> None:
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
def test_env_int_refuses(monkeypatch: pytest.MonkeyPatch, raw: str, kwargs: dict[str, int], message: str) -> None:
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
