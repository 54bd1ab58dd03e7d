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

Re-checks wait behind live work (``resync_share``): after a (re)start every
object the syncer finds already synced is queued once more to be compared,
tens of thousands of keys that mostly find nothing to do.  Added with
``resync=True`` they go to a second tier, served round-robin across tenants
only when no live key waits -- or once per ``resync_share`` live keys while
both wait, so a tenant that floods without end cannot stop them.  Without
the tier a tenant listed early re-checked its thousands of objects in turn
with the creates of a tenant listed later, and the backlog a restart found
took twice as long to reach the super cluster (issue 16, the drain).  A
live add of a key that waits in the resync tier moves it up; ``resync_share
= 0`` turns the tier off (re-checks are live keys).
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


class _ResyncTier:
    """Re-check keys per tenant, FIFO, tenants in plain round-robin (one key per turn).

    A key moved up to the live tier stays where it was in its deque and is skipped when reached
    (removing it from the middle of a deque of thousands would cost more than skipping it).
    """

    __slots__ = ("count", "keys", "queues", "ring")

    def __init__(self) -> None:
        #: The keys waiting here (a deque entry not in this set was moved up, or taken already).
        self.keys: set[SyncKey] = set()
        self.queues: dict[str, deque[SyncKey]] = {}
        self.count: dict[str, int] = {}
        self.ring: deque[str] = deque()

    def push(self, key: SyncKey) -> None:
        tenant = key.tenant
        self.keys.add(key)
        if not self.count.get(tenant):
            self.ring.append(tenant)
            self.count[tenant] = 0
            self.queues[tenant] = deque()
        self.count[tenant] += 1
        self.queues[tenant].append(key)

    def discard(self, key: SyncKey) -> bool:
        """Take ``key`` out (moved up, or its tenant dropped); False if it was not waiting here."""
        if key not in self.keys:
            return False
        self.keys.remove(key)
        self._counted_out(key.tenant)
        return True

    def _counted_out(self, tenant: str) -> None:
        left = self.count[tenant] - 1
        if left:
            self.count[tenant] = left
        else:
            del self.count[tenant], self.queues[tenant]
            self.ring.remove(tenant)

    def take(self, may_take: Callable[[str], bool]) -> SyncKey | None:
        """The next tenant's (in turn, ``may_take``) oldest key waiting here, or ``None``."""
        for _ in range(len(self.ring)):
            tenant = self.ring[0]
            self.ring.rotate(-1)
            if not may_take(tenant):
                continue
            q = self.queues[tenant]
            while True:
                key = q.popleft()
                if key in self.keys:
                    self.keys.remove(key)
                    self._counted_out(tenant)
                    return key

        return None

    def drop_tenant(self, tenant: str) -> None:
        q = self.queues.pop(tenant, None)
        if q is None:
            return
        self.keys.difference_update(q)
        del self.count[tenant]
        self.ring.remove(tenant)

    def __len__(self) -> int:
        return len(self.keys)


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
        resync_share: int = 0,
    ) -> None:
        self._weight = weight
        #: Live keys taken per re-check key while both wait (0: re-checks are live keys).
        self._resync_share = resync_share
        self._resync = _ResyncTier()
        #: Re-check keys added while being processed: they go to the resync tier when done.
        self._resync_later: set[SyncKey] = set()
        #: Live keys taken in a row while a re-check waited.
        self._live_streak = 0
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
    def add(self, key: SyncKey, *, resync: bool = False) -> None:
        """Queue ``key`` unless it is already waiting; ``resync``: a re-check, which waits behind live keys.

        A live add of a key waiting as a re-check moves it up to the live keys.
        """
        if self._closed:
            return
        if key in self._dirty:
            if not resync:
                if self._resync.discard(key):
                    self._push(key)
                else:
                    self._resync_later.discard(key)
            return
        self._dirty.add(key)
        self._added_at[key] = self._clock()
        resync = resync and self._resync_share > 0
        if key in self._processing:
            if resync:
                self._resync_later.add(key)
            return  # handed out again by done()
        if resync:
            self._resync.push(key)
            self._wake_one()
        else:
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
        """The next key by weighted round-robin and when it was queued, or ``None`` if empty.

        Live keys first; a re-check when none can be taken, or after ``resync_share`` live keys in a row.
        """
        key: SyncKey | None = None
        if self._resync and self._ring and self._live_streak < self._resync_share:
            key = self._take_live()
            if key is not None:
                self._live_streak += 1
        if key is None and self._resync:
            key = self._resync.take(self._below_limit)
            if key is not None:
                self._live_streak = 0
                self._in_flight[key.tenant] = self._in_flight.get(key.tenant, 0) + 1
        if key is None:
            key = self._take_live()
        if key is None:
            return None
        self._dirty.discard(key)
        self._processing.add(key)
        return key, self._added_at.pop(key, self._clock())

    def _below_limit(self, tenant: str) -> bool:
        return self._tenant_limit <= 0 or self._in_flight.get(tenant, 0) < self._tenant_limit

    def _take_live(self) -> SyncKey | None:
        """The next live key by weighted round-robin (counted in flight), or ``None``."""
        if not self._ring:
            return None
        if not self._below_limit(self._ring[0]):
            for _ in range(len(self._ring) - 1):  # the next tenant below its cap takes the turn
                self._ring.rotate(-1)
                if self._below_limit(self._ring[0]):
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
        return key

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
                if fut.done() and not fut.cancelled() and (self._ring or self._resync):
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
            if self._tenant_limit > 0 and left == self._tenant_limit - 1 and (
                    key.tenant in self._queues or key.tenant in self._resync.count):
                self._wake_one()  # a waiting worker may take this tenant's next key now
        if key in self._dirty:
            if key in self._resync_later:
                self._resync_later.discard(key)
                self._resync.push(key)
                self._wake_one()
            else:
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
        self._resync.drop_tenant(tenant)
        for key in [k for k in self._dirty if k.tenant == tenant]:
            self._dirty.discard(key)
            self._added_at.pop(key, None)
            self._resync_later.discard(key)
        for key in [k for k in self._timers if k.tenant == tenant]:
            self._timers.pop(key).cancel()
        for key in [k for k in self._failures if k.tenant == tenant]:
            del self._failures[key]

    def depth(self, tenant: str) -> int:
        """Keys of ``tenant`` waiting, live and re-checks."""
        q = self._queues.get(tenant)
        return (len(q) if q else 0) + self._resync.count.get(tenant, 0)

    def depths(self) -> dict[str, int]:
        out = {t: len(q) for t, q in self._queues.items()}
        for t, n in self._resync.count.items():
            out[t] = out.get(t, 0) + n
        return out

    def resync_depth(self) -> int:
        """Re-check keys waiting (every tenant)."""
        return len(self._resync)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values()) + len(self._resync)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def idle(self) -> bool:
        """Nothing queued, in progress or scheduled."""
        return not self._ring and not self._resync and not self._processing and not self._timers

    def close(self) -> None:
        self._closed = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
