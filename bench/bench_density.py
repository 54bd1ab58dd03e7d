"""Tenant density: what an idle tenant costs, how long a Tenant takes to be Ready, and which levers pay.

Why: issue #16 (item 4).  Forty idle tenants kept a whole core busy doing nothing, and a Tenant
took 8-11 s to become Ready against 2-3 s for a bare kube-apiserver start.  This bench starts a
super cluster, the real operator and the syncer, creates tenants one at a time (alternating the
variants, so both see the same machine), then measures over one idle window the CPU time of
every tenant process from ``/proc/<pid>/stat`` (CPU time, not wall time: another engineer's load
on the machine does not change what a tenant process burns) and prints cores per tenant by
component and variant, side by side.  Each tenant's way to Ready is traced from the operator's
own log (its UTC timestamps against the moment the bench created the Tenant): PKI, etcd up,
apiserver ready, controller-manager started, bootstrap (the default ServiceAccount) and report.

Variants (a tenant's ``spec.controlPlane.extraArgs``, see :data:`VARIANTS`): ``default`` (the
operator's flags), ``round6`` (round 6's defaults put back), and one lever at a time on top of the
default (``watchcache``, ``throttled``, ``etcd``, and round 8's Go runtime settings ``go1``, ``gogc``,
``go1gogc``, ``gomaxcpu``; ``sharedetcd``: :data:`SHARED`; round 10's ``noident``, ``identity``, ``etcdbatch``,
``etcdtick``, ``etcdfast``, ``round10``, after bench/profile_idle.py's profiles).  After the window it prints each
variant's resident memory per tenant and checks that the syncer serves every tenant: a pod created
in each (all at once) must reach the super cluster.
The work folder is removed at the end unless ``--keep`` (then the first tenant's component logs of
each variant are in ``logs-<variant>/``).

    python bench/bench_density.py [--tenants 6] [--window 60] [--variants default,round6] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402
from bench_syncer import _TICK, Super, _cmdline, free_port, load, pod, super_cluster  # noqa: E402

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.controlplane.shared_etcd import DIR as SHARED_ETCD_DIR  # noqa: E402

#: Round 6's defaults, restored through ``extraArgs`` (which override the operator's flags): the
#: apiserver with its watch cache, the lease endpoint reconciler, priority and fairness and the
#: per-minute object counts; the controller-manager with every controller but node-lifecycle and
#: client-go's default throttling (20 requests/s, burst 30).
ROUND6_APISERVER = {"watch-cache": "true", "watch-cache-sizes": "", "endpoint-reconciler-type": "lease",
                    "enable-priority-and-fairness": "true", "etcd-count-metric-poll-period": "1m"}
ROUND6_CM = {"controllers": "*,-node-lifecycle-controller", "kube-api-qps": "20", "kube-api-burst": "30"}
#: etcd of one member: raft ticks every 500 ms instead of 100 ms (measured in round 7: -0.1 % of a core
#: per tenant, but the member's first election waits for the longer election timeout: +2.2 s to Ready).
LEAN_ETCD = {"heartbeat-interval": "500", "election-timeout": "5000"}


#: kube-apiserver feature gates that turn off its identity lease (and the proxy that depends on it).
NO_IDENTITY = "APIServerIdentity=false,UnknownVersionInteroperabilityProxy=false"


def _variant(*, apiserver: dict[str, str] | None = None, cm: dict[str, str] | None = None,
             etcd: dict[str, str] | None = None) -> dict[str, Any]:
    extra = {"apiserver": apiserver or {}, "controllerManager": cm or {}, "etcd": etcd or {}}
    return {"controlPlane": {"extraArgs": {k: v for k, v in extra.items() if v}}}


#: The Go runtime's own default: one P per CPU (what the tenant processes ran with before round 8).
_ALL_CPUS = {"gomaxprocs": str(os.cpu_count() or 1)}
#: ``default``: the operator's flags as they are; the others put one lever back or add one.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "round6": _variant(apiserver=ROUND6_APISERVER, cm=ROUND6_CM),
    # the default with every watch cache back (the default keeps one, for pods: round 10)
    "watchcache": _variant(apiserver={"watch-cache-sizes": ""}),
    # round 7-9's default: no watch cache at all (the largest apiserver lever of round 7)
    "nocache": _variant(apiserver={"watch-cache": "false"}),
    # the default with client-go's throttling back (the start-up lever alone); -v=3 logs each wait
    "throttled": _variant(cm={"kube-api-qps": "20", "kube-api-burst": "30", "v": "3"}),
    "etcd": _variant(etcd=LEAN_ETCD),
    # round 8: the Go runtime of all three tenant processes (builder.GO_RUNTIME_KEYS): one P each, so the
    # runtime's background (GC workers, idle Ps spinning for work, timers) stays on one thread (the default
    # since round 8, measured against the runtime's own default, one P per CPU: ``gomaxcpu``)
    "go1": _variant(apiserver={"gomaxprocs": "1"}, cm={"gomaxprocs": "1"}, etcd={"gomaxprocs": "1"}),
    "gomaxcpu": _variant(apiserver=_ALL_CPUS, cm=_ALL_CPUS, etcd=_ALL_CPUS),
    # a collection only when the heap has grown by 4x instead of 2x (fewer idle GC cycles, more memory)
    "gogc": _variant(apiserver={"gogc": "400"}, cm={"gogc": "400"}, etcd={"gogc": "400"}),
    "go1gogc": _variant(apiserver={"gomaxprocs": "1", "gogc": "400"}, cm={"gomaxprocs": "1", "gogc": "400"},
                        etcd={"gomaxprocs": "1", "gogc": "400"}),
    # round 10 (bench/profile_idle.py's findings), each on top of the default:
    # the apiserver without its identity lease (a PUT every 10 s, its lease GC and the peer-endpoint lease
    # controller); UnknownVersionInteroperabilityProxy (beta in 1.36) depends on the identity, so both go
    "noident": _variant(apiserver={"feature-gates": NO_IDENTITY}),
    # since round 10 the default has no identity lease (builder.TENANT_APISERVER_GATES): this puts it back
    "identity": _variant(apiserver={"feature-gates": "APIServerIdentity=true"}),
    # etcd's backend commits at most once a second instead of every 100 ms (the WAL, fsynced per write,
    # keeps every write durable; the loop wakes 10 times a second even with nothing to commit)
    "etcdbatch": _variant(etcd={"backend-batch-interval": "1s"}),
    # raft ticks every 200 ms instead of 100 (a single member has no peer to send heartbeats to); the
    # first election waits 1-5 ticks of 200 ms instead of 1-10 of 100 ms: no longer on average
    "etcdtick": _variant(etcd={"heartbeat-interval": "200", "election-timeout": "1000"}),
    # the first election sooner: 1-5 ticks of 100 ms (the shortest election timeout etcd accepts for a
    # 100-ms heartbeat) instead of 1-10
    "etcdfast": _variant(etcd={"election-timeout": "500"}),
    "round10": _variant(apiserver={"feature-gates": NO_IDENTITY},
                        etcd={"backend-batch-interval": "1s", "heartbeat-interval": "200", "election-timeout": "1000"}),
    # round 8: the local backend's shared etcd (operator setting VC_OPERATOR_SHARED_ETCD), see SHARED
    # (not named "shared": that is the column of the processes every tenant shares)
    "sharedetcd": {},
}
#: Variants whose tenants are created with the operator's shared etcd on: they come after the others (the
#: operator is restarted once with the setting; the tenants made before keep their own etcd, as recorded
#: in their folders), and the shared etcd's CPU and memory are charged to them.
SHARED = frozenset({"sharedetcd"})
#: Steps of the operator log, in order: (log event, component or None, label of the step it ends).
STEPS = [
    ("operator.pki.stored", None, "create → PKI stored"),
    ("process.started", "etcd", "→ etcd started"),
    ("process.started", "kube-apiserver", "→ apiserver started (etcd healthy)"),
    ("process.started", "kube-controller-manager", "→ controller-manager started (apiserver ready)"),
    ("controlplane.local.ready", None, "→ control plane ready"),
    ("operator.tenant.ready", None, "→ Tenant Ready (bootstrap: default ServiceAccount, DNS, report)"),
]


def _ts(line: str) -> float:
    return dt.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()


def trace(log: str, key: str, created: float) -> dict[str, float]:
    """Seconds of each step of one tenant's way to Ready, from the operator log."""
    lines = [line for line in log.splitlines() if key in line]
    out: dict[str, float] = {}
    last = created
    for event, component, label in STEPS:
        for line in lines:
            if f" {event} " in line and (component is None or f"/{component} " in line):
                at = _ts(line)
                out[label] = at - last
                last = at
                break
    out["total"] = last - created
    return out


def idle_cpu(work: str, keys: dict[str, str], window: float) -> dict[str, dict[str, float]]:
    """Cores per process kind over ``window`` seconds: by variant for tenant processes (summed over the
    variant's tenants), plus the shared ones (operator, syncer, super cluster)."""
    def snapshot() -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            argv = _cmdline(entry.name)
            line = " ".join(argv)
            if work not in line:
                continue
            exe = Path(argv[0]).name if argv else "?"
            key = next((k for k in keys if k in line), None)
            if key is not None:
                where, what = keys[key], exe if exe in ("kube-apiserver", "etcd", "kube-controller-manager",
                                                      "coredns") else f"other {exe}"
            elif "vcluster.operator" in line:
                where, what = "shared", "operator"
            elif "syncer" in argv:
                where, what = "shared", "syncer"
            else:
                where, what = "shared", f"super {exe}"
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[(where, what)] = out.get((where, what), 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
        return out

    before, t0 = snapshot(), time.monotonic()
    time.sleep(window)
    after, wall = snapshot(), time.monotonic() - t0
    cores: dict[str, dict[str, float]] = {}
    for (where, what), secs in after.items():
        cores.setdefault(where, {})[what] = max(0.0, secs - before.get((where, what), 0.0)) / wall
    return cores


def rss_mib(work: str, keys: dict[str, str]) -> dict[str, dict[str, float]]:
    """Resident memory (MiB) per process kind, summed by variant over the variant's tenants (``VmRSS``)."""
    out: dict[str, dict[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(entry.name)
        line = " ".join(argv)
        key = next((k for k in keys if k in line), None) if work in line else None
        if key is None or not argv:
            continue
        try:
            rss = next(int(ln.split()[1]) for ln in (entry / "status").read_text().splitlines()
                       if ln.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            continue
        what = Path(argv[0]).name
        out.setdefault(keys[key], {})[what] = out.get(keys[key], {}).get(what, 0.0) + rss / 1024
        with contextlib.suppress(OSError):  # that the Go runtime settings reached the process
            go = sorted(e for e in (entry / "environ").read_bytes().decode(errors="replace").split("\0")
                        if e.startswith(("GOMAXPROCS=", "GOGC=")))
            out.setdefault(keys[key], {})[f"env {what} {' '.join(go) or '-'}"] = 0.0
    return out


def syncing(super_: Super, tenants: list[TenantHandle], *, limit: float = 120.0) -> dict[str, float]:
    """Whether the syncer serves every tenant: one pod created in each tenant (all at once), then seconds
    until each is in the super cluster (its namespace there, by :func:`naming.super_namespace`)."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    began = time.monotonic()
    for t in tenants:
        t.kubectl("apply", "-f", "-", input=json.dumps(pod(name, "default", scheduled=True)))
    wanted = {naming.super_namespace(t.cluster_key, "default"): t.name for t in tenants}
    seen: dict[str, float] = {}
    while len(seen) < len(wanted) and time.monotonic() - began < limit:
        got = json.loads(super_.kubectl("get", "pods", "-A", "--field-selector", f"metadata.name={name}",
                                        "-o", "json").stdout)
        for item in got.get("items", []):
            tenant = wanted.get(item["metadata"]["namespace"])
            if tenant is not None and tenant not in seen:
                seen[tenant] = time.monotonic() - began
        time.sleep(0.5)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=6, help="tenants per variant (default 6)")
    parser.add_argument("--window", type=float, default=60.0, help="idle window in seconds (default 60)")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait before the window")
    parser.add_argument("--variants", default="default,round6", help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants: a comma-separated subset of {', '.join(VARIANTS)}")
    work = workdir.make("vc-bench-density-", keep=args.keep)
    print(f"work dir: {work}; load average (1/5 min) {load()}; {args.tenants} tenants per variant "
          f"({', '.join(variants)}); {os.cpu_count()} CPUs")
    began = time.monotonic()
    traces: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    keys: dict[str, str] = {}
    handles: list[TenantHandle] = []
    with super_cluster(None, work, nodes=1) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log") as op:
        syncer = SyncerProcess(super_, log_path=work / "syncer.log",
                               env={"VC_SYNCER_METRICS_PORT": str(free_port())})
        syncer.start()
        try:
            suffix = uuid.uuid4().hex[:4]
            own = [v for v in variants if v not in SHARED]
            shared = [v for v in variants if v in SHARED]
            for i, variant in [(i, v) for group in (own, shared) for i in range(args.tenants) for v in group]:
                if variant in SHARED and op.env.get("VC_OPERATOR_SHARED_ETCD") != "true":
                    print("  restarting the operator with VC_OPERATOR_SHARED_ETCD=true", flush=True)
                    op.stop()
                    op.env["VC_OPERATOR_SHARED_ETCD"] = "true"
                    op.start()
                    keys[str(work / "operator" / SHARED_ETCD_DIR)] = variant
                # the variant's place in the list too: "etcdbatch" and "etcdtick" share their first letters
                name = f"d{i}-{variant[:4]}{variants.index(variant)}-{suffix}"
                created = time.time()
                handle = create_tenant(super_, name, **VARIANTS[variant])
                keys[handle.cluster_key] = variant
                handles.append(handle)
                if i == 0:  # its components' logs, for the trace of where start-up time goes
                    shutil.copytree(work / "operator" / handle.cluster_key / "logs", work / f"logs-{variant}",
                                    dirs_exist_ok=True)
                steps = trace(op.log_text(), handle.cluster_key, created)
                traces[variant].append(steps)
                print(f"  {name}: Ready after {steps['total']:.2f}s (load {load()})", flush=True)
            print(f"\nall {len(handles)} tenants Ready; settling {args.settle:.0f}s, then an idle window of "
                  f"{args.window:.0f}s (load average {load()})", flush=True)
            time.sleep(args.settle)
            load_start = load()
            cores = idle_cpu(str(work), keys, args.window)
            load_end = load()
            memory = rss_mib(str(work), keys)
            # after the idle window (its pods would be charged to it): does the syncer serve all of them?
            served = syncing(super_, handles)
        finally:
            syncer.stop()
    report(variants, traces, cores, args.tenants, load_start=load_start, load_end=load_end)
    print("\nresident memory per tenant, MiB (VmRSS after the idle window):")
    print(f"  {'':28s}" + "".join(f"{v:>12s}" for v in variants))
    print("  Go runtime environment seen: " + "; ".join(
        f"{v}: {', '.join(w[4:] for w in sorted(memory.get(v, {})) if w.startswith('env '))}" for v in variants))
    memory = {v: {w: m for w, m in parts.items() if not w.startswith("env ")} for v, parts in memory.items()}
    for what in [*sorted({w for v in variants for w in memory.get(v, {})}), "all"]:
        cells = [(sum(memory.get(v, {}).values()) if what == "all" else memory.get(v, {}).get(what, 0.0))
                 / args.tenants for v in variants]
        print(f"  {what:28s}" + "".join(f"{c:12.1f}" for c in cells))
    times = sorted(served.values())
    missing = sorted(h.name for h in handles if h.name not in served)
    spread = f" (median {statistics.median(times):.2f}s, last {times[-1]:.2f}s)" if times else ""
    print(f"\nsyncing: a pod created in each of the {len(handles)} tenants at once reached the super cluster "
          f"for {len(served)} of them{spread}" + (f"; NOT served: {', '.join(missing)}" if missing else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"traces": traces, "cores": cores, "tenants": args.tenants,
                                               "load": [load_start, load_end], "memory": memory,
                                               "served": served}, indent=1))
    print(f"load average (1/5 min) at the end {load()}; the bench took {time.monotonic() - began:.0f}s")
    return 0


def report(variants: list[str], traces: dict[str, list[dict[str, float]]], cores: dict[str, dict[str, float]],
           n: int, *, load_start: str, load_end: str) -> None:
    print("\nTenant → Ready, median [min–max] seconds per step (from the operator's log):")
    labels = [label for _, _, label in STEPS] + ["total"]
    print(f"  {'':70s}" + "".join(f"{v:>22s}" for v in variants))
    for label in labels:
        cells = []
        for v in variants:
            values = [t[label] for t in traces[v] if label in t]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]" if values else "—")
        print(f"  {label[:70]:70s}" + "".join(f"{c:>22s}" for c in cells))
    print(f"\nidle CPU, % of one core per tenant (CPU time over the window; load average {load_start} → "
          f"{load_end}):")
    parts = sorted({what for v in variants for what in cores.get(v, {})})
    print(f"  {'':28s}" + "".join(f"{v:>12s}" for v in variants))
    for what in [*parts, "all"]:
        shares = [(sum(cores.get(v, {}).values()) if what == "all" else cores.get(v, {}).get(what, 0.0)) / n * 100
                  for v in variants]
        print(f"  {what:28s}" + "".join(f"{c:11.2f}%" for c in shares))
    shared = cores.get("shared", {})
    total_tenants = n * len(variants)
    print(f"  shared processes (cores; per tenant over all {total_tenants}): " + ", ".join(
        f"{what} {c:.3f} ({c / total_tenants * 100:.2f}%)" for what, c in sorted(shared.items(), key=lambda x: -x[1])
        if c >= 0.001))
    per_tenant = {v: sum(cores.get(v, {}).values()) / n for v in variants}
    operator = shared.get("operator", 0.0) / total_tenants
    for v in variants:
        print(f"  {v}: {per_tenant[v] * 100:.2f}% of a core per tenant, {(per_tenant[v] + operator) * 100:.2f}% "
              f"with its share of the operator (target ≤ 0.5%)")


if __name__ == "__main__":
    sys.exit(main())
