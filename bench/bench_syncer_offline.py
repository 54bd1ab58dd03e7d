"""The syncer's own Python work per pod and per patrol, offline: a real Syncer against the fake apiservers.

Why: on the test bed the syncer's CPU per pod (bench_syncer.py) is mostly HTTP and TLS; what its own
code costs (translation, fingerprints, caches, routing, the quota ledger, the patrol) is a fraction of
it and drowns in the noise of a shared machine.  This bench drives the real code paths with no test
bed, no network and no lock: one tenant served by a :class:`~syncer.engine.Syncer` between two
:class:`~tests.syncer.fakeapi.FakeServer` instances (``tests/syncer/engine_world.py``), the fakes'
history handed to the informers as their watches would (one event at a time, not relists), and
every queued key reconciled, in three stages as a burst meets them: P pods created in the tenant (the
downward creates), scheduled in the super cluster with a scheduler Event each (bindings, Events
copied up, the binding's echo), then Running (status copied up).  Pods look as the tenant apiserver
stores them (defaults, managedFields); the tenant has a quota with LimitRange defaults as the
operator gives one.  It prints CPU milliseconds per pod per stage (the fake servers' deep copies
included: compare runs, not absolute values) and the patrol's CPU seconds per 10,000 pods, the first
patrol and the median of the next ones.  Run it on two checkouts to compare them:

    PYTHONPATH=. python bench/bench_syncer_offline.py [--pods 2000] [--patrols 5]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tenant_crd.models import LimitRangeSpec  # noqa: E402
from tests.syncer.engine_world import World, make_world, namespace  # noqa: E402
from tests.syncer.fakeapi import FakeServer, _selector  # noqa: E402
from vcluster.kube import resources  # noqa: E402
from vcluster.quota import TenantQuota  # noqa: E402

Obj = dict[str, Any]
STAMP = "2026-11-30T00:00:00Z"


def tenant_pod(name: str, ns: str) -> Obj:
    """A pod as a tenant apiserver stores bench_syncer.py's pod (its defaults and managedFields)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": ns,
        "managedFields": [{"manager": "bench", "operation": "Update", "apiVersion": "v1", "time": STAMP,
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "busybox", "resources": {},
                                 "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "securityContext": {}, "schedulerName": "default-scheduler",
                 "tolerations": [{"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute",
                                  "tolerationSeconds": 300} for t in ("not-ready", "unreachable")],
                 "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {"phase": "Pending", "qosClass": "BestEffort"}}


def running_status(status: Obj, i: int) -> Obj:
    """What kwok's kubelet reports for a started pod."""
    ip = f"10.1.{i // 250}.{i % 250}"
    out = copy.deepcopy(status)
    out.update({"phase": "Running", "hostIP": "10.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": STAMP, "qosClass": "Burstable",
                "conditions": [*(out.get("conditions") or []),
                               *({"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": STAMP}
                                 for t in ("Initialized", "Ready", "ContainersReady"))],
                "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "started": True,
                                       "image": "busybox", "imageID": "", "containerID": "kwok://c",
                                       "state": {"running": {"startedAt": STAMP}}, "lastState": {}}]})
    return out


class Pump:
    """Hands the fake servers' new history to the informers one event at a time, as their watches would."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.seen: dict[int, int] = {id(w.tenant): 0, id(w.super_): 0}

    def run(self) -> None:
        w = self.w
        sides: list[tuple[FakeServer, list[Any]]] = [
            (w.tenant, list(w.rt.informers.values())),
            (w.super_, [*w.syncer.super_informers.values(), w.syncer.event_informer])]
        for server, informers in sides:
            since = self.seen[id(server)]
            for event in [e for e in server.history if e.rv > since]:
                self.seen[id(server)] = event.rv
                for inf in informers:
                    if inf.resource.plural == event.plural and _selector(inf.label_selector)(event.obj):
                        inf.apply(event.type, copy.deepcopy(event.obj))


async def settle(w: World, pump: Pump) -> int:
    """Watch events in, keys reconciled, until nothing is queued; the number of keys reconciled."""
    done = 0
    while True:
        pump.run()
        keys = w.take()
        if not keys:
            return done
        for key in keys:
            await w.syncer.reconcile(key)
            done += 1


async def run(pods: int, patrols: int) -> None:
    quota = TenantQuota(hard={"pods": Decimal(10**6), "requests.cpu": Decimal(10**6)},
                        limit_range=LimitRangeSpec(default_requests={"cpu": "100m", "memory": "128Mi"}),
                        names=("pods", "requests.cpu"))
    w = make_world(quota=quota)
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    await w.start()
    await w.settle()
    pump = Pump(w)
    pump.run()
    p_ns = w.p_ns("shop")

    def create() -> None:
        for i in range(pods):
            w.tenant.create(resources.PODS, tenant_pod(f"p{i}", "shop"), namespace="shop", subresource=None,
                            name=None)

    def schedule() -> None:
        for i in range(pods):
            w.super_.schedule(f"p{i}", p_ns, "node-1")
            w.super_.create(resources.EVENTS, {
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"p{i}.1", "namespace": p_ns},
                "involvedObject": {"kind": "Pod", "namespace": p_ns, "name": f"p{i}", "apiVersion": "v1"},
                "reason": "Scheduled", "message": f"Successfully assigned {p_ns}/p{i} to node-1",
                "type": "Normal", "source": {"component": "default-scheduler"}, "count": 1,
                "firstTimestamp": STAMP, "lastTimestamp": STAMP}, namespace=p_ns, subresource=None, name=None)

    def start() -> None:
        for i in range(pods):
            stored = w.super_.objects[("pods", p_ns, f"p{i}")]
            w.super_.set_status(resources.PODS, f"p{i}", p_ns, running_status(stored.get("status") or {}, i))

    total = 0.0
    stages: list[tuple[str, Callable[[], None]]] = [
        ("created (downward creates)", create), ("scheduled (bindings, Events up)", schedule),
        ("running (status up)", start)]
    for name, act in stages:
        act()
        c0 = time.process_time()
        keys = await settle(w, pump)
        spent = time.process_time() - c0
        total += spent
        print(f"  {name}: {keys} keys, {spent * 1000 / pods:.3f} CPU ms per pod")
    print(f"  burst, all stages: {total * 1000 / pods:.3f} CPU ms per pod (the fake servers' copies included)")
    if w.errors:
        raise SystemExit(f"reconcile errors: {w.errors[:3]}")
    cpus = []
    for _ in range(patrols):
        c0 = time.process_time()
        counts = w.syncer.patrol()
        cpus.append(time.process_time() - c0)
        if counts:
            raise SystemExit(f"the patrol found differences in a settled world: {counts}")
    per10k = 10_000 / pods
    later = statistics.median(cpus[1:]) if len(cpus) > 1 else cpus[0]
    print(f"  patrol: first {cpus[0] * per10k:.3f} CPU s per 10,000 pods, then (median of {len(cpus) - 1}) "
          f"{later * per10k:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=2000, help="P: pods in the burst (default 2000)")
    parser.add_argument("--patrols", type=int, default=5, help="patrols timed after the burst (default 5)")
    args = parser.parse_args()
    print(f"offline syncer bench, {args.pods} pods ({REPO})")
    asyncio.run(run(args.pods, args.patrols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
