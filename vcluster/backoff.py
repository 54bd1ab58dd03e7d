"""Capped exponential back-off with jitter, and a tracker that logs a remote side's outages once per state change.

Why this module exists: every loop that talks to something which can be down
(a tenant apiserver's watch, the super cluster, a kubelet, a crashed child
process) needs the same two things, and each used to improvise them -- a
failing tenant apiserver produced ~400 ``informer.watch_failed`` lines in six
minutes, one per attempt, with no back-off.  Here:

* :class:`BackoffPolicy` -- the delay before retry *n*: ``initial * factor**n``,
  capped, minus up to ``jitter`` of it (so many clients that failed together
  do not retry together).  Pure; the random source is injected.
* :class:`Outage` -- the state of one remote side as seen by one loop: the
  first failure logs ``<event>.down``, a failure ``remind_every`` seconds after
  the last line logs ``<event>.still_down``, the first success after failures
  logs ``<event>.back`` with how long it was down; the attempts in between
  log nothing.  The clock is injected (tests use a fake one, no sleeps), and
  every transition is reported to an optional :class:`RemoteMetrics` child.
* :class:`RemoteMetrics` -- ``vc_remote_up{component,target}`` (1/0) and
  ``vc_remote_failures_total{component,target}`` in a process's registry.
"""

from __future__ import annotations

import contextlib
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge

Clock = Callable[[], float]
#: A source of numbers in ``[0, 1)`` (``random.random``; tests pass a constant).
Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delay before the retry after ``attempt`` consecutive failures (``attempt`` 0 = the first failure)."""

    #: Seconds after the first failure.
    initial: float = 1.0
    #: Growth per further failure.
    factor: float = 2.0
    #: Upper bound of any delay.
    cap: float = 60.0
    #: Fraction of the delay taken off at random (0 = none, 0.2 = up to 20 % shorter).
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.cap) or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid back-off policy {self!r}: need 0 < initial <= cap, factor >= 1, "
                             "0 <= jitter < 1")

    def delay(self, attempt: int, *, rng: Random = random.random) -> float:
        """Seconds to wait after failure number ``attempt`` (0-based), never above ``cap``."""
        exponent = min(max(attempt, 0), 64)  # 2**64 * initial is past any cap; avoids float overflow
        base = min(self.cap, self.initial * self.factor**exponent)
        return base * (1.0 - self.jitter * rng())


class RemoteMetrics:
    """Prometheus families for the state of remote sides, shared by every :class:`Outage` of a process.

    Get it with :meth:`of`: one per registry, so components that share a registry (the syncer and
    its virtual-node manager) share the families instead of registering them twice.
    """

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, RemoteMetrics]] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, registry: CollectorRegistry) -> RemoteMetrics:
        """The families in ``registry`` (created there on first use)."""
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("vc_remote_up", "1 while the last attempt to reach the remote side succeeded, else 0",
                        ["component", "target"], registry=registry)
        self.failures = Counter("vc_remote_failures_total", "Failed attempts to reach a remote side",
                                ["component", "target"], registry=registry)

    def set_up(self, component: str, target: str, up: bool) -> None:
        self.up.labels(component=component, target=target).set(1 if up else 0)

    def failed(self, component: str, target: str) -> None:
        self.failures.labels(component=component, target=target).inc()

    def forget(self, component: str, target: str) -> None:
        """Drop the series of a target that is gone for good (a removed tenant)."""
        for family in (self.up, self.failures):
            with contextlib.suppress(KeyError):
                family.remove(component, target)


class Outage:
    """One loop's view of one remote side: back-off delays plus one log line per state change.

    ``logger`` is a structlog logger with the unit of work already bound
    (tenant, kind, ...); ``event`` is the dotted prefix of the lines
    (``informer.remote`` → ``informer.remote.down`` / ``.still_down`` / ``.back``).
    """

    def __init__(
        self,
        *,
        logger: Any,
        event: str,
        policy: BackoffPolicy = BackoffPolicy(),
        remind_every: float = 300.0,
        clock: Clock = time.monotonic,
        rng: Random = random.random,
        metrics: RemoteMetrics | None = None,
        component: str = "",
        target: str = "",
    ) -> None:
        self.logger = logger
        self.event = event
        self.policy = policy
        self.remind_every = remind_every
        self.clock = clock
        self.rng = rng
        self.metrics = metrics
        self.component = component
        self.target = target
        #: Consecutive failures since the last success.
        self.failures = 0
        #: Clock time of the first failure of the current outage (``None`` while up).
        self.down_since: float | None = None
        self._last_line = 0.0
        #: Whether ``vc_remote_up`` has a value: not before the first attempt ended (an attempt that
        #: hangs, e.g. on a body that never ends, must not read as up meanwhile).
        self._reported = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: object) -> float:
        """Record a failed attempt; return the seconds to wait before the next one."""
        now = self.clock()
        delay = self.policy.delay(self.failures, rng=self.rng)
        self.failures += 1
        if self.metrics is not None:
            self.metrics.failed(self.component, self.target)
        if self.down_since is None:
            self.down_since = now
            self._last_line = now
            self.logger.warning(f"{self.event}.down", error=str(error), retry_in=round(delay, 2))
            if self.metrics is not None:
                self.metrics.set_up(self.component, self.target, False)
                self._reported = True
        elif now - self._last_line >= self.remind_every:
            self._last_line = now
            self.logger.warning(f"{self.event}.still_down", error=str(error), down_for=round(now - self.down_since, 1),
                                attempts=self.failures, retry_in=round(delay, 2))
        return delay

    def succeeded(self) -> None:
        """Record a successful attempt; logs ``<event>.back`` if it ends an outage."""
        if self.down_since is not None:
            self.logger.info(f"{self.event}.back", down_for=round(self.clock() - self.down_since, 1),
                             attempts=self.failures)
        if self.metrics is not None and (self.down_since is not None or not self._reported):
            self.metrics.set_up(self.component, self.target, True)
            self._reported = True
        self.failures = 0
        self.down_since = None

    def forget(self) -> None:
        """The loop ends for good: drop its metric series."""
        if self.metrics is not None:
            self.metrics.forget(self.component, self.target)
