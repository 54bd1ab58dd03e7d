"""vcluster.supervisor: restarts with capped back-off and counts, on fake children and a fake clock.

The last tests run the real supervisor entry point (``python -m vcluster.cli.supervise``) on a state
folder whose "operator" is ``sleep``: a SIGKILLed child comes back, ``status`` shows the restart and
its reason, ``down`` stops the supervisor and the child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcluster.backoff import BackoffPolicy
from vcluster.cli import embedded
from vcluster.errors import VClusterError
from vcluster.process import ManagedProcess, pid_alive
from vcluster.supervisor import RUNNING, STOPPED, WAITING, RestartPolicy, Supervisor, describe, read_status


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeChild:
    """A process stand-in: ``die()`` makes it exit with a reason; ``fail_starts`` makes starts fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid: int | None = None
        self._next_pid = 1000
        self.reason: str | None = None
        self.starts = 0
        self.fail_starts = 0
        self.stopped = False

    def start(self) -> int:
        if self.fail_starts:
            self.fail_starts -= 1
            raise VClusterError(f"{self.name}: binary not found")
        self.starts += 1
        self._next_pid += 1
        self.pid, self.reason = self._next_pid, None
        return self.pid

    def is_running(self) -> bool:
        return self.pid is not None and self.reason is None

    def exit_reason(self) -> str | None:
        return self.reason

    def stop(self, *, grace: float = 10.0) -> None:
        self.stopped = True
        self.pid = None

    def die(self, reason: str = "exited with code 1") -> None:
        self.reason = reason


POLICY = RestartPolicy(backoff=BackoffPolicy(initial=1.0, factor=2.0, cap=8.0, jitter=0.0), reset_after=60.0)


def _supervisor(*children: FakeChild, clock: FakeClock, status: Path | None = None) -> Supervisor:
    return Supervisor(children, policy=POLICY, clock=clock, wall_clock=lambda: 5000.0 + clock.now,
                      status_path=status)


def _run_until_restarted(sup: Supervisor, child: FakeChild, clock: FakeClock) -> float:
    """Step in 0.5 s increments until ``child`` is running again; the fake seconds it took."""
    start = clock.now
    sup.step()
    while sup.status()[child.name].state != RUNNING:
        clock.now += 0.5
        sup.step()
    return clock.now - start


def test_begin_starts_every_child_without_counting_restarts() -> None:
    clock = FakeClock()
    a, b = FakeChild("a"), FakeChild("b")
    sup = _supervisor(a, b, clock=clock)
    sup.begin()
    assert (a.starts, b.starts) == (1, 1)
    assert {n: (s.state, s.restarts) for n, s in sup.status().items()} == {"a": (RUNNING, 0), "b": (RUNNING, 0)}


def test_exited_child_restarts_after_doubling_capped_delays() -> None:
    clock = FakeClock()
    child = FakeChild("operator")
    sup = _supervisor(child, clock=clock)
    sup.begin()
    waits = []
    for _ in range(6):
        child.die("killed by signal 9")
        waits.append(_run_until_restarted(sup, child, clock))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    st = sup.status()["operator"]
    assert (st.state, st.restarts, st.last_exit, st.pid) == (RUNNING, 6, "killed by signal 9", child.pid)


def test_waiting_child_is_not_started_before_its_delay() -> None:
    clock = FakeClock()
    child = FakeChild("syncer")
    sup = _supervisor(child, clock=clock)
    sup.begin()
    child.die()
    sup.step()
    assert sup.status()["syncer"].state == WAITING
    assert sup.status()["syncer"].next_start_at == pytest.approx(5000.0 + clock.now + 1.0)
    clock.now += 0.9
    assert not sup.step()
    assert child.starts == 1


def test_delay_starts_over_after_running_long_enough() -> None:
    clock = FakeClock()
    child = FakeChild("a")
    sup = _supervisor(child, clock=clock)
    sup.begin()
    for _ in range(3):
        child.die()
        _run_until_restarted(sup, child, clock)
    clock.now += 61.0
    sup.step()  # has run past reset_after
    child.die()
    assert _run_until_restarted(sup, child, clock) == 1.0


def test_failed_start_is_retried_with_back_off_and_reported() -> None:
    clock = FakeClock()
    child = FakeChild("kubelet-proxy")
    child.fail_starts = 2
    sup = _supervisor(child, clock=clock)
    sup.begin()
    st = sup.status()["kubelet-proxy"]
    assert st.state == WAITING
    assert st.last_exit == "failed to start: kubelet-proxy: binary not found"
    assert _run_until_restarted(sup, child, clock) == 3.0  # 1 s, then 2 s after the second failure
    assert sup.status()["kubelet-proxy"].restarts == 1


def test_one_child_exiting_leaves_the_others_alone() -> None:
    clock = FakeClock()
    a, b = FakeChild("a"), FakeChild("b")
    sup = _supervisor(a, b, clock=clock)
    sup.begin()
    b_pid = b.pid
    a.die()
    _run_until_restarted(sup, a, clock)
    assert (b.starts, b.pid, sup.status()["b"].restarts) == (1, b_pid, 0)


def test_stop_all_stops_in_reverse_and_status_file_survives_a_new_supervisor(tmp_path: Path) -> None:
    clock = FakeClock()
    order: list[str] = []

    class Recording(FakeChild):
        def stop(self, *, grace: float = 10.0) -> None:
            order.append(self.name)
            super().stop(grace=grace)

    a, b = Recording("a"), Recording("b")
    status = tmp_path / "supervisor.json"
    sup = _supervisor(a, b, clock=clock, status=status)
    sup.begin()
    a.die("exited with code 1")
    _run_until_restarted(sup, a, clock)
    assert sup.stop_all() == []
    assert order == ["b", "a"]
    saved = read_status(status)
    assert {n: s.state for n, s in saved.items()} == {"a": STOPPED, "b": STOPPED}
    again = _supervisor(FakeChild("a"), FakeChild("b"), clock=clock, status=status)
    assert again.status()["a"].restarts == 1
    assert again.status()["a"].last_exit == "exited with code 1"


def test_describe_last_exit() -> None:
    clock = FakeClock()
    child = FakeChild("a")
    sup = _supervisor(child, clock=clock)
    sup.begin()
    assert describe(sup.status()["a"]) == "-"
    child.die("killed by signal 9")
    sup.step()
    assert describe(sup.status()["a"], now=lambda: 5000.0 + clock.now + 150) == "killed by signal 9, 2m ago"


def test_real_process_exit_code_is_the_reason(tmp_path: Path) -> None:
    clock = FakeClock()
    child = ManagedProcess(name="x", argv=[sys.executable, "-c", "import sys; sys.exit(3)"],
                           log_path=tmp_path / "x.log", pid_path=tmp_path / "x.pid")
    sup = Supervisor([child], policy=POLICY, clock=clock)
    sup.begin()
    _poll(lambda: not child.is_running(), what="the child exits")
    sup.step()
    assert sup.status()["x"].last_exit == "exited with code 3"
    sup.stop_all(grace=1)


# ---- the entry point on a real state folder --------------------------------------------------


def _poll(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


@pytest.fixture
def sleeping_operator(tmp_path: Path) -> Iterator[embedded.Layout]:
    """A state folder whose only component is an "operator" that sleeps, run by a real supervisor."""
    layout = embedded.Layout(tmp_path / "state")
    rec = embedded.ComponentRecord(argv=["/bin/sleep", "300"], pid_file=str(layout.pid("operator")),
                                   log_file=str(layout.log("operator")), health_url="http://127.0.0.1:1/healthz",
                                   env={"VC_TEST_MARK": "1"})
    embedded.write_records(layout, {"operator": rec})
    env = {**os.environ, "VC_SUPERVISOR_BACKOFF_INITIAL": "0.1", "VC_SUPERVISOR_POLL_INTERVAL": "0.1",
           "VC_SUPERVISOR_GRACE": "2"}
    sup = embedded.supervisor_process(layout, env=env)
    sup.start()
    try:
        yield layout
    finally:
        sup.stop(grace=10)
        child = rec.process("operator")
        if child.adopt():
            child.stop(grace=1)


def _child_pid(layout: embedded.Layout) -> int | None:
    st = read_status(layout.supervisor_status).get("operator")
    return st.pid if st is not None and st.state == RUNNING else None


def test_supervisor_restarts_a_killed_component_and_status_shows_it(sleeping_operator: embedded.Layout) -> None:
    layout = sleeping_operator
    _poll(lambda: _child_pid(layout) is not None, what="the supervisor started the component")
    first = _child_pid(layout)
    assert first is not None
    assert (Path(f"/proc/{first}/environ").read_bytes().split(b"\0")).count(b"VC_TEST_MARK=1") == 1
    os.kill(first, signal.SIGKILL)
    _poll(lambda: _child_pid(layout) not in (None, first), what="the component is restarted")
    second = _child_pid(layout)
    assert second is not None
    assert pid_alive(second)
    rows, _ = embedded.status(layout)
    by_name = {r.name: r for r in rows}
    assert by_name["supervisor"].state == "running"
    operator = by_name["operator"]
    assert (operator.state, operator.pid, operator.restarts) == ("running", second, 1)
    assert operator.last_exit.startswith("killed by signal 9, ")
    assert json.loads(layout.supervisor_status.read_text())["children"]["operator"]["restarts"] == 1


def test_down_stops_the_supervisor_and_its_components(sleeping_operator: embedded.Layout) -> None:
    layout = sleeping_operator
    _poll(lambda: _child_pid(layout) is not None, what="the supervisor started the component")
    child = _child_pid(layout)
    bystander = subprocess.Popen(["/bin/sleep", "300"])  # not ours: down must leave it alone
    try:
        result = embedded.down(layout, grace=2)
        assert result.errors == []
        assert result.stopped == ["supervisor", "operator"]
        assert child is not None
        assert not pid_alive(child)
        assert embedded._running_supervisor(layout) is None
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_up_forgets_what_a_dead_supervisor_left_waiting(tmp_path: Path) -> None:
    from vcluster.supervisor import ChildStatus, write_status

    layout = embedded.Layout(tmp_path / "state")
    write_status(layout.supervisor_status, {
        "operator": ChildStatus(state=WAITING, restarts=3, last_exit="exited with code 1", next_start_at=1.0),
        "syncer": ChildStatus(pid=1, state=RUNNING),
    })
    assert embedded.component_exit(layout, "operator") == "exited with code 1"
    embedded._forget_waiting(layout)
    assert embedded.component_exit(layout, "operator") is None
    kept = read_status(layout.supervisor_status)
    assert (kept["operator"].state, kept["operator"].restarts, kept["operator"].last_exit) == (
        STOPPED, 3, "exited with code 1")
    assert kept["syncer"].state == RUNNING
