"""The host side of real nodes: an address pods can reach, bridges, a guard rule, sysctls.

Why this module exists: real nodes run real containers in network namespaces
on this machine, and that touches shared host state that must come back
exactly as it was: an address for the control plane that pods can reach
(pods cannot reach 127.0.0.1), one bridge per node, an iptables chain that
keeps pod traffic on this machine, and the sysctls that the kubelet and the
CNI bridge plugin change.  Everything it changes is recorded in a JSON file
in the state folder *before* it is changed, so ``down`` (even after a crash,
from another process) undoes exactly that and nothing else.

The plan (which names, which addresses, which rules) is computed by pure
functions; :class:`HostNetwork` runs ``ip``/``iptables`` for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import structlog

from vcluster.errors import VClusterError
from vcluster.files import write_atomic

log = structlog.get_logger(__name__)

STATE_FILE = "hostnet.json"

#: Host sysctls that the kubelet (``vm.overcommit_memory``, ``kernel.panic*``, ``kernel.keys.*``),
#: the bridge plugin (``ip_forward``) and kube-proxy may change: saved before, restored after.
SAVED_SYSCTLS: tuple[str, ...] = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
)

#: What the real nodes need set while they run.
REQUIRED_SYSCTLS: dict[str, str] = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
}


class HostNetworkError(VClusterError):
    """The host network for real nodes could not be set up or torn down."""


@dataclass(frozen=True, slots=True)
class NodeNet:
    """One real node's network: its bridge, subnet, and gateway (also the node's IP)."""

    name: str
    bridge: str
    subnet: str
    gateway: str


@dataclass(frozen=True, slots=True)
class HostPlan:
    """Everything the host network of one test bed consists of (saved as ``hostnet.json``)."""

    #: Address the control plane binds, reachable from pods (on ``lo``, ``/32``).
    host_address: str
    pod_cidr: str
    service_cidr: str
    #: Pod IPs that kwok hands out: never routed anywhere, so host traffic to them is rejected.
    kwok_pod_cidr: str
    nodes: tuple[NodeNet, ...]
    chain: str
    #: sysctl name -> value before we changed anything ('' where the key does not exist).
    saved_sysctls: dict[str, str]
    #: ``tool/table/chain`` of the KUBE-*/CNI-* chains that existed before (left alone by teardown).
    preexisting_chains: tuple[str, ...] = ()
    #: The guard also in the mangle table, ahead of every filter rule (:func:`mangle_guard_rules`): set
    #: when a NetworkPolicy enforcer runs, whose filter rules accept allowed pod traffic before ours.
    mangle_guard: bool = False
    #: ipsets that existed before (left alone by teardown; the enforcer's new ones are destroyed).
    preexisting_ipsets: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> HostPlan:
        data = json.loads(text)
        data["nodes"] = tuple(NodeNet(**n) for n in data["nodes"])
        data["preexisting_chains"] = tuple(data.get("preexisting_chains", ()))
        data["preexisting_ipsets"] = tuple(data.get("preexisting_ipsets", ()))
        return cls(**data)


def tag_of(state_dir: Path) -> str:
    """A short tag naming one test bed's interfaces and chains (from its state folder)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:5]


def plan(*, state_dir: Path, nodes: Sequence[str], pod_cidr: str, service_cidr: str,
         kwok_pod_cidr: str, mangle_guard: bool = False) -> HostPlan:
    """The host network for ``nodes``: subnet ``i+1`` of ``pod_cidr`` (a /24) for node ``i``;
    the host address is the first address of subnet 0, kept for the host."""
    net = ipaddress.ip_network(pod_cidr, strict=True)
    if net.version != 4 or net.prefixlen > 22:
        raise HostNetworkError(f"real-node pod CIDR {pod_cidr} must be IPv4 and /22 or larger")
    subnets = list(net.subnets(new_prefix=24))
    if len(nodes) + 1 > len(subnets):
        raise HostNetworkError(f"{pod_cidr} has room for {len(subnets) - 1} real nodes, not {len(nodes)}")
    for other, what in ((service_cidr, "service"), (kwok_pod_cidr, "kwok pod")):
        if net.overlaps(ipaddress.ip_network(other, strict=False)):
            raise HostNetworkError(f"real-node pod CIDR {pod_cidr} overlaps the {what} CIDR {other}")
    tag = tag_of(state_dir)
    node_nets = tuple(
        NodeNet(name=name, bridge=f"vc{tag}b{i}", subnet=str(subnets[i + 1]),
                gateway=str(subnets[i + 1].network_address + 1))
        for i, name in enumerate(nodes)
    )
    return HostPlan(
        host_address=str(subnets[0].network_address + 1), pod_cidr=pod_cidr, service_cidr=service_cidr,
        kwok_pod_cidr=kwok_pod_cidr, nodes=node_nets, chain=f"VC-GUARD-{tag}", saved_sysctls={},
        mangle_guard=mangle_guard,
    )


def guard_rules(p: HostPlan) -> list[list[str]]:
    """The guard chain's rules (``iptables -A <chain>`` arguments), in order.

    Pods talk to pods and to the host address; anything else they send through
    the host (including what a Service's DNAT points outside the pod network)
    is rejected, and so is traffic from elsewhere into the pod network.
    """
    return [
        ["-s", p.pod_cidr, "-d", p.pod_cidr, "-j", "ACCEPT"],
        ["-s", p.pod_cidr, "-j", "REJECT", "--reject-with", "icmp-net-prohibited"],
        ["-d", p.pod_cidr, "-j", "REJECT", "--reject-with", "icmp-net-prohibited"],
    ]


def mangle_guard_rules(p: HostPlan) -> list[list[str]]:
    """The guard's rules in the mangle table's FORWARD chain, which runs before any filter rule.

    A NetworkPolicy enforcer (kube-router) keeps its own jump first in filter FORWARD and ACCEPTs
    there what a policy allows, so the filter guard would never see it: a pod allowed egress to
    ``0.0.0.0/0`` could then leave the machine.  Here the same limits hold first (DROP: the mangle
    table cannot REJECT); pod-to-pod traffic goes on to the enforcer.
    """
    return [
        ["-s", p.pod_cidr, "-d", p.pod_cidr, "-j", "RETURN"],
        ["-s", p.pod_cidr, "-j", "DROP"],
        ["-d", p.pod_cidr, "-j", "DROP"],
    ]


#: ipset names kube-router's network policy controller creates (``KUBE-SRC-``/``KUBE-DST-`` per policy
#: peer set, ``TMP-`` while it swaps one); ours to destroy when they were not there before.
OWNED_IPSET_PREFIXES: tuple[str, ...] = ("KUBE-SRC-", "KUBE-DST-", "TMP-")


def ipsets_now() -> set[str]:
    """Names of the ipsets on this host (none where the ``ipset`` tool is missing)."""
    if shutil.which("ipset") is None:
        return set()
    proc = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False, timeout=30)
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


def output_guard_rule(p: HostPlan) -> list[str]:
    """Host traffic to kwok's simulated pod IPs (which no interface here holds) is rejected."""
    return ["-d", p.kwok_pod_cidr, "-j", "REJECT", "--reject-with", "icmp-net-prohibited"]


#: Chains the kubelet (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), kube-proxy
#: (KUBE-*) and the CNI portmap plugin (CNI-*) create; ours to remove when they were not there before.
OWNED_CHAIN_PREFIXES: tuple[str, ...] = ("KUBE-", "CNI-")
TABLES: tuple[str, ...] = ("filter", "nat", "mangle")
TOOLS: tuple[str, ...] = ("iptables", "ip6tables")


def parse_save(text: str) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """Chains and ``-A`` rules (chain, rest of the rule) of one table's ``iptables-save`` output."""
    import shlex

    chains: set[str] = set()
    rules: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(":"):
            chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            parts = shlex.split(line)
            rules.append((parts[1], parts[2:]))
    return chains, rules


def removal_plan(chains: set[str], rules: list[tuple[str, list[str]]],
                 keep: set[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Which rules to delete (those in other chains that jump to a chain we remove) and which chains
    to flush and delete: every KUBE-*/CNI-* chain not in ``keep``."""
    ours = sorted(c for c in chains if c.startswith(OWNED_CHAIN_PREFIXES) and c not in keep)
    jumps = [(chain, rest) for chain, rest in rules
             if chain not in ours and any(rest[i + 1] in ours for i, part in enumerate(rest[:-1])
                                          if part in ("-j", "-g", "--jump", "--goto"))]
    return jumps, ours


def _save(tool: str, table: str) -> str:
    proc = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout if proc.returncode == 0 else ""


def owned_chains_now() -> set[str]:
    """``tool/table/chain`` of every KUBE-*/CNI-* chain on this host now."""
    out: set[str] = set()
    for tool in TOOLS:
        if shutil.which(f"{tool}-save") is None:
            continue
        for table in TABLES:
            chains, _ = parse_save(_save(tool, table))
            out.update(f"{tool}/{table}/{c}" for c in chains if c.startswith(OWNED_CHAIN_PREFIXES))
    return out


def remove_new_chains(keep: set[str]) -> None:
    """Remove the KUBE-*/CNI-* chains (and the jumps to them) that are not in ``keep``."""
    for tool in TOOLS:
        if shutil.which(f"{tool}-save") is None:
            continue
        for table in TABLES:
            chains, rules = parse_save(_save(tool, table))
            kept = {c.rsplit("/", 1)[1] for c in keep if c.startswith(f"{tool}/{table}/")}
            jumps, ours = removal_plan(chains, rules, kept)
            for chain, rest in jumps:
                _run(tool, "-w", "-t", table, "-D", chain, *rest, check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-X", chain, check=False)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return ""


def write_sysctl(name: str, value: str) -> None:
    try:
        _sysctl_path(name).write_text(value)
    except OSError as exc:
        raise HostNetworkError(f"cannot set sysctl {name}={value}: {exc.strerror}") from exc


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise HostNetworkError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def interfaces() -> set[str]:
    """Names of the network interfaces of this (root) network namespace."""
    return set(os.listdir("/sys/class/net")) if Path("/sys/class/net").is_dir() else set()


class HostNetwork:
    """Sets up and tears down the host network of one test bed's real nodes."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.path = self.state_dir / STATE_FILE

    def saved(self) -> HostPlan | None:
        try:
            return HostPlan.from_json(self.path.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self, p: HostPlan) -> None:
        write_atomic(self.path, p.to_json())

    def setup(self, p: HostPlan) -> HostPlan:
        """Record the sysctls, then add the host address, the bridges and the guard chain."""
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise HostNetworkError(f"{tool} not found: apt-get install iproute2 iptables")
        old = self.saved()
        saved = old.saved_sysctls if old is not None else {n: read_sysctl(n) for n in SAVED_SYSCTLS}
        chains = old.preexisting_chains if old is not None else tuple(sorted(owned_chains_now()))
        sets = old.preexisting_ipsets if old is not None else tuple(sorted(ipsets_now()))
        p = replace(p, saved_sysctls=saved, preexisting_chains=chains, preexisting_ipsets=sets)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._save(p)  # before any change: a crash from here on is undone by teardown()
        for name, value in REQUIRED_SYSCTLS.items():
            write_sysctl(name, value)
        have = _run("ip", "-o", "addr", "show", "dev", "lo").stdout
        if f" {p.host_address}/32 " not in have:
            _run("ip", "addr", "add", f"{p.host_address}/32", "dev", "lo")
        present = interfaces()
        for node in p.nodes:
            if node.bridge not in present:
                _run("ip", "link", "add", "name", node.bridge, "type", "bridge")
            prefix = ipaddress.ip_network(node.subnet).prefixlen
            have = _run("ip", "-o", "addr", "show", "dev", node.bridge).stdout
            if f" {node.gateway}/{prefix} " not in have:
                _run("ip", "addr", "add", f"{node.gateway}/{prefix}", "dev", node.bridge)
            _run("ip", "link", "set", node.bridge, "up")
        self._guard(p)
        log.info("hostnet.ready", host_address=p.host_address, bridges=[n.bridge for n in p.nodes], chain=p.chain)
        return p

    def _guard(self, p: HostPlan) -> None:
        self._unguard(p)
        _run("iptables", "-w", "-N", p.chain)
        for rule in guard_rules(p):
            _run("iptables", "-w", "-A", p.chain, *rule)
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", p.chain)
        _run("iptables", "-w", "-I", "OUTPUT", "1", *output_guard_rule(p))
        if p.mangle_guard:
            _run("iptables", "-w", "-t", "mangle", "-N", p.chain)
            for rule in mangle_guard_rules(p):
                _run("iptables", "-w", "-t", "mangle", "-A", p.chain, *rule)
            _run("iptables", "-w", "-t", "mangle", "-I", "FORWARD", "1", "-j", p.chain)

    def _unguard(self, p: HostPlan) -> None:
        while _run("iptables", "-w", "-D", "FORWARD", "-j", p.chain, check=False).returncode == 0:
            pass
        while _run("iptables", "-w", "-D", "OUTPUT", *output_guard_rule(p), check=False).returncode == 0:
            pass
        _run("iptables", "-w", "-F", p.chain, check=False)
        _run("iptables", "-w", "-X", p.chain, check=False)
        while _run("iptables", "-w", "-t", "mangle", "-D", "FORWARD", "-j", p.chain, check=False).returncode == 0:
            pass
        _run("iptables", "-w", "-t", "mangle", "-F", p.chain, check=False)
        _run("iptables", "-w", "-t", "mangle", "-X", p.chain, check=False)

    def teardown(self) -> None:
        """Undo what :meth:`setup` recorded: chain, bridges, host address, sysctls; then forget it."""
        p = self.saved()
        if p is None:
            return
        errors: list[str] = []
        with contextlib.suppress(HostNetworkError):
            self._unguard(p)
        remove_new_chains(set(p.preexisting_chains))
        # the chains that matched on them are gone: the enforcer's ipsets can be destroyed now
        for name in sorted(ipsets_now() - set(p.preexisting_ipsets)):
            if name.startswith(OWNED_IPSET_PREFIXES):
                proc = _run("ipset", "destroy", name, check=False)
                if proc.returncode != 0:
                    errors.append(f"ipset destroy {name}: {proc.stderr.strip()}")
        present = interfaces()
        for node in p.nodes:
            if node.bridge in present:
                proc = _run("ip", "link", "del", node.bridge, check=False)
                if proc.returncode != 0:
                    errors.append(f"ip link del {node.bridge}: {proc.stderr.strip()}")
        _run("ip", "addr", "del", f"{p.host_address}/32", "dev", "lo", check=False)
        for name, value in p.saved_sysctls.items():
            if value and read_sysctl(name) != value:
                try:
                    write_sysctl(name, value)
                except HostNetworkError as exc:
                    errors.append(str(exc))
        if errors:
            raise HostNetworkError("; ".join(errors))
        self.path.unlink(missing_ok=True)
        log.info("hostnet.removed", host_address=p.host_address)
