"""Typed API errors, one class per status the callers branch on.

Why: callers must tell "not found" from "conflict" from "gone" without
parsing messages; the engine's three-way branch and the informers' relist on
410 depend on it.
"""

from __future__ import annotations

from typing import Any

from vcluster.errors import VClusterError


class ApiError(VClusterError):
    """An apiserver answered with an error status."""

    status: int = 0

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409 (a stale resourceVersion)."""


class AlreadyExists(Conflict):
    """409 with reason AlreadyExists."""


class Gone(ApiError):
    """410: the resourceVersion is too old; relist."""


class Invalid(ApiError):
    """422: the object was refused by validation or admission."""


class Forbidden(ApiError):
    """403."""


class Unauthorized(ApiError):
    """401."""


class TooManyRequests(ApiError):
    """429: priority and fairness said wait."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_from_status(status: int, body: dict[str, Any] | None) -> ApiError:
    """Build the typed error for an HTTP status and its ``Status`` body."""
    body = body or {}
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or "")
    cls = _BY_STATUS.get(status, ApiError)
    if status == 409 and reason == "AlreadyExists":
        cls = AlreadyExists
    return cls(status, reason or cls.__name__, message or f"HTTP {status}", body)
