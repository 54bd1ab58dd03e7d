"""The syncer at 10,000 pods over 10 tenants: memory per pod, cache warm-up after a restart, patrol time.

Why: issue #16 (items 3 and 4) sets targets never measured so far: <= 10 KB per synced pod at
10,000 pods, cache warm-up after a restart <= 5 s, a full patrol <= 0.5 s per 10,000 pods.  This
bench starts a super cluster, the real operator with T tenants and the syncer as a child process,
creates P pods through the tenants (``schedulerName: none``: they are synced objects like any other,
but nothing schedules or runs them, so the machine's two cores go to the syncer path and not to
kube-scheduler and kwok), and then measures:

* the syncer process's resident memory before and after (what a user sees, per synced pod);
* a restart of the child: seconds until ``/readyz`` answers 200 (caches listed, workers running)
  and until its queue is empty (the start-up re-check of every object done), with its CPU time;
* the syncer in-process (the child stopped): the same warm-up, then :meth:`Syncer.patrol` (the full
  diff of every kind of every tenant) several times, in CPU seconds (``time.process_time``: robust
  to other load) and wall seconds;
* the memory the syncer's code holds per synced pod (tracemalloc, in-process, as bench_syncer.py).

    python bench/bench_scale.py [--tenants 10] [--pods 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402
from bench_syncer import (  # noqa: E402
    _TICK,
    bench_isolation,
    create_pods,
    ensure_namespace,
    free_port,
    listed_count,
    load,
    memory,
    split,
    super_cluster,
)

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402
from syncer.engine import Syncer  # noqa: E402
from syncer.settings import SyncerSettings  # noqa: E402
from syncer.tenants import CrdTenantSource  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.kube import ApiClient, resources  # noqa: E402


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def queue_depth(port: int) -> float | None:
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vc_syncer_queue_depth{"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_quiet(port: int, limit: float = 600) -> None:
    """Until the child's queue is empty twice in a row, 0.2 s apart."""
    deadline, zeros = time.monotonic() + limit, 0
    while zeros < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the syncer's queue never emptied")
        zeros = zeros + 1 if queue_depth(port) == 0 else 0
        time.sleep(0.2)


def restart(syncer: SyncerProcess, port: int) -> dict[str, float]:
    """Stop and start the child; seconds until /readyz is 200 and until the queue is empty."""
    syncer.stop()
    start = time.monotonic()
    syncer.start()
    assert syncer.proc is not None
    while _get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
        if time.monotonic() - start > 300:
            raise RuntimeError("the syncer did not become ready in 300 s")
        time.sleep(0.05)
    ready = time.monotonic() - start
    wait_quiet(port)
    return {"ready_s": ready, "quiet_s": time.monotonic() - start - 0.2, "cpu_s": cpu_s(syncer.proc.pid)}


async def in_process(kubeconfig: Path, tenants: int, patrols: int) -> dict[str, float]:
    """The syncer in this process: warm-up (informers listed for every tenant, queue idle), then patrols."""
    out: dict[str, float] = {}
    async with ApiClient.from_kubeconfig(kubeconfig) as sup:
        syncer = Syncer(sup, CrdTenantSource(sup), settings=SyncerSettings(patrol_period=0))
        c0, t0 = time.process_time(), time.monotonic()
        task = asyncio.create_task(syncer.run())
        while len(syncer.tenants) < tenants or not all(  # noqa: ASYNC110 - polling the syncer's state
                rt.synced.is_set() for rt in syncer.tenants.values()):
            await asyncio.sleep(0.02)
        out["warm_synced_s"], out["warm_synced_cpu_s"] = time.monotonic() - t0, time.process_time() - c0
        while not syncer.queue.idle():  # noqa: ASYNC110 - polling the syncer's state
            await asyncio.sleep(0.02)
        out["warm_idle_s"], out["warm_idle_cpu_s"] = time.monotonic() - t0, time.process_time() - c0
        out["super_pods"] = float(len(syncer.super_informers["Pod"]))
        out["tenant_pods"] = float(sum(len(rt.informers["Pod"]) for rt in syncer.tenants.values()))
        walls, cpus = [], []
        for _ in range(patrols):
            c, t = time.process_time(), time.perf_counter()
            counts = syncer.patrol()
            cpus.append(time.process_time() - c)
            walls.append(time.perf_counter() - t)
        out["patrol_cpu_s"], out["patrol_wall_s"] = statistics.median(cpus), statistics.median(walls)
        # the first patrol compares every pair; later ones skip pairs untouched since (the patrol's memo,
        # round 10): both are printed
        out["patrol_first_cpu_s"], out["patrol_first_wall_s"] = cpus[0], walls[0]
        out["patrol_queued"] = float(sum(counts.values()))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out


async def super_pods(kubeconfig: Path, tenants: list[TenantHandle], ns: str) -> int:
    """Pods in the tenants' super namespaces for tenant namespace ``ns``."""
    async with ApiClient.from_kubeconfig(kubeconfig) as sup:
        return sum([listed_count(await sup.list(resources.PODS, namespace=naming.super_namespace(t.cluster_key, ns),
                                                limit=1)) for t in tenants])


async def fill(tenants: list[TenantHandle], pods: int, ns: str) -> float:
    """P pods over the tenants (all at once, 16 in flight per tenant); returns the seconds it took."""
    async with contextlib.AsyncExitStack() as stack:
        apis = [await stack.enter_async_context(ApiClient.from_kubeconfig(str(t.kubeconfig_path))) for t in tenants]
        for api in apis:
            await ensure_namespace(api, ns)
        start = time.monotonic()
        await asyncio.gather(*(create_pods(api, ns, [f"s-{i}" for i in range(k)], concurrency=16)
                               for api, k in zip(apis, split(pods, len(apis)), strict=True)))
        return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10, help="T (default 10)")
    parser.add_argument("--pods", type=int, default=10_000, help="P: pods over all tenants (default 10000)")
    parser.add_argument("--restarts", type=int, default=2, help="restarts of the child syncer (default 2)")
    parser.add_argument("--patrols", type=int, default=5, help="patrols timed in-process (default 5)")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    work = workdir.make("vc-bench-scale-", keep=args.keep)
    print(f"work dir: {work}; load average (1/5 min) {load()}; T = {args.tenants}, P = {args.pods}")
    began = time.monotonic()
    port = free_port()
    with super_cluster(None, work, nodes=1) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        suffix = uuid.uuid4().hex[:4]
        # room in each tenant's quota (the default is 100 pods: round 9's first run waited for the rest)
        tenants = [create_tenant(super_, f"s{i}-{suffix}", isolation=bench_isolation(args.pods))
                   for i in range(args.tenants)]
        print(f"{len(tenants)} tenants Ready after {time.monotonic() - began:.0f}s (load {load()})", flush=True)
        syncer = SyncerProcess(super_, log_path=work / "syncer.log",
                               env={"VC_SYNCER_PATROL_PERIOD": "0", "VC_SYNCER_METRICS_PORT": str(port)})
        try:
            first = restart(syncer, port)
            assert syncer.proc is not None
            rss0 = rss_kb(syncer.proc.pid)
            print(f"syncer up with no pods: ready after {first['ready_s']:.2f}s, RSS {rss0 / 1024:.0f} MiB", flush=True)
            secs = asyncio.run(fill(tenants, args.pods, f"scale-{suffix}"))
            wait_quiet(port)
            in_super = asyncio.run(super_pods(super_.kubeconfig, tenants, f"scale-{suffix}"))
            if in_super != args.pods:
                raise RuntimeError(f"{in_super} of {args.pods} pods in the super cluster after the syncer's queue "
                                   f"emptied (see {work / 'syncer.log'})")
            synced = time.monotonic()
            rss1 = rss_kb(syncer.proc.pid)
            print(f"{args.pods} pods created in the tenants in {secs:.1f}s ({args.pods / secs:.0f}/s), all synced "
                  f"{synced - began:.0f}s into the bench; syncer RSS {rss1 / 1024:.0f} MiB = "
                  f"{(rss1 - rss0) / args.pods:.2f} KB per synced pod above the empty syncer (load {load()})",
                  flush=True)
            restarts = []
            for i in range(args.restarts):
                got = restart(syncer, port)
                restarts.append(got)
                print(f"restart {i + 1}: /readyz after {got['ready_s']:.2f}s, queue empty after {got['quiet_s']:.2f}s"
                      f" ({got['cpu_s']:.2f} CPU s; load {load()})", flush=True)
        finally:
            syncer.stop()
        inproc = asyncio.run(in_process(super_.kubeconfig, args.tenants, args.patrols))
        mem = asyncio.run(memory(super_, tenants=args.tenants))
    per10k = 10_000 / max(inproc["super_pods"], 1)
    print(f"\nin-process: {inproc['super_pods']:.0f} super pods, {inproc['tenant_pods']:.0f} tenant pods cached")
    print(f"  warm-up: all tenants' caches listed after {inproc['warm_synced_s']:.2f}s "
          f"({inproc['warm_synced_cpu_s']:.2f} CPU s), queue idle after {inproc['warm_idle_s']:.2f}s "
          f"({inproc['warm_idle_cpu_s']:.2f} CPU s); target ≤ 5 s")
    print(f"  patrol (median of {args.patrols}): {inproc['patrol_cpu_s']:.3f} CPU s, {inproc['patrol_wall_s']:.3f} s "
          f"wall = {inproc['patrol_cpu_s'] * per10k:.3f} CPU s per 10,000 pods (target ≤ 0.5 s); "
          f"{inproc['patrol_queued']:.0f} differences queued")
    print(f"  first patrol (every pair decoded and compared): {inproc['patrol_first_cpu_s']:.3f} CPU s, "
          f"{inproc['patrol_first_wall_s']:.3f} s wall = {inproc['patrol_first_cpu_s'] * per10k:.3f} CPU s per "
          f"10,000 pods")
    ready = ", ".join(f"{r['ready_s']:.2f}" for r in restarts)
    quiet = ", ".join(f"{r['quiet_s']:.2f}" for r in restarts)
    print(f"  child restarts: /readyz after {ready} s; queue empty after {quiet} s")
    print(f"  memory: RSS {(rss1 - rss0) / args.pods:.2f} KB per pod (child); syncer code "
          f"{mem['memory_kb_per_pod']:.2f} KB per pod, all Python allocations {mem['memory_total_kb_per_pod']:.2f} "
          f"KB per pod (tracemalloc); target ≤ 10 KB")
    print(f"load average (1/5 min) at the end {load()}; the bench took {time.monotonic() - began:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
