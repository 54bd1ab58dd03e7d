"""Run the real syncer (``python -m syncer``) as a child process for e2e tests.

Why a subprocess: the crash test kills it with SIGKILL mid-flight, exactly as
a crashed pod would die, and restarts it; a syncer inside the test process
could not be killed that way.  The waits, kubectl/HTTP helpers and the
module-scoped syncer fixture body the syncer e2e modules share live here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Metric

from e2e.child import ChildProcess
from e2e.operator_fixtures import TenantHandle

REPO = Path(__file__).resolve().parent.parent


class SyncerProcess(ChildProcess):
    """The syncer as a child process against the super cluster; ``kill()`` and ``start()`` at will."""

    def __init__(self, super_cluster: Any, *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.super_cluster = super_cluster
        self.log_path = log_path
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.setdefault("VC_SYNCER_PATROL_PERIOD", "20")
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==> syncer start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncer", f"--kubeconfig={self.super_cluster.kubeconfig}"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )


#: How long the e2e waits poll before they give up.
TIMEOUT = 90.0
#: Metric samples by (name, sorted labels), as parsed from a ``/metrics`` page.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def poll(what: str, check: Callable[[], Any], *, timeout: float = TIMEOUT, interval: float = 0.5,
         detail: Callable[[], str] = str) -> Any:
    """``check()`` every ``interval`` seconds until it is truthy (returned); else fail with ``detail()`` appended."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached in {timeout:.0f}s (last: {last!r}){detail()}")


def wait_for(
    what: str, check: Callable[[], Any], *, timeout: float = TIMEOUT, syncer: SyncerProcess | None = None
) -> Any:
    """``poll`` with the syncer's log tail in the failure message."""
    return poll(what, check, timeout=timeout,
                detail=lambda: f"\nsyncer log:\n{syncer.log_tail()}" if syncer is not None else "")


def kjson(run: Callable[..., Any], *args: str) -> Any:
    got = run(*args, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def apply(tenant: TenantHandle, *objs: dict[str, Any]) -> None:
    tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def http_get(url: str, *, timeout: float = 10, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric_samples(families: Iterable[Metric]) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


@contextlib.contextmanager
def running_syncer(super_cluster: Any, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path],
                   *, log_dir: str, log_key: str, env: dict[str, str] | None = None) -> Iterator[SyncerProcess]:
    """A started syncer whose log is in ``component_logs[log_key]``; stopped on exit (for module fixtures)."""
    log_path = tmp_path_factory.mktemp(log_dir) / "syncer.log"
    component_logs[log_key] = log_path
    proc = SyncerProcess(super_cluster, log_path=log_path, env=env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
