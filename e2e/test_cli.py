"""``kubectl vc`` end to end: up, two tenants, kubeconfig, connect, errors, delete, down -- nothing left.

Why: the CLI is what a user touches first; this drives it exactly as a user
does (``python -m vcluster ...`` in a subprocess, with its own state folder),
against the real embedded default it starts: a local super cluster, the
operator, the kubelet proxy and the syncer.  It cannot reuse the session's
super cluster (``up`` starts its own), so it is one lean test.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli_fixtures import Cli
from vcluster.process import pid_alive
from vcluster.testbed.kwok import SIMULATED_LOG_LINE

pytestmark = pytest.mark.e2e


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert text in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def cli(tmp_path_factory: pytest.TempPathFactory, binary_settings: object,
        component_logs: dict[str, Path]) -> Iterator[Cli]:
    state = tmp_path_factory.mktemp("vc-cli")
    for name in ("operator", "kubelet-proxy", "syncer"):
        component_logs[f"cli {name}"] = state / "logs" / f"{name}.log"
    c = Cli(state)
    try:
        yield c
    finally:
        c.run("down", timeout=120)  # whatever happened, leave nothing running


_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
               "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def _tcp_states(port: int) -> list[str]:
    """States of every TCP socket on this machine whose local port is ``port`` (from /proc/net)."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    states.append(_TCP_STATES.get(parts[3], parts[3]))
    return states


def _proc_facts(pid: int) -> str:
    """State, parent and command line of a process, for a failure message."""
    try:
        fields = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line
        )
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError as exc:
        return f"gone ({exc})"
    return f"state={fields.get('State', '?').strip()} ppid={fields.get('PPid', '?').strip()} cmd={cmd.strip()}"


def test_cli_lifecycle(cli: Cli, tmp_path: Path) -> None:
    # not up yet: a clear error, no traceback
    _one_line_error(cli.run("list"), 1, "kubectl vc up")

    out = cli.ok("up", timeout=600)
    assert "virtualcluster is up" in out
    assert f"export KUBECONFIG={cli.state_dir.resolve() / 'super' / 'kubeconfig'}" in out
    assert "missing" not in out  # operator, kubelet proxy and syncer all exist and started

    again = cli.ok("up")
    assert "already up" in again

    status = json.loads(cli.ok("status", "-o", "json"))
    assert status["up"] is True
    running = {c["name"]: c for c in status["components"]}
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                 "operator", "kubelet-proxy", "syncer"):
        assert running[name]["state"] == "running", running[name]
        assert running[name]["pid"]
        assert pid_alive(running[name]["pid"])

    # two tenants, each with its own control plane
    cli.ok("create", "alpha", "--owner", "alice", "--pod-security", "baseline", "--wait", "--timeout", "240")
    cli.ok("create", "beta", "--wait", "--timeout", "240")
    table = cli.ok("list").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "VERSION", "ENDPOINT", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"][1] == rows["beta"][1] == "Ready"
    assert rows["alpha"][3] != rows["beta"][3]  # two apiservers
    alpha = json.loads(cli.ok("get", "alpha", "-o", "json"))
    assert alpha["spec"]["owners"]["users"] == ["alice"]

    # errors that need a cluster
    _one_line_error(cli.run("get", "nope"), 1, 'tenant "nope" not found')
    _one_line_error(cli.run("create", "alpha"), 1, 'tenant "alpha" already exists')
    _one_line_error(cli.run("create", "Bad_Name"), 2, "not a DNS label")
    _one_line_error(cli.run("kubeconfig", "nope"), 1, 'tenant "nope" not found')

    # tenant kubectl works, and tenants are isolated
    kc_alpha = tmp_path / "alpha.kubeconfig"
    cli.ok("kubeconfig", "alpha", "-o", str(kc_alpha))
    assert kc_alpha.stat().st_mode & 0o777 == 0o600
    assert cli.ok("kubeconfig", "alpha") == kc_alpha.read_text()

    def kubectl(kc: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={kc}", *args], capture_output=True, text=True,
                              timeout=60, check=False)

    made = kubectl(kc_alpha, "create", "namespace", "only-in-alpha")
    assert made.returncode == 0, made.stderr
    seen = cli.run("connect", "beta", "--", "kubectl", "get", "namespace", "only-in-alpha")
    assert seen.returncode == 1
    assert "NotFound" in seen.stderr
    listed = cli.run("connect", "alpha", "--", "kubectl", "get", "namespace", "only-in-alpha", "-o", "name")
    assert listed.returncode == 0
    assert listed.stdout.strip() == "namespace/only-in-alpha"
    assert cli.run("connect", "alpha", "--", "sh", "-c", "exit 7").returncode == 7

    # a pod runs in the shared super cluster; the tenant sees its virtual node and reads its log
    # through the kubelet proxy (kwok serves a simulated log line)
    ran = kubectl(kc_alpha, "-n", "only-in-alpha", "run", "web", "--image=registry.invalid/web:1")
    assert ran.returncode == 0, ran.stderr
    ready = subprocess.run(["kubectl", f"--kubeconfig={kc_alpha}", "-n", "only-in-alpha", "wait", "pod/web",
                            "--for=condition=Ready", "--timeout=180s"], capture_output=True, text=True,
                           timeout=200, check=False)
    assert ready.returncode == 0, ready.stderr
    node = json.loads(kubectl(kc_alpha, "-n", "only-in-alpha", "get", "pod", "web", "-o", "json").stdout)
    nodes = kubectl(kc_alpha, "get", "nodes", "-o", "name").stdout.split()
    assert nodes == [f"node/{node['spec']['nodeName']}"]
    logs = kubectl(kc_alpha, "-n", "only-in-alpha", "logs", "web")
    assert logs.returncode == 0, logs.stderr
    assert SIMULATED_LOG_LINE in logs.stdout

    # delete waits until the tenant is gone
    cli.ok("delete", "beta", "--wait", "--timeout", "180")
    _one_line_error(cli.run("get", "beta"), 1, 'tenant "beta" not found')
    _one_line_error(cli.run("delete", "beta"), 1, 'tenant "beta" not found')

    # down: no pid alive, no port listening (alpha's control plane included)
    ports = [int(c["endpoint"].rsplit(":", 1)[1].split("/")[0])
             for c in status["components"] if c["endpoint"].count(":") == 2]
    ports.append(int(alpha["status"]["endpoint"].rsplit(":", 1)[1]))
    pids = {c["pid"]: c["name"] for c in status["components"]}
    out = cli.ok("down", timeout=180)
    assert "virtualcluster is down" in out
    survivors = {pid: (name, _proc_facts(pid)) for pid, name in pids.items() if pid_alive(pid)}
    assert not survivors, f"{survivors}; down said: {out}"
    # nothing listens any more (a closed server's connections may linger in FIN_WAIT/TIME_WAIT for a while:
    # that is the kernel's, not a process left running)
    listening = {p: _tcp_states(p) for p in ports if "LISTEN" in _tcp_states(p)}
    assert not listening, listening
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _points_into(p, cli.state_dir)]
    assert leftovers == []
    assert "not running" in cli.ok("down")
    assert cli.run("status").returncode == 3
    _one_line_error(cli.run("get", "alpha"), 1, "kubectl vc up")


def _points_into(proc_dir: Path, state_dir: Path) -> bool:
    try:
        cmdline = (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return f"{state_dir.resolve()}/" in cmdline and "-m\0vcluster\0" not in cmdline
