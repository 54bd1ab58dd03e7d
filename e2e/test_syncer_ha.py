"""Two syncer replicas with leader election on the real test bed.

Why: the syncer's Deployment runs two replicas; only the Lease holder may
write, a follower must take over when the leader dies, and a leader that
cannot renew must stop instead of writing next to the new leader.  All of it
runs on real kube-apiservers: the session super cluster, one tenant control
plane from the real operator, and two ``python -m syncer`` child processes
with short lease settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import TIMEOUT, SyncerProcess, http_get, metric_samples, poll
from syncer.leader import LeaderElector
from syncer.settings import SyncerSettings
from vcluster import naming
from vcluster.kube import ApiClient, ClientConfig
from vcluster.process import pick_free_port
from vcluster.settings import LeaseTiming

pytestmark = pytest.mark.e2e

#: Short lease: a follower may take over 8 s after the last renewal; the leader gives up after 5 s.
LEASE_ENV = {
    "VC_SYNCER_LEADER_ELECTION": "1",
    "VC_SYNCER_LEASE_DURATION": "8",
    "VC_SYNCER_LEASE_RENEW_DEADLINE": "5",
    "VC_SYNCER_LEASE_RETRY_PERIOD": "1",
    "VC_SYNCER_PATROL_PERIOD": "5",
}


class Replica:
    """One syncer replica: the child process and its metrics port."""

    def __init__(self, super_cluster: Any, identity: str, root: Path) -> None:
        self.identity = identity
        self.port = pick_free_port()
        self.proc = SyncerProcess(super_cluster, log_path=root / f"{identity}.log", env={
            **LEASE_ENV, "VC_SYNCER_IDENTITY": identity, "VC_SYNCER_METRICS_PORT": str(self.port),
        })

    def get(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        assert status == 200, f"{self.identity}: /metrics answered {status}"
        return metric_samples(text_string_to_metric_families(text))

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace") if self.proc.log_path.exists() else ""


def wait_for(what: str, check: Callable[[], Any], *, replicas: tuple[Replica, ...] = (),
             timeout: float = TIMEOUT) -> Any:
    return poll(what, check, timeout=timeout, interval=0.3,
                detail=lambda: "".join(f"\n{r.identity} log:\n{r.proc.log_tail()}" for r in replicas))


def lease_holder(super_cluster: Any) -> str | None:
    got = super_cluster.kubectl("get", "lease", "-n", naming.SYSTEM_NAMESPACE, naming.SYNCER_LEASE_NAME,
                                "-o", "json", check=False)
    if got.returncode != 0:
        return None
    return str(json.loads(got.stdout)["spec"].get("holderIdentity") or "")


def super_configmap(super_cluster: Any, tenant: TenantHandle, ns: str, name: str) -> dict[str, Any] | None:
    got = super_cluster.kubectl("get", "configmap", "-n", naming.super_namespace(tenant.cluster_key, ns), name,
                                "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def _configmap_check(super_cluster: Any, tenant: TenantHandle, ns: str, name: str) -> Callable[[], Any]:
    return lambda: super_configmap(super_cluster, tenant, ns, name)


def ops(replica: Replica, *, kind: str, op: str) -> float:
    return replica.metrics().get(
        ("vc_syncer_operations_total", (("direction", "down"), ("kind", kind), ("op", op))), 0.0
    )


@pytest.fixture(scope="module")
def tenant(super_cluster: Any, vc_operator: Any) -> TenantHandle:  # noqa: F811
    return create_tenant(super_cluster, f"ha-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def replicas(super_cluster: Any, tenant: TenantHandle, tmp_path_factory: pytest.TempPathFactory,
             component_logs: dict[str, Path]) -> Iterator[tuple[Replica, Replica]]:
    root = tmp_path_factory.mktemp("syncer-ha")
    super_cluster.kubectl("create", "namespace", naming.SYSTEM_NAMESPACE, check=False)
    super_cluster.kubectl("delete", "lease", "-n", naming.SYSTEM_NAMESPACE, naming.SYNCER_LEASE_NAME,
                          "--ignore-not-found")
    pair = (Replica(super_cluster, "replica-a", root), Replica(super_cluster, "replica-b", root))
    for r in pair:
        component_logs[f"syncer {r.identity}"] = r.proc.log_path
    try:
        yield pair
    finally:
        for r in pair:
            if r.proc.proc is not None and r.proc.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(r.proc.proc.pid, signal.SIGCONT)
            r.proc.stop()


def test_two_electors_racing_for_an_expired_lease_one_wins(super_cluster: Any) -> None:
    """Against the real apiserver: create races (AlreadyExists) and takeover races (Conflict) have one winner."""
    super_cluster.kubectl("create", "namespace", naming.SYSTEM_NAMESPACE, check=False)
    super_cluster.kubectl("delete", "lease", "-n", naming.SYSTEM_NAMESPACE, naming.SYNCER_LEASE_NAME,
                          "--ignore-not-found")
    now = [1000.0]

    async def race() -> tuple[list[bool], list[bool], list[bool]]:
        async with ApiClient(ClientConfig.from_kubeconfig(str(super_cluster.kubeconfig))) as api:
            def elector(identity: str) -> LeaderElector:
                settings = SyncerSettings(identity=identity, lease=LeaseTiming(duration=4, renew_deadline=2.5,
                                                                               retry_period=0.5))
                return LeaderElector(api, settings=settings, clock=lambda: now[0])

            a, b, c = elector("race-a"), elector("race-b"), elector("race-c")
            created = list(await asyncio.gather(a.try_acquire(), b.try_acquire()))
            # The winner stops renewing; c and the loser see the record, then their clocks pass the duration.
            fresh = list(await asyncio.gather(*(e.try_acquire() for e in (a, b, c) if e.identity != holder())))
            now[0] += 5
            taken = list(await asyncio.gather(*(e.try_acquire() for e in (a, b, c) if e.identity != holder())))
            return created, fresh, taken

    def holder() -> str | None:
        return lease_holder(super_cluster)

    try:
        created, fresh, taken = asyncio.run(race())
        assert sorted(created) == [False, True]
        assert fresh == [False, False]
        assert sorted(taken) == [False, True]
        assert holder() in ("race-a", "race-b", "race-c")
        got = json.loads(super_cluster.kubectl("get", "lease", "-n", naming.SYSTEM_NAMESPACE,
                                               naming.SYNCER_LEASE_NAME, "-o", "json").stdout)
        assert got["spec"]["leaseTransitions"] == 1
    finally:
        super_cluster.kubectl("delete", "lease", "-n", naming.SYSTEM_NAMESPACE, naming.SYNCER_LEASE_NAME,
                              "--ignore-not-found")


def test_one_leader_writes_and_a_follower_takes_over_after_sigkill(
    super_cluster: Any, tenant: TenantHandle, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    ns = f"ha-{uuid.uuid4().hex[:6]}"
    a.proc.start()
    wait_for("replica-a holds the lease", lambda: lease_holder(super_cluster) == "replica-a", replicas=(a,))
    wait_for("replica-a ready", lambda: a.get("/readyz")[0] == 200, replicas=(a,))
    b.proc.start()
    wait_for("replica-b standing by", lambda: "leader.standing_by" in b.log() and b.get("/healthz")[0] == 200,
             replicas=(b,))

    # Only the leader works: the follower stands by (ready to take over: it reads the Lease).
    tenant.kubectl("create", "namespace", ns)
    for i in range(5):
        tenant.kubectl("create", "configmap", f"before-{i}", "-n", ns, f"--from-literal=k=v{i}")
    for i in range(5):
        wait_for(f"before-{i} in the super cluster", _configmap_check(super_cluster, tenant, ns, f"before-{i}"),
                 replicas=(a, b))
    assert b.get("/readyz")[0] == 200
    b_metrics = b.metrics()
    assert b_metrics[("vc_syncer_leader", ())] == 0.0
    assert not [k for k in b_metrics if k[0] == "vc_syncer_operations_total"], "the follower wrote"
    assert a.metrics()[("vc_syncer_leader", ())] == 1.0
    assert ops(a, kind="ConfigMap", op="create") >= 5
    assert "syncer.started" not in b.log()
    assert "AlreadyExists" not in a.log() + b.log()
    assert lease_holder(super_cluster) == "replica-a"
    super_uids = {}
    for i in range(5):
        before = super_configmap(super_cluster, tenant, ns, f"before-{i}")
        assert before is not None
        super_uids[i] = before["metadata"]["uid"]

    # SIGKILL the leader: the follower takes the lease and syncs what is created after the kill.
    a.proc.kill()
    tenant.kubectl("create", "configmap", "after-kill", "-n", ns, "--from-literal=k=late")
    wait_for("replica-b holds the lease", lambda: lease_holder(super_cluster) == "replica-b", replicas=(b,))
    got = wait_for("after-kill in the super cluster",
                   lambda: super_configmap(super_cluster, tenant, ns, "after-kill"), replicas=(b,))
    assert got["data"] == {"k": "late"}
    assert b.get("/readyz")[0] == 200
    assert b.metrics()[("vc_syncer_leader", ())] == 1.0
    assert "leader.took_over" in b.log()
    # The objects the old leader made are adopted, not created a second time.
    assert ops(b, kind="ConfigMap", op="create") >= 1
    for i in range(5):
        after = super_configmap(super_cluster, tenant, ns, f"before-{i}")
        assert after is not None
        assert after["metadata"]["uid"] == super_uids[i], f"before-{i} was deleted and created again"
    assert "AlreadyExists" not in b.log()


def test_a_leader_that_cannot_renew_stops_and_exits(
    super_cluster: Any, tenant: TenantHandle, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    ns = f"ha-stop-{uuid.uuid4().hex[:6]}"
    if not b.proc.alive():
        pytest.skip("needs replica-b leading from the previous test")
    assert lease_holder(super_cluster) == "replica-b"
    a.proc.start()  # a follower again
    wait_for("replica-a standing by", lambda: a.get("/readyz")[0] == 200 and "leader.standing_by" in a.log(),
             replicas=(a,))
    assert a.metrics()[("vc_syncer_leader", ())] == 0.0

    # Freeze the leader longer than the lease: replica-a takes over meanwhile.
    assert b.proc.proc is not None
    os.kill(b.proc.proc.pid, signal.SIGSTOP)
    try:
        wait_for("replica-a holds the lease", lambda: lease_holder(super_cluster) == "replica-a", replicas=(a,))
    finally:
        os.kill(b.proc.proc.pid, signal.SIGCONT)
    # Thawed, the old leader finds its renew deadline passed: it stops and exits with code 1.
    try:
        code = b.proc.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"replica-b kept running after losing the lease:\n{b.proc.log_tail()}") from None
    assert code == 1, b.proc.log_tail()
    assert "leader.lost" in b.log()
    assert lease_holder(super_cluster) == "replica-a"

    tenant.kubectl("create", "namespace", ns)
    tenant.kubectl("create", "configmap", "after-freeze", "-n", ns, "--from-literal=k=x")
    wait_for("after-freeze in the super cluster",
             lambda: super_configmap(super_cluster, tenant, ns, "after-freeze"), replicas=(a,))
