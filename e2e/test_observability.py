"""Health and metrics endpoints of the syncer, the operator and the kubelet proxy, on the real test bed.

Why: these endpoints are what probes and Prometheus rely on; the documented
metric families must exist and move when work happens.  One tenant from the
real operator, the real syncer and kubelet proxy as child processes.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import REPO, Samples, SyncerProcess, http_get, metric_samples, poll, running_syncer
from vcluster import kubelet_ca, naming
from vcluster.kube import ApiClient, ClientConfig
from vcluster.process import pick_free_port

pytestmark = pytest.mark.e2e

def scrape(port: int) -> tuple[set[str], Samples]:
    """Family names and samples of ``/metrics`` on ``port``."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, f"/metrics on {port} answered {status}"
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families}, metric_samples(families)


def wait_for(what: str, check: Callable[[], Any], *, log: Callable[[], str] = str) -> Any:
    return poll(what, check, detail=lambda: f"\n{log()}")


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


@pytest.fixture(scope="module")
def tenant(super_cluster: Any, vc_operator: Any) -> TenantHandle:  # noqa: F811
    return create_tenant(super_cluster, f"obs-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenant: TenantHandle, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[tuple[SyncerProcess, int]]:
    port = pick_free_port()
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="obs-syncer",
                        log_key="obs syncer", env={"VC_SYNCER_METRICS_PORT": str(port)}) as proc:
        yield proc, port


@pytest.fixture(scope="module")
def proxy(super_cluster: Any, tmp_path_factory: pytest.TempPathFactory,
          component_logs: dict[str, Path]) -> Iterator[tuple[int, int]]:
    """``python -m virtual_node.proxy`` on free ports: (serving port, metrics port)."""
    port, metrics_port = pick_free_port(), pick_free_port()
    log_path = tmp_path_factory.mktemp("obs-proxy") / "proxy.log"
    component_logs["obs kubelet proxy"] = log_path
    env = {**os.environ, "PYTHONPATH": str(REPO), "VC_SUPER_KUBECONFIG": str(super_cluster.kubeconfig),
           "VC_PROXY_HOST": "127.0.0.1", "VC_PROXY_PORT": str(port), "VC_PROXY_METRICS_PORT": str(metrics_port),
           "VC_PROXY_SERVING_NAMES": "127.0.0.1"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "virtual_node.proxy"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for("kubelet proxy /readyz", lambda: http_get(f"http://127.0.0.1:{metrics_port}/readyz")[0] == 200,
                 log=lambda: log_path.read_text(errors="replace")[-3000:])
        yield port, metrics_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_syncer_health_and_metrics_move_with_work(
    super_cluster: Any, tenant: TenantHandle, syncer: tuple[SyncerProcess, int]
) -> None:
    proc, port = syncer
    key = tenant.cluster_key
    wait_for("syncer /readyz", lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, log=proc.log_tail)
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    families, before = scrape(port)
    documented = {
        "vc_syncer_queue_depth", "vc_syncer_operations", "vc_syncer_errors", "vc_syncer_sync_latency_seconds",
        "vc_syncer_patrol_drift", "vc_syncer_refused", "vc_syncer_leader",
        # the virtual-node manager's series, in the syncer's registry
        "vc_virtual_nodes", "vc_virtual_node_heartbeat_failures", "vc_virtual_nodes_collected",
    }
    assert documented <= families, f"missing: {sorted(documented - families)}"
    assert before[("vc_syncer_leader", ())] == 1.0  # no election: this replica works

    ns = f"obs-{uuid.uuid4().hex[:6]}"
    create_key = ("vc_syncer_operations_total", labels(kind="ConfigMap", direction="down", op="create"))
    latency_key = ("vc_syncer_sync_latency_seconds_count", labels(tenant=key))
    tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": ns},
         "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
         "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    ]))
    p_ns = naming.super_namespace(key, ns)
    wait_for("the ConfigMap in the super cluster",
             lambda: super_cluster.kubectl("get", "configmap", "-n", p_ns, "watched", check=False).returncode == 0,
             log=proc.log_tail)
    bind_key = ("vc_syncer_operations_total", labels(kind="Pod", direction="up", op="bind"))
    # the virtual node appears when the super pod is scheduled; the bind is counted when the tenant's
    # bind request returns, which may be later: both are awaited (CI saw the node before the count)
    after = wait_for("a virtual node for the tenant's pod, and its bind counted",
                     lambda: (s := scrape(port)[1]).get(("vc_virtual_nodes", labels(tenant=key)), 0) >= 1
                     and s.get(bind_key, 0) >= 1 and s,
                     log=proc.log_tail)
    assert after[create_key] >= before.get(create_key, 0.0) + 1
    assert after[latency_key] > before.get(latency_key, 0.0)
    assert ("vc_syncer_queue_depth", labels(tenant=key)) in after  # served tenants have a series, even idle


def test_kubelet_proxy_health_and_metrics(super_cluster: Any, tenant: TenantHandle, proxy: tuple[int, int]) -> None:
    port, metrics_port = proxy
    assert http_get(f"http://127.0.0.1:{metrics_port}/healthz")[0] == 200
    families, _ = scrape(metrics_port)
    assert {"vc_kubelet_proxy_requests", "vc_kubelet_proxy_open_streams", "vc_kubelet_proxy_lookup_seconds"} <= families

    # A request with the tenant's kubelet client certificate for a pod it does not have: 404, counted.
    async def issue() -> Any:
        async with ApiClient(ClientConfig.from_kubeconfig(str(super_cluster.kubeconfig))) as api:
            ca = await kubelet_ca.ensure_ca_secret(api)
        return kubelet_ca.issue_tenant_client_cert(ca, tenant.cluster_key)

    pair = asyncio.run(issue())
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(cert, key)
        status, _ = http_get(f"https://127.0.0.1:{port}/containerLogs/nowhere/nothing/c", context=ctx)
    assert status == 404
    _, samples = scrape(metrics_port)
    got = samples.get(("vc_kubelet_proxy_requests_total",
                       labels(tenant=tenant.cluster_key, action="containerLogs", code="404")))
    assert got == 1.0


def test_operator_health_endpoint(vc_operator: Any) -> None:  # noqa: F811
    """The session operator restarted with ``VC_OPERATOR_HEALTH_PORT`` (it adopts its control planes)."""
    port = pick_free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VC_OPERATOR_HEALTH_PORT", str(port))
        vc_operator.stop()
        vc_operator.start()
    wait_for("operator /healthz", lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
             log=vc_operator.log_tail)
    assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
