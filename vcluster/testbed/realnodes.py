"""Real nodes for the local super cluster: containerd + kubelet per node, kube-proxy and CoreDNS.

Why this module exists: kwok nodes start no container, so nothing a pod does
inside its container (in-cluster config, service environment variables,
mounted volumes, probes, DNS, Service routing) and no kubelet that checks its
callers had ever run.  A real node here is Debian's containerd and runc with
Debian's CNI plugins, and a kubelet built from the same pinned Kubernetes
modules as the control plane, set up the way real clusters run them
(anonymous auth off, webhook authentication and authorization, its own node
certificate).  One kube-proxy (iptables mode) serves the host, since every
node shares the host's network namespace; CoreDNS (built from its Go module)
serves the super cluster's Service names.  On request (``network_policy``),
kube-router's network policy controller enforces NetworkPolicy there.

The configuration files are rendered by pure functions (unit-tested); the
:func:`preflight` checks say in one line what the host lacks; the lifecycle
(start, and a teardown that works from another process after a crash) lives
in :mod:`vcluster.testbed.cluster`, which calls the helpers here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

from vcluster import naming
from vcluster.errors import VClusterError
from vcluster.files import write_atomic
from vcluster.images import PAUSE_IMAGE
from vcluster.testbed.hostnet import HostPlan, NodeNet, tag_of

log = structlog.get_logger(__name__)

REAL_NODE_PREFIX = "real-node-"
REAL_NODE_TAINT_KEY = naming.LABEL_REAL_NODE
REAL_NODE_LABEL = naming.LABEL_REAL_NODE
CNI_BIN_DIRS: tuple[str, ...] = ("/usr/lib/cni", "/opt/cni/bin")
CGROUP_ROOT = "/sys/fs/cgroup"
#: Bit of CAP_SYS_RESOURCE in /proc/self/status' CapBnd.
CAP_SYS_RESOURCE = 24


class RealNodeError(VClusterError):
    """A real node could not be set up; the message says what the host lacks."""


def node_name(index: int) -> str:
    return f"{REAL_NODE_PREFIX}{index}"


def toleration() -> dict[str, str]:
    """The toleration a pod needs to run on a real node."""
    return {"key": REAL_NODE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What preflight found out about the host."""

    cni_bin_dir: str
    #: False where the VM drops CAP_SYS_RESOURCE (negative oom_score_adj refused).
    can_lower_oom_score: bool
    cgroup_v2: bool
    #: Controllers of a cgroup v1 host (mount points under /sys/fs/cgroup).
    cgroup_v1_mounts: tuple[str, ...]


def _cap_bounding() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def preflight() -> HostFacts:
    """Check that this host can run real nodes; raise one clear line where it cannot."""
    if os.geteuid() != 0:
        raise RealNodeError("real nodes need root (a Linux VM or a privileged runner): "
                            "run as root or use --real-nodes 0")
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"):
        if shutil.which(tool) is None:
            raise RealNodeError(f"{tool} not found: real nodes need Debian's containerd, runc, iptables and "
                                "iproute2 (scripts/setup installs them)")
    cni = next((d for d in CNI_BIN_DIRS if (Path(d) / "bridge").is_file() and (Path(d) / "host-local").is_file()),
               None)
    if cni is None:
        raise RealNodeError("CNI plugins (bridge, host-local, loopback) not found in /usr/lib/cni or /opt/cni/bin: "
                            "apt-get install containernetworking-plugins")
    if not Path("/proc/sys/net/bridge").is_dir():
        raise RealNodeError("the kernel has no bridge netfilter (/proc/sys/net/bridge missing): load br_netfilter")
    v2 = (Path(CGROUP_ROOT) / "cgroup.controllers").is_file()
    mounts: tuple[str, ...] = ()
    if not v2:
        mounts = tuple(sorted(p.name for p in Path(CGROUP_ROOT).iterdir()
                              if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").is_file()))
        if "memory" not in mounts or ("cpu" not in mounts and "cpu,cpuacct" not in mounts):
            raise RealNodeError(f"no usable cgroup v1 or v2 hierarchy under {CGROUP_ROOT} (found: {mounts})")
    return HostFacts(cni_bin_dir=cni, can_lower_oom_score=bool(_cap_bounding() >> CAP_SYS_RESOURCE & 1),
                     cgroup_v2=v2, cgroup_v1_mounts=mounts)


# ---- layout ------------------------------------------------------------------------------------


def socket_root(state_dir: Path) -> Path:
    """Where the nodes' sockets live (containerd's, and the kubelet's root folder with its pod-resources
    and plugin sockets): a short path (``/tmp/vc-<tag>``), since a unix socket path may not exceed
    107 bytes and a state folder (a test's temporary folder) can be long."""
    return Path("/tmp") / f"vc-{tag_of(state_dir)}"


class NodeLayout:
    """Every path of one real node, under ``<state>/nodes/<name>/`` (its sockets under :func:`socket_root`)."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.name = name
        self.root = state_dir / "nodes" / name
        self.containerd_root = self.root / "containerd" / "root"
        self.containerd_state = self.root / "containerd" / "state"
        self.sockets = socket_root(state_dir) / name
        self.containerd_socket = self.sockets / "containerd.sock"
        self.containerd_config = self.root / "containerd" / "config.toml"
        self.cni_conf_dir = self.root / "cni" / "net.d"
        self.cni_data_dir = self.root / "cni" / "ipam"
        self.kubelet_root = self.sockets / "kubelet"
        self.kubelet_config = self.root / "kubelet-config.yaml"
        self.kubelet_kubeconfig = self.root / "kubelet.kubeconfig"
        self.pod_logs = self.root / "pod-logs"
        self.pki = self.root / "pki"


def cgroup_root(tag: str, name: str) -> str:
    """The cgroup parent of one node's pods (each kubelet has its own, so several share a host)."""
    return f"/vc-{tag}-{name}"


# ---- pure renderers ----------------------------------------------------------------------------


def containerd_config(lay: NodeLayout, *, cni_bin_dir: str, restrict_oom_score_adj: bool) -> str:
    """containerd's config.toml for one node: private root/state/socket, cgroupfs, local sandbox image."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f'root = "{lay.containerd_root}"',
        f'state = "{lay.containerd_state}"',
        'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", '
        '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", '
        '"io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]',
        "[grpc]",
        f'  address = "{lay.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{lay.containerd_socket}.ttrpc"',
        "[metrics]",
        '  address = ""',
        f"[{cri}]",
        f'  sandbox_image = "{PAUSE_IMAGE}"',
        f"  restrict_oom_score_adj = {'true' if restrict_oom_score_adj else 'false'}",
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_selinux = false",
        "  disable_apparmor = true",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"[{cri}.cni]",
        f'  bin_dir = "{cni_bin_dir}"',
        f'  conf_dir = "{lay.cni_conf_dir}"',
        "  max_conf_num = 1",
    ]
    return "\n".join(lines) + "\n"


def cni_config(net: NodeNet, plan: HostPlan, *, data_dir: Path) -> dict[str, Any]:
    """The node's CNI network: its own bridge and subnet; routes only to pods and Services (no default
    route, so pods have no way out of the machine)."""
    return {
        "cniVersion": "0.4.0",
        "name": "virtualcluster",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
                    "routes": [{"dst": plan.pod_cidr}, {"dst": plan.service_cidr}],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(lay: NodeLayout, net: NodeNet, *, port: int, ca_file: Path, serving_cert: Path,
                   serving_key: Path, cluster_dns: str, cgroup_parent: str, cgroup_v1: bool) -> dict[str, Any]:
    """KubeletConfiguration as real clusters run it: no anonymous access, webhook authn/authz,
    a serving certificate; plus what this host needs (cgroupfs, oomScoreAdj 0, no swap check)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "30s",
                                                          "cacheUnauthorizedTTL": "10s"}},
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "containerRuntimeEndpoint": f"unix://{lay.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_parent,
        "cgroupsPerQOS": True,
        "failCgroupV1": not cgroup_v1,
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "protectKernelDefaults": False,
        "clusterDNS": [cluster_dns],
        "clusterDomain": "cluster.local",
        # pods with dnsPolicy Default get no nameserver from the host: nothing resolves out of the machine
        "resolvConf": "",
        "podLogsDir": str(lay.pod_logs),
        "registerWithTaints": [{"key": REAL_NODE_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "maxPods": 50,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "httpCheckFrequency": "0s",
        "enableDebuggingHandlers": True,
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(*, kubeconfig: Path, cluster_cidr: str, hostname: str, bind_address: str,
                      metrics_port: int) -> dict[str, Any]:
    """kube-proxy in iptables mode for the host; it leaves conntrack limits and localhost NodePorts alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": cluster_cidr,
        "hostnameOverride": hostname,
        "bindAddress": bind_address,
        "healthzBindAddress": "",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "oomScoreAdj": 0,
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"localhostNodePorts": False},
    }


#: The chain kube-router's network policy controller jumps to from FORWARD: there once it has synced.
KUBE_ROUTER_FORWARD_CHAIN = "KUBE-ROUTER-FORWARD"


def kube_router_args(*, kubeconfig: Path, hostname: str, service_cidr: str) -> list[str]:
    """kube-router as the real node's NetworkPolicy enforcer, and nothing else.

    Only its network policy controller runs (``--run-firewall``): no BGP routes or peers
    (``--run-router=false``: its GoBGP and gRPC listeners never start), no IPVS service proxy
    (kube-proxy stays the proxy), no load balancer allocator, and no health or metrics listener
    (``0`` turns them off).  It programs the filter rules of the pods whose ``status.hostIP`` is
    ``hostname``'s node IP, in the host network namespace their bridge is in.
    """
    return [
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--run-loadbalancer=false",
        f"--kubeconfig={kubeconfig}", f"--hostname-override={hostname}",
        f"--service-cluster-ip-range={service_cidr}", "--enable-ipv4=true", "--enable-ipv6=false",
        "--health-port=0", "--metrics-port=0", "--v=1",
    ]


def corefile(*, bind: str, kubeconfig: Path, health_port: int, ready_port: int,
             cluster_domain: str = "cluster.local") -> str:
    """The super cluster's DNS: Service and pod records of this cluster, nothing forwarded out."""
    return (
        f".:53 {{\n"
        f"    bind {bind}\n"
        f"    errors\n"
        f"    health 127.0.0.1:{health_port}\n"
        f"    ready 127.0.0.1:{ready_port}\n"
        f"    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig}\n"
        f"        pods insecure\n"
        f"        fallthrough in-addr.arpa ip6.arpa\n"
        f"    }}\n"
        f"    cache 5\n"
        f"}}\n"
    )


def kubelet_proxy_rbac() -> list[tuple[str, dict[str, Any]]]:
    """The kubelet proxy's identity may call the kubelet API of any node (``nodes/proxy``), nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": naming.KUBELET_PROXY_KUBELET_ROLE},
        "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get", "create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": naming.KUBELET_PROXY_KUBELET_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": naming.KUBELET_PROXY_KUBELET_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": naming.KUBELET_PROXY_USER}],
    }
    return [("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)]


#: kube-router's identity towards the super apiserver (a client certificate of the test bed's CA).
KUBE_ROUTER_USER = "vc-super-kube-router"


def kube_router_rbac() -> list[tuple[str, dict[str, Any]]]:
    """kube-router reads what its informers watch (pods, namespaces, NetworkPolicies, and the Services,
    Endpoints and nodes its start-up lists) and posts Events; it writes nothing else."""
    read = ["get", "list", "watch"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": KUBE_ROUTER_USER},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": KUBE_ROUTER_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": KUBE_ROUTER_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBE_ROUTER_USER}],
    }
    return [("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)]


def kube_dns_objects(*, cluster_ip: str, host_address: str) -> list[tuple[str, dict[str, Any]]]:
    """The ``kube-system/kube-dns`` Service (no selector) and its Endpoints at the host's CoreDNS."""
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"clusterIP": cluster_ip, "ports": [{**p, "targetPort": 53} for p in ports]},
    }
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": [{"ip": host_address}], "ports": ports}],
    }
    return [("/api/v1/namespaces/kube-system/services", service),
            ("/api/v1/namespaces/kube-system/endpoints", endpoints)]


def write_yaml(path: Path, obj: dict[str, Any]) -> Path:
    return write_atomic(path, yaml.safe_dump(obj, sort_keys=False))


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2))


# ---- cgroups -------------------------------------------------------------------------------------


def cgroup_dirs(facts: HostFacts, parent: str) -> list[Path]:
    """The folders of cgroup ``parent`` in every hierarchy of this host."""
    rel = parent.lstrip("/")
    if facts.cgroup_v2:
        return [Path(CGROUP_ROOT) / rel]
    return [Path(CGROUP_ROOT) / m / rel for m in facts.cgroup_v1_mounts]


def make_cgroup(facts: HostFacts, parent: str) -> None:
    """Create the node's cgroup parent (the kubelet refuses a cgroupRoot that does not exist)."""
    for folder in cgroup_dirs(facts, parent):
        folder.mkdir(exist_ok=True)
        if folder.parent.name == "cpuset" or "cpuset" in folder.parent.name.split(","):
            for knob in ("cpuset.cpus", "cpuset.mems"):
                src, dst = folder.parent / knob, folder / knob
                if src.is_file() and not dst.read_text().strip():
                    dst.write_text(src.read_text())


def _cgroup_pids(folder: Path) -> set[int]:
    pids: set[int] = set()
    for procs in folder.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(x) for x in procs.read_text().split())
    return pids


def kill_cgroup(facts: HostFacts | None, parent: str) -> int:
    """SIGKILL every process left in the node's cgroup tree (after the kubelet is stopped)."""
    killed = 0
    folders = cgroup_dirs(facts, parent) if facts is not None else [
        p / parent.lstrip("/") for p in Path(CGROUP_ROOT).iterdir() if p.is_dir()
    ]
    for folder in folders:
        if not folder.is_dir():
            continue
        for pid in _cgroup_pids(folder):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def remove_cgroup(parent: str) -> list[str]:
    """Remove the node's cgroup folders, deepest first, in every hierarchy; return what stays."""
    left: list[str] = []
    roots = [Path(CGROUP_ROOT) / parent.lstrip("/")]
    if Path(CGROUP_ROOT).is_dir():
        roots += [p / parent.lstrip("/") for p in Path(CGROUP_ROOT).iterdir() if p.is_dir()]
    for root in roots:
        if not root.is_dir():
            continue
        folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for folder in [*folders, root]:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                left.append(str(folder))
    return left


# ---- leftovers after a crash ------------------------------------------------------------------------


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root`` (deepest first), from /proc/self/mountinfo."""
    out: list[str] = []
    prefix = str(root.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                out.append(point)
    return sorted(set(out), key=len, reverse=True)


def unmount_all(root: Path) -> list[str]:
    """Lazily unmount everything mounted under ``root``; return what could not be."""
    left: list[str] = []
    for point in mounts_under(root):
        proc = subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode != 0 and point in mounts_under(root):
            left.append(f"{point}: {proc.stderr.strip()}")
    return left


def shim_pids(address_prefix: str) -> list[int]:
    """containerd shims (and other processes) whose command line names our containerd socket."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.decode(errors="replace").startswith(address_prefix) for part in cmd):
            out.append(int(entry.name))
    return out


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    log.info("realnodes.step", what=what, seconds=round(time.monotonic() - start, 2))
