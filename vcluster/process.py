"""Supervise local processes: start, log, pid file, wait until healthy, stop, re-adopt.

Why this module exists: the local super cluster (etcd, kube-apiserver,
controller-manager, scheduler, kwok) and the operator's ``local`` backend (one
kube-apiserver per tenant) both run real upstream binaries as child
processes.  They need the same care: a log file per process, a pid file so a
restarted supervisor re-adopts what is still running instead of starting a
duplicate, health waits with a deadline (never blind sleeps), and a stop that
escalates from SIGTERM to SIGKILL and never touches a process we did not start
(a pid is only trusted when ``/proc/<pid>/cmdline`` is exactly our argv).

It also picks free TCP ports: several test beds share one machine, so no
component ever listens on a fixed port.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from vcluster.errors import VClusterError
from vcluster.files import write_atomic

log = structlog.get_logger(__name__)

#: Ports are picked below Linux's default ephemeral range (32768-60999), so a
#: port we picked is not taken meanwhile by some outgoing connection's source port,
#: and below Kubernetes' NodePort range (:data:`NODE_PORT_RANGE`): a NodePort is open on
#: every node address, so a Service could be given the port of a control plane listening on
#: the node (the test bed's host address), and a NetworkPolicy enforcer lets every pod reach
#: node ports (kube-router accepts them ahead of any policy), that port included.
PORT_RANGE = (20000, 29999)
#: The NodePort range of kube-apiserver's default ``--service-node-port-range``.
NODE_PORT_RANGE = (30000, 32767)
_handed_out: set[int] = set()
#: How long a start waits for the previous process named in the pid file to finish exiting.
EXIT_WAIT = 10.0


class ProcessError(VClusterError):
    """A supervised process could not be started, became unhealthy, or would not stop."""


class PortInUseError(VClusterError):
    """An explicitly requested port is already taken."""


# ---- ports ---------------------------------------------------------------------


def port_is_free(port: int, *, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound right now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(*, host: str = "127.0.0.1", exclude: Sequence[int] = ()) -> int:
    """A port that is free now and was not handed out before by this process."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(*PORT_RANGE)
        if port in _handed_out or port in exclude:
            continue
        if port_is_free(port, host=host) and port_is_free(port, host="0.0.0.0"):
            _handed_out.add(port)
            return port
    raise ProcessError(f"no free TCP port found in {PORT_RANGE[0]}-{PORT_RANGE[1]} on {host}")


def require_free_port(port: int, *, host: str = "127.0.0.1", what: str = "port") -> int:
    """Return ``port`` if it can be bound, else raise a one-line :class:`PortInUseError`."""
    if not port_is_free(port, host=host):
        raise PortInUseError(f"{what} {host}:{port} is already in use; choose another port or omit it")
    _handed_out.add(port)
    return port


# ---- health checks ---------------------------------------------------------------

HealthCheck = Callable[[], bool]


def tcp_check(host: str, port: int, *, timeout: float = 1.0) -> HealthCheck:
    """A check that passes once ``host:port`` accepts a TCP connection."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return check


def https_check(
    url: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    timeout: float = 2.0,
) -> HealthCheck:
    """A check that passes once ``GET url`` answers 200 (e.g. kube-apiserver's ``/readyz``)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"

    def check() -> bool:
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if cert_file is not None:
                ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        return resp.status == 200

    return check


def wait_until(
    check: HealthCheck,
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    cap: float = 1.0,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until it passes; raise :class:`ProcessError` at the deadline.

    The pause between polls grows from ``interval`` by half each time up to ``cap`` seconds;
    a start-up whose readiness is on a user's critical path passes a small ``cap`` (the
    default back-off noticed a kube-apiserver ready after 2.2 s only at 3.1 s).
    ``abort`` is polled too: when it returns a message (e.g. "etcd exited"),
    waiting stops at once with that message instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    delay = min(interval, cap)
    while True:
        if check():
            return
        if abort is not None:
            reason = abort()
            if reason:
                raise ProcessError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise ProcessError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, cap)


# ---- /proc helpers ---------------------------------------------------------------


def read_cmdline(pid: int, *, settle: float = 1.0) -> list[str] | None:
    """The argv of a live process, or ``None`` if it is gone (or a zombie).

    A process in the middle of ``exec`` briefly shows an empty cmdline; it is
    read again for up to ``settle`` seconds while the process is alive.
    """
    deadline = time.monotonic() + settle
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return raw.rstrip(b"\0").decode(errors="replace").split("\0")
        # zombies and kernel threads have an empty cmdline for good
        if not pid_alive(pid) or time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


#: ``PF_EXITING`` of a task's flags (``/proc/<pid>/stat`` field 9): set once the task has begun to exit.
PF_EXITING = 0x4


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the comm field may hold spaces or parentheses: the state follows the last ')'
    return stat.rsplit(")", 1)[1].split()


def _proc_state(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[0] if fields else None


def pid_exiting(pid: int) -> bool:
    """Whether ``pid`` is on its way out: a zombie, or a task that has begun to exit (``PF_EXITING``).

    Not a kernel thread nor a process in the middle of ``exec`` (both also show an empty command line).
    """
    fields = _proc_stat(pid)
    if not fields:
        return False
    return fields[0] in ("Z", "X") or bool(int(fields[6]) & PF_EXITING)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def pid_gone(pid: int) -> bool:
    """Whether nothing of process ``pid`` is left that holds what it held (files, sockets, ports).

    Not the same as ``not pid_alive(pid)``: when a multi-threaded process (every Go binary) is
    killed, or its main thread exits first, ``/proc/<pid>`` shows the main thread as a zombie while
    its other threads are still running or exiting -- and still hold the process's files, its
    listening sockets among them.  A successor started then cannot bind those ports (a shared etcd
    restarted right after a SIGKILL failed with "bind: address already in use" in CI).  Gone means:
    no such pid, or a zombie whose only task left is its main thread.
    """
    state = _proc_state(pid)
    if state is None:
        return True
    if state not in ("Z", "X"):
        return False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return tasks == [str(pid)]


def wait_pid_gone(pid: int, *, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until :func:`pid_gone`; whether it is."""
    try:
        wait_until(lambda: pid_gone(pid), timeout=timeout, what=f"pid {pid} gone", interval=0.02, cap=0.1)
    except ProcessError:
        return False
    return True


def processes_in(
    folder: Path, *, keep: Callable[[list[str]], bool] = lambda _cmd: True, exclude: Collection[int] = (),
) -> list[tuple[int, list[str]]]:
    """Live ``(pid, argv)`` whose arguments point into ``folder`` (a path below it, or the folder itself).

    The /proc scan that finds what a state folder's processes are, also when their pid files
    are gone; ``keep`` narrows it by command line, ``exclude`` leaves pids out (the caller's own).
    """
    marker = f"{folder}{os.sep}"
    out: list[tuple[int, list[str]]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        pid = int(entry.name)
        cmd = read_cmdline(pid, settle=0)
        if not cmd or not keep(cmd):
            continue
        if any(marker in arg or arg == str(folder) for arg in cmd[1:]) and pid_alive(pid):
            out.append((pid, cmd))
    return out


def terminate(victims: Sequence[tuple[int, list[str]]], *, grace: float = 10.0) -> list[int]:
    """SIGTERM every ``(pid, argv)``, SIGKILL what is left after ``grace`` s; the pids still alive after that.

    For processes found in /proc rather than started here (no :class:`ManagedProcess`):
    the command line is re-checked before each signal, so a pid that is gone or was
    reused by someone else's process is never signalled.  (Not while waiting: a dying
    process shows an empty command line before it is gone.)  Our own children are reaped.
    """
    left = list(victims)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for pid, argv in left:
            if pid_alive(pid) and read_cmdline(pid, settle=0) == argv:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left:
            for pid, _ in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            # gone, not only "not alive": a dying process's threads still hold its ports (pid_gone);
            # a pid that runs another command line now is someone else's
            left = [(pid, argv) for pid, argv in left
                    if not pid_gone(pid) and read_cmdline(pid, settle=0) in (None, argv)]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    return [pid for pid, _ in left]


# ---- the supervised process ---------------------------------------------------------


class ManagedProcess:
    """One supervised process: ``argv`` with its log file and pid file.

    ``start()`` re-adopts a live process from the pid file when its cmdline is
    exactly ``argv``, so a restarted supervisor never starts a duplicate.
    ``stop()`` only signals a process this object started or adopted.
    """

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        pid_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        if not argv:
            raise ProcessError(f"{name}: empty command line")
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.pid_path = pid_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._log = log.bind(component=name)

    def __repr__(self) -> str:
        return f"ManagedProcess(name={self.name!r}, pid={self._pid})"

    @property
    def pid(self) -> int | None:
        """The pid while this object owns a process, else ``None``."""
        return self._pid

    # -- pid file -----------------------------------------------------------------

    def _read_pid_file(self) -> int | None:
        try:
            text = self.pid_path.read_text().split()
        except OSError:
            return None
        try:
            return int(text[0]) if text else None
        except ValueError:
            return None

    def _matches(self, pid: int) -> bool:
        return read_cmdline(pid) == self.argv and pid_alive(pid)

    def adopt(self) -> bool:
        """Take over the process named in the pid file if it is alive and runs ``argv``.

        A stale pid file (process gone) is removed.  A pid whose cmdline differs
        is someone else's process: it is left alone, and the pid file with it.
        """
        if self.is_running():
            return True
        pid = self._read_pid_file()
        if pid is None:
            return False
        if self._matches(pid):
            self._pid = pid
            self._popen = None
            self._log.info("process.adopted", pid=pid)
            return True
        if pid_exiting(pid) and not wait_pid_gone(pid, timeout=EXIT_WAIT):
            # a process on its way out (no command line any more) still holds its ports: a successor
            # started now would find them taken, so wait for its last thread
            self._log.warning("process.still_exiting", pid=pid, waited=EXIT_WAIT)
        if not pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
        else:
            self._log.warning("process.pidfile_foreign", pid=pid, pid_file=str(self.pid_path))
        return False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> int:
        """Start the process (or re-adopt it); return its pid."""
        if self.adopt():
            assert self._pid is not None
            return self._pid
        found = shutil.which(self.argv[0]) if "/" not in self.argv[0] else self.argv[0]
        binary = Path(found or self.argv[0])
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise ProcessError(f"{self.name}: binary {binary} not found or not executable")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as fh:
            fh.write(f"\n==> {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            fh.flush()
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # a Ctrl-C on the supervisor's terminal is ours to handle
                )
            except OSError as exc:
                raise ProcessError(f"{self.name}: cannot start {binary}: {exc.strerror}") from exc
        self._pid = self._popen.pid
        write_atomic(self.pid_path, f"{self._pid}\n")
        self._log.info("process.started", pid=self._pid, log_file=str(self.log_path))
        return self._pid

    def is_running(self) -> bool:
        """Whether the process this object owns is alive."""
        if self._pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        return self._matches(self._pid)

    def exit_reason(self) -> str | None:
        """``None`` while running; else a short text ("exited with 1") for error messages."""
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:
                return None
            return f"exited with code {code}" if code >= 0 else f"killed by signal {-code}"
        if self._pid is not None and self._matches(self._pid):
            return None
        return "is not running"

    def wait_ready(self, check: HealthCheck, *, timeout: float, what: str | None = None, cap: float = 1.0) -> None:
        """Wait until ``check`` passes (polls at most ``cap`` seconds apart); fail fast (with the log tail)
        if the process dies."""

        def abort() -> str | None:
            reason = self.exit_reason()
            if reason is None:
                return None
            tail = self.log_tail(lines=1).strip()
            return f"{reason}" + (f"; last log line: {tail}" if tail else "") + f" (log: {self.log_path})"

        try:
            wait_until(check, timeout=timeout, what=what or f"{self.name}", cap=cap, abort=abort)
        except ProcessError as exc:
            if "not ready after" in str(exc):
                raise ProcessError(f"{exc} (log: {self.log_path})") from None
            raise

    def _signal(self, sig: signal.Signals) -> None:
        assert self._pid is not None
        try:
            if os.getpgid(self._pid) == self._pid:
                os.killpg(self._pid, sig)  # our own session: take any children with it
            else:
                os.kill(self._pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise ProcessError(f"{self.name}: cannot signal pid {self._pid}: {exc.strerror}") from exc

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
                    return True
                except subprocess.TimeoutExpired:
                    pass
            elif self._pid is None or pid_gone(self._pid):
                return True
            if time.monotonic() >= deadline:
                return False
            if self._popen is None:
                time.sleep(0.05)

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; wait for the exit; remove the pid file.

        Does nothing if this object owns no live process (it never signals a pid
        it did not start or adopt, and re-checks the cmdline of an adopted pid).
        """
        if self._pid is None:
            return
        if self.is_running():
            self._log.info("process.stopping", pid=self._pid)
            self._signal(signal.SIGTERM)
            if not self._wait_gone(grace):
                self._log.warning("process.kill", pid=self._pid, grace=grace)
                if self._popen is not None or self._matches(self._pid):
                    self._signal(signal.SIGKILL)
                if not self._wait_gone(10.0):
                    raise ProcessError(f"{self.name}: pid {self._pid} did not exit after SIGKILL")
        elif self._popen is not None:
            self._popen.wait()
        if self._read_pid_file() == self._pid:
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
        self._log.info("process.stopped", pid=self._pid)
        self._pid = None
        self._popen = None

    def log_tail(self, *, lines: int = 30) -> str:
        """The last ``lines`` lines of the log file ('' if there is none)."""
        return tail_file(self.log_path, lines=lines)


def tail_file(path: Path, *, lines: int = 30, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a text file, reading at most ``max_bytes``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
