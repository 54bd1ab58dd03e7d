"""How fast and how lean the syncer is, against the best direct client, in one run.

Why: the design targets (docs/benchmarks.md) are ratios against creating the
same objects directly on the same super apiserver under the same identity
(the super admin kubeconfig the syncer uses), measured in the same run on the
same machine.  Not a test: it prints numbers and ratios.

Set-up: a local super cluster (or ``--super-kubeconfig`` of a running one),
the real operator provisioning three tenants, the syncer as a child process
(``python -m syncer``).  Pods carry ``schedulerName: none`` so that neither
path does scheduling work: the bench measures the sync pipeline.

Phases: direct baseline (async, raw JSON, 32 concurrent), backlog drain,
live burst, light-load latency, a quiet tenant's p99 while two greedy tenants
flood, and memory of the syncer's caches per synced pod (tracemalloc, the
syncer in-process).

    python bench/bench_syncer.py [--pods 1000] [--super-kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402
from syncer.engine import Syncer  # noqa: E402
from syncer.settings import SyncerSettings  # noqa: E402
from syncer.tenants import CrdTenantSource  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.kube import ApiClient, NotFound, resources  # noqa: E402
from vcluster.testbed import LocalSuperCluster, TestbedSettings  # noqa: E402

CONCURRENCY = 32


@dataclass(frozen=True)
class Super:
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True,
                              text=True, input=input, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc


def pod(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"schedulerName": "none", "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox"}]}}


async def ensure_namespace(api: ApiClient, ns: str) -> None:
    with contextlib.suppress(Exception):
        await api.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    while True:  # pods are refused until the namespace's default ServiceAccount exists
        try:
            await api.get(resources.SERVICEACCOUNTS, "default", namespace=ns)
            return
        except NotFound:
            await asyncio.sleep(0.05)


async def create_pods(api: ApiClient, ns: str, names: list[str], *, concurrency: int = CONCURRENCY) -> float:
    """Create the pods with ``concurrency`` in flight; returns the seconds it took."""
    it = iter(names)
    start = time.monotonic()

    async def lane() -> None:
        for name in it:
            await api.create(resources.PODS, pod(name, ns))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.monotonic() - start


class Arrivals:
    """Watches pods of one super namespace and records when each name first appeared."""

    def __init__(self, api: ApiClient, ns: str) -> None:
        self.api, self.ns = api, ns
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Arrivals:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        items, rv = await self.api.list_all(resources.PODS, namespace=self.ns)
        now = time.monotonic()
        for item in items:
            self.seen.setdefault(item["metadata"]["name"], now)
        self._ready.set()
        while True:
            async for event in self.api.watch(resources.PODS, namespace=self.ns, resource_version=rv):
                rv = event.object.get("metadata", {}).get("resourceVersion", rv)
                if event.type == "ADDED":
                    self.seen.setdefault(event.object["metadata"]["name"], time.monotonic())

    async def until(self, count: int, *, limit: float = 600) -> float:
        deadline = time.monotonic() + limit
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.seen)}/{count} pods arrived in {self.ns}")
            await asyncio.sleep(0.02)
        return max(self.seen.values())

    async def when(self, name: str, *, limit: float = 60) -> float:
        deadline = time.monotonic() + limit
        while name not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pod {name} never arrived in {self.ns}")
            await asyncio.sleep(0.0005)
        return self.seen[name]


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(super_: Super, tenants: list[TenantHandle], syncer: SyncerProcess, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    a, b, c = tenants
    # Tenants are created with wait=True, so each has its kubeconfig.
    assert a.kubeconfig_path is not None
    assert b.kubeconfig_path is not None
    assert c.kubeconfig_path is not None
    run = uuid.uuid4().hex[:4]
    async with ApiClient.from_kubeconfig(super_.kubeconfig) as sup, \
            ApiClient.from_kubeconfig(a.kubeconfig_path) as ta, \
            ApiClient.from_kubeconfig(b.kubeconfig_path) as tb, \
            ApiClient.from_kubeconfig(c.kubeconfig_path) as tc:
        # 1. direct baseline
        ns = f"direct-{run}"
        await ensure_namespace(sup, ns)
        direct_s = await create_pods(sup, ns, [f"d-{i}" for i in range(n)])
        out["direct_rate"] = n / direct_s
        print(f"direct: {n} pods in {direct_s:.2f}s = {out['direct_rate']:.0f}/s")

        # 2. backlog drain: the pods wait in the tenant, then the syncer starts
        ns = f"drain-{run}"
        await ensure_namespace(ta, ns)
        await create_pods(ta, ns, [f"b-{i}" for i in range(n)])
        p_ns = naming.super_namespace(a.cluster_key, ns)
        async with Arrivals(sup, p_ns) as arr:
            syncer.start()
            last = await arr.until(n)
            first = min(arr.seen.values())
        out["drain_rate"] = (n - 1) / (last - first)
        out["drain_ratio"] = out["drain_rate"] / out["direct_rate"]
        print(f"backlog drain: {out['drain_rate']:.0f}/s  ratio {out['drain_ratio']:.2f} (target >= 0.9)")

        # 3. live burst: the syncer is up and the namespace synced; pods created in the tenant at full speed
        ns = f"burst-{run}"
        await ensure_namespace(ta, ns)
        p_ns = naming.super_namespace(a.cluster_key, ns)
        async with Arrivals(sup, p_ns) as arr:
            await ensure_namespace(sup, p_ns)  # exists through the syncer; wait for its default SA
            start = time.monotonic()
            tenant_s = await create_pods(ta, ns, [f"u-{i}" for i in range(n)])
            last = await arr.until(n)
        out["burst_rate"] = n / (last - start)
        out["burst_ratio"] = out["burst_rate"] / out["direct_rate"]
        # An upper bound of the burst: how fast the tenant apiserver took the creates while the syncer ran.
        out["burst_tenant_create_rate"] = n / tenant_s
        print(f"live burst: {out['burst_rate']:.0f}/s  ratio {out['burst_ratio']:.2f} (target >= 0.85); the tenant "
              f"apiserver took the creates at {out['burst_tenant_create_rate']:.0f}/s meanwhile")

        # 4. light load: one pod at a time
        k = 40
        direct_lat, synced_lat = [], []
        ns = f"lat-{run}"
        await ensure_namespace(sup, ns)
        async with Arrivals(sup, ns) as arr:
            for i in range(k):
                t = time.monotonic()
                await sup.create(resources.PODS, pod(f"l-{i}", ns))
                direct_lat.append(await arr.when(f"l-{i}") - t)
        await ensure_namespace(ta, ns)
        p_ns = naming.super_namespace(a.cluster_key, ns)
        tenant_lat: list[float] = []
        async with Arrivals(sup, p_ns) as arr, Arrivals(ta, ns) as v_arr:
            await ensure_namespace(sup, p_ns)
            for i in range(k):
                t = time.monotonic()
                await ta.create(resources.PODS, pod(f"l-{i}", ns))
                synced_lat.append(await arr.when(f"l-{i}") - t)
                tenant_lat.append(await v_arr.when(f"l-{i}") - t)
        out["direct_latency_ms"] = statistics.median(direct_lat) * 1000
        out["synced_latency_ms"] = statistics.median(synced_lat) * 1000
        out["tenant_latency_ms"] = statistics.median(tenant_lat) * 1000
        out["added_latency_ms"] = out["synced_latency_ms"] - out["direct_latency_ms"]
        # What the syncer itself adds: beyond the tenant apiserver's own create→watch and the super write.
        out["syncer_added_latency_ms"] = statistics.median(
            s - v for s, v in zip(synced_lat, tenant_lat, strict=True)) * 1000 - out["direct_latency_ms"]
        print(f"light load median: direct create→watched {out['direct_latency_ms']:.1f} ms; tenant create→tenant "
              f"watched {out['tenant_latency_ms']:.1f} ms; tenant create→super watched {out['synced_latency_ms']:.1f}"
              f" ms; added end to end {out['added_latency_ms']:.1f} ms, added by the syncer itself "
              f"{out['syncer_added_latency_ms']:.1f} ms (target <= 2)")

        # 5. fairness: two greedy tenants' backlogs flood the queue; a quiet tenant creates a pod every 100 ms.
        syncer.stop()
        ns = f"fair-{run}"
        for api in (ta, tb, tc):
            await ensure_namespace(api, ns)
        await asyncio.gather(create_pods(ta, ns, [f"g-{i}" for i in range(n)]),
                             create_pods(tb, ns, [f"g-{i}" for i in range(n)]))
        direct_ns = f"fair-direct-{run}"
        await ensure_namespace(sup, direct_ns)
        quiet: list[float] = []
        direct_quiet: list[float] = []
        greedy = [naming.super_namespace(t.cluster_key, ns) for t in (a, b)]
        async with Arrivals(sup, naming.super_namespace(c.cluster_key, ns)) as arr, \
                Arrivals(sup, greedy[0]) as ga, Arrivals(sup, greedy[1]) as gb, Arrivals(sup, direct_ns) as darr:
            syncer.start()
            await ga.until(1)  # the greedy backlog is draining
            i = 0
            while len(ga.seen) < n or len(gb.seen) < n:
                t = time.monotonic()
                await tc.create(resources.PODS, pod(f"q-{i}", ns))
                quiet.append(await arr.when(f"q-{i}", limit=120) - t)
                t = time.monotonic()
                await sup.create(resources.PODS, pod(f"q-{i}", direct_ns))
                direct_quiet.append(await darr.when(f"q-{i}") - t)
                i += 1
                await asyncio.sleep(0.1)
        out["quiet_p99_s"] = p(quiet, 0.99)
        out["quiet_direct_p99_s"] = p(direct_quiet, 0.99)
        print(f"quiet tenant while 2x{n} greedy pods drain: {len(quiet)} pods, median "
              f"{statistics.median(quiet)*1000:.0f} ms, p99 {out['quiet_p99_s']*1000:.0f} ms (target <= 1000 ms); "
              f"direct creates meanwhile: median {statistics.median(direct_quiet)*1000:.0f} ms, "
              f"p99 {out['quiet_direct_p99_s']*1000:.0f} ms")
    return out


async def memory(super_: Super) -> dict[str, float]:
    """The syncer in-process over everything synced so far: memory its code holds, per synced pod."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    async with ApiClient.from_kubeconfig(super_.kubeconfig) as sup:
        syncer = Syncer(sup, CrdTenantSource(sup), settings=SyncerSettings(patrol_period=0, workers=8))
        task = asyncio.create_task(syncer.run())
        await syncer.ready.wait()
        while len(syncer.tenants) < 3 or not all(  # noqa: ASYNC110 - polling the syncer's state
            rt.synced.is_set() for rt in syncer.tenants.values()
        ):
            await asyncio.sleep(0.2)
        while not syncer.queue.idle():  # noqa: ASYNC110 - polling the syncer's state
            await asyncio.sleep(0.2)
        gc.collect()
        snap = tracemalloc.take_snapshot()
        pods = len(syncer.super_informers["Pod"])
        v_pods = sum(len(rt.informers["Pod"]) for rt in syncer.tenants.values())
        cache = sum(len(rt.informers["Pod"]) and rt.informers["Pod"].cached_bytes()
                    for rt in syncer.tenants.values()) + syncer.super_informers["Pod"].cached_bytes()
        held = sum(s.size_diff for s in snap.compare_to(base, "filename")
                   if "/syncer/" in (s.traceback[0].filename if s.traceback else ""))
        total = sum(s.size_diff for s in snap.compare_to(base, "filename"))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    for stat in snap.compare_to(base, "lineno")[:5]:
        print(f"  memory top: {stat}")
    tracemalloc.stop()
    per_pod = held / max(pods, 1)
    print(f"memory: {pods} super pods / {v_pods} tenant pods cached; syncer code holds {held/1e6:.1f} MB "
          f"= {per_pod/1024:.1f} KB per synced pod (target <= 10 KB); JSON bytes of pod caches "
          f"{cache/max(pods, 1)/1024:.1f} KB/pod; all Python allocations {total/max(pods, 1)/1024:.1f} KB/pod")
    return {"memory_kb_per_pod": per_pod / 1024, "memory_total_kb_per_pod": total / max(pods, 1) / 1024}


@contextlib.contextmanager
def super_cluster(kubeconfig: str | None, work: Path) -> Iterator[Super]:
    if kubeconfig:
        yield Super(Path(kubeconfig))
        return
    launcher = LocalSuperCluster(TestbedSettings(state_dir=work / "super", nodes=1))
    launcher.start()
    try:
        yield Super(launcher.kubeconfig)
    finally:
        launcher.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--super-kubeconfig", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vc-bench-syncer-"))
    print(f"work dir: {work}")
    with super_cluster(args.super_kubeconfig, work) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        suffix = uuid.uuid4().hex[:4]
        tenants = [create_tenant(super_, f"bench-{x}-{suffix}") for x in "abc"]
        syncer = SyncerProcess(super_, log_path=work / "syncer.log", env={"VC_SYNCER_PATROL_PERIOD": "0"})
        try:
            results = asyncio.run(bench(super_, tenants, syncer, args.pods))
        finally:
            syncer.stop()
        results.update(asyncio.run(memory(super_)))
    print("results: " + ", ".join(f"{k}={v:.3g}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
