"""Unit tests of the test bed's pure parts and its pre-start checks (no real cluster here; see e2e/)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vcluster.binaries import kwok_dir
from vcluster.errors import VClusterError
from vcluster.process import ManagedProcess, pid_alive
from vcluster.settings import BinarySettings
from vcluster.testbed import (
    COMPONENTS,
    ComponentInfo,
    LocalSuperCluster,
    TestbedError,
    TestbedInfo,
    TestbedSettings,
    node_manifest,
    read_info,
    status,
    stop_state_dir,
)
from vcluster.testbed.cluster import STATE_FILE
from vcluster.testbed.kwok import kwok_config, rules_config, stage_files


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"nodes": 3, "apiserver_port": None, "state_dir": Path(".vcluster/super")}),
        (
            {"VC_TESTBED_NODES": "5", "VC_TESTBED_APISERVER_PORT": "26443", "VC_TESTBED_STATE_DIR": "/tmp/x"},
            {"nodes": 5, "apiserver_port": 26443, "state_dir": Path("/tmp/x")},
        ),
    ],
    ids=["defaults", "overrides"],
)
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: dict[str, object]) -> None:
    for name in ("VC_TESTBED_NODES", "VC_TESTBED_APISERVER_PORT", "VC_TESTBED_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = TestbedSettings.from_env()
    assert {k: getattr(settings, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VC_TESTBED_NODES": "three"}, "VC_TESTBED_NODES must be an integer"),
        ({"VC_TESTBED_APISERVER_PORT": "70000"}, "apiserver port must be 1-65535"),
        ({"VC_TESTBED_NODES": "-1"}, "node count must be >= 0"),
        ({"VC_TESTBED_START_TIMEOUT": "soon"}, "VC_TESTBED_START_TIMEOUT must be a number"),
    ],
    ids=["nodes-not-int", "port-out-of-range", "negative-nodes", "timeout-not-number"],
)
def test_bad_settings_are_clear_errors(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(VClusterError, match=message):
        TestbedSettings.from_env()


@pytest.mark.parametrize("real_nodes", [0, 2])
def test_network_policy_needs_exactly_one_real_node(real_nodes: int) -> None:
    with pytest.raises(VClusterError, match=f"exactly one real node, got {real_nodes}"):
        TestbedSettings(real_nodes=real_nodes, network_policy=True, binaries=BinarySettings())
    assert TestbedSettings(real_nodes=1, network_policy=True, binaries=BinarySettings()).network_policy


def test_network_policy_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VC_TESTBED_NETWORK_POLICY", raising=False)
    assert not TestbedSettings.from_env().network_policy
    monkeypatch.setenv("VC_TESTBED_NETWORK_POLICY", "1")
    monkeypatch.setenv("VC_TESTBED_REAL_NODES", "1")
    assert TestbedSettings.from_env().network_policy


def test_node_manifest_is_kwok_managed_and_untainted() -> None:
    node = node_manifest("kwok-node-7")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["type"] == "kwok"
    assert "taints" not in node.get("spec", {})
    assert node["status"]["allocatable"]["pods"] == "110"


def test_info_json_round_trip() -> None:
    info = TestbedInfo(
        state_dir="/s", server="https://127.0.0.1:1", kubeconfig="/s/kubeconfig", ca_file="/s/ca",
        admin_cert_file="/s/a.crt", admin_key_file="/s/a.key", etcd_url="http://127.0.0.1:2",
        kubelet_port=3, node_ip="127.0.0.1", node_names=("n0", "n1"),
        components={"etcd": ComponentInfo(argv=("/usr/bin/etcd", "--x"), pid_file="/p", log_file="/l")},
    )
    assert TestbedInfo.from_json(info.to_json()) == info


@pytest.fixture
def fake_binaries(tmp_path: Path) -> BinarySettings:
    """Executable stand-ins in a cache layout; the pre-start checks never run them."""
    settings = BinarySettings(cache_dir=tmp_path / "cache", etcd_path=tmp_path / "cache" / "etcd")
    for rel in ("etcd", f"kubernetes-{settings.kube_version}/kube-apiserver",
                f"kubernetes-{settings.kube_version}/kube-controller-manager",
                f"kubernetes-{settings.kube_version}/kube-scheduler", f"kwok-{settings.kwok_version}/kwok"):
        path = settings.cache_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 99\n")
        path.chmod(0o755)
    return settings


@pytest.mark.parametrize(
    "field", ["apiserver_port", "etcd_client_port", "etcd_peer_port", "kwok_kubelet_port"],
    ids=["apiserver", "etcd-client", "etcd-peer", "kwok-kubelet"],
)
def test_explicit_port_in_use_is_refused_before_anything_starts(
    tmp_path: Path, fake_binaries: BinarySettings, field: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = TestbedSettings(state_dir=tmp_path / "state", binaries=fake_binaries, **{field: port})
        with pytest.raises(VClusterError, match=rf"127\.0\.0\.1:{port} is already in use"):
            LocalSuperCluster(settings).start()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("missing", "message"),
    [("kube-apiserver", "kube-apiserver binary not found at"), ("kwok", "kwok binary not found at"),
     ("etcd", "etcd binary not found at")],
    ids=["apiserver", "kwok", "etcd"],
)
def test_missing_binary_is_refused(tmp_path: Path, fake_binaries: BinarySettings, missing: str, message: str) -> None:
    victim = next(p for p in fake_binaries.cache_dir.rglob(missing) if p.is_file())
    victim.unlink()
    settings = TestbedSettings(state_dir=tmp_path / "state", binaries=fake_binaries)
    with pytest.raises(TestbedError, match=message):
        LocalSuperCluster(settings).start()


@pytest.fixture
def sleeping_state(tmp_path: Path) -> Iterator[tuple[Path, dict[str, ManagedProcess]]]:
    """A state folder whose recorded 'components' are sleep processes (to test down/status/refusal)."""
    state = tmp_path / "state"
    procs = {
        name: ManagedProcess(name=name, argv=["/bin/sleep", f"{600 + i}"], log_path=state / "logs" / f"{name}.log",
                             pid_path=state / "run" / f"{name}.pid")
        for i, name in enumerate(COMPONENTS)
    }
    for p in procs.values():
        p.start()
    info = TestbedInfo(
        state_dir=str(state), server="https://127.0.0.1:1", kubeconfig="", ca_file="", admin_cert_file="",
        admin_key_file="", etcd_url="", kubelet_port=0, node_ip="127.0.0.1", node_names=(),
        components={n: ComponentInfo(argv=tuple(p.argv), pid_file=str(p.pid_path), log_file=str(p.log_path))
                    for n, p in procs.items()},
    )
    (state / STATE_FILE).write_text(info.to_json())
    yield state, procs
    for p in procs.values():
        p.stop(grace=1)


def test_status_and_down_from_state_dir(sleeping_state: tuple[Path, dict[str, ManagedProcess]]) -> None:
    state, procs = sleeping_state
    assert status(state) == {n: p.pid for n, p in procs.items()}
    pids = [p.pid for p in procs.values()]
    assert stop_state_dir(state, grace=2) == list(reversed(COMPONENTS))
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    assert set(status(state).values()) == {None}
    assert stop_state_dir(state) == []


def test_down_leaves_foreign_pids_alone(sleeping_state: tuple[Path, dict[str, ManagedProcess]]) -> None:
    state, procs = sleeping_state
    info = read_info(state)
    # the recorded argv no longer matches what runs under the pid: not ours, never signalled
    tampered = dataclasses.replace(info, components={
        n: dataclasses.replace(c, argv=("/bin/sleep", "1")) for n, c in info.components.items()
    })
    (state / STATE_FILE).write_text(tampered.to_json())
    assert stop_state_dir(state, grace=1) == []
    assert all(p.is_running() for p in procs.values())


def test_start_refuses_while_running(
    sleeping_state: tuple[Path, dict[str, ManagedProcess]], fake_binaries: BinarySettings
) -> None:
    state, _ = sleeping_state
    with pytest.raises(TestbedError, match=r"already running from .* stop it first"):
        LocalSuperCluster(TestbedSettings(state_dir=state, binaries=fake_binaries)).start()


def test_read_info_without_state_is_clear(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="no super cluster state in"):
        read_info(tmp_path)


def test_kwok_stages_beside_the_binary_win(tmp_path: Path) -> None:
    settings = BinarySettings(cache_dir=tmp_path)
    stages = kwok_dir(settings) / "stages"
    stages.mkdir(parents=True)
    (stages / "b.yaml").write_text("kind: Stage\nmetadata: {name: b}\n")
    (stages / "a.yaml").write_text("kind: Stage\nmetadata: {name: a}\n\n")
    assert [p.name for p in stage_files(settings)] == ["a.yaml", "b.yaml"]
    docs = [d for d in yaml.safe_load_all(kwok_config(settings)) if d]
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]


def test_kwok_stages_of_the_pinned_module_cover_nodes_and_pods(tmp_path: Path) -> None:
    """kwok v0.8.0 has no built-in stages: ours must make nodes Ready and pods Running (kwok's own files)."""
    settings = BinarySettings(cache_dir=tmp_path)  # nothing beside the binary: the Go module is used
    docs = [d for d in yaml.safe_load_all(kwok_config(settings)) if d]
    names = {d["metadata"]["name"] for d in docs}
    assert {"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-delete"} <= names
    assert {d["kind"] for d in docs} == {"Stage"}


@pytest.mark.parametrize(("logs", "exec_", "port", "kinds"), [
    pytest.param(True, False, None, ["ClusterLogs", "ClusterAttach"], id="default-logs-and-attach"),
    pytest.param(False, False, None, [], id="none"),
    pytest.param(True, True, 4321, ["ClusterLogs", "ClusterAttach", "ClusterExec", "ClusterPortForward"], id="all"),
])
def test_kwok_rules_cover_every_pod(logs: bool, exec_: bool, port: int | None, kinds: list[str]) -> None:
    text = rules_config(log_file=Path("/s/log") if logs else None, attach_file=Path("/s/attach") if logs else None,
                        exec_workdir=Path("/s") if exec_ else None, forward_port=port)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in docs] == kinds
    assert all(d["spec"]["selector"] == {} and d["apiVersion"] == "kwok.x-k8s.io/v1alpha1" for d in docs)
    if port is not None:
        assert docs[-1]["spec"]["forwards"] == [{"target": {"address": "127.0.0.1", "port": port}}]
