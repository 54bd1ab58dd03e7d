"""Real nodes' host network plan and configuration files: pure functions, checked without root."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from vcluster import naming
from vcluster.testbed import hostnet, realnodes


def _plan(tmp_path: Path, nodes: int = 2) -> hostnet.HostPlan:
    return hostnet.plan(state_dir=tmp_path, nodes=[realnodes.node_name(i) for i in range(nodes)],
                        pod_cidr="10.245.0.0/16", service_cidr="10.96.0.0/16", kwok_pod_cidr="10.244.0.0/16")


def test_each_node_gets_its_own_subnet_and_the_host_keeps_the_first(tmp_path: Path) -> None:
    plan = _plan(tmp_path, 3)
    assert plan.host_address == "10.245.0.1"
    subnets = [ipaddress.ip_network(n.subnet) for n in plan.nodes]
    assert [str(s) for s in subnets] == ["10.245.1.0/24", "10.245.2.0/24", "10.245.3.0/24"]
    for node, subnet in zip(plan.nodes, subnets, strict=True):
        assert ipaddress.ip_address(node.gateway) == subnet.network_address + 1
    assert all(ipaddress.ip_address(plan.host_address) not in s for s in subnets)
    # interface names fit IFNAMSIZ (15) and differ between test beds
    assert all(len(n.bridge) <= 15 for n in plan.nodes)
    assert len({n.bridge for n in plan.nodes}) == 3
    other = _plan(tmp_path / "other", 1)
    assert other.nodes[0].bridge != plan.nodes[0].bridge
    assert other.chain != plan.chain


@pytest.mark.parametrize(
    ("pod_cidr", "message"),
    [
        pytest.param("10.96.0.0/16", "overlaps the service", id="overlaps-services"),
        pytest.param("10.244.0.0/16", "overlaps the kwok", id="overlaps-kwok"),
        pytest.param("10.245.0.0/24", "/22 or larger", id="too-small"),
        pytest.param("fd00::/64", "IPv4", id="ipv6"),
    ],
)
def test_bad_pod_cidrs_are_refused(tmp_path: Path, pod_cidr: str, message: str) -> None:
    with pytest.raises(hostnet.HostNetworkError, match=message):
        hostnet.plan(state_dir=tmp_path, nodes=["n"], pod_cidr=pod_cidr, service_cidr="10.96.0.0/16",
                     kwok_pod_cidr="10.244.0.0/16")


def test_guard_lets_pods_talk_to_pods_and_rejects_everything_else(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    rules = hostnet.guard_rules(plan)
    # first match wins: pod to pod accepted, then any other traffic from or to pods rejected
    assert rules[0] == ["-s", plan.pod_cidr, "-d", plan.pod_cidr, "-j", "ACCEPT"]
    assert rules[1][:2] == ["-s", plan.pod_cidr]
    assert "REJECT" in rules[1]
    assert rules[2][:2] == ["-d", plan.pod_cidr]
    assert "REJECT" in rules[2]
    assert len(rules) == 3
    assert hostnet.output_guard_rule(plan)[:2] == ["-d", "10.244.0.0/16"]


def test_plan_round_trips_through_its_state_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert hostnet.HostPlan.from_json(plan.to_json()) == plan
    strict = replace(plan, mangle_guard=True, preexisting_ipsets=("KUBE-SRC-OLD",))
    assert hostnet.HostPlan.from_json(strict.to_json()) == strict


def test_a_state_file_of_before_the_mangle_guard_still_reads(tmp_path: Path) -> None:
    data = json.loads(_plan(tmp_path).to_json())
    del data["mangle_guard"], data["preexisting_ipsets"]
    plan = hostnet.HostPlan.from_json(json.dumps(data))
    assert plan.mangle_guard is False
    assert plan.preexisting_ipsets == ()


def test_the_mangle_guard_holds_the_same_limits_before_any_filter_rule(tmp_path: Path) -> None:
    """With an enforcer that ACCEPTs allowed pod traffic in filter FORWARD before the guard, the mangle
    copy still stops pods' traffic to and from anything outside the pod network; pod to pod goes on."""
    plan = hostnet.plan(state_dir=tmp_path, nodes=["n"], pod_cidr="10.245.0.0/16", service_cidr="10.96.0.0/16",
                        kwok_pod_cidr="10.244.0.0/16", mangle_guard=True)
    assert plan.mangle_guard
    rules = hostnet.mangle_guard_rules(plan)
    assert rules == [
        ["-s", "10.245.0.0/16", "-d", "10.245.0.0/16", "-j", "RETURN"],
        ["-s", "10.245.0.0/16", "-j", "DROP"],
        ["-d", "10.245.0.0/16", "-j", "DROP"],
    ]
    assert not _plan(tmp_path).mangle_guard


def test_cni_gives_pods_no_default_route(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    conf = realnodes.cni_config(plan.nodes[0], plan, data_dir=tmp_path / "ipam")
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == plan.nodes[0].bridge
    assert bridge["isDefaultGateway"] is False
    assert bridge["ipMasq"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert routes == [plan.pod_cidr, plan.service_cidr]
    assert "0.0.0.0/0" not in routes
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.245.1.0/24", "gateway": "10.245.1.1"}]]


def test_kubelet_is_configured_as_real_clusters_run_it(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    lay = realnodes.NodeLayout(tmp_path, "real-node-0")
    conf = realnodes.kubelet_config(lay, plan.nodes[0], port=10250, ca_file=tmp_path / "ca.crt",
                                    serving_cert=tmp_path / "k.crt", serving_key=tmp_path / "k.key",
                                    cluster_dns="10.96.0.10", cgroup_parent="/vc-x-real-node-0", cgroup_v1=True)
    assert conf["authentication"]["anonymous"] == {"enabled": False}
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["readOnlyPort"] == 0
    assert conf["address"] == plan.nodes[0].gateway
    assert conf["oomScoreAdj"] == 0
    assert conf["failCgroupV1"] is False
    assert conf["resolvConf"] == ""  # no host nameserver reaches a pod
    assert conf["registerWithTaints"] == [
        {"key": naming.LABEL_REAL_NODE, "value": "true", "effect": "NoSchedule"}]
    assert conf["containerRuntimeEndpoint"] == f"unix://{lay.containerd_socket}"
    assert realnodes.kubelet_config(lay, plan.nodes[0], port=1, ca_file=tmp_path, serving_cert=tmp_path,
                                    serving_key=tmp_path, cluster_dns="x", cgroup_parent="/p",
                                    cgroup_v1=False)["failCgroupV1"] is True


@pytest.mark.parametrize("restrict", [True, False], ids=["no-cap-sys-resource", "cap-sys-resource"])
def test_containerd_config_is_private_to_the_node(tmp_path: Path, restrict: bool) -> None:
    lay = realnodes.NodeLayout(tmp_path, "real-node-0")
    conf = tomllib.loads(realnodes.containerd_config(lay, cni_bin_dir="/usr/lib/cni",
                                                     restrict_oom_score_adj=restrict))
    assert conf["root"] == str(lay.containerd_root)
    assert conf["state"] == str(lay.containerd_state)
    assert conf["grpc"]["address"] == str(lay.containerd_socket)
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is restrict
    assert cri["sandbox_image"] == "localhost/virtualcluster/pause:3.10"
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["cni"]["conf_dir"] == str(lay.cni_conf_dir)
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_kube_proxy_leaves_host_limits_alone(tmp_path: Path) -> None:
    conf = realnodes.kube_proxy_config(kubeconfig=tmp_path / "kc", cluster_cidr="10.245.0.0/16",
                                       hostname="real-node-0", bind_address="10.245.0.1", metrics_port=1234)
    assert conf["mode"] == "iptables"
    assert conf["conntrack"] == {"maxPerCore": 0, "min": 0}
    assert conf["iptables"]["localhostNodePorts"] is False
    assert conf["oomScoreAdj"] == 0


def test_super_dns_forwards_nothing_out_of_the_machine(tmp_path: Path) -> None:
    text = realnodes.corefile(bind="10.245.0.1", kubeconfig=tmp_path / "kc", health_port=1, ready_port=2)
    assert "bind 10.245.0.1" in text
    assert "kubernetes cluster.local" in text
    assert not [line for line in text.splitlines() if line.strip().startswith("forward")]
    service, endpoints = (obj for _, obj in realnodes.kube_dns_objects(cluster_ip="10.96.0.10",
                                                                         host_address="10.245.0.1"))
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    assert "selector" not in service["spec"]
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "10.245.0.1"}]


def test_kube_router_only_enforces_network_policy(tmp_path: Path) -> None:
    args = realnodes.kube_router_args(kubeconfig=tmp_path / "kc", hostname="real-node-0",
                                      service_cidr="10.96.0.0/16")
    for flag in ("--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
                 "--run-loadbalancer=false", "--hostname-override=real-node-0", f"--kubeconfig={tmp_path / 'kc'}",
                 "--service-cluster-ip-range=10.96.0.0/16"):
        assert flag in args
    # no listener at all: health and metrics off (its router's GoBGP/gRPC listener never starts)
    assert "--health-port=0" in args
    assert "--metrics-port=0" in args


def test_kube_router_may_read_what_it_watches_and_write_nothing_but_events() -> None:
    (_, role), (_, binding) = realnodes.kube_router_rbac()
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": realnodes.KUBE_ROUTER_USER}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    for rule in role["rules"]:
        if rule["resources"] == ["events"]:
            assert "delete" not in rule["verbs"]
        else:
            assert rule["verbs"] == ["get", "list", "watch"], rule
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"pods", "namespaces", "networkpolicies"} <= resources
    assert "secrets" not in resources


def test_kubelet_proxy_may_only_use_the_kubelet_api() -> None:
    role, binding = (obj for _, obj in realnodes.kubelet_proxy_rbac())
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get", "create"]}]
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": naming.KUBELET_PROXY_USER}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_real_node_toleration_matches_the_taint() -> None:
    assert realnodes.toleration() == {"key": naming.LABEL_REAL_NODE, "operator": "Exists", "effect": "NoSchedule"}


SAVE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-OLD - [0:0]
:OTHER - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m comment --comment "keep me" -j OTHER
-A FORWARD -j KUBE-OLD
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -j DROP
COMMIT
"""


def test_teardown_removes_only_the_kube_chains_that_were_not_there_before() -> None:
    chains, rules = hostnet.parse_save(SAVE)
    assert chains == {"INPUT", "FORWARD", "KUBE-FIREWALL", "KUBE-OLD", "OTHER"}
    jumps, remove = hostnet.removal_plan(chains, rules, keep={"KUBE-OLD"})
    assert remove == ["KUBE-FIREWALL"]
    assert jumps == [("INPUT", ["-j", "KUBE-FIREWALL"])]
    # quoted comments survive parsing, so a rule can be deleted by its exact text
    assert ("KUBE-FIREWALL", ["!", "-s", "127.0.0.0/8", "-d", "127.0.0.0/8", "-m", "comment", "--comment",
                              "block incoming localnet connections", "-j", "DROP"]) in rules
    _, remove_all = hostnet.removal_plan(chains, rules, keep=set())
    assert remove_all == ["KUBE-FIREWALL", "KUBE-OLD"]


def test_preflight_says_in_one_line_what_the_host_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(realnodes.RealNodeError, match=r"^real nodes need root") as not_root:
        realnodes.preflight()
    assert "\n" not in str(not_root.value)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "runc" else f"/usr/bin/{tool}")
    with pytest.raises(realnodes.RealNodeError, match=r"^runc not found: .*scripts/setup installs them"):
        realnodes.preflight()


def test_oom_score_restriction_follows_cap_sys_resource_in_the_bounding_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """This VM drops CAP_SYS_RESOURCE (bit 24): containerd must then not lower oom_score_adj."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/bin/{tool}")
    try:
        monkeypatch.setattr(realnodes, "_cap_bounding", lambda: 0x1FFFEFFFFFF)
        without = realnodes.preflight()
        monkeypatch.setattr(realnodes, "_cap_bounding", lambda: 0x1FFFFFFFFFF)
        with_cap = realnodes.preflight()
    except realnodes.RealNodeError as exc:  # a host without CNI plugins or cgroups: nothing to decide here
        pytest.skip(str(exc))
    assert without.can_lower_oom_score is False
    assert with_cap.can_lower_oom_score is True


def test_containerd_sockets_fit_a_unix_socket_path_whatever_the_state_folder(tmp_path: Path) -> None:
    """A test's temporary state folder can be long; a unix socket path may not exceed 107 bytes."""
    deep = tmp_path / ("x" * 60) / "test_up_with_a_real_node_runs_a_container_and_down_leaves_nothing0" / "vc" / "super"
    lay = realnodes.NodeLayout(deep, "real-node-7")
    assert len(f"{lay.containerd_socket}.ttrpc".encode()) <= 107
    assert lay.containerd_socket.parent == realnodes.socket_root(deep) / "real-node-7"
    assert realnodes.socket_root(deep) != realnodes.socket_root(tmp_path)


def test_the_kubelets_socket_folders_are_short_too(tmp_path: Path) -> None:
    deep = tmp_path / ("y" * 80) / "vc" / "super"
    lay = realnodes.NodeLayout(deep, "real-node-0")
    # the kubelet makes sockets like <root-dir>/pod-resources/<8 digits> and plugins_registry/<name>.sock
    assert len(f"{lay.kubelet_root}/plugins_registry/csi-something-long-reg.sock".encode()) <= 107
    assert len(f"{lay.kubelet_root}/pod-resources/92191001".encode()) <= 107
