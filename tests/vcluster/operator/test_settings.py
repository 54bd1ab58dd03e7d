"""OperatorSettings.from_env: bad numbers in the environment are one-line errors naming the variable."""

from __future__ import annotations

import pytest

from vcluster.errors import VClusterError
from vcluster.operator.settings import OperatorSettings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("VC_OPERATOR_START_TIMEOUT", "soon", id="timeout-not-number"),
        pytest.param("VC_OPERATOR_HEALTH_INTERVAL", "20s", id="interval-with-unit"),
        pytest.param("VC_OPERATOR_HEALTH_PORT", "http", id="port-not-int"),
        pytest.param("VC_OPERATOR_HEALTH_PORT", "70000", id="port-range"),
    ],
)
def test_bad_numbers_are_clear_errors(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(VClusterError, match=name):
        OperatorSettings.from_env()


def test_numbers_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_OPERATOR_START_TIMEOUT", "12.5")
    monkeypatch.setenv("VC_OPERATOR_HEALTH_PORT", "0")
    monkeypatch.delenv("VC_OPERATOR_HEALTH_INTERVAL", raising=False)
    settings = OperatorSettings.from_env()
    assert (settings.start_timeout, settings.health_port, settings.health_interval) == (12.5, 0, 20.0)
