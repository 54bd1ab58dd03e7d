"""Why bench_syncer.py's synced burst costs what it costs: one factor at a time, A/B, in one test bed.

Why: issue #16.  ``bench/bench_syncer.py`` measured a synced burst of 300 pods taking 10-14 s
and ~81 ms of test-bed CPU per pod, where an independent benchmark on the same machine and
code (T = 3, B = 300, 28 kwok nodes, pods without a mounted token, interleaved rounds) measured
4.5 s and ~30 ms.  This bench starts one test bed and runs the same synced burst under
variants that each change one factor against the "steady" reference, interleaved per round
(the order rotates), with the direct burst as the baseline in the same rounds:

* ``direct``      B pods created on the super cluster, until all are Running (the baseline);
* ``steady``      B pods through the syncer (B/T per tenant) until Running in the tenants, the
                  syncer up, idle and with an empty queue (checked on its ``/metrics``), the pods
                  on kwok nodes whose virtual nodes exist already, no token mounted;
* ``token``       ``steady`` with the default service-account token mounted (the syncer makes a
                  TokenRequest and a token Secret per service account and namespace);
* ``after-drain`` ``steady`` right after what bench_syncer.py does before its burst: the syncer
                  stopped, D pods left waiting in the tenants, the syncer started, the burst
                  begun as soon as the D pods arrived in the super cluster (the syncer's start-up
                  re-check of every existing tenant object is still queued);
* ``new-nodes``   ``steady`` onto kwok nodes no tenant has a virtual node for yet (virtual-node
                  creation, Lease and status per node per tenant in the burst's path);
* ``spread``      ``steady`` over every kwok node instead of the pool of a few (more virtual nodes
                  touched per burst);
* ``+watchers``   ``steady`` with 2 extra pod watchers per tenant (what each watcher of the tenant
                  pods, e.g. the bench's own, costs the tenant apiserver);
* ``gomaxcpu``    ``steady`` through a second set of T tenants whose etcd, apiserver and
                  controller-manager run with the Go runtime's default (one P per CPU) instead of the
                  operator's ``GOMAXPROCS=1`` (round 8: does one P per tenant process cost the burst?).
* ``watchcache``  ``steady`` through a second set of T tenants whose apiserver keeps every watch
                  cache (the default keeps only the pods' since round 10).
* ``nocache``     ``steady`` through a second set of T tenants whose apiserver has no watch cache
                  (rounds 7-9's default; round 9: what does serving every tenant watcher of pods from
                  its own etcd watch cost the burst?).  One of these three per run.
* ``fifo``        ``steady`` with the syncer's queue as one FIFO per tenant (``VC_SYNCER_UP_SHARE=0``,
                  rounds 1-10) instead of upward keys first (round 11).  The syncer is restarted
                  for it and again for the next variant that wants another share (the bench waits
                  until it is ready and its queue is empty before each burst).
* ``up1``         ``steady`` with one upward key per waiting downward key (``VC_SYNCER_UP_SHARE=1``).

Each variant's pods are force-deleted afterwards and the bench waits for the syncer's queue to
be empty, so no variant inherits another's backlog.  Measures: CPU milliseconds per pod by part
of the test bed (``/proc/<pid>/stat``: robust to other load on the machine), requests per pod
by apiserver side, the syncer's queue depth when the burst began, and the wall time (noisy on
a shared machine: it is printed with the load average and is not what conclusions rest on).

    python bench/bench_burst_factors.py [--nodes 28] [--burst-pods 300] [--drain-pods 600] [--rounds 3]
                                        [--variants direct,steady,...] [--pin dedicated]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402
from bench_syncer import (  # noqa: E402
    CONCURRENCY,
    Arrivals,
    CpuMeter,
    RequestMeter,
    bench_isolation,
    create_pods,
    ensure_namespace,
    free_port,
    in_lanes,
    load,
    pin_testbed,
    split,
    super_cluster,
)

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.kube import ApiClient, resources  # noqa: E402
from vcluster.testbed.cluster import node_name  # noqa: E402

VARIANTS = ("direct", "steady", "token", "after-drain", "new-nodes", "spread", "+watchers", "gomaxcpu",
            "watchcache", "nocache", "fifo", "up1")
#: The variants that run the syncer with another ``VC_SYNCER_UP_SHARE`` than its default.
UP_SHARES = {"fifo": "0", "up1": "1"}
#: The variants that go through a second set of T tenants (one such variant per run), with the
#: ``spec.controlPlane.extraArgs`` those tenants get.
ALT_ARGS: dict[str, dict[str, dict[str, str]]] = {
    "gomaxcpu": {part: {"gomaxprocs": str(os.cpu_count() or 1)} for part in ("apiserver", "controllerManager", "etcd")},
    # the tenant apiserver with every watch cache (the default keeps only the pods' since round 10)
    "watchcache": {"apiserver": {"watch-cache-sizes": ""}},
    # rounds 7-9's default: no watch cache (-0.45 % of a core per idle tenant), so each watcher of the
    # tenant pods is served by its own etcd watch (round 9: +5.1 ms of test-bed CPU per synced pod)
    "nocache": {"apiserver": {"watch-cache": "false"}},
}
#: kwok nodes per pool: a pool holds one burst of 300 (110 pods per node).
POOL = 4


def burst_pod(name: str, ns: str, *, token: bool, nodes: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if not token:
        spec["automountServiceAccountToken"] = False
    if nodes:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}]}]}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


class Factors:
    def __init__(self, tenants: list[TenantHandle], syncer: SyncerProcess, metrics_port: int, *, n: int,
                 drain_n: int, nodes: int, meter: CpuMeter, pin: str | None,
                 alt_tenants: list[TenantHandle] | None = None, alt_variant: str = "") -> None:
        self.tenants, self.syncer, self.metrics_port = tenants, syncer, metrics_port
        self.alt_tenants = alt_tenants or []
        #: The variant (of :data:`ALT_ARGS`) whose bursts go through :attr:`alt_tenants`.
        self.alt_variant = alt_variant
        self.alt_tapis: list[ApiClient] = []
        self.n, self.drain_n, self.nodes, self.meter, self.pin = n, drain_n, nodes, meter, pin
        self.run = uuid.uuid4().hex[:4]
        #: Per variant: one dict per round (wall s, cpu ms per pod per group, requests per pod, queue).
        self.samples: dict[str, list[dict[str, float]]] = {}
        self.fresh_pool = POOL  # nodes [0, POOL) are the warm pool; later pools are fresh
        self.sup: ApiClient
        self.tapis: list[ApiClient] = []
        self.requests: RequestMeter

    def queue_depth(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return float("nan")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vc_syncer_queue_depth{"))

    async def quiet(self, limit: float = 120) -> None:
        """Until the syncer's queue is empty (twice in a row, 0.5 s apart)."""
        deadline = time.monotonic() + limit
        zeros = 0
        while zeros < 2 and time.monotonic() < deadline:
            zeros = zeros + 1 if self.queue_depth() == 0 else 0
            await asyncio.sleep(0.5)

    @contextlib.asynccontextmanager
    async def measured(self, variant: str, sample: dict[str, float]) -> AsyncIterator[None]:
        if self.pin:
            pin_testbed(self.meter.work, self.pin)
        sample["queue_at_start"] = self.queue_depth()
        sample["load_start"] = float(load().split("/")[0])
        before, requests = self.meter.snapshot(), await self.requests.snapshot()
        start = time.monotonic()
        yield
        sample["wall_s"] = time.monotonic() - start
        used = CpuMeter.used(before, self.meter.snapshot())
        after = await self.requests.snapshot()
        for group, secs in used.items():
            sample[f"cpu {group}"] = secs / self.n * 1000
        sample["cpu all"] = sum(v for k, v in used.items()) / self.n * 1000
        for key, value in after.items():
            sample[f"req {key}"] = (value - requests.get(key, 0.0)) / self.n
        sample["load_end"] = float(load().split("/")[0])
        self.samples.setdefault(variant, []).append(sample)

    async def cleanup(self, super_nss: list[str], tenant_ns: str | None, tapis: list[ApiClient] | None = None) -> None:
        """Force-delete the variant's pods everywhere, then wait for the syncer's queue to empty."""
        params = {"gracePeriodSeconds": 0}
        if tenant_ns is not None:
            for api in tapis if tapis is not None else self.tapis:
                await api.request("DELETE", f"/api/v1/namespaces/{tenant_ns}/pods", params=params,
                                  body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        for ns in super_nss:
            await self.sup.request("DELETE", f"/api/v1/namespaces/{ns}/pods", params=params,
                                   body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        for ns in super_nss:
            while (await self.sup.list(resources.PODS, namespace=ns)).get("items"):  # noqa: ASYNC110 - polling
                await asyncio.sleep(0.5)
        await self.quiet()
        await asyncio.sleep(2)

    def pool(self, variant: str) -> list[str] | None:
        if variant == "spread":
            return None
        if variant == "new-nodes":
            nodes = [node_name(i) for i in range(self.fresh_pool, self.fresh_pool + POOL)]
            self.fresh_pool += POOL
            return nodes
        return [node_name(i) for i in range(POOL)]

    async def direct(self, r: int) -> None:
        nss = [f"fd-{self.run}-{r}-{i}" for i in range(len(self.tapis))]
        for ns in nss:
            await ensure_namespace(self.sup, ns)
        counts, nodes = split(self.n, len(nss)), self.pool("direct")
        sample: dict[str, float] = {}
        async with contextlib.AsyncExitStack() as stack:
            arrs = [await stack.enter_async_context(Arrivals(self.sup, ns)) for ns in nss]
            async with self.measured("direct", sample):
                start = time.monotonic()
                await asyncio.gather(*(self._create(self.sup, ns, k, token=False, nodes=nodes,
                                                    concurrency=CONCURRENCY // len(nss) + 1)
                                       for ns, k in zip(nss, counts, strict=True)))
                sample["created_s"] = time.monotonic() - start
                last = max([await a.until(k, running=True) for a, k in zip(arrs, counts, strict=True)])
                sample["in_super_s"] = sample["created_s"]
                sample["running_s"] = last - start
        await self.cleanup(nss, None)

    async def _create(self, api: ApiClient, ns: str, k: int, *, token: bool, nodes: list[str] | None,
                      concurrency: int = CONCURRENCY) -> None:
        await in_lanes([f"p-{i}" for i in range(k)],
                       lambda name: api.create(resources.PODS, burst_pod(name, ns, token=token, nodes=nodes)),
                       concurrency=concurrency)

    async def drain_backlog(self, r: int) -> None:
        """bench_syncer.py's drain stage: the syncer stopped, D pods waiting, the syncer started."""
        ns = f"fdrain-{self.run}-{r}"
        self.syncer.stop()
        for api in self.tapis:
            await ensure_namespace(api, ns)
        counts = split(self.drain_n, len(self.tapis))
        await asyncio.gather(*(create_pods(api, ns, [f"b-{i}" for i in range(k)])
                               for api, k in zip(self.tapis, counts, strict=True)))
        p_nss = [naming.super_namespace(t.cluster_key, ns) for t in self.tenants]
        async with contextlib.AsyncExitStack() as stack:
            arrs = [await stack.enter_async_context(Arrivals(self.sup, p_ns)) for p_ns in p_nss]
            self.syncer.start()
            for a, k in zip(arrs, counts, strict=True):
                await a.until(k)

    async def up_share(self, variant: str) -> None:
        """Restart the syncer when the variant wants another queue discipline than it runs with."""
        want = {"VC_SYNCER_UP_SHARE": UP_SHARES[variant]} if variant in UP_SHARES else {}
        if {k: v for k, v in self.syncer.env.items() if k == "VC_SYNCER_UP_SHARE"} == want:
            return
        self.syncer.stop()
        self.syncer.env.pop("VC_SYNCER_UP_SHARE", None)
        self.syncer.env.update(want)
        self.syncer.start()
        await self.ready()

    async def ready(self, limit: float = 120) -> None:
        """Until the (re)started syncer answers ``/readyz`` (informers synced, workers running)."""
        deadline = time.monotonic() + limit
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the syncer was not ready within {limit:.0f} s")
            await asyncio.sleep(0.5)

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    async def synced(self, variant: str, r: int) -> None:
        await self.up_share(variant)
        ns = f"f-{variant.strip('+')}-{self.run}-{r}"
        alt = bool(self.alt_variant) and variant.endswith(self.alt_variant)
        tenants, tapis = (self.alt_tenants, self.alt_tapis) if alt else (self.tenants, self.tapis)
        for api in tapis:
            await ensure_namespace(api, ns)
        p_nss = [naming.super_namespace(t.cluster_key, ns) for t in tenants]
        for p_ns in p_nss:
            await ensure_namespace(self.sup, p_ns)
        await self.quiet()
        if variant == "after-drain":
            await self.drain_backlog(r)
        counts, nodes = split(self.n, len(tapis)), self.pool(variant)
        token = variant == "token"
        sample: dict[str, float] = {}
        async with contextlib.AsyncExitStack() as stack:
            if variant == "+watchers":
                for api in tapis:
                    for _ in range(2):
                        await stack.enter_async_context(Arrivals(api, ns))
            v_arrs = [await stack.enter_async_context(Arrivals(api, ns)) for api in tapis]
            p_arrs = [await stack.enter_async_context(Arrivals(self.sup, p_ns)) for p_ns in p_nss]
            async with self.measured(variant, sample):
                start = time.monotonic()
                await asyncio.gather(*(self._create(api, ns, k, token=token, nodes=nodes)
                                       for api, k in zip(tapis, counts, strict=True)))
                sample["created_s"] = time.monotonic() - start
                last = max([await a.until(k, running=True) for a, k in zip(v_arrs, counts, strict=True)])
                sample["running_s"] = last - start
            sample["in_super_s"] = max(max(a.seen.values()) for a in p_arrs) - start
        await self.cleanup(p_nss, ns, tapis)

    async def main(self, variants: list[str], rounds: int) -> None:
        async with contextlib.AsyncExitStack() as stack:
            self.sup = await stack.enter_async_context(ApiClient.from_kubeconfig(self.syncer.super_cluster.kubeconfig))
            self.tapis = [await stack.enter_async_context(ApiClient.from_kubeconfig(str(t.kubeconfig_path)))
                          for t in self.tenants]
            self.alt_tapis = [await stack.enter_async_context(ApiClient.from_kubeconfig(str(t.kubeconfig_path)))
                              for t in self.alt_tenants]
            self.requests = RequestMeter(self.sup, self.tapis)
            self.syncer.start()
            # Warm-up: virtual nodes of the warm pool exist in every tenant, connections are open.
            await self.synced("warm-up", -1)
            self.samples.pop("warm-up", None)
            if self.alt_tenants:
                await self.synced(f"warm-up-{self.alt_variant}", -1)
                self.samples.pop(f"warm-up-{self.alt_variant}", None)
            for r in range(rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                print(f"round {r + 1}: load average {load()}; order {', '.join(order)}", flush=True)
                for variant in order:
                    if variant == "direct":
                        await self.direct(r)
                    else:
                        await self.synced(variant, r)
                    s = self.samples[variant][-1]
                    print(f"  {variant:12s} Running after {s['running_s']:5.2f}s (in super {s['in_super_s']:5.2f}s;"
                          f" created {s['created_s']:5.2f}s); CPU {s['cpu all']:6.1f} ms/pod (syncer "
                          f"{s.get('cpu syncer', 0.0):5.2f}); queue at start {s['queue_at_start']:.0f}; load "
                          f"{s['load_start']:.2f} → {s['load_end']:.2f}", flush=True)
        self.summary()

    def summary(self) -> None:
        variants = list(self.samples)
        med = {v: {k: statistics.median(s.get(k, 0.0) for s in self.samples[v])
                   for k in {k for s in self.samples[v] for k in s}} for v in variants}
        print("\nmedians over rounds (CPU: milliseconds per pod; requests: per pod):")
        print(f"  {'':34s}" + "".join(f"{v:>12s}" for v in variants))
        rows = ["running_s", "in_super_s", "created_s", "queue_at_start", "load_start"]
        cpu = sorted({k for m in med.values() for k in m if k.startswith("cpu ")}, key=lambda k: (k == "cpu all", k))
        req = sorted({k for m in med.values() for k in m if k.startswith("req ")
                      and max(mm.get(k, 0.0) for mm in med.values()) >= 0.05})
        for key in rows + cpu + req:
            print(f"  {key[:34]:34s}" + "".join(f"{med[v].get(key, 0.0):12.2f}" for v in variants))
        if "steady" in med:
            print("\nagainst steady (CPU ms per pod over the whole test bed; median of per-round values):")
            for v in variants:
                print(f"  {v:12s} {med[v]['cpu all'] - med['steady']['cpu all']:+7.1f} ms/pod, "
                      f"Running {med[v]['running_s'] - med['steady']['running_s']:+5.2f} s (wall, noisy)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=28, help="kwok nodes (default 28)")
    parser.add_argument("--burst-pods", type=int, default=300, help="B: pods per burst (default 300)")
    parser.add_argument("--drain-pods", type=int, default=600, help="D: the after-drain backlog (default 600)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--pin", choices=["dedicated"], default=None,
                        help="pin the super cluster to CPU 0, everything else to CPU 1")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    alts = [v for v in variants if v in ALT_ARGS]
    if len(alts) > 1:
        parser.error(f"one of {', '.join(ALT_ARGS)} per run (each needs its own second set of tenants)")
    if "new-nodes" in variants and args.nodes < POOL * (args.rounds + 1):
        parser.error(f"new-nodes needs --nodes >= {POOL * (args.rounds + 1)}")
    work = workdir.make("vc-bench-factors-", keep=args.keep)
    print(f"work dir: {work}; load average (1/5 min) {load()}; {args.nodes} kwok nodes; B = {args.burst_pods}")
    began = time.monotonic()
    port = free_port()
    with super_cluster(None, work, nodes=args.nodes) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        suffix = uuid.uuid4().hex[:4]
        room = bench_isolation(args.burst_pods + args.drain_pods)  # over the default quota of 100 pods
        tenants = [create_tenant(super_, f"bf-{x}-{suffix}", isolation=room) for x in "abc"]
        alt = [create_tenant(super_, f"bg-{x}-{suffix}", isolation=room,
                             controlPlane={"extraArgs": ALT_ARGS[alts[0]]}) for x in "abc"] if alts else []
        syncer = SyncerProcess(super_, log_path=work / "syncer.log",
                               env={"VC_SYNCER_PATROL_PERIOD": "0", "VC_SYNCER_METRICS_PORT": str(port)})
        bench = Factors(tenants, syncer, port, n=args.burst_pods, drain_n=args.drain_pods, nodes=args.nodes,
                        meter=CpuMeter(work), pin=args.pin, alt_tenants=alt, alt_variant=alts[0] if alts else "")
        try:
            asyncio.run(bench.main(variants, args.rounds))
        finally:
            syncer.stop()
    print(f"load average (1/5 min) at the end {load()}; the bench took {time.monotonic() - began:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
