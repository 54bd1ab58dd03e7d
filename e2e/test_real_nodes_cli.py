"""``kubectl vc up --real-nodes 1`` on a real node, then ``down``: the host is as it was; the same with
``--network-policy`` (kube-router), where a NetworkPolicy is obeyed and ``down`` leaves nothing of it either.

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
from collections.abc import Mapping
from pathlib import Path

import pytest

from e2e.hostcheck import host_snapshot, snapshot_diff
from e2e.syncer_fixtures import poll
from vcluster import images, naming
from vcluster.testbed import realnodes

pytestmark = pytest.mark.e2e


def _pod(name: str, script: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": images.BUSYBOX_IMAGE, "command": ["sh", "-c", script]}],
                     "nodeSelector": {naming.LABEL_REAL_NODE: "true"},
                     "tolerations": [realnodes.toleration()], "terminationGracePeriodSeconds": 1}}


#: A deny-all-ingress NetworkPolicy for the pods labelled ``app: web``.
DENY_WEB = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-web", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}
WEB = "while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello\\n' | nc -l -p 8080; done"


@pytest.mark.parametrize("enforced", [False, True], ids=["plain", "network-policy"])
def test_up_with_a_real_node_runs_a_container_and_down_leaves_nothing(
    tmp_path: Path, binary_settings: object, enforced: bool,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
    env.update(VC_STATE_DIR=str(tmp_path / "vc"), VC_NODES="1")

    def vc(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vcluster", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)

    before = host_snapshot()
    up = vc("up", "--real-nodes", "1", *(["--network-policy"] if enforced else []))
    try:
        assert up.returncode == 0, up.stderr
        assert "1 real nodes" in up.stdout
        assert ("NetworkPolicy enforced by kube-router" in up.stdout) is enforced
        kubeconfig = tmp_path / "vc" / "super" / "kubeconfig"

        def kubectl(*args: str) -> str:
            proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                                  timeout=150, check=False)
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
            return proc.stdout

        def apply(obj: Mapping[str, object]) -> None:
            subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "apply", "-f", "-"], input=json.dumps(obj),
                           text=True, capture_output=True, check=True, timeout=60)

        apply(_pod("real", "echo in-a-container; exec sleep 600"))
        kubectl("wait", "--for=condition=Ready", "pod/real", "--timeout=120s")
        assert kubectl("logs", "real").strip() == "in-a-container"
        assert kubectl("get", "pod", "real", "-o", "jsonpath={.spec.nodeName}") == "real-node-0"
        if enforced:  # a policy is obeyed: "real" reaches "web" until web's ingress is denied
            apply(_pod("web", WEB, {"app": "web"}))
            kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s")
            ip = kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}")

            def get() -> str:
                out = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "exec", "real", "--", "sh", "-c",
                                      f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080"],
                                     capture_output=True, text=True, timeout=60, check=False)
                return out.stdout

            poll("real reaches web", lambda: "hello" in get(), timeout=60)
            apply(DENY_WEB)
            poll("web's ingress denied", lambda: get() == "", timeout=60)
            assert get() == ""
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
