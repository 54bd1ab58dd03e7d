"""The Ready rule of --wait follows the status contract (condition Ready=True for the current generation)."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster.cli.tenants import is_ready


def obj(generation: int | None, **cond: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "a"}
    if generation is not None:
        meta["generation"] = generation
    conditions = [{"type": "Ready", **cond}] if cond else []
    return {"metadata": meta, "status": {"phase": "Ready", "conditions": conditions}}


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        pytest.param(obj(1, status="True", observedGeneration=1), True, id="ready-current"),
        pytest.param(obj(2, status="True", observedGeneration=1), False, id="ready-for-old-generation"),
        pytest.param(obj(2, status="True"), False, id="ready-without-observed-generation-is-not-trusted"),
        pytest.param(obj(1, status="False", observedGeneration=1), False, id="not-ready"),
        pytest.param(obj(1), False, id="no-condition-phase-alone-is-not-enough"),
        pytest.param({"metadata": {"name": "a"}}, False, id="no-status"),
    ],
)
def test_is_ready(tenant: dict[str, Any], expected: bool) -> None:
    assert is_ready(tenant) is expected
