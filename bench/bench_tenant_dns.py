"""How fresh a tenant's DNS is: a Service created (or deleted) in a tenant → its name answers (or stops).

Why: the tenant DNS keeps no records of its own; CoreDNS watches the super
cluster, so a new tenant Service resolves once the syncer has made its super
copy and CoreDNS' watch has seen it.  This script measures that chain on the
local test bed (one real node, for the host address a tenant DNS is served
on: there is none on loopback; it asks the tenant's CoreDNS directly on the
host) and, as the baseline in the same run, the time until the super copy
exists (the syncer's part).  Not a test: it prints the numbers.  Run it holding the test-bed lock:

    flock /work/.testbed.lock python bench/bench_tenant_dns.py [--services 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402

from vcluster import naming  # noqa: E402
from vcluster.kube import ApiClient, ClientConfig  # noqa: E402
from vcluster.kube import resources as r  # noqa: E402
from vcluster.settings import BinarySettings  # noqa: E402
from vcluster.testbed import LocalSuperCluster, TestbedSettings  # noqa: E402

NS = "bench"
NOERROR, NXDOMAIN = 0, 3


def query(server: tuple[str, int], name: str) -> tuple[int, int]:
    """One A question over UDP: (rcode, answer count)."""
    qid = os.getpid() & 0xFFFF
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(packet, server)
        data, _ = sock.recvfrom(4096)
    _, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
    return flags & 0xF, ancount


async def until(check: Callable[[], Awaitable[bool]], *, limit: float = 60.0) -> float:
    """Seconds until ``check()`` is true (polled every 10 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise TimeoutError(f"not within {limit} s")


def answers(
    server: tuple[str, int], name: str, want: Callable[[tuple[int, int]], bool]
) -> Callable[[], Awaitable[bool]]:
    """A check: the tenant DNS' answer to ``name`` satisfies ``want`` ((rcode, answer count))."""
    async def check() -> bool:
        return want(await asyncio.to_thread(query, server, name))

    return check


async def measure(super_kc: Path, tenant_kc: str, key: str, server: tuple[str, int], count: int) -> None:
    super_api = ApiClient(ClientConfig.from_kubeconfig(super_kc))
    tenant_api = ApiClient(ClientConfig.from_kubeconfig(tenant_kc))
    p_ns = naming.super_namespace(key, NS)
    created: list[tuple[float, float]] = []
    deleted: list[float] = []
    async with super_api, tenant_api:
        await tenant_api.create(r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for i in range(count):
            name = f"fresh-{i}"
            fqdn = f"{name}.{NS}.svc.cluster.local"
            body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                    "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}
            await tenant_api.create(r.SERVICES, body, namespace=NS)

            async def copied(n: str = name) -> bool:
                return await super_api.get_or_none(r.SERVICES, n, namespace=p_ns) is not None

            super_task = asyncio.create_task(until(copied))
            dns_one = await until(answers(server, fqdn, lambda got: got == (NOERROR, 1)))
            created.append((await super_task, dns_one))
            await tenant_api.delete(r.SERVICES, name, namespace=NS)
            deleted.append(await until(answers(server, fqdn, lambda got: got[0] == NXDOMAIN)))
    super_s = [c[0] for c in created]
    dns_s = [c[1] for c in created]

    def stats(xs: list[float]) -> str:
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
        return f"median {statistics.median(xs) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms"

    print(f"services: {count}")
    print(f"tenant create -> super copy exists    : {stats(super_s)}")
    print(f"tenant create -> tenant DNS answers A : {stats(dns_s)}")
    print(f"tenant delete -> tenant DNS NXDOMAIN  : {stats(deleted)}")
    print(f"DNS / super-copy median ratio          : {statistics.median(dns_s) / statistics.median(super_s):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=20)
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    work = workdir.make("vc-bench-dns-", keep=args.keep)
    cluster = LocalSuperCluster(TestbedSettings(state_dir=work / "super", nodes=1, real_nodes=1,
                                                binaries=BinarySettings.from_env()))
    cluster.start()
    env = {**os.environ, "PYTHONPATH": str(REPO), "VC_OPERATOR_LOCAL_HOST": cluster.info.host_address}
    k = ["kubectl", f"--kubeconfig={cluster.kubeconfig}"]
    procs = []
    try:
        with (work / "operator.log").open("ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "vcluster.operator", f"--kubeconfig={cluster.kubeconfig}",
                 f"--state-dir={work / 'operator'}"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        with (work / "syncer.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "syncer", f"--kubeconfig={cluster.kubeconfig}"],
                                          cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        while subprocess.run([*k, "get", "crd", "tenants.tenancy.virtualcluster.dev"], capture_output=True,
                             check=False).returncode != 0:
            time.sleep(0.5)
        tenant = {"apiVersion": naming.API_VERSION, "kind": "Tenant", "metadata": {"name": "dnsbench"}, "spec": {}}
        subprocess.run([*k, "apply", "-f", "-"], input=json.dumps(tenant), text=True, check=True, capture_output=True)
        while True:
            got = subprocess.run([*k, "get", "tenant", "dnsbench", "-o", "json"], capture_output=True, text=True,
                                 check=True)
            status = json.loads(got.stdout).get("status") or {}
            if status.get("phase") == "Ready" and (status.get("dns") or {}).get("endpoint"):
                break
            time.sleep(0.5)
        key = status["clusterKey"]
        secret = json.loads(subprocess.run([*k, "get", "secret", "-n", key, naming.kubeconfig_secret_name(), "-o",
                                            "json"], capture_output=True, text=True, check=True).stdout)
        tenant_kc = base64.b64decode(secret["data"][naming.KUBECONFIG_SECRET_KEY]).decode()
        host, port = status["dns"]["endpoint"].rsplit(":", 1)
        asyncio.run(measure(cluster.kubeconfig, tenant_kc, key, (host, int(port)), args.services))
        subprocess.run([*k, "delete", "tenant", "dnsbench", "--wait=true", "--timeout=60s"], capture_output=True,
                       check=False)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        cluster.stop()


if __name__ == "__main__":
    main()
