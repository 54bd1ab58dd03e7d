"""What a real node costs: start time, memory per node and per running pod, pod start latency.

Why this script exists: docs/testbed.md records these numbers so that the
suite's real-node tests can be sized (and the demo's default decided) from
measurements, not guesses.  It starts its own super cluster with real nodes in
a throw-away folder, runs a handful of busybox pods on them, prints what it
measured, and stops everything (the host is given back as ``down`` does).

Run it alone on a quiet machine (it changes host network state, like every
real-node test bed): ``python bench/bench_real_nodes.py [--nodes 1] [--pods 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import workdir

from vcluster import images, naming
from vcluster.settings import BinarySettings
from vcluster.testbed import LocalSuperCluster, TestbedSettings, realnodes


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_of(cluster: LocalSuperCluster, prefix: str) -> list[float]:
    return [rss_mib(p.pid) for name, p in cluster.processes().items() if name.startswith(prefix) and p.pid]


def cgroup_rss_mib(parent: str) -> float:
    """Memory charged to every pod of one node (cgroup v1 memory.usage_in_bytes, else v2 memory.current)."""
    for path in (Path("/sys/fs/cgroup/memory") / parent.lstrip("/") / "kubepods" / "memory.usage_in_bytes",
                 Path("/sys/fs/cgroup") / parent.lstrip("/") / "kubepods" / "memory.current"):
        if path.is_file():
            return int(path.read_text()) / 2**20
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--pods", type=int, default=5)
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    state = workdir.make("vc-bench-real-", keep=args.keep)
    settings = TestbedSettings(state_dir=state, nodes=0, real_nodes=args.nodes, binaries=BinarySettings.from_env())
    cluster = LocalSuperCluster(settings)
    t0 = time.monotonic()
    cluster.start()
    started = time.monotonic() - t0
    kubectl = ["kubectl", f"--kubeconfig={cluster.kubeconfig}"]
    try:
        sockets = str(realnodes.socket_root(state))
        shims_before = len(realnodes.shim_pids(sockets))
        node_parents = cluster.info.cgroup_parents
        idle_pods_mib = sum(cgroup_rss_mib(p) for p in node_parents)
        latencies: list[float] = []
        for i in range(args.pods):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{i}", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": images.BUSYBOX_IMAGE,
                                            "command": ["sleep", "3600"]}],
                            "nodeSelector": {naming.LABEL_REAL_NODE: "true"},
                            "tolerations": [realnodes.toleration()], "terminationGracePeriodSeconds": 1}}
            t = time.monotonic()
            subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(pod), text=True, check=True,
                           capture_output=True)
            subprocess.run([*kubectl, "wait", "--for=condition=Ready", f"pod/bench-{i}", "--timeout=120s"],
                           check=True, capture_output=True)
            latencies.append(time.monotonic() - t)
        time.sleep(2)  # let the shims settle before reading their memory
        shim_pids = realnodes.shim_pids(sockets)
        shim_mib = sum(rss_mib(p) for p in shim_pids)
        pods_mib = sum(cgroup_rss_mib(p) for p in node_parents)
        print(f"real nodes: {args.nodes}; super cluster with real nodes Ready in {started:.1f} s")
        print(f"per node: kubelet {statistics.mean(rss_of(cluster, 'kubelet-')):.0f} MiB, "
              f"containerd {statistics.mean(rss_of(cluster, 'containerd-')):.0f} MiB (RSS)")
        print(f"host: kube-proxy {sum(rss_of(cluster, 'kube-proxy')):.0f} MiB, "
              f"CoreDNS {sum(rss_of(cluster, 'coredns')):.0f} MiB")
        print(f"pods: {args.pods} busybox pods, create -> Ready median {statistics.median(latencies):.2f} s "
              f"(min {min(latencies):.2f}, max {max(latencies):.2f}), one at a time")
        per_pod_shim = shim_mib / max(1, len(shim_pids) - shims_before)
        print(f"per pod: shim {per_pod_shim:.1f} MiB RSS; pods' cgroup memory "
              f"{(pods_mib - idle_pods_mib) / args.pods:.1f} MiB each (pause + container)")
    finally:
        t = time.monotonic()
        cluster.stop()
        print(f"stop (drain pods, stop, clean the host): {time.monotonic() - t:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
