"""One work queue for every tenant: de-duplicated, weighted-fair, with per-key back-off.

Why: a flood of objects from one tenant must not delay another tenant's
pods, and a key that changes ten times while it waits must be reconciled
once.  Semantics follow client-go's workqueue (a key is never handed to two
workers at once; a key added while it is being processed is handed out again
when the worker is done), with one FIFO per tenant served in weighted
round-robin: each turn a tenant may take up to ``weight`` keys before the
next tenant with work gets its turn.

``tenant_limit`` caps the keys of one tenant being processed at once: a
tenant whose apiserver hangs makes each of its keys hold a worker until the
request times out, and without a cap enough of them would hold every
worker while the other tenants' keys wait.  With it, the others always
have ``workers - tenant_limit`` workers (the engine sets it a little below
the worker count, so one busy tenant alone keeps almost all of them).

Within a tenant's turn, upward keys go first (``up_share``): they carry what
the tenant user waits for -- a pod's binding and ``Running`` -- and are cheap,
while a burst of downward creates could otherwise hold them back for seconds
(issue 16: in a 300-pod burst no tenant pod turned Running for 1.5 s while
super pods did).  Up to ``up_share`` upward keys are taken for each downward
key while both wait, so a flood of super-side changes (Events, status churn)
never stops a tenant's creates; ``up_share = 0`` is one FIFO per tenant.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

#: Directions of a key: tenant → super, and super → tenant.
DOWN = "down"
UP = "up"


class SyncKey(NamedTuple):
    """What a worker reconciles: one object of one kind of one tenant, in one direction.

    ``namespace`` and ``name`` are the *tenant* namespace and name
    (``namespace`` is ``""`` for cluster-scoped kinds).
    """

    tenant: str
    kind: str
    direction: str
    namespace: str
    name: str


class _TenantQueue:
    """One tenant's waiting keys, by direction: upward first, ``up_share`` of them per downward key."""

    __slots__ = ("down", "streak", "up", "up_share")

    def __init__(self, up_share: int) -> None:
        self.up: deque[SyncKey] = deque()
        self.down: deque[SyncKey] = deque()
        self.up_share = up_share
        #: Upward keys taken in a row while a downward key waited.
        self.streak = 0

    def append(self, key: SyncKey) -> None:
        if self.up_share > 0 and key.direction == UP:
            self.up.append(key)
        else:
            self.down.append(key)

    def popleft(self) -> SyncKey:
        if self.up and (not self.down or self.streak < self.up_share):
            if self.down:
                self.streak += 1
            return self.up.popleft()
        self.streak = 0
        return self.down.popleft()

    def __len__(self) -> int:
        return len(self.up) + len(self.down)


class FairQueue:
    """De-duplicating, weighted round-robin queue of :class:`SyncKey` with back-off."""

    def __init__(
        self,
        *,
        weight: Callable[[str], int] = lambda _tenant: 1,
        backoff_base: float = 0.005,
        backoff_max: float = 30.0,
        backoff_jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        tenant_limit: int = 0,
        up_share: int = 0,
    ) -> None:
        self._weight = weight
        #: Upward keys a tenant's turn takes before each waiting downward key (0: one FIFO).
        self._up_share = up_share
        #: Keys of one tenant handed out and not yet done, at most (0: no cap).
        self._tenant_limit = tenant_limit
        self._in_flight: dict[str, int] = {}
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        #: Up to this fraction of a retry delay is taken off at random, so that keys that failed
        #: together (a tenant apiserver that went away) do not all retry in the same instant.
        self._backoff_jitter = backoff_jitter
        self._rng = rng
        self._clock = clock
        self._queues: dict[str, _TenantQueue] = {}
        self._ring: deque[str] = deque()
        self._credit = 0
        self._dirty: set[SyncKey] = set()
        self._processing: set[SyncKey] = set()
        self._added_at: dict[SyncKey, float] = {}
        self._failures: dict[SyncKey, int] = {}
        self._timers: dict[SyncKey, asyncio.TimerHandle] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # ---- adding -------------------------------------------------------------------
    def add(self, key: SyncKey) -> None:
        """Queue ``key`` unless it is already waiting."""
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        self._added_at[key] = self._clock()
        if key in self._processing:
            return  # handed out again by done()
        self._push(key)

    def _push(self, key: SyncKey) -> None:
        q = self._queues.get(key.tenant)
        if q is None:
            q = self._queues[key.tenant] = _TenantQueue(self._up_share)
        if not q:
            self._ring.append(key.tenant)
            if len(self._ring) == 1:
                self._credit = self._weight(key.tenant)
        q.append(key)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                break

    def add_after(self, key: SyncKey, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (an earlier pending add wins)."""
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        old = self._timers.get(key)
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: SyncKey) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: SyncKey) -> float:
        """Queue ``key`` again after its exponential back-off; returns the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = self.backoff_delay(failures)
        self.add_after(key, delay)
        return delay

    def backoff_delay(self, failures: int) -> float:
        base = float(min(self._backoff_base * 2 ** min(failures - 1, 30), self._backoff_max))
        return base * (1.0 - self._backoff_jitter * self._rng())

    def forget(self, key: SyncKey) -> None:
        """Reset ``key``'s back-off (after a success)."""
        self._failures.pop(key, None)

    def failures(self, key: SyncKey) -> int:
        return self._failures.get(key, 0)

    # ---- taking -------------------------------------------------------------------
    def get_nowait(self) -> tuple[SyncKey, float] | None:
        """The next key by weighted round-robin and when it was queued, or ``None`` if empty."""
        if not self._ring:
            return None
        if self._tenant_limit > 0 and self._in_flight.get(self._ring[0], 0) >= self._tenant_limit:
            for _ in range(len(self._ring) - 1):  # the next tenant below its cap takes the turn
                self._ring.rotate(-1)
                if self._in_flight.get(self._ring[0], 0) < self._tenant_limit:
                    self._credit = self._weight(self._ring[0])
                    break
            else:
                self._ring.rotate(-1)  # back to where it started
                return None  # every tenant with work is at its cap: wait for a done()
        tenant = self._ring[0]
        q = self._queues[tenant]
        key = q.popleft()
        self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
        self._credit -= 1
        if not q:
            self._ring.popleft()
            del self._queues[tenant]
            if self._ring:
                self._credit = self._weight(self._ring[0])
        elif self._credit <= 0:
            self._ring.rotate(-1)
            self._credit = self._weight(self._ring[0])
        self._dirty.discard(key)
        self._processing.add(key)
        return key, self._added_at.pop(key, self._clock())

    async def get(self) -> tuple[SyncKey, float]:
        """Wait for the next key; the caller must call :meth:`done` with it."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # Pass a wake-up we swallowed on to another waiter.
                if fut.done() and not fut.cancelled() and self._ring:
                    self._wake_one()
                raise

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def done(self, key: SyncKey) -> None:
        """The worker finished ``key``; if it was added meanwhile, it is queued again."""
        if key in self._processing:
            self._processing.discard(key)
            left = self._in_flight.get(key.tenant, 0) - 1
            if left > 0:
                self._in_flight[key.tenant] = left
            else:
                self._in_flight.pop(key.tenant, None)
            if self._tenant_limit > 0 and left == self._tenant_limit - 1 and key.tenant in self._queues:
                self._wake_one()  # a waiting worker may take this tenant's next key now
        if key in self._dirty:
            self._push(key)

    # ---- tenants and introspection ------------------------------------------------
    def drop_tenant(self, tenant: str) -> None:
        """Forget every waiting key, timer and back-off of ``tenant``."""
        q = self._queues.pop(tenant, None)
        if q is not None:
            was_head = bool(self._ring) and self._ring[0] == tenant
            self._ring.remove(tenant)
            if was_head and self._ring:
                self._credit = self._weight(self._ring[0])
        for key in [k for k in self._dirty if k.tenant == tenant]:
            self._dirty.discard(key)
            self._added_at.pop(key, None)
        for key in [k for k in self._timers if k.tenant == tenant]:
            self._timers.pop(key).cancel()
        for key in [k for k in self._failures if k.tenant == tenant]:
            del self._failures[key]

    def depth(self, tenant: str) -> int:
        q = self._queues.get(tenant)
        return len(q) if q else 0

    def depths(self) -> dict[str, int]:
        return {t: len(q) for t, q in self._queues.items()}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def processing(self) -> int:
        return len(self._processing)

    def idle(self) -> bool:
        """Nothing queued, in progress or scheduled."""
        return not self._ring and not self._processing and not self._timers

    def close(self) -> None:
        self._closed = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
