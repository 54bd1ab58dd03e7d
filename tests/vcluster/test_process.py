"""Unit tests of vcluster.process on real child processes (sleep, a Python HTTP server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import unittest.mock
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vcluster import dying
from tests.vcluster.dying import half_dead
from vcluster import process as proc

SLEEP = "/bin/sleep"


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[list[proc.ManagedProcess]]:
    """Collects every ManagedProcess a test creates and stops it afterwards."""
    made: list[proc.ManagedProcess] = []
    yield made
    for p in made:
        p.stop(grace=1)


def _mp(tmp_path: Path, made: list[proc.ManagedProcess], argv: list[str], name: str = "p") -> proc.ManagedProcess:
    p = proc.ManagedProcess(name=name, argv=argv, log_path=tmp_path / f"{name}.log", pid_path=tmp_path / f"{name}.pid")
    made.append(p)
    return p


def test_start_and_stop_sleep(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    p = _mp(tmp_path, managed, [SLEEP, "300"])
    pid = p.start()
    assert p.is_running()
    assert proc.read_cmdline(pid) == [SLEEP, "300"]
    assert p.pid_path.read_text().strip() == str(pid)
    p.stop(grace=5)
    assert not p.is_running()
    assert not proc.pid_alive(pid)
    assert not p.pid_path.exists()
    assert "starting: /bin/sleep 300" in p.log_path.read_text()


def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    code = (
        "import signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(300)"
    )
    p = _mp(tmp_path, managed, [sys.executable, "-c", code])
    pid = p.start()
    proc.wait_until(lambda: "up" in p.log_tail(), timeout=20, what="child")
    p.stop(grace=0.5)
    assert not proc.pid_alive(pid)


def test_readopt_from_pid_file(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    first = _mp(tmp_path, managed, [SLEEP, "301"])
    pid = first.start()
    # a "restarted supervisor": a new object with the same argv and pid file
    second = _mp(tmp_path, managed, [SLEEP, "301"])
    assert second.start() == pid
    assert second.is_running()
    second.stop(grace=5)
    assert not proc.pid_alive(pid)
    assert not first.is_running()


def test_foreign_pid_is_never_adopted_nor_signalled(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    other = _mp(tmp_path, managed, [SLEEP, "302"], name="other")
    other_pid = other.start()
    pid_file = tmp_path / "mine.pid"
    pid_file.write_text(f"{other_pid}\n")
    mine = proc.ManagedProcess(name="mine", argv=[SLEEP, "303"], log_path=tmp_path / "mine.log", pid_path=pid_file)
    managed.append(mine)
    assert mine.adopt() is False
    mine.stop(grace=1)  # owns nothing: must not touch the other process
    assert proc.pid_alive(other_pid)
    assert pid_file.read_text().strip() == str(other_pid)  # the foreign pid file is left alone
    new_pid = mine.start()
    assert new_pid != other_pid
    assert proc.read_cmdline(new_pid) == [SLEEP, "303"]


def test_stale_pid_file_is_removed(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    p = _mp(tmp_path, managed, [SLEEP, "304"])
    pid = p.start()
    p.stop(grace=5)
    p.pid_path.write_text(f"{pid}\n")  # the process is gone, the file remains
    fresh = _mp(tmp_path, managed, [SLEEP, "304"])
    assert fresh.adopt() is False
    assert not p.pid_path.exists()


def test_http_server_health_check(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    port = proc.pick_free_port()
    p = _mp(tmp_path, managed, [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], name="http")
    assert not proc.tcp_check("127.0.0.1", port)()
    p.start()
    p.wait_ready(proc.https_check(f"http://127.0.0.1:{port}/"), timeout=30)
    assert proc.tcp_check("127.0.0.1", port)()
    p.stop(grace=5)
    assert not proc.tcp_check("127.0.0.1", port)()


def test_wait_ready_fails_fast_with_log_tail(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    p = _mp(tmp_path, managed, [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"])
    p.start()
    with pytest.raises(proc.ProcessError, match=r"exited with code 3; last log line: boom: bad flag"):
        p.wait_ready(lambda: False, timeout=60)


def test_wait_ready_deadline(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    p = _mp(tmp_path, managed, [SLEEP, "305"])
    p.start()
    with pytest.raises(proc.ProcessError, match="not ready after"):
        p.wait_ready(lambda: False, timeout=0.3)


@pytest.mark.parametrize("binary", ["/nonexistent/kube-apiserver", "plain.txt"], ids=["missing", "not-executable"])
def test_missing_binary_is_a_clear_error(tmp_path: Path, managed: list[proc.ManagedProcess], binary: str) -> None:
    if binary == "plain.txt":
        binary = str(tmp_path / binary)
        Path(binary).write_text("x")
        Path(binary).chmod(0o644)
    p = _mp(tmp_path, managed, [binary])
    with pytest.raises(proc.ProcessError, match=f"binary {binary} not found or not executable"):
        p.start()


def test_ports() -> None:
    a = proc.pick_free_port()
    b = proc.pick_free_port()
    assert a != b
    assert proc.PORT_RANGE[0] <= a <= proc.PORT_RANGE[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert not proc.port_is_free(taken)
        with pytest.raises(proc.PortInUseError, match=f"etcd client port 127.0.0.1:{taken} is already in use"):
            proc.require_free_port(taken, what="etcd client port")


_IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)
_SLEEPS = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.mark.parametrize(
    ("code", "same_argv", "stopped"),
    [
        pytest.param(_SLEEPS, True, True, id="sigterm"),
        pytest.param(_IGNORES_TERM, True, True, id="sigkill-after-grace"),
        pytest.param(_SLEEPS, False, False, id="other-argv-untouched"),
    ],
)
def test_terminate(code: str, same_argv: bool, stopped: bool) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-c", code]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        left = proc.terminate([(child.pid, argv if same_argv else [*argv, "x"])], grace=0.3)
        assert left == []
        assert proc.pid_alive(child.pid) is not stopped  # terminate() may have reaped our child
    finally:
        child.kill()
        child.wait(timeout=10)


def _pauses(monkeypatch: pytest.MonkeyPatch, polls: int, *, interval: float = 0.1,
            cap: float | None = None) -> list[float]:
    """The pauses ``wait_until`` takes before its check passes at the ``polls``-th call."""
    slept: list[float] = []
    monkeypatch.setattr("vcluster.process.time.sleep", slept.append)
    calls = iter(range(polls))
    if cap is None:
        proc.wait_until(lambda: next(calls) == polls - 1, timeout=3600, what="x", interval=interval)
    else:
        proc.wait_until(lambda: next(calls) == polls - 1, timeout=3600, what="x", interval=interval, cap=cap)
    return slept


def test_wait_until_backs_off_up_to_one_second_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _pauses(monkeypatch, 12)
    assert slept[0] == pytest.approx(0.1)
    assert max(slept) == pytest.approx(1.0)
    assert slept == sorted(slept)


def test_wait_until_never_pauses_longer_than_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _pauses(monkeypatch, 12, cap=0.2)
    assert len(slept) == 11
    assert max(slept) == pytest.approx(0.2)
    assert _pauses(monkeypatch, 3, interval=0.5, cap=0.2) == [pytest.approx(0.2)] * 2



def test_picked_ports_are_never_node_ports() -> None:
    """A control plane on a picked port must not sit in Kubernetes' NodePort range (30000-32767): a
    NetworkPolicy enforcer lets every pod reach node ports, and a NodePort Service could take the port."""
    assert proc.NODE_PORT_RANGE == (30000, 32767)
    assert proc.PORT_RANGE[1] < 30000
    picked = [proc.pick_free_port() for _ in range(60)]
    assert not [p for p in picked if 30000 <= p <= 32767]


def _kill_later(child: subprocess.Popen[str], delay: float) -> threading.Timer:
    timer = threading.Timer(delay, child.kill)
    timer.start()
    return timer


def test_a_zombie_main_thread_with_live_threads_is_not_gone() -> None:
    port = proc.pick_free_port()
    child = half_dead(port)
    try:
        assert not proc.pid_alive(child.pid)  # what a /proc state check alone says
        assert not proc.pid_gone(child.pid)  # ... while the process still holds its port
        assert not proc.port_is_free(port)
        assert proc.read_cmdline(child.pid, settle=0) is None
    finally:
        child.kill()
        child.wait(timeout=10)
    assert proc.pid_gone(child.pid)
    assert proc.port_is_free(port)


def test_start_waits_until_the_previous_process_is_gone(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    """A pid file naming a process on its way out: the successor starts only once the ports are free.

    (A shared etcd restarted right after a SIGKILL failed in CI with "bind: address already in use":
    its main thread was a zombie, its other threads still held the listening sockets.)
    """
    port = proc.pick_free_port()
    old = half_dead(port)
    p = _mp(tmp_path, managed, [SLEEP, "305"])
    p.pid_path.write_text(f"{old.pid}\n")
    timer = _kill_later(old, 0.5)
    try:
        p.start()
        assert proc.port_is_free(port)
        assert proc.pid_gone(old.pid)
    finally:
        timer.cancel()
        old.kill()
        old.wait(timeout=10)


def test_terminate_returns_once_the_process_is_gone() -> None:
    port = proc.pick_free_port()
    argv = dying.argv(port)
    old = half_dead(port)
    timer = _kill_later(old, 0.5)
    try:
        assert proc.terminate([(old.pid, argv)], grace=5) == []
        assert proc.port_is_free(port)
    finally:
        timer.cancel()
        old.kill()
        old.wait(timeout=10)


PF_KTHREAD = 0x00200000


def _kernel_thread() -> int:
    """The pid of a kernel thread (kthreadd is 2 on a VM; a container may see none)."""
    for entry in sorted(Path("/proc").iterdir(), key=lambda e: (len(e.name), e.name)):
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[6]) & PF_KTHREAD:
                return int(entry.name)
    pytest.skip("no kernel thread visible in /proc (a container's pid namespace)")


def test_exiting_is_told_apart_from_an_empty_command_line() -> None:
    """A kernel thread has an empty command line too, and never goes away: nothing waits for it."""
    kthread = _kernel_thread()
    assert not proc.pid_exiting(kthread)
    assert proc.read_cmdline(kthread, settle=0) is None
    assert not proc.pid_exiting(os.getpid())
    port = proc.pick_free_port()
    child = half_dead(port)
    try:
        assert proc.pid_exiting(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert not proc.pid_exiting(child.pid)  # reaped: no such pid


def test_a_pid_file_naming_a_kernel_thread_costs_no_wait(tmp_path: Path, managed: list[proc.ManagedProcess]) -> None:
    kthread = _kernel_thread()
    p = _mp(tmp_path, managed, [SLEEP, "306"])
    p.pid_path.write_text(f"{kthread}\n")  # a reused pid with an empty command line
    waited: list[float] = []
    real = proc.wait_pid_gone

    def spy(pid: int, *, timeout: float) -> bool:
        waited.append(timeout)
        return real(pid, timeout=timeout)

    with unittest.mock.patch.object(proc, "wait_pid_gone", spy):
        assert p.adopt() is False
    assert waited == []
    assert p.pid_path.read_text().strip() == str(kthread)  # someone else's pid: its file is left alone
