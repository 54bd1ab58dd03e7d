"""What each write the synced pod path needs costs a tenant control plane, against the super cluster's.

Why: the syncer bench (bench/bench_syncer.py) finds the live burst bounded by the CPU of the whole
two-core machine, and most of the extra CPU in the tenant control planes.  A synced pod needs four
tenant writes that a pod created directly in the super cluster does not: the tenant's own create,
then (brought up by the syncer) the Binding, the status and the scheduler's Event.  This bench
measures the CPU each of those costs on a real tenant control plane (apiserver, etcd,
controller-manager) and, as the baseline in the same run, the same writes on the super cluster,
with nothing else going on (no syncer): the floor under the synced path's CPU per pod, whatever the
syncer does.  Not a test: it prints numbers and ratios.

Per write kind, N writes (32 in flight, like the syncer's workers): pod create, ``pods/binding``
(to a node no kwok manages, so nothing else acts on the pods), a merge patch of a Running status to
``pods/status`` (what the syncer sends), the same status as a whole-object PUT, and an Event.

    python bench/bench_write_costs.py [--writes 800] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import workdir  # noqa: E402
from bench_syncer import CpuMeter, Super, create_pods, ensure_namespace, in_lanes, super_cluster  # noqa: E402

from e2e.operator_fixtures import create_tenant, running_operator  # noqa: E402
from vcluster.kube import ApiClient, resources  # noqa: E402

#: The Node the pods are bound to: a bare Node object no kwok manages, so nothing acts on the pods (and
#: the pod garbage collector does not delete them as orphans, which it would for a missing node).
NOWHERE = f"bench-nowhere-{uuid.uuid4().hex[:6]}"
WRITES = ("create", "binding", "status (merge patch)", "status (PUT)", "event")
#: Which processes are the control plane that took the writes, per side.
SIDE_GROUPS = {
    "super": ("super kube-apiserver", "super etcd", "super kube-controller-manager"),
    "tenant": ("tenant kube-apiserver", "tenant etcd", "tenant kube-controller-manager"),
}


def running_status(now: str, ip: str) -> dict[str, Any]:
    conditions = [{"type": t, "status": "True", "lastTransitionTime": now}
                  for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
    return {
        "phase": "Running", "conditions": conditions, "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now,
        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "busybox", "imageID": "",
                               "started": True, "state": {"running": {"startedAt": now}}}],
    }


async def one_side(api: ApiClient, meter: CpuMeter, side: str, n: int) -> dict[str, float]:
    """Milliseconds of control-plane CPU per write, per write kind, on one apiserver."""
    ns = f"w-{uuid.uuid4().hex[:6]}"
    await ensure_namespace(api, ns)
    names = [f"p-{i}" for i in range(n)]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pods: dict[str, dict[str, Any]] = {}

    async def put_status(name: str) -> None:
        body = pods[name]
        body["status"] = running_status(now, "10.1.0.6")
        await api.request("PUT", resources.PODS.path(namespace=ns, name=name, subresource="status"), body=body,
                          decode=False)

    writes: dict[str, Callable[[str], Awaitable[Any]]] = {
        "binding": lambda name: api.create(resources.PODS, {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NOWHERE}},
            namespace=ns, name=name, subresource="binding", decode=False),
        "status (merge patch)": lambda name: api.patch(
            resources.PODS, name, {"status": running_status(now, "10.1.0.5")}, namespace=ns, subresource="status",
            decode=False),
        "status (PUT)": put_status,
        "event": lambda name: api.create(resources.EVENTS, {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.scheduled", "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns},
            "reason": "Scheduled", "message": f"Successfully assigned {ns}/{name} to {NOWHERE}", "type": "Normal",
            "count": 1, "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "bench"}},
            namespace=ns, decode=False),
    }
    out: dict[str, float] = {}
    for write in WRITES:
        if write == "status (PUT)":  # the whole pod as the apiserver has it now (as an informer would)
            items, _rv = await api.list_all(resources.PODS, namespace=ns)
            pods.update({item["metadata"]["name"]: item for item in items})
        await asyncio.sleep(1)  # let the previous write kind's watch fan-out settle
        before = meter.snapshot()
        if write == "create":
            secs = await create_pods(api, ns, names)
        else:
            secs = await in_lanes(names, writes[write])
        used = CpuMeter.used(before, meter.snapshot())
        out[write] = sum(used.get(g, 0.0) for g in SIDE_GROUPS[side]) / n * 1000
        out[f"{write} rate"] = n / secs
    return out


async def run(super_: Super, tenant_kubeconfig: Path, meter: CpuMeter, n: int, rounds: int) -> None:
    results: dict[str, list[dict[str, float]]] = {"super": [], "tenant": []}
    async with ApiClient.from_kubeconfig(super_.kubeconfig) as sup, \
            ApiClient.from_kubeconfig(str(tenant_kubeconfig)) as tenant:
        for api in (sup, tenant):
            await api.create(resources.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NOWHERE}})
        for r in range(rounds):
            order = [("super", sup), ("tenant", tenant)] if r % 2 == 0 else [("tenant", tenant), ("super", sup)]
            for side, api in order:
                results[side].append(await one_side(api, meter, side, n))
                print(f"  round {r + 1} {side}: " + ", ".join(
                    f"{w} {results[side][-1][w]:.2f} ms ({results[side][-1][w + ' rate']:.0f}/s)" for w in WRITES))
    print("\ncontrol-plane CPU per write (apiserver + etcd + controller-manager), median over rounds, ms:")
    print(f"  {'write':24s} {'super':>8s} {'tenant':>8s} {'tenant / super':>15s}")
    med = {side: {w: statistics.median(o[w] for o in results[side]) for w in WRITES} for side in results}
    for w in WRITES:
        print(f"  {w:24s} {med['super'][w]:8.2f} {med['tenant'][w]:8.2f} {med['tenant'][w] / med['super'][w]:15.2f}")
    floor = med["tenant"]["create"] + med["tenant"]["binding"] + med["tenant"]["status (merge patch)"] + \
        med["tenant"]["event"]
    print(f"\nthe tenant writes of one synced pod (create, binding, status, event): {floor:.2f} ms of tenant "
          f"control-plane CPU, without the syncer's own CPU, its requests' TLS and the watch fan-out to it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=800, help="writes of each kind per round (default 800)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, sides alternating (default 2)")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    work = workdir.make("vc-bench-writes-", keep=args.keep)
    with super_cluster(None, work, nodes=1) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        tenant = create_tenant(super_, f"writes-{uuid.uuid4().hex[:4]}")
        assert tenant.kubeconfig_path is not None
        asyncio.run(run(super_, tenant.kubeconfig_path, CpuMeter(work), args.writes, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
