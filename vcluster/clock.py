"""The one clock for wall-clock timestamps written to Kubernetes objects and certificates.

Why: Events, status conditions and certificates all need "now" in UTC, and
Kubernetes wants its own second-precision RFC 3339 form; one module means one
format and one place a test can look at.
"""

from __future__ import annotations

import datetime as _dt


def now() -> _dt.datetime:
    """The current time, timezone-aware UTC."""
    return _dt.datetime.now(_dt.UTC)


def timestamp(when: _dt.datetime | None = None) -> str:
    """``when`` (default: now) as a Kubernetes timestamp, e.g. ``2026-01-31T12:00:00Z``."""
    return (when or now()).astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
