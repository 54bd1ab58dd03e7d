"""``kubectl vc up --real-nodes 1`` on a real node, then ``down``: the host is as it was.

Why this module exists: the embedded default is what a user starts, and with
real nodes it changes shared host state (an address, a bridge, iptables
chains, sysctls, mounts and cgroups of running containers).  This drives the
CLI as a user does, runs a pod in a real container, and compares a snapshot of
the host before ``up`` and after ``down``.  Its own test bed (it cannot share
one: two kube-proxies would fight over the host's iptables).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.hostcheck import host_snapshot, snapshot_diff
from vcluster import images, naming
from vcluster.testbed import realnodes

pytestmark = pytest.mark.e2e


def test_up_with_a_real_node_runs_a_container_and_down_leaves_nothing(
    tmp_path: Path, binary_settings: object,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
    env.update(VC_STATE_DIR=str(tmp_path / "vc"), VC_NODES="1")

    def vc(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vcluster", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)

    before = host_snapshot()
    up = vc("up", "--real-nodes", "1")
    try:
        assert up.returncode == 0, up.stderr
        assert "1 real nodes" in up.stdout
        kubeconfig = tmp_path / "vc" / "super" / "kubeconfig"

        def kubectl(*args: str) -> str:
            proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                                  timeout=150, check=False)
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
            return proc.stdout

        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "real", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": images.BUSYBOX_IMAGE,
                                        "command": ["sh", "-c", "echo in-a-container; exec sleep 600"]}],
                        "nodeSelector": {naming.LABEL_REAL_NODE: "true"},
                        "tolerations": [realnodes.toleration()], "terminationGracePeriodSeconds": 1}}
        subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "apply", "-f", "-"], input=json.dumps(pod),
                       text=True, capture_output=True, check=True, timeout=60)
        kubectl("wait", "--for=condition=Ready", "pod/real", "--timeout=120s")
        assert kubectl("logs", "real").strip() == "in-a-container"
        assert kubectl("get", "pod", "real", "-o", "jsonpath={.spec.nodeName}") == "real-node-0"
        status = vc("status")
        assert status.returncode == 0, status.stderr
    finally:
        down = vc("down")
    assert down.returncode == 0, down.stderr
    sockets = realnodes.socket_root(tmp_path / "vc" / "super")
    assert not realnodes.shim_pids(str(sockets)), "containers outlived down"
    assert not sockets.exists()
    diff = snapshot_diff(before, host_snapshot())
    assert not diff, diff
