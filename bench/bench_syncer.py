"""How fast and how lean the syncer is, against the best direct client, in one run.

Why: the design targets (docs/benchmarks-syncer.md, issue #4) are ratios against
creating the same objects directly on the same super apiserver under the same
identity (the super admin kubeconfig the syncer uses), measured in the same
run on the same machine.  Not a test: it prints numbers and ratios.

Set-up: a local super cluster (kube-scheduler and kwok nodes included), the
real operator provisioning three tenants (T = 3), the syncer as a child
process (``python -m syncer``).  The machine is shared (2 cores, other test
beds running), so every throughput and latency measure is repeated
``--rounds`` times; each round measures the baseline and the syncer back to
back so drift hits both (drain: direct, drain, direct again, against the mean
of both directs; burst: baseline first in rounds 1, 3, …, syncer first in
rounds 2, 4, …); the bench prints per-round values, the median and the spread of each,
the load average at the start and end of each round, and the CPU each part
of the test bed spent per pod in each stage (above its idle background).

Per round:

* drain: direct baseline (N pods created on the super apiserver, 32 in flight,
  ``schedulerName: none``) against backlog drain (N pods waiting in the T
  tenants, N/T each, when the syncer starts; the rate at which they appear in
  the super cluster).  Creating that backlog with the syncer off is the
  "tenant-only" stage: how fast the T tenant apiservers take N creates.
* burst (the original VirtualCluster's method), with B pods (``--burst-pods``;
  every burst pod runs on a kwok node, and scheduler plus kwok are slow on
  this machine, so B defaults to N/2): B pods created directly in the super
  cluster (T namespaces, scheduled by kube-scheduler onto kwok nodes) until
  all are Running, against T tenants creating B/T pods each at once with
  the syncer up, until all are Running *in the tenants*.  The syncer run also
  records when the tenant creates returned, when all pods appeared in the
  super cluster and when all were Running there, which splits the time.
* light load: one pod at a time, direct create → watched against tenant
  create → super watched, interleaved (medians in milliseconds: end to end,
  and what the syncer adds beyond the tenant apiserver's own create → watch).

Every round (since round 8; in the ``shared`` model, or the first one): a quiet
tenant's p99 while two greedy tenants flood the queue (split into the tenant
create call and the syncer's part), so that the target shows in every round.
Since round 9 the stage deletes its pods (the flood's 2 x N stay pending) and
waits until they are gone from the super cluster, so that later rounds do not
run against a backlog it left.
Once: the memory the syncer's code holds per synced pod (tracemalloc, in-process).

After the rounds: CPU per pod by component and stage, how many cores the
whole test bed kept busy per stage with the ratio a syncer using no CPU would
reach (the ceiling everything else sets), and each apiserver's own request and
watch-event counts per pod and stage (which writes the synced path costs).

    python bench/bench_syncer.py [--pods 600] [--burst-pods 300] [--rounds 3] [--super-kubeconfig PATH]
                                 [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402
from syncer.engine import Syncer  # noqa: E402
from syncer.settings import SyncerSettings  # noqa: E402
from syncer.tenants import CrdTenantSource  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.kube import AlreadyExists, ApiClient, NotFound, resources  # noqa: E402
from vcluster.settings import BinarySettings  # noqa: E402
from vcluster.testbed import LocalSuperCluster, TestbedSettings  # noqa: E402

CONCURRENCY = 32
#: Pods one kwok node takes (its capacity is 110).
PODS_PER_NODE = 100


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


def pod(name: str, ns: str, *, scheduled: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "busybox"}]}
    if not scheduled:
        spec["schedulerName"] = "none"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


async def ensure_namespace(api: ApiClient, ns: str) -> None:
    with contextlib.suppress(Exception):
        await api.create(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    while True:  # pods are refused until the namespace's default ServiceAccount exists
        try:
            await api.get(resources.SERVICEACCOUNTS, "default", namespace=ns)
            return
        except NotFound:
            await asyncio.sleep(0.05)


async def in_lanes(names: list[str], write: Callable[[str], Awaitable[Any]], *,
                   concurrency: int = CONCURRENCY) -> float:
    """``write(name)`` for every name with ``concurrency`` in flight; returns the seconds it took."""
    it = iter(names)
    start = time.monotonic()

    async def lane() -> None:
        for name in it:
            await write(name)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.monotonic() - start


async def create_pods(api: ApiClient, ns: str, names: list[str], *, concurrency: int = CONCURRENCY,
                      scheduled: bool = False) -> float:
    """Create the pods with ``concurrency`` in flight; returns the seconds it took."""
    return await in_lanes(names, lambda name: api.create(resources.PODS, pod(name, ns, scheduled=scheduled)),
                          concurrency=concurrency)


def bench_isolation(pods: int) -> dict[str, Any]:
    """A bench tenant's ``spec.isolation``: room for ``pods`` pods (at least 100,000) in its quota.

    The operator's default tenant-wide quota is 100 pods (issue 12); a bench tenant holds thousands, and
    over the quota the syncer refuses the rest, so the bench would wait for pods that never come.  The
    quota gate itself still runs on every create, as for any tenant.
    """
    return {"resourceQuota": {"hard": {"pods": str(max(pods, 100_000))}}}


def listed_count(page: dict[str, Any]) -> int:
    """How many objects a list holds, from one page of it (``limit``): its items and
    ``metadata.remainingItemCount`` (absent on the last page)."""
    return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)


#: The admission-relevant policy objects the operator puts in every tenant super namespace (issue 12):
#: the LimitRange (default requests: LimitRanger admission on every pod create) and the ResourceQuota
#: (quota admission: a status write per batch of creates).  The NetworkPolicy costs no admission.
POLICY_KINDS = (resources.LIMITRANGES, resources.RESOURCEQUOTAS)


def direct_policy(found: dict[str, dict[str, Any]], ns: str) -> list[tuple[Any, dict[str, Any]]]:
    """Copies of a tenant super namespace's policy objects (``found``: kind -> object as listed) for the
    direct client's namespace ``ns``: name and spec only (no owner labels, so no operator or syncer takes
    them for its own)."""
    out = []
    for resource in POLICY_KINDS:
        obj = found.get(resource.kind)
        if obj is None:
            continue
        out.append((resource, {"apiVersion": "v1", "kind": resource.kind,
                               "metadata": {"name": obj["metadata"]["name"], "namespace": ns},
                               "spec": obj.get("spec") or {}}))
    return out


async def tenant_policy(api: ApiClient, key: str, *, limit: float = 120) -> dict[str, dict[str, Any]]:
    """One of each :data:`POLICY_KINDS` object the operator made for tenant ``key`` (waits until the
    LimitRange exists: the operator writes it first)."""
    deadline = time.monotonic() + limit
    while True:
        found: dict[str, dict[str, Any]] = {}
        for resource in POLICY_KINDS:
            page = await api.list(resource, label_selector=f"{naming.LABEL_CLUSTER_KEY}={key}", limit=1)
            if page.get("items"):
                found[resource.kind] = page["items"][0]
        if resources.LIMITRANGES.kind in found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def delete_pods(api: ApiClient, ns: str, *, concurrency: int = CONCURRENCY) -> int:
    """Delete every pod of namespace ``ns`` (grace 0), ``concurrency`` in flight; returns how many."""
    items, _ = await api.list_all(resources.PODS, namespace=ns)
    names = [item["metadata"]["name"] for item in items]

    async def delete(name: str) -> None:
        with contextlib.suppress(NotFound):
            await api.delete(resources.PODS, name, namespace=ns, grace_period_seconds=0)

    await in_lanes(names, delete, concurrency=concurrency)
    return len(names)


async def until_no_pods(api: ApiClient, namespaces: list[str], *, limit: float = 300,
                        poll: float = 0.5) -> float:
    """Until none of ``namespaces`` holds a pod; returns the seconds it took.

    Raises ``TimeoutError`` naming what is left after ``limit`` seconds: a bench must not go on to
    measure the next round with a backlog it believes is gone.
    """
    start = time.monotonic()
    while True:
        counts = {ns: listed_count(await api.list(resources.PODS, namespace=ns, limit=1)) for ns in namespaces}
        left = {ns: k for ns, k in counts.items() if k}
        if not left:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            raise TimeoutError(f"pods still there after {limit:.0f} s: {left}")
        await asyncio.sleep(poll)


class Arrivals:
    """Watches pods of one namespace: when each name first appeared, and when it was first Running."""

    def __init__(self, api: ApiClient, ns: str) -> None:
        self.api, self.ns = api, ns
        self.seen: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.bound: dict[str, float] = {}
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

    def _record(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        self.seen.setdefault(name, now)
        if (obj.get("spec") or {}).get("nodeName"):
            self.bound.setdefault(name, now)
        if (obj.get("status") or {}).get("phase") == "Running":
            self.running.setdefault(name, now)

    async def _run(self) -> None:
        items, rv = await self.api.list_all(resources.PODS, namespace=self.ns)
        now = time.monotonic()
        for item in items:
            self._record(item, now)
        self._ready.set()
        while True:
            async for event in self.api.watch(resources.PODS, namespace=self.ns, resource_version=rv):
                rv = event.object.get("metadata", {}).get("resourceVersion", rv)
                if event.type in ("ADDED", "MODIFIED"):
                    self._record(event.object, time.monotonic())

    async def until(self, count: int, *, running: bool = False, limit: float = 600) -> float:
        got = self.running if running else self.seen
        deadline = time.monotonic() + limit
        while len(got) < count:
            if time.monotonic() > deadline:
                what = "Running" if running else "arrived"
                raise RuntimeError(f"only {len(got)}/{count} pods {what} in {self.ns}")
            await asyncio.sleep(0.02)
        return max(got.values())

    async def when(self, name: str, *, limit: float = 60) -> float:
        deadline = time.monotonic() + limit
        while name not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pod {name} never arrived in {self.ns}")
            await asyncio.sleep(0.0005)
        return self.seen[name]


_TICK = os.sysconf("SC_CLK_TCK")


def _cmdline(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _group(argv: list[str], work: str) -> str | None:
    """Which part of the test bed a process is (None: not ours)."""
    line = " ".join(argv)
    if work not in line:
        return None
    side = "super" if f"{work}/super/" in line else "tenant"
    exe = Path(argv[0]).name
    if exe in ("kube-apiserver", "etcd", "kube-controller-manager"):
        return f"{side} {exe}"
    if exe in ("kube-scheduler", "kwok"):
        return exe
    if "syncer" in argv:
        return "syncer"
    if "py-spy" in exe:
        return "py-spy"
    return "operator" if "vcluster.operator" in line or "operator" in argv else f"other {exe}"


class CpuMeter:
    """CPU seconds used by each part of the test bed (and this bench) between two snapshots.

    Why: on two shared cores the burst is bounded by the CPU all parts need per pod, not by one
    component's speed; seeing each part's CPU per pod shows where the time goes.
    """

    def __init__(self, work: Path) -> None:
        self.work = str(work)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            group = _group(_cmdline(entry.name), self.work)
            if group is None:
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
        times = os.times()
        out["bench"] = times.user + times.system
        return out

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: max(0.0, v - before.get(k, 0.0)) for k, v in after.items()}


#: Parts of the test bed that are "the super cluster" in the dedicated model (CPU 0).
SUPER_GROUPS = frozenset({"super kube-apiserver", "super etcd", "super kube-controller-manager", "kube-scheduler",
                          "kwok"})


def pin_testbed(work: str, model: str) -> dict[str, int]:
    """Set the CPU affinity of every thread of the test bed's processes (and this bench's) for ``model``.

    ``"dedicated"``: the super cluster (:data:`SUPER_GROUPS`) on CPU 0, everything else (tenant
    control planes, syncer, operator, this bench) on CPU 1, as if the super cluster had its own
    machine; ``"shared"``: every process on every CPU.  Processes are found the way
    :class:`CpuMeter` finds them (their command line names the bench's work folder), so a syncer
    or control plane started later is pinned by the next call.  Returns processes pinned per CPU set.
    """
    cpus = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    counts: dict[str, int] = {}

    def target(group: str) -> set[int]:
        if model == "shared" or len(cpus) < 2:
            return set(cpus)
        return {cpus[0]} if group in SUPER_GROUPS else {cpus[1]}

    pids: list[tuple[str, str]] = [(str(os.getpid()), "bench")]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != pids[0][0]:
            group = _group(_cmdline(entry.name), work)
            if group is not None:
                pids.append((entry.name, group))
    for pid, group in pids:
        want = target(group)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):  # a thread that just ended
                    os.sched_setaffinity(int(task.name), want)
            key = ",".join(map(str, sorted(want)))
            counts[key] = counts.get(key, 0) + 1
    return counts


def free_port() -> int:
    """A free TCP port on loopback (for a child's metrics endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_counts(metrics: str, side: str) -> dict[str, float]:
    """Requests by verb and resource (``apiserver_request_total``, all codes) and watch events sent by
    kind (``apiserver_watch_events_total``), keyed ``"<side> <verb> <resource>[/<sub>]"``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "apiserver_watch_events_total":
                key = f"{side} watch-event {labels.get('kind') or labels.get('resource', '?')}"
            elif sample.name == "apiserver_request_total":
                sub = labels.get("subresource")
                key = f"{side} {labels.get('verb')} {labels.get('resource')}{'/' + sub if sub else ''}"
            else:
                continue
            out[key] = out.get(key, 0.0) + sample.value
    return out


class RequestMeter:
    """What each apiserver was asked per stage, from its own metrics.

    Why: the CPU table says the tenant apiservers cost most in the syncer burst; this says for which
    requests (and watch events) — the count per pod of each verb on each resource.
    """

    def __init__(self, sup: ApiClient, tapis: list[ApiClient]) -> None:
        self.sup, self.tapis = sup, tapis

    async def snapshot(self) -> dict[str, float]:
        texts = await asyncio.gather(self.sup.request("GET", "/metrics", raw=True),
                                     *(api.request("GET", "/metrics", raw=True) for api in self.tapis))
        out = request_counts(texts[0], "super")
        for text in texts[1:]:
            for k, v in request_counts(text, "tenant").items():
                out[k] = out.get(k, 0.0) + v
        return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class Profiled(SyncerProcess):
    """The syncer child with ``py-spy record`` attached to each incarnation (``--py-spy DIR``)."""

    def __init__(self, *args: Any, out_dir: Path | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out_dir = out_dir
        self.spies: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        super().start()
        if self.out_dir is None or self.proc is None:
            return
        out = self.out_dir / f"syncer-{len(self.spies)}.txt"
        self.spies.append(subprocess.Popen(
            ["py-spy", "record", "--pid", str(self.proc.pid), "--rate", "200", "--format", "raw",
             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        super().stop()
        for spy in self.spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)


class Bench:
    """The measures of one run; ``rounds[i][measure]`` and the load average around each round."""

    def __init__(self, super_: Super, tenants: list[TenantHandle], syncer: SyncerProcess, n: int,
                 burst_n: int, *, model: str = "shared", metrics_port: int = 0) -> None:
        self.super_, self.tenants, self.syncer, self.n, self.burst_n = super_, tenants, syncer, n, burst_n
        #: "shared" (every process on every core) or "dedicated" (the super cluster on CPU 0, the rest on
        #: CPU 1): :func:`pin_testbed` before every measured block.
        self.model = model
        #: The syncer's /metrics port (its queue depth: no stage starts with the syncer still busy).
        self.metrics_port = metrics_port
        #: For the plots: seconds after the start when each pod was Running, per burst kind, last round;
        #: light-load latencies (ms) over all rounds.
        self.curves: dict[str, list[float]] = {}
        #: Raw CPU seconds of the whole test bed in the last measured block (per-round CPU per pod).
        self.last_cpu = 0.0
        self.latencies: dict[str, list[float]] = {}
        self.run = uuid.uuid4().hex[:4]
        self.rounds: list[dict[str, float]] = []
        #: CPU seconds per part of the test bed, per stage name, summed over rounds.
        self.cpu: dict[str, dict[str, float]] = {}
        self.meter: CpuMeter | None = None
        self.requests: RequestMeter | None = None
        #: Requests and watch events per apiserver side, per stage name, summed over rounds.
        self.request_counts: dict[str, dict[str, float]] = {}
        self.direct_rates: list[float] = []
        #: Per round, CPU cores each part used while the bench did nothing for 3 s.
        self.idle: list[dict[str, float]] = []
        self.loads: list[tuple[str, str]] = []
        self.sup: ApiClient
        self.tapis: list[ApiClient] = []
        #: Whether each round ends with the quiet tenant's stage (:meth:`fairness`): the first model's.
        self.quiet_stage = False
        #: The tenants' super-namespace policy (LimitRange, ResourceQuota) as found: the direct client's
        #: namespaces get copies, so both sides meet the same admission (since round 9; empty: bare).
        self.policy: dict[str, dict[str, Any]] = {}
        #: Whether to look the policy up and copy it (``--bare-direct``: no, round 6-8's bare namespaces).
        self.policy_parity = True

    async def direct_namespace(self, ns: str) -> None:
        """A namespace of the direct client, with copies of the tenants' super-namespace policy."""
        await ensure_namespace(self.sup, ns)
        for resource, obj in direct_policy(self.policy, ns):
            with contextlib.suppress(AlreadyExists):
                await self.sup.create(resource, obj, namespace=ns)

    @contextlib.asynccontextmanager
    async def measure(self, stage: str) -> AsyncIterator[None]:
        """CPU seconds each part of the test bed used during the block, summed per stage over rounds.

        The block starts once the syncer's queue is empty (the work of an earlier stage, e.g. the
        start-up re-check of every tenant object after the drain's restart, is not charged to it),
        with the test bed pinned for this bench's model.
        """
        await self.settle()
        if self.meter:
            pin_testbed(self.meter.work, self.model)
        before = self.meter.snapshot() if self.meter else {}
        requests = await self.requests.snapshot() if self.requests else {}
        wall = time.monotonic()
        yield
        if self.requests:
            after = await self.requests.snapshot()
            counted = self.request_counts.setdefault(stage, {})
            for k, v in after.items():
                counted[k] = counted.get(k, 0.0) + v - requests.get(k, 0.0)
        if self.meter:
            used = CpuMeter.used(before, self.meter.snapshot())
            used["wall"] = time.monotonic() - wall
            self.last_cpu = sum(v for k, v in used.items() if k != "wall")
            total = self.cpu.setdefault(stage, {})
            for k, v in used.items():
                total[k] = total.get(k, 0.0) + v

    def queue_depth(self) -> float | None:
        """Keys in the syncer's queue (its ``vc_syncer_queue_depth``), None when it does not answer."""
        if not self.metrics_port:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vc_syncer_queue_depth{"))

    async def settle(self, limit: float = 120) -> None:
        """Until the syncer's queue is empty twice in a row, 0.2 s apart (no-op when it is stopped)."""
        if self.syncer.proc is None or self.syncer.proc.poll() is not None:
            return
        deadline, zeros = time.monotonic() + limit, 0
        while zeros < 2 and time.monotonic() < deadline:
            depth = self.queue_depth()
            zeros = zeros + 1 if depth == 0 else 0
            await asyncio.sleep(0.2)

    # ---- drain pair ----------------------------------------------------------------
    async def direct_create(self, r: int, out: dict[str, float]) -> None:
        """The drain's baseline, measured twice (before and after the drain: A-B-A), averaged."""
        ns = f"direct-{self.run}-{r}-{len(self.direct_rates)}"
        await self.direct_namespace(ns)
        async with self.measure("direct create"):
            secs = await create_pods(self.sup, ns, [f"d-{i}" for i in range(self.n)])
        self.direct_rates.append(self.n / secs)
        print(f"  direct create: {self.n} pods in {secs:.2f}s = {self.n / secs:.0f}/s")

    async def direct_create_bare(self, r: int, out: dict[str, float]) -> None:
        """The drain's baseline once more, in a namespace without the policy objects: what their admission
        (LimitRanger, quota) costs the direct client (printed; not part of the ratios)."""
        if not self.policy:
            return
        ns = f"direct-bare-{self.run}-{r}"
        await ensure_namespace(self.sup, ns)
        async with self.measure("direct create, bare namespace"):
            secs = await create_pods(self.sup, ns, [f"d-{i}" for i in range(self.n)])
        out["direct_bare_rate"] = self.n / secs
        print(f"  direct create in a namespace without LimitRange/ResourceQuota: {self.n} pods in {secs:.2f}s = "
              f"{self.n / secs:.0f}/s")

    async def drain(self, r: int, out: dict[str, float]) -> None:
        ns = f"drain-{self.run}-{r}"
        self.syncer.stop()
        for api in self.tapis:
            await ensure_namespace(api, ns)
        counts = split(self.n, len(self.tapis))
        # The tenant-only stage: the T tenant apiservers take N creates, the syncer off.
        async with self.measure("tenant-only"):
            secs = max(await asyncio.gather(*(
                create_pods(api, ns, [f"b-{i}" for i in range(k)])
                for api, k in zip(self.tapis, counts, strict=True))))
        out["tenant_only_rate"] = self.n / secs
        p_nss = [naming.super_namespace(t.cluster_key, ns) for t in self.tenants]
        async with contextlib.AsyncExitStack() as stack:
            arrs = [await stack.enter_async_context(Arrivals(self.sup, p_ns)) for p_ns in p_nss]
            async with self.measure("drain (+ start-up)"):
                self.syncer.start()
                if self.meter:
                    pin_testbed(self.meter.work, self.model)
                last = max([await a.until(k) for a, k in zip(arrs, counts, strict=True)])
            first = min(min(a.seen.values()) for a in arrs)
        out["drain_rate"] = (self.n - 1) / (last - first)
        print(f"  tenant-only creates (syncer off, {len(self.tapis)} tenants): {out['tenant_only_rate']:.0f}/s; "
              f"backlog drain: {out['drain_rate']:.0f}/s")

    # ---- burst pair (pods run) --------------------------------------------------------
    async def direct_burst(self, r: int, out: dict[str, float]) -> None:
        nss = [f"direct-run-{self.run}-{r}-{i}" for i in range(len(self.tapis))]
        for ns in nss:
            await self.direct_namespace(ns)
        counts = split(self.burst_n, len(nss))
        async with contextlib.AsyncExitStack() as stack:
            arrs = [await stack.enter_async_context(Arrivals(self.sup, ns)) for ns in nss]
            async with self.measure("direct burst"):
                start = time.monotonic()
                await asyncio.gather(*(create_pods(self.sup, ns, [f"r-{i}" for i in range(k)], scheduled=True,
                                                   concurrency=CONCURRENCY // len(nss) + 1)
                                       for ns, k in zip(nss, counts, strict=True)))
                created = time.monotonic()
                last = max([await a.until(k, running=True) for a, k in zip(arrs, counts, strict=True)])
            self.curves["direct: Running"] = [t - start for a in arrs for t in a.running.values()]
        out["direct_burst_s"] = last - start
        out["direct_burst_cpu_ms"] = self.last_cpu / self.burst_n * 1000
        out["direct_burst_created_s"] = created - start
        print(f"  direct burst: {self.burst_n} pods created in {created - start:.2f}s, all Running after "
              f"{out['direct_burst_s']:.2f}s")

    async def burst(self, r: int, out: dict[str, float]) -> None:
        ns = f"burst-{self.run}-{r}"
        counts = split(self.burst_n, len(self.tapis))
        for api in self.tapis:
            await ensure_namespace(api, ns)
        p_nss = [naming.super_namespace(t.cluster_key, ns) for t in self.tenants]
        for p_ns in p_nss:  # the syncer makes them; wait for their default ServiceAccount
            await ensure_namespace(self.sup, p_ns)
        async with contextlib.AsyncExitStack() as stack:
            v_arrs = [await stack.enter_async_context(Arrivals(api, ns)) for api in self.tapis]
            p_arrs = [await stack.enter_async_context(Arrivals(self.sup, p_ns)) for p_ns in p_nss]
            page = await self.sup.list(resources.PODS, limit=1)
            before_pods = listed_count(page)
            async with self.measure("syncer burst"):
                start = time.monotonic()
                created = max(await asyncio.gather(*(
                    create_pods(api, ns, [f"u-{i}" for i in range(k)], scheduled=True)
                    for api, k in zip(self.tapis, counts, strict=True))))
                last = max([await a.until(k, running=True) for a, k in zip(v_arrs, counts, strict=True)])
            in_super = max(max(a.seen.values()) for a in p_arrs)
            super_running = max(max(a.running.values()) for a in p_arrs)
            self.curves["synced: in super"] = [t - start for a in p_arrs for t in a.seen.values()]
            self.curves["synced: Running in super"] = [t - start for a in p_arrs for t in a.running.values()]
            self.curves["synced: Running in the tenants"] = [t - start for a in v_arrs for t in a.running.values()]
        out["burst_s"] = last - start
        out["burst_cpu_ms"] = self.last_cpu / self.burst_n * 1000
        out["super_pods_before_burst"] = float(before_pods)
        out["burst_tenant_create_rate"] = self.burst_n / created
        out["burst_super_arrived_s"] = in_super - start
        out["burst_super_running_s"] = super_running - start
        print(f"  syncer burst: tenant creates done after {created:.2f}s ({out['burst_tenant_create_rate']:.0f}/s), "
              f"all in super after {out['burst_super_arrived_s']:.2f}s, Running in super after "
              f"{out['burst_super_running_s']:.2f}s, Running in the tenants after {out['burst_s']:.2f}s")

    # ---- light load --------------------------------------------------------------------
    async def latency(self, r: int, out: dict[str, float], *, k: int = 40) -> None:
        ta, a = self.tapis[0], self.tenants[0]
        ns = f"lat-{self.run}-{r}"
        await self.direct_namespace(ns)
        await ensure_namespace(ta, ns)
        p_ns = naming.super_namespace(a.cluster_key, ns)
        await ensure_namespace(self.sup, p_ns)
        direct_lat, synced_lat, tenant_lat = [], [], []
        async with Arrivals(self.sup, ns) as darr, Arrivals(self.sup, p_ns) as arr, Arrivals(ta, ns) as v_arr:
            for i in range(k):  # interleaved: one direct, one through the syncer
                t = time.monotonic()
                await self.sup.create(resources.PODS, pod(f"l-{i}", ns))
                direct_lat.append(await darr.when(f"l-{i}") - t)
                t = time.monotonic()
                await ta.create(resources.PODS, pod(f"l-{i}", ns))
                synced_lat.append(await arr.when(f"l-{i}") - t)
                tenant_lat.append(await v_arr.when(f"l-{i}") - t)
        self.latencies.setdefault("direct create → watched", []).extend(x * 1000 for x in direct_lat)
        self.latencies.setdefault("tenant create → super watched", []).extend(x * 1000 for x in synced_lat)
        self.latencies.setdefault("tenant create → tenant watched", []).extend(x * 1000 for x in tenant_lat)
        out["direct_latency_ms"] = statistics.median(direct_lat) * 1000
        out["synced_latency_ms"] = statistics.median(synced_lat) * 1000
        out["tenant_latency_ms"] = statistics.median(tenant_lat) * 1000
        out["added_latency_ms"] = out["synced_latency_ms"] - out["direct_latency_ms"]
        # What the syncer itself adds: tenant watched → super watched, beyond a direct create → watched.
        out["syncer_added_latency_ms"] = statistics.median(
            s - v for s, v in zip(synced_lat, tenant_lat, strict=True)) * 1000 - out["direct_latency_ms"]
        print(f"  light load medians: direct create→watched {out['direct_latency_ms']:.1f} ms; tenant "
              f"create→tenant watched {out['tenant_latency_ms']:.1f} ms; tenant create→super watched "
              f"{out['synced_latency_ms']:.1f} ms; added end to end {out['added_latency_ms']:.1f} ms, by the "
              f"syncer itself {out['syncer_added_latency_ms']:.1f} ms")

    async def one_round(self, r: int) -> None:
        out: dict[str, float] = {}
        start_load = load()
        print(f"round {r + 1}: load average (1/5 min) {start_load}; burst: "
              f"{'baseline' if r % 2 == 0 else 'syncer'} first")
        await self.settle()
        if self.meter:
            pin_testbed(self.meter.work, self.model)
        before = self.meter.snapshot() if self.meter else {}
        await asyncio.sleep(3)  # the test bed's background CPU (leases, heartbeats, watches)
        if self.meter:
            used = CpuMeter.used(before, self.meter.snapshot())
            self.idle.append({g: v / 3 for g, v in used.items()})
        # Drain: A-B-A (direct before and after); burst (too long to repeat): A-B or B-A by round.
        self.direct_rates = []
        stages: list[Callable[[int, dict[str, float]], Awaitable[None]]] = [
            self.direct_create, self.drain, self.direct_create, self.direct_create_bare,
            *((self.direct_burst, self.burst) if r % 2 == 0 else (self.burst, self.direct_burst))]
        for stage in stages:
            await stage(r, out)
        out["direct_rate"] = statistics.mean(self.direct_rates)
        await self.latency(r, out)
        if self.quiet_stage:
            out.update(await self.fairness(r))
        out["drain_ratio"] = out["drain_rate"] / out["direct_rate"]
        out["burst_ratio"] = out["direct_burst_s"] / out["burst_s"]
        # The sync pipeline alone: the same burst's pods all in the super cluster, against creating them there.
        out["burst_arrival_ratio"] = out["direct_burst_created_s"] / out["burst_super_arrived_s"]
        out["tenant_only_ratio"] = out["tenant_only_rate"] / out["direct_rate"]
        self.rounds.append(out)
        self.loads.append((start_load, load()))
        print(f"  round {r + 1}: drain ratio {out['drain_ratio']:.2f}, burst ratio {out['burst_ratio']:.2f}; "
              f"load average at end {self.loads[-1][1]}")

    async def fairness(self, r: int) -> dict[str, float]:
        """Two greedy tenants flood the queue (each creates N pods at full speed, faster than the syncer
        drains them); meanwhile a quiet tenant creates one pod at a time, 100 ms apart.  Every round
        (since round 8), in the bench's first model: the target must hold in every run."""
        out: dict[str, float] = {}
        n = self.n
        (a, b, c), (ta, tb, tc), sup = self.tenants, self.tapis, self.sup
        await self.settle()
        if self.meter:
            pin_testbed(self.meter.work, self.model)
        ns = f"fair-{self.run}-{r}"
        for api in (ta, tb, tc):
            await ensure_namespace(api, ns)
        direct_ns = f"fair-direct-{self.run}-{r}"
        await self.direct_namespace(direct_ns)
        p_nss = [naming.super_namespace(t.cluster_key, ns) for t in (a, b, c)]
        for p_ns in p_nss:
            await ensure_namespace(sup, p_ns)
        quiet: list[float] = []
        direct_quiet: list[float] = []
        #: The quiet pods' time split: the tenant create call, its tenant watch event, the super watch event.
        split_create: list[float] = []
        split_tenant_watch: list[float] = []
        split_sync: list[float] = []
        async with Arrivals(sup, p_nss[2]) as arr, Arrivals(sup, p_nss[0]) as ga, Arrivals(sup, p_nss[1]) as gb, \
                Arrivals(sup, direct_ns) as darr, Arrivals(tc, ns) as v_arr:
            flood = asyncio.gather(create_pods(ta, ns, [f"g-{i}" for i in range(n)]),
                                   create_pods(tb, ns, [f"g-{i}" for i in range(n)]))
            await ga.until(1)  # the flood is arriving
            i = 0
            while len(ga.seen) < n or len(gb.seen) < n:
                t = time.monotonic()
                await tc.create(resources.PODS, pod(f"q-{i}", ns))
                created = time.monotonic()
                quiet.append(await arr.when(f"q-{i}", limit=120) - t)
                v_seen = await v_arr.when(f"q-{i}")
                split_create.append(created - t)
                split_tenant_watch.append(v_seen - t)
                split_sync.append(arr.seen[f"q-{i}"] - v_seen)
                t = time.monotonic()
                await sup.create(resources.PODS, pod(f"q-{i}", direct_ns))
                direct_quiet.append(await darr.when(f"q-{i}") - t)
                i += 1
                await asyncio.sleep(0.1)
            await flood
        # The flood's 2 x N pending pods (and the quiet ones) would stay in the super cluster: every later
        # stage would run against them (round 8: ~1,200 more per round).  Delete them in the tenants (the
        # syncer deletes their super copies) and the direct ones in the super cluster, and wait until gone.
        start = time.monotonic()
        deleted = sum(await asyncio.gather(*(delete_pods(api, ns) for api in (ta, tb, tc)),
                                           delete_pods(sup, direct_ns)))
        await until_no_pods(sup, [*p_nss, direct_ns])
        print(f"  quiet stage's {deleted} pods deleted, gone from the super cluster after "
              f"{time.monotonic() - start:.1f} s")
        out["quiet_p99_s"] = p(quiet, 0.99)
        out["quiet_direct_p99_s"] = p(direct_quiet, 0.99)
        out["quiet_samples"] = float(len(quiet))
        out["quiet_sync_p99_s"] = p(split_sync, 0.99)
        print(f"  quiet tenant while 2 tenants flood {n} pods each: {len(quiet)} pods, median "
              f"{statistics.median(quiet)*1000:.0f} ms, p99 {out['quiet_p99_s']*1000:.0f} ms (target <= 1000 ms); "
              f"direct creates meanwhile: median {statistics.median(direct_quiet)*1000:.0f} ms, "
              f"p99 {out['quiet_direct_p99_s']*1000:.0f} ms")
        for what, values in (("tenant create call", split_create), ("tenant create → tenant watched",
                                                                    split_tenant_watch),
                             ("tenant watched → super watched (the syncer)", split_sync)):
            print(f"    quiet pods, {what}: median {statistics.median(values)*1000:.0f} ms, "
                  f"p99 {p(values, 0.99)*1000:.0f} ms")
        return out

    async def main(self, rounds: int) -> dict[str, float]:
        """This bench alone (one model): the rounds (each with the quiet tenant's stage), the summary."""
        return await run_models([self], rounds)

    def summary(self) -> None:
        print("\nper round (load average 1/5 min at start → end):")
        for i, (out, (l0, l1)) in enumerate(zip(self.rounds, self.loads, strict=True)):
            print(f"  round {i + 1} [{l0} → {l1}]: direct {out['direct_rate']:.0f}/s, drain {out['drain_rate']:.0f}/s"
                  f" ({out['drain_ratio']:.2f}); direct burst {out['direct_burst_s']:.1f}s, syncer burst "
                  f"{out['burst_s']:.1f}s ({out['burst_ratio']:.2f}; in super {out['burst_arrival_ratio']:.2f}); "
                  f"tenant-only {out['tenant_only_rate']:.0f}/s"
                  f" ({out['tenant_only_ratio']:.2f} of direct); added latency {out['syncer_added_latency_ms']:.1f}"
                  f" ms by the syncer, {out['added_latency_ms']:.1f} ms end to end"
                  + (f"; quiet tenant p99 {out['quiet_p99_s'] * 1000:.0f} ms ({out['quiet_samples']:.0f} pods; "
                     f"direct meanwhile {out['quiet_direct_p99_s'] * 1000:.0f} ms)" if "quiet_p99_s" in out else ""))
        print("\nmedian [min–max] over rounds:")
        targets = {"drain_ratio": ">= 0.9", "burst_ratio": ">= 0.9", "syncer_added_latency_ms": "<= 2 ms",
                   "quiet_p99_s": "<= 1 s, every round"}
        for key in self.rounds[0]:
            values = [out[key] for out in self.rounds]
            note = f"   target {targets[key]}" if key in targets else ""
            print(f"  {key:28s} {statistics.median(values):9.3g}  [{min(values):.3g}–{max(values):.3g}]{note}")
        pods = {"direct create": 2 * self.n, "direct create, bare namespace": self.n, "tenant-only": self.n,
                "drain (+ start-up)": self.n,
                "direct burst": self.burst_n, "syncer burst": self.burst_n}
        if self.cpu:
            # Background: the lowest idle rate seen over the rounds (an idle window can catch leftovers).
            idle = {g: min(rates.get(g, 0.0) for rates in self.idle) for rates in self.idle for g in rates}
            print("\nCPU milliseconds per pod by part of the test bed over all rounds, above its background "
                  "(the lowest of the 3-s idle windows, one per round); 'wall': the stage's milliseconds per "
                  "pod; the bench's own watches are in 'bench':")
            groups = sorted({g for used in self.cpu.values() for g in used} - {"wall"})
            stages = [stage for stage in self.cpu if stage in pods]
            k = {stage: pods[stage] * len(self.rounds) / 1000 for stage in stages}

            def cell(stage: str, group: str) -> float:
                used = self.cpu[stage]
                return used.get(group, 0.0) - idle.get(group, 0.0) * used.get("wall", 0.0)

            print(f"  {'':26s}" + "".join(f"{stage[:18]:>19s}" for stage in stages))
            for g in [*groups, "all", "wall"]:
                cells = [sum(cell(s, x) for x in groups) if g == "all" else self.cpu[s].get("wall", 0.0)
                         if g == "wall" else cell(s, g) for s in stages]
                print(f"  {g:26s}" + "".join(f"{v / k[s]:19.2f}" for v, s in zip(cells, stages, strict=True)))
            print("  background CPU (cores): " + ", ".join(f"{g} {idle.get(g, 0.0):.2f}" for g in groups))
            self._ceilings(groups, pods)
        if self.request_counts:
            print("\nrequests and watch events per pod, by apiserver side (>= 0.05 per pod in some stage):")
            stages = [stage for stage in self.request_counts if stage in pods]
            keys = sorted({k for c in self.request_counts.values() for k in c})
            print(f"  {'':40s}" + "".join(f"{stage[:18]:>19s}" for stage in stages))
            for key in keys:
                per_pod = [self.request_counts[s].get(key, 0.0) / (pods[s] * len(self.rounds)) for s in stages]
                if max(per_pod) >= 0.05:
                    print(f"  {key[:40]:40s}" + "".join(f"{v:19.2f}" for v in per_pod))


    def _ceilings(self, groups: list[str], pods: dict[str, int]) -> None:
        """How busy the machine was per stage, and the ratio a syncer costing no CPU at all would reach.

        Raw CPU (background included) per pod: when a stage keeps every core busy, its wall time is its
        CPU divided by the cores, so the ratio of two saturated stages is the inverse ratio of their CPU
        per pod.  Taking the syncer process's own CPU out of the synced stage gives the ceiling set by
        everything else it needs (the tenant control planes' work, the super side's extra watch traffic).
        """
        cores = os.cpu_count() or 1
        raw = {s: sum(self.cpu[s].get(g, 0.0) for g in groups) for s in self.cpu if s in pods}
        per_pod = {s: raw[s] / (pods[s] * len(self.rounds)) * 1000 for s in raw}
        busy = {s: raw[s] / self.cpu[s]["wall"] for s in raw if self.cpu[s].get("wall")}
        print(f"\nwhole test bed, raw CPU per pod (background included) and cores busy (of {cores}):")
        for s in raw:
            print(f"  {s:26s} {per_pod[s]:8.2f} ms/pod   {busy.get(s, 0.0):5.2f} cores")
        for direct, synced in (("direct create", "drain (+ start-up)"), ("direct burst", "syncer burst")):
            if direct not in raw or synced not in raw:
                continue
            syncer_ms = self.cpu[synced].get("syncer", 0.0) / (pods[synced] * len(self.rounds)) * 1000
            print(f"  {synced}: CPU ratio {per_pod[direct] / per_pod[synced]:.2f}; with a syncer using no CPU "
                  f"(its {syncer_ms:.2f} ms/pod taken out) {per_pod[direct] / (per_pod[synced] - syncer_ms):.2f}")


async def run_models(benches: list[Bench], rounds: int, *, plots_dir: Path | None = None) -> dict[str, float]:
    """Each round once per model (the models' order alternating by round), on one test bed and one
    syncer (the quiet tenant's stage in each round of the shared model); then each model's summary, the
    models side by side, the quiet tenant's p99 of every round."""
    first = benches[0]
    assert all(t.kubeconfig_path is not None for t in first.tenants)  # created with wait=True
    async with contextlib.AsyncExitStack() as stack:
        sup = await stack.enter_async_context(ApiClient.from_kubeconfig(first.super_.kubeconfig))
        tapis = [await stack.enter_async_context(ApiClient.from_kubeconfig(str(t.kubeconfig_path)))
                 for t in first.tenants]
        for bench in benches:
            bench.sup, bench.tapis, bench.requests = sup, tapis, RequestMeter(sup, tapis)
        quiet = next((b for b in benches if b.model == "shared"), first)
        quiet.quiet_stage = True
        first.syncer.start()
        if first.policy_parity:
            policy = await tenant_policy(sup, first.tenants[0].cluster_key)
            found = "; ".join(f"{kind} {obj.get('spec')}" for kind, obj in policy.items()) or "none found"
            print(f"direct namespaces get the tenants' super-namespace policy: {found}")
            for bench in benches:
                bench.policy = policy
        for r in range(rounds):
            for bench in benches[r % len(benches):] + benches[:r % len(benches)]:
                print(f"== model {bench.model}", flush=True)
                await bench.one_round(r)
        for bench in benches:
            print(f"\n==== model: {bench.model} ====")
            bench.summary()
        if len(benches) > 1:
            side_by_side(benches)
        values = [out["quiet_p99_s"] for out in quiet.rounds]
        print(f"\nquiet tenant p99 per round ({quiet.model} model; target <= 1 s in every round): "
              + ", ".join(f"{v * 1000:.0f} ms" for v in values)
              + f" -> {'met' if max(values) <= 1.0 else 'MISSED'} in {sum(v <= 1.0 for v in values)} of {len(values)}")
        results = {"quiet_p99_max_s": max(values), "quiet_p99_median_s": statistics.median(values)}
        if plots_dir is not None:
            write_plots(benches, plots_dir)
        for bench in benches:
            for key in ("drain_ratio", "burst_ratio", "burst_arrival_ratio", "syncer_added_latency_ms"):
                results[f"{bench.model}_{key}"] = statistics.median(out[key] for out in bench.rounds)
        return results


def side_by_side(benches: list[Bench]) -> None:
    """Median [min–max] of each measure per model, in columns; CPU per pod of the synced stages."""
    print("\nmodels side by side, median [min–max] over rounds:")
    print(f"  {'':28s}" + "".join(f"{b.model:>24s}" for b in benches))
    for key in [k for k in benches[0].rounds[0] if all(k in b.rounds[0] for b in benches)]:
        cells = []
        for b in benches:
            values = [out[key] for out in b.rounds]
            cells.append(f"{statistics.median(values):.3g} [{min(values):.3g}–{max(values):.3g}]")
        print(f"  {key:28s}" + "".join(f"{c:>24s}" for c in cells))
    pods = {"direct create": 2, "drain (+ start-up)": 1, "direct burst": 0, "syncer burst": 0}
    print("  CPU ms per pod over the test bed (raw, background included):")
    for stage, mult in pods.items():
        cells = []
        for b in benches:
            n = (b.n * mult if mult else b.burst_n) * len(b.rounds)
            used = b.cpu.get(stage, {})
            cells.append(f"{sum(v for k, v in used.items() if k != 'wall') / n * 1000:.1f}")
        print(f"    {stage:26s}" + "".join(f"{c:>24s}" for c in cells))


def write_plots(benches: list[Bench], out: Path) -> None:
    """The pictures of docs/benchmarks-syncer.md: burst progress per model (last round), light-load
    latency CDFs (all rounds), CPU per pod by component and stage per model."""
    import plots  # matplotlib is a dev extra; only this option needs it

    for b in benches:
        if b.curves:
            plots.pods_over_time(b.curves, out / f"burst-{b.model}.png",
                                 title=f"burst of {b.burst_n} pods, {b.model} model (last round)")
    plots.cdf({f"{label} ({b.model})": values for b in benches for label, values in b.latencies.items()
               if "tenant watched" not in label}, out / "latency-cdf.png",
              title="light load: create → watched", xlabel="milliseconds")
    for b in benches:
        if not b.cpu:
            continue
        idle = {g: min(rates.get(g, 0.0) for rates in b.idle) for rates in b.idle for g in rates}
        pods = {"direct create": 2 * b.n, "drain (+ start-up)": b.n, "direct burst": b.burst_n,
                "syncer burst": b.burst_n}
        table = {stage: {_component(g): (v - idle.get(g, 0.0) * used.get("wall", 0.0))
                         / (pods[stage] * len(b.rounds)) * 1000
                         for g, v in used.items() if g != "wall"}
                 for stage, used in b.cpu.items() if stage in pods}
        merged = {stage: _merge(parts) for stage, parts in table.items()}
        plots.stacked_bars(merged, out / f"cpu-{b.model}.png",
                           title=f"CPU per pod by component, above background ({b.model} model)",
                           ylabel="CPU milliseconds per pod")


def _component(group: str) -> str:
    return "bench client" if group == "bench" else group


def _merge(parts: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in parts.items():
        out[k] = out.get(k, 0.0) + v
    return out


async def memory(super_: Super, *, tenants: int = 3) -> dict[str, float]:
    """The syncer in-process over everything synced so far: memory its code holds, per synced pod."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    async with ApiClient.from_kubeconfig(super_.kubeconfig) as sup:
        syncer = Syncer(sup, CrdTenantSource(sup), settings=SyncerSettings(patrol_period=0, workers=8))
        task = asyncio.create_task(syncer.run())
        await syncer.ready.wait()
        while len(syncer.tenants) < tenants or not all(  # noqa: ASYNC110 - polling the syncer's state
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
def super_cluster(kubeconfig: str | None, work: Path, *, nodes: int) -> Iterator[Super]:
    if kubeconfig:
        yield Super(Path(kubeconfig))
        return
    launcher = LocalSuperCluster(TestbedSettings(state_dir=work / "super", nodes=nodes,
                                                  binaries=BinarySettings.from_env()))
    launcher.start()
    try:
        yield Super(launcher.kubeconfig)
    finally:
        launcher.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=600, help="N: pods per stage (default 600)")
    parser.add_argument("--burst-pods", type=int, default=300,
                        help="pods per burst, which run on kwok nodes (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every paired measure (default 3)")
    parser.add_argument("--super-kubeconfig", default=None)
    parser.add_argument("--py-spy", default=None, metavar="DIR",
                        help="record the syncer with py-spy (raw stacks per syncer start) into DIR")
    parser.add_argument("--models", default="shared",
                        help="comma-separated machine models, each measured every round: 'shared' (every "
                             "process on both cores) and 'dedicated' (super etcd, apiserver, scheduler, "
                             "controller-manager and kwok on CPU 0; tenants, syncer, operator and this "
                             "bench on CPU 1)")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="write the PNG plots (burst progress, latency CDF, CPU per component) into DIR")
    parser.add_argument("--bare-direct", action="store_true",
                        help="the direct client's namespaces without the LimitRange and ResourceQuota every tenant "
                             "super namespace has (rounds 6-8; since round 9 both sides meet the same admission)")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if not models or set(models) - {"shared", "dedicated"}:
        parser.error("--models: a comma-separated list of shared, dedicated")
    if "dedicated" in models and len(os.sched_getaffinity(0)) < 2:
        parser.error("the dedicated model needs 2 CPUs")
    work = workdir.make("vc-bench-syncer-", keep=args.keep)
    # Running pods stay (no deletion churn between stages): two bursts of B per round and model.
    nodes = math.ceil(2 * args.burst_pods * args.rounds * len(models) / PODS_PER_NODE) + 1
    print(f"work dir: {work}; load average (1/5 min) {load()}; {nodes} kwok nodes; models {', '.join(models)}")
    began = time.monotonic()
    with super_cluster(args.super_kubeconfig, work, nodes=nodes) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        suffix = uuid.uuid4().hex[:4]
        tenants = [create_tenant(super_, f"bench-{x}-{suffix}", isolation=bench_isolation(args.pods * 2))
                   for x in "abc"]
        spy_dir = Path(args.py_spy) if args.py_spy else None
        if spy_dir is not None:
            spy_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        syncer = Profiled(super_, log_path=work / "syncer.log",
                          env={"VC_SYNCER_PATROL_PERIOD": "0", "VC_SYNCER_METRICS_PORT": str(port)}, out_dir=spy_dir)
        meter = CpuMeter(work)
        benches = [Bench(super_, tenants, syncer, args.pods, args.burst_pods, model=m, metrics_port=port)
                   for m in models]
        for bench in benches:
            bench.meter = meter
            bench.policy_parity = not args.bare_direct
        try:
            results = asyncio.run(run_models(benches, args.rounds,
                                             plots_dir=Path(args.plots) if args.plots else None))
        finally:
            syncer.stop()
        results.update(asyncio.run(memory(super_)))
    print(f"results: {', '.join(f'{k}={v:.3g}' for k, v in results.items())}")
    print(f"load average (1/5 min) at the end {load()}; the bench took {time.monotonic() - began:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
