"""What a real-node test bed must give back to the host: a snapshot to compare before and after.

Why: ``down`` promises to leave nothing behind (processes aside, which the
tests check by their own means): mounts, interfaces, addresses, network
namespaces, iptables chains and rules, cgroups, and the sysctls the kubelet
and the CNI plugins change.  Two e2e modules compare this snapshot around a
test bed's life.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from vcluster.testbed import hostnet, realnodes

#: A chain's packet and byte counters in ``iptables-save`` output (``:INPUT ACCEPT [12:3456]``): traffic,
#: not state a test bed leaves behind.  Once a base chain counts (the host's filter INPUT/OUTPUT do after
#: e2e/test_network_policy's kube-router has run: CI saw it), its counters move with every packet, so a
#: snapshot that kept them would differ around any later test bed.
_COUNTERS = re.compile(r" \[\d+:\d+\]$")


def host_snapshot() -> dict[str, Any]:
    """Mounts, interfaces, addresses, network namespaces, ip(6)tables rules, cgroups and sysctls of this host."""
    mounts = sorted({line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()})
    netns = sorted(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else []
    chains = sorted(
        f"{tool} {table} {_COUNTERS.sub('', line)}" for tool in hostnet.TOOLS for table in hostnet.TABLES
        for line in subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True,
                                   check=False).stdout.splitlines()
        if line.startswith((":", "-A"))
    )
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    cgroups = sorted(p.name for p in Path(realnodes.CGROUP_ROOT, "memory").iterdir() if p.is_dir()) \
        if Path(realnodes.CGROUP_ROOT, "memory").is_dir() else []
    return {
        "mounts": mounts, "interfaces": sorted(hostnet.interfaces()), "netns": netns, "iptables": chains,
        "addresses": sorted(" ".join(line.split()[1:4]) for line in addrs.splitlines()),
        "sysctls": {n: hostnet.read_sysctl(n) for n in hostnet.SAVED_SYSCTLS},
        "cgroups": cgroups,
    }


def snapshot_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, old in before.items():
        new = after[key]
        if isinstance(old, dict):
            changed = {k: (old[k], new.get(k)) for k in old if old[k] != new.get(k)}
            if changed:
                out[key] = changed
        elif old != new:
            out[key] = {"gone": sorted(set(old) - set(new)), "new": sorted(set(new) - set(old))}
    return out
