"""Tenants print as kubectl would: ages, table columns, wide, yaml/json, names."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml

from vcluster.cli.output import age, render, row

NOW = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        pytest.param("2026-01-02T11:59:30Z", "30s", id="seconds"),
        pytest.param("2026-01-02T11:58:01Z", "119s", id="under-two-minutes"),
        pytest.param("2026-01-02T11:55:00Z", "5m", id="minutes"),
        pytest.param("2026-01-02T09:00:00Z", "3h", id="hours"),
        pytest.param("2025-12-30T12:00:00Z", "3d", id="days"),
        pytest.param("2026-01-02T12:00:10Z", "0s", id="clock-skew-future"),
        pytest.param(None, "<unknown>", id="missing"),
        pytest.param("yesterday", "<unknown>", id="garbage"),
    ],
)
def test_age(timestamp: str | None, expected: str) -> None:
    assert age(timestamp, now=NOW) == expected


def tenant(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tenancy.virtualcluster.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "creationTimestamp": "2026-01-02T11:55:00Z", "generation": 1},
        "spec": {"controlPlane": {"backend": "local"}},
        "status": status,
    }


READY = tenant(
    "team-a", phase="Ready", version="v1.36.3", endpoint="https://127.0.0.1:30001", clusterKey="team-a-abc123",
    conditions=[{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "control plane ready"}],
)
NEW = {"metadata": {"name": "team-b", "creationTimestamp": "2026-01-02T11:59:50Z"}, "spec": {}}


@pytest.mark.parametrize(
    ("obj", "wide", "expected"),
    [
        pytest.param(READY, False, ["team-a", "Ready", "v1.36.3", "https://127.0.0.1:30001", "5m"], id="ready"),
        pytest.param(NEW, False, ["team-b", "Pending", "<none>", "<none>", "10s"], id="no-status-yet"),
        pytest.param(
            {**NEW, "metadata": {**NEW["metadata"], "deletionTimestamp": "2026-01-02T12:00:00Z"}},
            False, ["team-b", "Terminating", "<none>", "<none>", "10s"], id="deleting",
        ),
        pytest.param(READY, True, ["team-a", "Ready", "v1.36.3", "https://127.0.0.1:30001", "5m", "local",
                                   "team-a-abc123", "True", "control plane ready"], id="wide"),
        pytest.param(NEW, True, ["team-b", "Pending", "<none>", "<none>", "10s", "<none>", "<none>", "Unknown",
                                 "<none>"], id="wide-empty"),
    ],
)
def test_row(obj: dict[str, Any], wide: bool, expected: list[str]) -> None:
    assert row(obj, now=NOW, wide=wide) == expected


def test_table_is_aligned_with_headers() -> None:
    lines = render([READY, NEW], None, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "VERSION", "ENDPOINT", "AGE"]
    assert lines[1].split() == ["team-a", "Ready", "v1.36.3", "https://127.0.0.1:30001", "5m"]
    assert lines[2].split() == ["team-b", "Pending", "<none>", "<none>", "10s"]
    # columns start at the same offset on every line
    assert lines[0].index("PHASE") == lines[1].index("Ready") == lines[2].index("Pending")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_structured_output_single_and_list(fmt: str) -> None:
    load = json.loads if fmt == "json" else yaml.safe_load
    assert load(render([READY], fmt, now=NOW, single=True)) == READY
    listed = load(render([READY, NEW], fmt, now=NOW))
    assert listed["kind"] == "List"
    assert listed["items"] == [READY, NEW]


def test_name_output() -> None:
    assert render([READY, NEW], "name", now=NOW) == "tenant/team-a\ntenant/team-b\n"


def test_managed_fields_are_hidden() -> None:
    obj = {**READY, "metadata": {**READY["metadata"], "managedFields": [{"manager": "kubectl"}]}}
    shown = yaml.safe_load(render([obj], "yaml", now=NOW, single=True))
    assert "managedFields" not in shown["metadata"]
    assert shown == READY
