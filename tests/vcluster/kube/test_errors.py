"""Mapping of HTTP statuses to typed errors."""

import pytest

from vcluster.kube import errors as e


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        pytest.param(404, "NotFound", e.NotFound, id="404"),
        pytest.param(409, "Conflict", e.Conflict, id="409-conflict"),
        pytest.param(409, "AlreadyExists", e.AlreadyExists, id="409-already-exists"),
        pytest.param(410, "Expired", e.Gone, id="410"),
        pytest.param(422, "Invalid", e.Invalid, id="422"),
        pytest.param(403, "Forbidden", e.Forbidden, id="403"),
        pytest.param(429, "TooManyRequests", e.TooManyRequests, id="429"),
        pytest.param(500, "InternalError", e.ApiError, id="500-generic"),
    ],
)
def test_error_from_status(status: int, reason: str, expected: type[e.ApiError]) -> None:
    err = e.error_from_status(status, {"reason": reason, "message": "boom"})
    assert type(err) is expected
    assert err.status == status
    assert "boom" in str(err)


def test_already_exists_is_a_conflict() -> None:
    assert isinstance(e.error_from_status(409, {"reason": "AlreadyExists"}), e.Conflict)


def test_missing_body_still_has_a_message() -> None:
    err = e.error_from_status(503, None)
    assert err.message == "HTTP 503"
