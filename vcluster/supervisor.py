"""Keep child processes running: restart an exited one with capped exponential back-off, count restarts.

Why this module exists: in a real cluster a Deployment's kubelet restarts a
component that exits; the embedded default (``kubectl vc up``) had nobody
doing it, so an operator that lost its Lease during a stalled super
apiserver exited "for a restart to stand by" and stayed gone until someone
ran ``up`` again.  :class:`Supervisor` is that kubelet for a handful of
processes: it watches each child, and when one exits it records why (exit
code or signal), waits ``initial * 2**n`` seconds (capped; the count starts
over once a child has run ``reset_after`` seconds, like kubelet's
CrashLoopBackOff) and starts it again.  What it knows -- pid, state, restart
count, last exit reason and when, next start -- goes to a JSON status file
that ``kubectl vc status`` reads (:func:`read_status`).

Children are anything with ``start/is_running/exit_reason/stop`` and a
``pid`` (:class:`vcluster.process.ManagedProcess`; tests pass fakes), and
the clocks are injected, so the restart logic is tested without sleeping.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from vcluster.backoff import BackoffPolicy, Clock
from vcluster.errors import VClusterError
from vcluster.files import write_atomic

log = structlog.get_logger(__name__)

RUNNING = "running"
#: Exited; waiting for its back-off before the next start.
WAITING = "waiting"
STOPPED = "stopped"

#: What :meth:`ManagedProcess.exit_reason` says of a dead process it did not start itself.
_UNKNOWN_EXIT = "is not running"


class Child(Protocol):
    """The part of :class:`vcluster.process.ManagedProcess` the supervisor uses."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self) -> int: ...

    def is_running(self) -> bool: ...

    def exit_reason(self) -> str | None: ...

    def stop(self, *, grace: float = 10.0) -> None: ...


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to restart: ``backoff`` per consecutive exit, starting over after ``reset_after`` s of running."""

    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(initial=1.0, factor=2.0, cap=60.0, jitter=0.0))
    reset_after: float = 120.0


@dataclass(slots=True)
class ChildStatus:
    """One child as the status file shows it."""

    pid: int | None = None
    state: str = STOPPED
    #: Starts after the first one.
    restarts: int = 0
    #: Why it last exited ("exited with code 1", "killed by signal 9", "failed to start: ...").
    last_exit: str | None = None
    #: Wall-clock time (epoch seconds) of that exit.
    last_exit_at: float | None = None
    #: Wall-clock time of the next start while ``state`` is ``waiting``.
    next_start_at: float | None = None


@dataclass(slots=True)
class _Track:
    status: ChildStatus
    #: Consecutive exits without ``reset_after`` seconds of running in between.
    crashes: int = 0
    started_at: float = 0.0
    next_start: float = 0.0


class Supervisor:
    """Starts ``children`` in order and keeps them running until :meth:`stop_all`."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        policy: RestartPolicy = RestartPolicy(),
        status_path: Path | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self.children = list(children)
        self.policy = policy
        self.status_path = status_path
        self.clock = clock
        self.wall_clock = wall_clock
        previous = read_status(status_path) if status_path is not None else {}
        self._tracks = {
            c.name: _Track(ChildStatus(restarts=previous[c.name].restarts if c.name in previous else 0,
                                       last_exit=previous[c.name].last_exit if c.name in previous else None,
                                       last_exit_at=previous[c.name].last_exit_at if c.name in previous else None))
            for c in self.children
        }

    def status(self) -> dict[str, ChildStatus]:
        return {name: track.status for name, track in self._tracks.items()}

    def begin(self) -> None:
        """Start (or adopt, see :meth:`ManagedProcess.start`) every child; a failed start is retried later."""
        now = self.clock()
        for child in self.children:
            self._start(child, self._tracks[child.name], now, restart=False)
        self._write()

    def step(self) -> bool:
        """Look at every child once: note exits, start those whose back-off is over; whether anything changed."""
        now = self.clock()
        changed = False
        for child in self.children:
            track = self._tracks[child.name]
            st = track.status
            if st.state == RUNNING:
                if child.is_running():
                    if track.crashes and now - track.started_at >= self.policy.reset_after:
                        track.crashes = 0
                    continue
                reason = child.exit_reason() or _UNKNOWN_EXIT
                if reason == _UNKNOWN_EXIT:
                    reason = "exited (status unknown: started before this supervisor)"
                self._schedule(child, track, now, reason)
                changed = True
            if st.state == WAITING and now >= track.next_start:
                self._start(child, track, now, restart=True)
                changed = True
        if changed:
            self._write()
        return changed

    def stop_all(self, *, grace: float = 10.0) -> list[str]:
        """Stop every child, last started first; the errors (one line each) of those that would not stop."""
        errors: list[str] = []
        for child in reversed(self.children):
            try:
                child.stop(grace=grace)
            except VClusterError as exc:
                errors.append(str(exc))
            st = self._tracks[child.name].status
            st.state, st.pid, st.next_start_at = STOPPED, None, None
        self._write()
        return errors

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0, grace: float = 10.0) -> list[str]:
        """:meth:`begin`, then :meth:`step` every ``poll_interval`` s until ``stop`` is set; then :meth:`stop_all`."""
        try:
            self.begin()
            while not stop.wait(poll_interval):
                self.step()
        finally:
            errors = self.stop_all(grace=grace)
        return errors

    # ---- internals ------------------------------------------------------------------

    def _schedule(self, child: Child, track: _Track, now: float, reason: str) -> None:
        delay = self.policy.backoff.delay(track.crashes)
        track.crashes += 1
        track.next_start = now + delay
        st = track.status
        st.state, st.pid = WAITING, None
        st.last_exit, st.last_exit_at = reason, self.wall_clock()
        st.next_start_at = st.last_exit_at + delay
        log.warning("supervisor.child.exited", component=child.name, reason=reason, restart_in=round(delay, 2),
                    restarts=st.restarts)

    def _start(self, child: Child, track: _Track, now: float, *, restart: bool) -> None:
        st = track.status
        try:
            pid = child.start()
        except VClusterError as exc:
            self._schedule(child, track, now, f"failed to start: {exc}")
            return
        if restart:
            st.restarts += 1
            log.info("supervisor.child.restarted", component=child.name, pid=pid, restarts=st.restarts)
        st.state, st.pid, st.next_start_at = RUNNING, pid, None
        track.started_at = now

    def _write(self) -> None:
        if self.status_path is not None:
            write_status(self.status_path, self.status())


def write_status(path: Path, children: Mapping[str, ChildStatus]) -> None:
    """Write the status file atomically (a reader never sees half of it)."""
    write_atomic(path, json.dumps({"children": {n: asdict(s) for n, s in children.items()}}, indent=2))


def read_status(path: Path) -> dict[str, ChildStatus]:
    """The children of a status file (``{}`` when there is none or it cannot be read)."""
    try:
        data: Any = json.loads(path.read_text())
        return {name: ChildStatus(**fields) for name, fields in data["children"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the supervisor then stops its children and exits)."""
    import signal

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            signal.signal(sig, handler)


def describe(status: ChildStatus, *, now: Callable[[], float] = time.time) -> str:
    """A short text of the last exit for a status table: ``killed by signal 9, 2m ago`` (or ``-``)."""
    if not status.last_exit:
        return "-"
    if status.last_exit_at is None:
        return status.last_exit
    return f"{status.last_exit}, {_ago(now() - status.last_exit_at)} ago"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
