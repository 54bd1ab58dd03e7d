"""e2e: the local super cluster runs real components, schedules pods, fails clearly, stops cleanly."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.conftest import SuperCluster
from vcluster.errors import VClusterError
from vcluster.process import read_cmdline
from vcluster.testbed import LocalSuperCluster, TestbedError, TestbedSettings, node_name
from vcluster.testbed.kwok import SIMULATED_LOG_LINE

pytestmark = pytest.mark.e2e


def _ready(node: dict[str, object]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])  # type: ignore[attr-defined]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_simulated_nodes_are_ready(super_cluster: SuperCluster) -> None:
    out = super_cluster.kubectl("get", "nodes", "-l", "type=kwok", "-o", "json").stdout
    nodes = {n["metadata"]["name"]: n for n in json.loads(out)["items"]}
    assert set(nodes) == {node_name(i) for i in range(3)}
    assert all(_ready(n) for n in nodes.values())
    # no taint: ordinary pods schedule without tolerations
    assert all(not n["spec"].get("taints") for n in nodes.values())


def test_deployment_pods_run_on_simulated_nodes(super_cluster: SuperCluster, unique_name: str) -> None:
    ns = unique_name
    super_cluster.kubectl("create", "namespace", ns)
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }
    super_cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    super_cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    pods = json.loads(super_cluster.kubectl("-n", ns, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 3
    assert {p["spec"]["nodeName"] for p in running} <= set(super_cluster.info.node_names)
    assert all(p["status"].get("podIP") for p in running)
    # kwok serves the kubelet API for them: `kubectl logs` shows the simulated log line
    logs = super_cluster.kubectl("-n", ns, "logs", running[0]["metadata"]["name"])
    assert logs.stdout.strip().endswith(SIMULATED_LOG_LINE)
    super_cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_explicit_port_in_use_fails_clearly(super_cluster: SuperCluster, testbed_settings: TestbedSettings) -> None:
    taken = int(super_cluster.server.rsplit(":", 1)[1])
    settings = dataclasses.replace(testbed_settings, apiserver_port=taken)
    with pytest.raises(VClusterError, match=rf"kube-apiserver port 127\.0\.0\.1:{taken} is already in use"):
        LocalSuperCluster(settings).start()
    # the entry point turns it into one line on stderr, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "vcluster.testbed", "up", "--state-dir", str(testbed_settings.state_dir / "cli"),
         "--apiserver-port", str(taken)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: kube-apiserver port 127.0.0.1:{taken} is already in use; choose another port or omit it"
    )
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("which", ["kube", "etcd"], ids=["kube-binaries-missing", "etcd-missing"])
def test_missing_binary_fails_clearly(testbed_settings: TestbedSettings, tmp_path: Path, which: str) -> None:
    if which == "kube":
        bins = dataclasses.replace(testbed_settings.binaries, cache_dir=tmp_path / "empty-cache")
        expected = (  # etcd is resolved first, and it is built into the same cache
            rf"etcd binary not found at {re.escape(str(tmp_path))}/empty-cache/\S+: "
            r"run `python -m vcluster.binaries build`"
        )
    else:
        bins = dataclasses.replace(testbed_settings.binaries, etcd_path=tmp_path / "no-etcd")
        expected = rf"etcd binary not found at {re.escape(str(tmp_path))}/no-etcd: fix VC_ETCD or unset it"
    settings = dataclasses.replace(testbed_settings, binaries=bins, state_dir=tmp_path / "state")
    with pytest.raises(TestbedError, match=expected):
        LocalSuperCluster(settings).start()
    assert not (tmp_path / "state" / "run").exists()  # nothing was started


def _assert_gone(pids: dict[str, tuple[int, list[str]]], ports: list[int]) -> None:
    for name, (pid, argv) in pids.items():
        assert read_cmdline(pid) != argv, f"{name} (pid {pid}) still running"
    for port in ports:
        assert not _listening("127.0.0.1", port), f"port {port} still accepts connections"


def _ports(launcher: LocalSuperCluster) -> list[int]:
    info = launcher.info
    etcd_port = int(info.etcd_url.rsplit(":", 1)[1])
    api_port = int(info.server.rsplit(":", 1)[1])
    peer = next(a for a in info.components["etcd"].argv if a.startswith("--listen-peer-urls="))
    return [etcd_port, int(peer.rsplit(":", 1)[1]), api_port, info.kubelet_port]


def test_stop_leaves_nothing_and_restart_keeps_data(testbed_settings: TestbedSettings, tmp_path: Path) -> None:
    """stop() leaves no process and no listening port; a start on the same state folder keeps
    the CA (old kubeconfigs stay valid) and the etcd data."""
    settings = dataclasses.replace(testbed_settings, state_dir=tmp_path / "small", nodes=1)
    launcher = LocalSuperCluster(settings)
    try:
        launcher.start()
        pids = {n: (p.pid or -1, p.argv) for n, p in launcher.processes().items()}
        ports = _ports(launcher)
        assert all(read_cmdline(pid) == argv for pid, argv in pids.values())
        assert all(_listening("127.0.0.1", p) for p in ports)
        launcher.api().create_if_missing(
            "/api/v1/namespaces/default/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "survivor"}, "data": {"k": "v"}},
        )
        ca_before = launcher.ca.cert_pem
    finally:
        launcher.stop()
    _assert_gone(pids, ports)
    assert not list((tmp_path / "small" / "run").glob("*.pid"))

    again = LocalSuperCluster(settings)
    try:
        again.start()
        assert again.ca.cert_pem == ca_before
        cm = again.api().get("/api/v1/namespaces/default/configmaps/survivor")
        assert cm is not None
        assert cm["data"] == {"k": "v"}
    finally:
        again.stop()


def test_cli_up_status_down(testbed_settings: TestbedSettings, tmp_path: Path) -> None:
    state = tmp_path / "cli-state"
    env = dict(os.environ, VC_CACHE_DIR=str(testbed_settings.binaries.cache_dir))
    up = subprocess.Popen(
        [sys.executable, "-m", "vcluster.testbed", "up", "--state-dir", str(state), "--nodes", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:  # `up` prints the export line once the cluster is ready
            lines.append(line)
            if line.startswith("export KUBECONFIG="):
                break
        output = "".join(lines) + (up.stderr.read() if up.poll() is not None and up.stderr else "")
        assert lines, output
        assert lines[-1].strip() == f"export KUBECONFIG={state.resolve() / 'kubeconfig'}", output
        nodes = subprocess.run(
            ["kubectl", f"--kubeconfig={state / 'kubeconfig'}", "get", "nodes", "-o", "name"],
            capture_output=True, text=True, timeout=60, check=True,
        )
        assert nodes.stdout.split() == [f"node/{node_name(0)}"]
        status = subprocess.run(
            [sys.executable, "-m", "vcluster.testbed", "status", "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        info = json.loads((state / "testbed.json").read_text())
        pids = {
            name: (int(Path(c["pid_file"]).read_text()), list(c["argv"])) for name, c in info["components"].items()
        }
        ports = [
            int(info["etcd_url"].rsplit(":", 1)[1]), int(info["server"].rsplit(":", 1)[1]), info["kubelet_port"],
        ]
        down = subprocess.run(
            [sys.executable, "-m", "vcluster.testbed", "down", "--state-dir", str(state)],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )
        assert down.returncode == 0, down.stderr
        assert "kube-apiserver" in down.stdout
        _assert_gone(pids, ports)
        # `up` notices that `down` stopped its components and exits by itself
        assert up.wait(timeout=60) == 0
        assert "stopped by `down`" in (up.stderr.read() if up.stderr else "")
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=60)
    after = subprocess.run(
        [sys.executable, "-m", "vcluster.testbed", "status", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )
    assert after.returncode == 3
    assert "kube-apiserver\tstopped" in after.stdout

