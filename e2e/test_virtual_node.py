"""Virtual nodes and the kubelet proxy on real control planes.

* The proxy in front of kwok's real kubelet API (logs and websocket exec of a
  simulated pod), with client certificates from the shared CA: a tenant reaches
  its pod, another tenant does not, not even by naming the super namespace, nor
  through a pod in its own super namespace that belongs to another tenant (the
  resolver's ownership check, the only thing that stops that request).
* The VirtualNodeManager against a second real kube-apiserver (with its own
  kube-controller-manager) standing in for a tenant control plane: exactly the
  nodes that run the tenant's pods appear, Ready, with a fresh Lease; a lost
  super node turns NotReady (Unknown; nothing in a real tenant taints it: tenants
  run without node-lifecycle, the super cluster evicts); an idle node is
  collected after the grace period; detach leaves nothing.  In the whole stack
  the syncer's pod cache answers the idle check (no LIST per node per
  heartbeat): a node with a running pod stays, an idle one goes.
* A syncer outage longer than the tenant's node-monitor grace period (operator
  tenant): no taint, no eviction, the node Ready again after the restart.

kwok serves logs and exec only for pods that a ClusterLogs/ClusterExec rule
covers; this module's test bed turns on every rule the launcher has (a log
file in CRI format, attach, exec of local commands -- which is how kwok
simulates exec -- and port-forwards to a local echo server).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vcluster import naming, pki
from vcluster.kube import ApiClient, ClientConfig
from vcluster.kube import resources as r
from vcluster.kubelet_ca import ensure_ca_secret, issue_tenant_client_cert
from vcluster.process import ManagedProcess, pick_free_port, tcp_check
from vcluster.settings import BinarySettings
from vcluster.testbed import LocalSuperCluster, TestbedSettings
from vcluster.testbed.kwok import SIMULATED_LOG_LINE
from virtual_node.manager import VirtualNodeManager
from virtual_node.proxy.server import RunningProxy, load_credentials, start_proxy
from virtual_node.settings import ProxySettings, VirtualNodeSettings

pytestmark = pytest.mark.e2e

KEY_A = "alpha-0a1b2c"
KEY_B = "bravo-3d4e5f"
LOG_LINE = SIMULATED_LOG_LINE
T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(b"echo:" + data)


@pytest.fixture(scope="module")
def vn_super(binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuperCluster]:
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    # kwok rules for every pod: logs and attach, exec of local commands, port-forwards to the echo server
    launcher = LocalSuperCluster(TestbedSettings(
        state_dir=tmp_path_factory.mktemp("vn-super"), nodes=4, binaries=binary_settings,
        kwok_logs=True, kwok_exec=True, kwok_port_forward_port=echo.server_address[1],
    ))
    try:
        launcher.start()
        yield launcher
    finally:
        launcher.stop()
        echo.shutdown()
        echo.server_close()


@pytest.fixture(scope="module")
def vn_tenant(binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuperCluster]:
    """A second real control plane (kube-apiserver + kube-controller-manager) acting as a tenant."""
    launcher = LocalSuperCluster(
        TestbedSettings(state_dir=tmp_path_factory.mktemp("vn-tenant"), nodes=0, binaries=binary_settings)
    )
    launcher.start()
    try:
        yield launcher
    finally:
        launcher.stop()


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 60, what: str) -> T:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await check()
        except AssertionError as exc:
            last = exc
            result = None
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


async def _super_pod(api: ApiClient, key: str, tenant_ns: str, name: str, *, node: str | None = None,
                     owner: str | None = None) -> dict[str, Any]:
    """A pod as the syncer would create it: in the tenant's super namespace, with the tenant's labels
    (``owner``: with another tenant's labels instead, a pod in the wrong tenant's namespace)."""
    super_ns = naming.super_namespace(key, tenant_ns)
    owner = owner or key
    if await api.get_or_none(r.NAMESPACES, super_ns) is None:
        await api.create(r.NAMESPACES, {"metadata": {
            "name": super_ns, "labels": {naming.LABEL_CLUSTER_KEY: key},
            "annotations": {naming.ANN_TENANT_NAMESPACE: tenant_ns}}})
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox"}], "automountServiceAccountToken": False}
    if node:
        spec["nodeName"] = node
    await api.create(r.PODS, {
        "metadata": {"name": name, "namespace": super_ns,
                     "labels": naming.owner_labels(owner, owner.rsplit("-", 1)[0]),
                     "annotations": {naming.ANN_OBJECT_UID: "0000-1111", naming.ANN_OBJECT_NAME: name}},
        "spec": spec,
    })

    async def running() -> dict[str, Any] | None:
        pod = await api.get(r.PODS, name, namespace=super_ns)
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    return await eventually(running, what=f"super pod {super_ns}/{name} Running")


def _client_ssl(ca: pki.CertKeyPair, client: pki.CertKeyPair | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    if client is not None:
        pki.load_cert_chain(ctx, client)
    return ctx


async def _start_test_proxy(super_config: ClientConfig) -> RunningProxy:
    settings = ProxySettings(host="127.0.0.1", port=0, kubelet_scheme="https", metrics_port=0,
                             serving_names=("127.0.0.1",))
    serving, client_ca = await load_credentials(settings, super_config)
    return await start_proxy(settings, super_config=super_config, serving=serving, client_ca_pem=client_ca)


async def test_proxy_serves_logs_and_exec_to_the_owning_tenant_only(
    vn_super: LocalSuperCluster, unique_name: str
) -> None:
    super_config = ClientConfig.from_kubeconfig(vn_super.kubeconfig)
    async with ApiClient(super_config) as api:
        ca = await ensure_ca_secret(api)
        assert (await ensure_ca_secret(api)).cert_pem == ca.cert_pem  # idempotent
        pod = await _super_pod(api, KEY_A, "default", unique_name)
        # A pod in tenant B's own super namespace that is tenant A's (labelled for A): B's request for it passes
        # the namespace mapping and finds a running pod; only the resolver's ownership check refuses it.
        misfiled = f"{unique_name}-a"
        await _super_pod(api, KEY_B, "default", misfiled, owner=KEY_A)
        proxy = await _start_test_proxy(super_config)
        try:
            base = f"https://127.0.0.1:{proxy.port}"
            cert_a = issue_tenant_client_cert(ca, KEY_A)
            cert_b = issue_tenant_client_cert(ca, KEY_B)
            async with aiohttp.ClientSession() as http:
                # Tenant A: its pod's logs, from kwok's kubelet API, through the proxy.
                async with http.get(f"{base}/containerLogs/default/{unique_name}/app",
                                    ssl=_client_ssl(ca, cert_a)) as resp:
                    body = await resp.text()
                    assert resp.status == 200, body
                    assert LOG_LINE in body
                # Tenant B: not found, by tenant namespace or by a guessed super namespace.
                guessed = pod["metadata"]["namespace"]
                for ns in ("default", guessed):
                    async with http.get(f"{base}/containerLogs/{ns}/{unique_name}/app",
                                        ssl=_client_ssl(ca, cert_b)) as resp:
                        body = await resp.text()
                        assert resp.status == 404, body
                        assert LOG_LINE not in body
                async with http.get(f"{base}/containerLogs/default/{misfiled}/app",
                                    ssl=_client_ssl(ca, cert_b)) as resp:
                    body = await resp.text()
                    assert resp.status == 404, body
                    assert f"pod default/{misfiled} not found" in body
                    assert LOG_LINE not in body
                # Node-level kubelet endpoints are not for tenants.
                async with http.get(f"{base}/stats/summary", ssl=_client_ssl(ca, cert_a)) as resp:
                    assert resp.status == 403
                # Exec over websockets (v5.channel.k8s.io), spliced byte for byte to kwok.
                out = await _ws_exec(http, base, ssl_ctx=_client_ssl(ca, cert_a), pod=unique_name,
                                     command=["echo", "exec-through-proxy"])
                assert "exec-through-proxy" in out
                # No client certificate: the TLS handshake is refused.
                with pytest.raises(aiohttp.ClientError):
                    async with http.get(f"{base}/containerLogs/default/{unique_name}/app",
                                        ssl=_client_ssl(ca, None)) as resp:
                        await resp.read()
            assert proxy.health is not None
            async with aiohttp.ClientSession() as http, http.get(f"{proxy.health.url}/metrics") as resp:
                metrics = await resp.text()
            denied_b = f'vc_kubelet_proxy_requests_total{{action="containerLogs",code="404",tenant="{KEY_B}"}} 3.0'
            assert denied_b in metrics
        finally:
            await proxy.stop()


async def _ws_exec(http: aiohttp.ClientSession, base: str, *, ssl_ctx: ssl.SSLContext, pod: str,
                   command: list[str]) -> str:
    query = "&".join([*(f"command={c}" for c in command), "output=1", "error=1"])
    url = f"{base}/exec/default/{pod}/app?{query}"
    out = b""
    async with http.ws_connect(url, ssl=ssl_ctx, protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                channel, payload = msg.data[0], msg.data[1:]
                if channel in (1, 2):
                    out += payload
                elif channel == 3:
                    status = json.loads(payload or b"{}")
                    assert status.get("status") == "Success", status
                    break
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
    return out.decode()


async def _tenant_nodes(tenant: ApiClient) -> dict[str, dict[str, Any]]:
    items, _ = await tenant.list_all(r.NODES)
    return {n["metadata"]["name"]: n for n in items}


def _ready(v_node: dict[str, Any]) -> str | None:
    for cond in (v_node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


async def _tenant_pod(tenant: ApiClient, name: str, node: str) -> None:
    """A tenant pod bound to ``node``, as the syncer binds it after ensure_node."""
    await tenant.create(r.PODS, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}],
                 "automountServiceAccountToken": False},
    })


async def test_manager_keeps_exactly_the_tenants_nodes(
    vn_super: LocalSuperCluster, vn_tenant: LocalSuperCluster, unique_name: str
) -> None:
    settings = VirtualNodeSettings(proxy_address="127.0.0.1", proxy_port=10550, heartbeat_period=1.0,
                                   status_report_period=5.0, gc_grace_period=3.0)
    # kwok-node-3 is this test's to stop; the full-stack test uses nodes 0-2.
    node_a, node_other, node_b = vn_super.info.node_names[1:4]
    async with ApiClient.from_kubeconfig(vn_super.kubeconfig) as super_api, \
            ApiClient.from_kubeconfig(vn_tenant.kubeconfig) as tenant:
        manager = VirtualNodeManager(super_api, settings)
        runner = asyncio.create_task(manager.run())
        try:
            await manager.attach_tenant(KEY_A, tenant)
            for i, node in enumerate((node_a, node_b)):
                await manager.ensure_node(KEY_A, node)
                await _tenant_pod(tenant, f"{unique_name}-{i}", node)

            # Exactly the two nodes with the tenant's pods, Ready, pointing at the proxy, tainted.
            async def two_ready() -> dict[str, dict[str, Any]] | None:
                nodes = await _tenant_nodes(tenant)
                return nodes if all(_ready(n) == "True" for n in nodes.values()) and nodes else None

            nodes = await eventually(two_ready, what="two Ready virtual nodes")
            assert set(nodes) == {node_a, node_b}
            assert node_other not in nodes
            for v_node in nodes.values():
                assert v_node["metadata"]["labels"][naming.LABEL_VIRTUAL_NODE] == "true"
                assert v_node["status"]["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
                assert v_node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10550
                assert {"key": naming.TAINT_VIRTUAL_NODE, "value": "true", "effect": "NoSchedule"} in (
                    v_node["spec"]["taints"])

            # The Lease is renewed (heartbeat every second here).
            lease = await tenant.get(r.LEASES, node_a, namespace=naming.NODE_LEASE_NAMESPACE)
            first = lease["spec"]["renewTime"]

            async def renewed() -> bool:
                again = await tenant.get(r.LEASES, node_a, namespace=naming.NODE_LEASE_NAMESPACE)
                return bool(again["spec"]["renewTime"] != first)

            await eventually(renewed, what="lease renewal")

            # The super node goes away: its virtual node turns NotReady.  (The stand-in tenant runs the
            # test bed's --controllers=*; a real tenant has no node-lifecycle controller to taint it.)
            await super_api.delete(r.NODES, node_b)

            async def b_not_ready() -> bool:
                return _ready((await _tenant_nodes(tenant))[node_b]) == "Unknown"

            await eventually(b_not_ready, what="virtual node NotReady after its super node is gone")
            assert _ready((await _tenant_nodes(tenant))[node_a]) == "True"

            # The last pod on node_a goes: the node is collected after the grace period.
            await tenant.delete(r.PODS, f"{unique_name}-0", namespace="default", grace_period_seconds=0)

            async def a_gone() -> bool:
                return node_a not in await _tenant_nodes(tenant)

            await eventually(a_gone, what="idle virtual node collected")
            assert await tenant.get_or_none(r.LEASES, node_a, namespace=naming.NODE_LEASE_NAMESPACE) is None
            assert node_b in await _tenant_nodes(tenant)  # still has a pod bound

            # Detach after the last pod: nothing of ours is left in the tenant.
            await tenant.delete(r.PODS, f"{unique_name}-1", namespace="default", grace_period_seconds=0)

            async def no_pods() -> bool:
                items, _ = await tenant.list_all(r.PODS, field_selector=f"spec.nodeName={node_b}")
                return not items

            await eventually(no_pods, what="tenant pods deleted")
            await manager.detach_tenant(KEY_A)
            assert manager.virtual_nodes(KEY_A) == set()
            leftovers, _ = await tenant.list_all(r.NODES, label_selector=f"{naming.LABEL_VIRTUAL_NODE}=true")
            assert leftovers == []
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


# ---- the whole stack: operator tenants, syncer, kubelet proxy --------------------------------


@dataclass(frozen=True)
class _Stack:
    super_: Any  # e2e.conftest.SuperCluster over vn_super
    operator: Any
    proxy_port: int
    root: Path
    syncer: ManagedProcess
    #: The syncer's /metrics on 127.0.0.1.
    metrics_port: int


def _python_process(name: str, args: list[str], *, root: Path, env: dict[str, str]) -> ManagedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), full_env.get("PYTHONPATH", "")) if p)
    full_env.update(env)
    return ManagedProcess(name=name, argv=[sys.executable, "-m", *args], log_path=root / f"{name}.log",
                          pid_path=root / f"{name}.pid", env=full_env, cwd=REPO)


@pytest.fixture(scope="module")
def vn_stack(
    vn_super: LocalSuperCluster, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path]
) -> Iterator[_Stack]:
    """Operator + syncer (with the VirtualNodeManager) + ``python -m virtual_node.proxy`` on vn_super."""
    from e2e.conftest import SuperCluster
    from e2e.operator_fixtures import running_operator

    root = tmp_path_factory.mktemp("vn-stack")
    sc = SuperCluster(launcher=vn_super, info=vn_super.info, kubeconfig=vn_super.kubeconfig,
                      server=vn_super.server, admin=vn_super.admin, state_dir=vn_super.state_dir)
    proxy_port = pick_free_port()
    proxy = _python_process("kubelet-proxy", ["virtual_node.proxy"], root=root, env={
        "VC_SUPER_KUBECONFIG": str(vn_super.kubeconfig), "VC_PROXY_HOST": "127.0.0.1",
        "VC_PROXY_PORT": str(proxy_port), "VC_PROXY_METRICS_PORT": str(pick_free_port()),
        "VC_KUBELET_SCHEME": "https", "VC_PROXY_SERVING_NAMES": "127.0.0.1",
    })
    metrics_port = pick_free_port()
    syncer = _python_process("syncer", ["syncer", f"--kubeconfig={vn_super.kubeconfig}"], root=root, env={
        "VC_KUBELET_PROXY_ADDRESS": "127.0.0.1", "VC_KUBELET_PROXY_PORT": str(proxy_port),
        "VC_SYNCER_METRICS_PORT": str(metrics_port),
        "VC_VNODE_HEARTBEAT_PERIOD": "2", "VC_VNODE_STATUS_REPORT_PERIOD": "10", "VC_VNODE_GC_GRACE_PERIOD": "4",
    })
    for proc in (proxy, syncer):
        component_logs[f"vn {proc.name}"] = proc.log_path
    component_logs["vn operator"] = root / "operator.log"
    try:
        proxy.start()
        proxy.wait_ready(tcp_check("127.0.0.1", proxy_port), timeout=60, what="kubelet proxy")
        with running_operator(sc, state_dir=root / "operator", log_path=root / "operator.log") as op:
            syncer.start()
            yield _Stack(super_=sc, operator=op, proxy_port=proxy_port, root=root, syncer=syncer,
                         metrics_port=metrics_port)
    finally:
        syncer.stop()
        proxy.stop()


def _kubectl_json(tenant: Any, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(tenant.kubectl(*args, "-o", "json").stdout)
    return out


def _pod_manifest(name: str, node: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": "busybox"}]},
    })


async def _wait_bound(tenant: Any, name: str) -> str:
    async def bound() -> str | None:
        pod = _kubectl_json(tenant, "get", "pod", name, "-n", "default")
        if (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName"):
            return str(pod["spec"]["nodeName"])
        return None

    return await eventually(bound, within=120, what=f"tenant pod {name} Running and bound")


def _port_forward_roundtrip(tenant: Any, pod: str, payload: bytes) -> bytes:
    proc = subprocess.Popen(
        ["kubectl", f"--kubeconfig={tenant.kubeconfig_path}", "port-forward", "-n", "default", f"pod/{pod}",
         "--address=127.0.0.1", ":8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 8080"
        assert "Forwarding from" in line, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        local_port = int(line.split("->")[0].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", local_port), timeout=30) as conn:
            conn.sendall(payload)
            got = b""
            while len(got) < len(payload) + 5:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                got += chunk
        return got
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _attach_sees_new_output(tenant: Any, pod: str, attach_file: Path) -> bool:
    proc = subprocess.Popen(
        ["kubectl", f"--kubeconfig={tenant.kubeconfig_path}", "attach", "-n", "default", pod, "-c", "app"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline:
            n += 1
            with attach_file.open("a") as fh:  # CRI log format, as kwok reads it
                fh.write(f"2026-01-01T00:00:{n % 60:02d}.000000000Z stdout F attached-line-{n}\n")
            try:
                while True:
                    if "attached-line-" in lines.get(timeout=0.5):
                        return True
            except queue.Empty:
                continue
        return False
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _pod_checks(stack: _Stack, key: str) -> dict[str, float]:
    """``vc_virtual_node_pod_checks_total`` of tenant ``key`` by answer source, from the syncer's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{stack.metrics_port}/metrics") as resp:
        text = await resp.text()
    return {s.labels["source"]: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "vc_virtual_node_pod_checks_total" and s.labels.get("tenant") == key}


def _node_names(tenant: Any) -> set[str]:
    return {n["metadata"]["name"] for n in _kubectl_json(tenant, "get", "nodes")["items"]}


async def test_tenants_see_their_nodes_and_reach_their_pods(vn_stack: _Stack, unique_name: str) -> None:
    from e2e.operator_fixtures import create_tenant

    sc = vn_stack.super_
    node_0, node_1, node_2 = sc.info.node_names[:3]
    names = (f"{unique_name[:20]}a", f"{unique_name[:20]}b")
    for name in names:  # provision both control planes at once
        create_tenant(sc, name, wait=False, operator=vn_stack.operator)
    a, b = (create_tenant(sc, name, operator=vn_stack.operator) for name in names)
    a.kubectl("apply", "-f", "-", input=_pod_manifest("web-0", node_0))
    a.kubectl("apply", "-f", "-", input=_pod_manifest("web-1", node_1))
    b.kubectl("apply", "-f", "-", input=_pod_manifest("other", node_2))
    assert await _wait_bound(a, "web-0") == node_0
    assert await _wait_bound(a, "web-1") == node_1
    assert await _wait_bound(b, "other") == node_2

    # Exactly the nodes that run the tenant's pods; never a node with only others' pods.
    assert _node_names(a) == {node_0, node_1}
    assert _node_names(b) == {node_2}
    for v_node in _kubectl_json(a, "get", "nodes")["items"]:
        assert _ready(v_node) == "True"

    # kubectl logs and exec from the tenant's own kubeconfig, through its apiserver and the proxy.
    logs = a.kubectl("logs", "web-0", "-n", "default")
    assert LOG_LINE in logs.stdout
    out = a.kubectl("exec", "web-1", "-n", "default", "--", "echo", "exec-through-tenant")
    assert "exec-through-tenant" in out.stdout
    # stdin too: bytes flow both ways through the upgraded connection.  (``head -c``, not ``cat``:
    # kwok's local exec never sees stdin's EOF, with or without the proxy in between.)
    echoed = a.kubectl("exec", "-i", "web-1", "-n", "default", "--", "head", "-c", "18",
                       input="ping-through-stdin\n")
    assert "ping-through-stdin" in echoed.stdout

    # kubectl port-forward: a local port → tenant apiserver → proxy → kwok → the echo target.
    assert _port_forward_roundtrip(a, "web-0", b"ping-through-port-forward") == b"echo:ping-through-port-forward"

    # kubectl attach: follows the container's output (kwok: lines appended to its attach file).
    assert _attach_sees_new_output(a, "web-0", vn_stack.super_.launcher.attach_file)

    # Tenant B's kubelet client certificate cannot read tenant A's pod, even with A's super namespace.
    async with ApiClient.from_kubeconfig(sc.kubeconfig) as api:
        ca = await ensure_ca_secret(api)
    cert_b = issue_tenant_client_cert(ca, b.cluster_key)
    base = f"https://127.0.0.1:{vn_stack.proxy_port}"
    async with aiohttp.ClientSession() as http:
        for ns in ("default", naming.super_namespace(a.cluster_key, "default")):
            async with http.get(f"{base}/containerLogs/{ns}/web-0/app", ssl=_client_ssl(ca, cert_b)) as resp:
                body = await resp.text()
                assert resp.status == 404, body
                assert LOG_LINE not in body

    # The last pod on node_1 goes: its virtual node is collected after the (short) grace period.
    a.kubectl("delete", "pod", "web-1", "-n", "default", "--wait=false")

    async def node_1_gone() -> bool:
        return node_1 not in _node_names(a)

    await eventually(node_1_gone, within=120, what="idle virtual node collected")
    # The heartbeats (every 2 s) asked the syncer's pod cache whether a pod is bound, not the tenant
    # apiserver: node_0 (web-0 running) stayed through them, node_1 went once its pod was gone.
    checks = await _pod_checks(vn_stack, a.cluster_key)
    assert checks.get("cache", 0) > 0, checks
    # Kept alive by heartbeats all along: still Ready, and without the not-ready taint kube-apiserver's
    # admission put on it at creation (the VirtualNodeManager drops it; no node-lifecycle in tenants).
    v_node_0 = _kubectl_json(a, "get", "node", node_0)
    assert _ready(v_node_0) == "True"
    assert not {t["key"] for t in v_node_0["spec"].get("taints") or []} & {
        "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"}

    # A simulated node stops (its Node object is deleted): the tenant's virtual node turns NotReady.
    sc.kubectl("delete", "node", node_0, "--wait=false")

    async def node_0_not_ready() -> bool:
        v_node = _kubectl_json(a, "get", "node", node_0)
        return _ready(v_node) in ("Unknown", "False")

    await eventually(node_0_not_ready, within=60, what="virtual node NotReady after its super node stopped")


#: Taints the node-lifecycle controller puts on a node that stops reporting.
_LIFECYCLE_TAINTS = frozenset({"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"})


def _lease_renewed(tenant: Any, node: str) -> str:
    lease = _kubectl_json(tenant, "get", "lease", node, "-n", naming.NODE_LEASE_NAMESPACE)
    return str(lease["spec"]["renewTime"])


async def test_syncer_outage_leaves_tenant_pods_alone(vn_stack: _Stack, unique_name: str) -> None:
    """With the syncer down past the tenant's node-monitor grace period, nothing taints or evicts.

    The tenant's kube-controller-manager runs without node-lifecycle (``builder.TENANT_CONTROLLERS``).
    With it (``--controllers=*``, measured with this test): a grace period after the last heartbeat the
    virtual node reads ``Ready=Unknown`` with ``unreachable:NoSchedule`` and the pod ``Ready=False``
    (out of the tenant's endpoints).  A node that goes stale while another of the tenant's nodes is still
    Ready also gets ``unreachable:NoExecute``; after the pods' toleration taint-eviction deletes them and
    the syncer, once back, deletes the healthy super pods (when every node is stale at once the
    controller holds back: "master disruption mode").
    """
    from e2e.operator_fixtures import create_tenant

    grace = 10  # seconds; the default (50 s) would make this test slow
    tenant = create_tenant(vn_stack.super_, f"{unique_name[:20]}o", operator=vn_stack.operator, controlPlane={
        "extraArgs": {"controllerManager": {"node-monitor-grace-period": f"{grace}s"}}})
    tenant.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keep", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "busybox"}]},
    }))
    node = await _wait_bound(tenant, "keep")

    vn_stack.syncer.stop()
    try:
        last_heartbeat = _lease_renewed(tenant, node)
        stale_since = time.monotonic()
        while time.monotonic() - stale_since < 3 * grace:
            v_node = _kubectl_json(tenant, "get", "node", node)
            taints = [t for t in v_node["spec"].get("taints") or [] if t["key"] in _LIFECYCLE_TAINTS]
            assert not taints, f"virtual node {node} tainted while the syncer is down: {taints}"
            assert _ready(v_node) == "True"  # the super node is healthy; nobody in the tenant says otherwise
            pod = _kubectl_json(tenant, "get", "pod", "keep", "-n", "default")
            assert not pod["metadata"].get("deletionTimestamp"), "tenant pod deleted while the syncer is down"
            # Not marked NotReady either (which would drop it from the tenant's endpoints).
            assert {"type": "Ready", "status": "True"}.items() <= next(
                c for c in pod["status"]["conditions"] if c["type"] == "Ready").items()
            await asyncio.sleep(1)
        # No heartbeat for three grace periods: what the tenant's node-lifecycle controller acts on.
        assert _lease_renewed(tenant, node) == last_heartbeat
        # A lifecycle taint left on the node (as by a controller-manager that ran node-lifecycle before
        # this tenant got the current flags): the restarted syncer repairs the nodes it adopts.
        tenant.kubectl("taint", "node", node, "node.kubernetes.io/unreachable:NoSchedule")
    finally:
        vn_stack.syncer.start()

    # The syncer back: a fresh Lease, the node Ready and untainted, the pod still Running (never restarted).
    async def back() -> bool:
        v_node = _kubectl_json(tenant, "get", "node", node)
        pod = _kubectl_json(tenant, "get", "pod", "keep", "-n", "default")
        taints = [t for t in v_node["spec"].get("taints") or [] if t["key"] in _LIFECYCLE_TAINTS]
        return (_lease_renewed(tenant, node) > last_heartbeat and _ready(v_node) == "True" and not taints
                and pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"))

    await eventually(back, within=60, what="virtual node Ready with a fresh Lease and the pod Running again")
