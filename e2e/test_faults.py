"""Faults on the embedded default (``kubectl vc up``): components come back, the Tenant's status tells the truth.

Why: the issue-13 sequence, as a user meets it.  A crashed component of the
embedded default must be restarted by its supervisor (and ``status`` must
say so); a tenant control plane that hangs, loses its etcd or dies must show
``Ready=False`` with the reason within seconds -- and ``Ready=True`` again
once it is repaired -- with an Event per change.  Like ``e2e/test_cli.py``
this starts its own embedded default in a private state folder (it cannot
reuse the session super cluster), so it is one lean test; the supervisor and
the operator's health loop run with their default settings.
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
from typing import Any

import pytest

from e2e.operator_fixtures import control_plane_processes
from vcluster import naming
from vcluster.process import pid_alive

pytestmark = pytest.mark.e2e

TENANT = "faulty"


class Cli:
    """``python -m vcluster`` with a private state folder and no inherited KUBECONFIG."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
        self.env["VC_STATE_DIR"] = str(state_dir)
        self.env["VC_NODES"] = "1"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vcluster", *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env, check=False)

    def ok(self, *args: str, timeout: float = 300) -> str:
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"kubectl vc {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}"
        return proc.stdout

    def kubectl(self, *args: str) -> str:
        kubeconfig = self.state_dir.resolve() / "super" / "kubeconfig"
        proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def components(self) -> dict[str, dict[str, Any]]:
        out = json.loads(self.run("status", "-o", "json").stdout)
        return {c["name"]: c for c in out["components"]}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, binary_settings: object,
        component_logs: dict[str, Path]) -> Iterator[Cli]:
    """One embedded default for the module, with tenant ``faulty``; ``down`` at the end, whatever happened."""
    state = tmp_path_factory.mktemp("vc-faults")
    for name in ("supervisor", "operator", "kubelet-proxy", "syncer"):
        component_logs[f"faults {name}"] = state / "logs" / f"{name}.log"
    c = Cli(state)
    try:
        c.ok("up", timeout=600)
        c.ok("create", TENANT, "--wait", "--timeout", "240")
        yield c
    finally:
        c.run("down", timeout=180)


def _poll(check: Callable[[], Any], *, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def _ready(cli: Cli) -> dict[str, Any]:
    obj = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    return {"phase": obj["status"]["phase"], **cond}


def _ready_is(cli: Cli, status: str, reason: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        got = _ready(cli)
        return got if (got["status"], got["reason"]) == (status, reason) else None

    return check


def _events(cli: Cli) -> list[tuple[str, str]]:
    """``(type, reason)`` of the Tenant's Events, oldest first."""
    items = json.loads(cli.kubectl("get", "events", "-n", "default", "--field-selector",
                                   f"involvedObject.name={TENANT}", "-o", "json"))["items"]
    items.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["creationTimestamp"]))
    return [(e["type"], e["reason"]) for e in items]


def test_killed_component_is_restarted_and_status_says_so(cli: Cli) -> None:
    before = cli.components()
    assert before["supervisor"]["state"] == "running"
    assert before["operator"]["restarts"] == 0
    old = before["operator"]["pid"]
    os.kill(old, signal.SIGKILL)
    after = _poll(lambda: (c := cli.components())["operator"]["state"] == "running"
                  and c["operator"]["pid"] not in (None, old) and c,
                  what="the supervisor restarted the operator", timeout=60)
    assert after["operator"]["restarts"] == 1
    assert after["operator"]["last_exit"].startswith("killed by signal 9")
    assert pid_alive(after["operator"]["pid"])
    assert after["syncer"]["restarts"] == 0  # the others were left alone
    table = cli.run("status").stdout
    assert "RESTARTS" in table
    assert "LAST EXIT" in table


def test_tenant_status_follows_its_control_plane(cli: Cli) -> None:
    key = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))["status"]["clusterKey"]
    operator_dir = cli.state_dir.resolve() / "operator"

    def pid_of(component: str) -> int:
        pids = control_plane_processes(operator_dir, key)[component]
        assert len(pids) == 1, pids
        return pids[0]

    apiserver = pid_of("kube-apiserver")
    os.kill(apiserver, signal.SIGSTOP)  # hangs: the port still accepts, nothing answers
    try:
        down = _poll(_ready_is(cli, "False", "ApiserverUnreachable"), what="Ready=False ApiserverUnreachable")
        assert down["phase"] == "Degraded"
        columns = cli.kubectl("get", "tenant", TENANT).splitlines()
        assert columns[0].split()[:4] == ["NAME", "PHASE", "READY", "REASON"]
        assert columns[1].split()[:4] == [TENANT, "Degraded", "False", "ApiserverUnreachable"]
    finally:
        os.kill(apiserver, signal.SIGCONT)
    back = _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after the apiserver thawed")
    assert back["phase"] == "Ready"
    assert pid_of("kube-apiserver") == apiserver  # a hang is reported, not "repaired" by a restart

    etcd = pid_of("etcd")
    os.kill(etcd, signal.SIGSTOP)
    try:
        _poll(_ready_is(cli, "False", "EtcdUnhealthy"), what="Ready=False EtcdUnhealthy")
    finally:
        os.kill(etcd, signal.SIGCONT)
    _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after etcd thawed")

    os.kill(apiserver, signal.SIGKILL)
    _poll(lambda: ("Warning", "ProcessExited") in _events(cli), what="a ProcessExited Event", timeout=60)
    _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after the repair", timeout=180)
    assert pid_of("kube-apiserver") != apiserver

    # one Event per transition, in order
    watched = {"ApiserverUnreachable", "EtcdUnhealthy", "ProcessExited", "Ready"}
    events = [e for e in _events(cli) if e[1] in watched]
    assert events[events.index(("Warning", "ApiserverUnreachable")):] == [
        ("Warning", "ApiserverUnreachable"), ("Normal", "Ready"),
        ("Warning", "EtcdUnhealthy"), ("Normal", "Ready"),
        ("Warning", "ProcessExited"), ("Normal", "Ready"),
    ]


def test_super_apiserver_stall_heals_by_itself(cli: Cli, tmp_path: Path) -> None:
    """The issue's sequence: the super kube-apiserver stopped 30 s while a tenant creates a pod."""
    kubeconfig = tmp_path / "tenant.kubeconfig"
    cli.ok("kubeconfig", TENANT, "-o", str(kubeconfig))

    def tenant(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                              timeout=60, check=False)

    super_apiserver = cli.components()["kube-apiserver"]["pid"]
    os.kill(super_apiserver, signal.SIGSTOP)
    try:
        made = tenant("run", "during-stall", "--image=registry.invalid/web:1")
        assert made.returncode == 0, made.stderr
        time.sleep(30)  # the fault itself lasts 30 s (what is measured comes after it)
    finally:
        os.kill(super_apiserver, signal.SIGCONT)

    ready = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "wait", "pod/during-stall",
                            "--for=condition=Ready", "--timeout=180s"], capture_output=True, text=True,
                           timeout=200, check=False)
    assert ready.returncode == 0, ready.stderr
    key = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))["status"]["clusterKey"]
    copies = cli.kubectl("get", "pods", "-A", "-l", f"{naming.LABEL_CLUSTER_KEY}={key}", "-o", "name").split()
    assert [c.rsplit("/", 1)[1] for c in copies].count("during-stall") == 1
    _poll(lambda: all(c["state"] == "running" for c in cli.components().values()),
          what="every component running again", timeout=120)
    assert _ready(cli)["status"] == "True"
