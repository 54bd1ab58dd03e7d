"""cli.target.explain: every API failure of a verb becomes one line; a 404 says which thing is missing."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster.cli.target import explain
from vcluster.kube.errors import error_from_status


@pytest.mark.parametrize(
    ("status", "body", "missing", "expected"),
    [
        pytest.param(404, {"details": {"name": "alpha"}, "message": 'tenants "alpha" not found'},
                     'tenant "alpha" not found', 'tenant "alpha" not found', id="object-missing"),
        pytest.param(404, {"details": {"name": "alpha"}, "message": 'tenants "alpha" not found'}, None,
                     'getting tenant "alpha": tenants "alpha" not found', id="object-missing-no-text"),
        pytest.param(404, {"message": "the server could not find the requested resource"},
                     'tenant "alpha" not found', "CRDs not installed", id="type-missing"),
        pytest.param(403, {"message": "forbidden"}, 'tenant "alpha" not found',
                     'getting tenant "alpha": forbidden', id="other-status"),
    ],
)
def test_explain(status: int, body: dict[str, Any], missing: str | None, expected: str) -> None:
    err = explain(error_from_status(status, body), what='getting tenant "alpha"', missing=missing)
    assert "\n" not in str(err)
    assert expected in str(err)
