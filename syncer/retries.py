"""How the syncer's workers tell about keys that keep failing: one line per state change.

Why: a key the super cluster refuses forever (a quota, a webhook, a
namespace being deleted) is retried with back-off for as long as it
exists; logging every retry buried the log in identical warnings (issue 13
item 3).  :class:`RetryLog` keeps, per failing key, what was last said and
logs only when that changes:

* ``sync.retry`` (debug) for each of a key's first ``threshold - 1``
  failures: a Conflict or a cache that is a moment behind is normal;
* ``sync.failing`` (warning) once, at the ``threshold``-th consecutive
  failure, and again only when the *kind* of error changes (exception type,
  HTTP code and reason -- not the message, which carries resourceVersions);
* an unexpected exception (a bug, not a refusal) is reported at its first
  failure as ``sync.failing`` at error level with its traceback;
* ``sync.recovered`` (info) when a key that was reported failing succeeds,
  with how many attempts and how long it took.

The state of a key is forgotten when it succeeds or its tenant is dropped,
so the memory is bounded by the keys failing now.  ``failing(tenant)`` feeds
the ``vc_syncer_failing_keys`` gauge and the ``Synced`` condition's
"objects pending"; the per-retry error counter stays in the engine.
Pure apart from the logger and the injected clock.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from syncer.queue import SyncKey
from vcluster.backoff import Clock

#: The consecutive failure at which a key is reported (the earlier ones are debug lines).
FAILING_AFTER = 5


class Logger(Protocol):
    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


def error_state(exc: BaseException) -> str:
    """What kind of failure ``exc`` is (type, HTTP code, reason): a change of it is worth a line."""
    code = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return ":".join(str(p) for p in (type(exc).__name__, code, reason) if p not in (None, ""))


@dataclass(slots=True)
class _Failing:
    since: float
    state: str = ""
    reported: bool = False


def _fields(key: SyncKey) -> dict[str, str]:
    return {"tenant": key.tenant, "kind": key.kind, "direction": key.direction,
            "key": f"{key.namespace}/{key.name}"}


class RetryLog:
    """Per-key failure state of the workers, logged on changes only."""

    def __init__(self, *, logger: Logger | None = None, threshold: int = FAILING_AFTER,
                 clock: Clock = time.monotonic) -> None:
        self._log: Logger = logger if logger is not None else structlog.get_logger(__name__)
        self.threshold = threshold
        self._clock = clock
        self._keys: dict[SyncKey, _Failing] = {}

    def failed(self, key: SyncKey, exc: BaseException, *, failures: int, retry_in: float,
               unexpected: bool = False) -> None:
        """``key`` failed for the ``failures``-th time in a row and is retried in ``retry_in`` seconds
        (``unexpected``: not a refusal or an unreachable apiserver but a bug: reported at once, with its traceback)."""
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Failing(since=self._clock())
        state = error_state(exc)
        fields = {**_fields(key), "error": str(exc), "failures": failures, "retry_in": round(retry_in, 3)}
        if failures < self.threshold and not unexpected:
            self._log.debug("sync.retry", **fields)
        elif not entry.reported or state != entry.state:
            if unexpected:
                self._log.error("sync.failing", **fields, changed=entry.reported, exc_info=exc)
            else:
                self._log.warning("sync.failing", **fields, changed=entry.reported)
            entry.reported = True
        entry.state = state

    def succeeded(self, key: SyncKey) -> None:
        """``key`` reconciled: a key reported failing says it recovered."""
        entry = self._keys.pop(key, None)
        if entry is not None and entry.reported:
            self._log.info("sync.recovered", **_fields(key), failed_for=round(self._clock() - entry.since, 3))

    def drop_tenant(self, tenant: str) -> None:
        """Forget the keys of a tenant no longer served (no line: the tenant's removal is logged)."""
        for key in [k for k in self._keys if k.tenant == tenant]:
            del self._keys[key]

    def failing(self) -> dict[str, int]:
        """Keys failing now (at least once, not yet succeeded), per tenant."""
        return dict(Counter(k.tenant for k in self._keys))
