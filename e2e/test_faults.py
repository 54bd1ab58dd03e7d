"""Faults on the embedded default (``kubectl vc up``): components come back, the Tenant's status tells the truth.

Why: the issue-13 sequence, as a user meets it.  A crashed component of the
embedded default must be restarted by its supervisor (and ``status`` must
say so); a tenant control plane that hangs, loses its etcd or dies must show
``Ready=False`` with the reason within seconds -- and ``Ready=True`` again
once it is repaired -- with an Event per change.  Like ``e2e/test_cli.py``
this starts its own embedded default in a private state folder (it cannot
reuse the session super cluster), shared by all of its tests; the supervisor and
the operator's health loop run with their default settings.

The faults of the super side are injected while the tenant keeps creating
objects (:class:`Load`), and each ends with the same invariant
(:func:`assert_converged`): every tenant object has exactly one super copy,
no orphan, no duplicate, and the pods' statuses came back up.  Each fault is
a real one: the super etcd stopped and started again, the syncer's
connections to the super apiserver reset by the kernel (``ss -K``), the
operator SIGKILLed while it provisions a Tenant, the kubelet proxy SIGKILLed
under a streaming ``kubectl logs -f``.  The syncer's ``Synced`` condition is
read from the Tenant as a user would (``kubectl get tenant``), and a second
tenant, ``victim``, with objects of its own gets broken input in turn -- its
kubeconfig Secret corrupted (repaired by the operator; then told by the
syncer alone, the operator paused), its apiserver hung (SIGSTOP), its
Secret pointed at a loopback listener that answers garbage
(``e2e/broken_remote.py``) -- each told on its Tenant while the first
tenant's objects keep converging, and each healed with ``victim``'s objects
converged again (one super copy each).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from e2e.broken_remote import GarbageApiserver, pointed_at
from e2e.cli_fixtures import Cli
from e2e.operator_fixtures import control_plane_processes
from vcluster import naming
from vcluster.controlplane.local import PORTS_FILE, LocalBackend
from vcluster.kube import ApiClient, ApiError, resources
from vcluster.process import ManagedProcess, pid_alive
from vcluster.settings import BinarySettings
from vcluster.testbed import read_info
from vcluster.testbed.kwok import SIMULATED_LOG_LINE

pytestmark = pytest.mark.e2e

TENANT = "faulty"
#: The tenant-wide quota of ``faulty``: every test of the module adds a :class:`Load` to it, each creating
#: ConfigMaps until its fault is told and healed, so on a slow machine they add up to more than the
#: operator's default (500 ConfigMaps; 100 pods) and the last load's objects would wait for room
#: (``PolicyViolation``) instead of syncing.  Quota is not what this module tests.
FAULTY_QUOTA = "pods=5000,configmaps=20000"
#: Pods one :class:`Load` makes at most: they stay Running on the module's one kwok node, which takes
#: 110 pods, and the loads of all tests together must leave room (unbounded, they filled it on a slow
#: machine and the last load's pods stayed Pending: "Too many pods").
LOAD_MAX_PODS = 12


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, binary_settings: object,
        component_logs: dict[str, Path]) -> Iterator[Cli]:
    """One embedded default for the module, with tenant ``faulty``; ``down`` at the end, whatever happened."""
    state = tmp_path_factory.mktemp("vc-faults")
    for name in ("supervisor", "operator", "kubelet-proxy", "syncer"):
        component_logs[f"faults {name}"] = state / "logs" / f"{name}.log"
    c = Cli(state)
    try:
        c.ok("up", timeout=600)
        c.ok("create", TENANT, "--quota", FAULTY_QUOTA, "--wait", "--timeout", "240")
        yield c
    finally:
        c.run("down", timeout=180)


def _poll(check: Callable[[], Any], *, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def _ready(cli: Cli) -> dict[str, Any]:
    obj = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    return {"phase": obj["status"]["phase"], **cond}


def _ready_is(cli: Cli, status: str, reason: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        got = _ready(cli)
        return got if (got["status"], got["reason"]) == (status, reason) else None

    return check


def _events(cli: Cli, name: str = TENANT) -> list[tuple[str, str]]:
    """``(type, reason)`` of the Tenant's Events, oldest first."""
    items = json.loads(cli.kubectl("get", "events", "-n", "default", "--field-selector",
                                   f"involvedObject.name={name}", "-o", "json"))["items"]
    # in the order they were made: timestamps have whole seconds (two Events of one second, e.g. the health
    # loop's and a resumed reconcile's, would tie); one etcd's resourceVersions only grow
    items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"]) for e in items]


def test_killed_component_is_restarted_and_status_says_so(cli: Cli) -> None:
    before = cli.components()
    assert before["supervisor"]["state"] == "running"
    assert before["operator"]["restarts"] == 0
    old = before["operator"]["pid"]
    os.kill(old, signal.SIGKILL)
    after = _poll(lambda: (c := cli.components())["operator"]["state"] == "running"
                  and c["operator"]["pid"] not in (None, old) and c,
                  what="the supervisor restarted the operator", timeout=60)
    assert after["operator"]["restarts"] == 1
    assert after["operator"]["last_exit"].startswith("killed by signal 9")
    assert pid_alive(after["operator"]["pid"])
    assert after["syncer"]["restarts"] == 0  # the others were left alone
    table = cli.run("status").stdout
    assert "RESTARTS" in table
    assert "LAST EXIT" in table


def test_tenant_status_follows_its_control_plane(cli: Cli) -> None:
    key = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))["status"]["clusterKey"]
    operator_dir = cli.state_dir.resolve() / "operator"

    def pid_of(component: str) -> int:
        pids = control_plane_processes(operator_dir, key)[component]
        assert len(pids) == 1, pids
        return pids[0]

    apiserver = pid_of("kube-apiserver")
    os.kill(apiserver, signal.SIGSTOP)  # hangs: the port still accepts, nothing answers
    try:
        down = _poll(_ready_is(cli, "False", "ApiserverUnreachable"), what="Ready=False ApiserverUnreachable")
        assert down["phase"] == "Degraded"
        columns = cli.kubectl("get", "tenant", TENANT).splitlines()
        assert columns[0].split()[:4] == ["NAME", "PHASE", "READY", "REASON"]
        assert columns[1].split()[:4] == [TENANT, "Degraded", "False", "ApiserverUnreachable"]
    finally:
        os.kill(apiserver, signal.SIGCONT)
    back = _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after the apiserver thawed")
    assert back["phase"] == "Ready"
    assert pid_of("kube-apiserver") == apiserver  # a hang is reported, not "repaired" by a restart

    etcd = pid_of("etcd")
    os.kill(etcd, signal.SIGSTOP)
    try:
        _poll(_ready_is(cli, "False", "EtcdUnhealthy"), what="Ready=False EtcdUnhealthy")
    finally:
        os.kill(etcd, signal.SIGCONT)
    _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after etcd thawed")

    os.kill(apiserver, signal.SIGKILL)
    _poll(lambda: ("Warning", "ProcessExited") in _events(cli), what="a ProcessExited Event", timeout=60)
    _poll(_ready_is(cli, "True", "Ready"), what="Ready=True after the repair", timeout=180)
    assert pid_of("kube-apiserver") != apiserver

    # one Event per transition, in order
    watched = {"ApiserverUnreachable", "EtcdUnhealthy", "ProcessExited", "Ready"}
    events = [e for e in _events(cli) if e[1] in watched]
    assert events[events.index(("Warning", "ApiserverUnreachable")):] == [
        ("Warning", "ApiserverUnreachable"), ("Normal", "Ready"),
        ("Warning", "EtcdUnhealthy"), ("Normal", "Ready"),
        ("Warning", "ProcessExited"), ("Normal", "Ready"),
    ]

    # the controller-manager alone: restarted quietly, the Tenant stays Ready, a Warning Event says so
    restarted = ("Warning", "ControllerManagerRestarted")
    before = _events(cli)
    cm = pid_of("kube-controller-manager")
    os.kill(cm, signal.SIGKILL)
    _poll(lambda: _events(cli).count(restarted) > before.count(restarted),
          what="a ControllerManagerRestarted Event", timeout=60)
    _poll(lambda: control_plane_processes(operator_dir, key).get("kube-controller-manager") not in (None, [], [cm]),
          what="a new controller-manager", timeout=60)
    assert _ready_is(cli, "True", "Ready")() is not None
    assert _events(cli).count(("Warning", "ProcessExited")) == before.count(("Warning", "ProcessExited"))


def test_super_apiserver_stall_heals_by_itself(cli: Cli, tmp_path: Path) -> None:
    """The issue's sequence: the super kube-apiserver stopped 30 s while a tenant creates a pod."""
    kubeconfig = tmp_path / "tenant.kubeconfig"
    cli.ok("kubeconfig", TENANT, "-o", str(kubeconfig))

    def tenant(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                              timeout=60, check=False)

    super_apiserver = cli.components()["kube-apiserver"]["pid"]
    os.kill(super_apiserver, signal.SIGSTOP)
    try:
        made = tenant("run", "during-stall", "--image=registry.invalid/web:1")
        assert made.returncode == 0, made.stderr
        time.sleep(30)  # the fault itself lasts 30 s (what is measured comes after it)
    finally:
        os.kill(super_apiserver, signal.SIGCONT)

    ready = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "wait", "pod/during-stall",
                            "--for=condition=Ready", "--timeout=180s"], capture_output=True, text=True,
                           timeout=200, check=False)
    assert ready.returncode == 0, ready.stderr
    key = json.loads(cli.kubectl("get", "tenant", TENANT, "-o", "json"))["status"]["clusterKey"]
    copies = cli.kubectl("get", "pods", "-A", "-l", f"{naming.LABEL_CLUSTER_KEY}={key}", "-o", "name").split()
    assert [c.rsplit("/", 1)[1] for c in copies].count("during-stall") == 1
    _poll(lambda: all(c["state"] == "running" for c in cli.components().values()),
          what="every component running again", timeout=120)
    assert _ready(cli)["status"] == "True"


# ---- faults while the tenant creates objects ------------------------------------------------------


@pytest.fixture(scope="module")
def tenant_kubeconfig(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults-tenant") / "tenant.kubeconfig"
    cli.ok("kubeconfig", TENANT, "-o", str(path))
    return path


def _tenant(kubeconfig: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


class Load:
    """Creates ConfigMaps and Pods (label ``load=<ns>``) in tenant namespace ``ns`` until stopped (a pod
    with every third ConfigMap, at most ``max_pods``).

    Runs in a thread with its own event loop, so the test can inject its fault meanwhile; the tenant
    apiserver is not the one hurt, so its creates succeed (a failed one is recorded, not retried).
    """

    def __init__(self, kubeconfig: Path, ns: str, *, max_pods: int = LOAD_MAX_PODS) -> None:
        self.kubeconfig = kubeconfig
        self.ns = ns
        self.created = 0
        #: Pods made so far (one with every third ConfigMap, at most ``max_pods``).
        self.pods = 0
        self.max_pods = max_pods
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with ApiClient.from_kubeconfig(self.kubeconfig) as api:
            labels = {"load": self.ns}
            while not self._stop.is_set():
                n = self.created
                try:
                    await api.create(resources.CONFIGMAPS, {
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"cm-{n:04d}", "namespace": self.ns, "labels": labels},
                        "data": {"n": str(n)}})
                    if n % 3 == 0 and self.pods < self.max_pods:
                        self.pods += 1
                        await api.create(resources.PODS, {
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"pod-{n:04d}", "namespace": self.ns, "labels": labels},
                            "spec": {"terminationGracePeriodSeconds": 0,
                                     "containers": [{"name": "c", "image": "registry.invalid/app:1"}]}})
                except ApiError as exc:
                    self.errors.append(str(exc))
                self.created += 1
                await asyncio.sleep(0.2)

    def wait_created(self, count: int) -> None:
        _poll(lambda: self.created >= count, what=f"{count} tenant objects created", timeout=120)

    def __enter__(self) -> Load:
        made = _tenant(self.kubeconfig, "create", "namespace", self.ns)
        assert made.returncode == 0, made.stderr
        _poll(lambda: _tenant(self.kubeconfig, "get", "sa", "default", "-n", self.ns).returncode == 0,
              what=f"the default ServiceAccount of {self.ns}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _copies(cli: Cli, kind: str, p_ns: str, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(cli.kubectl("get", kind, "-n", p_ns, "-l", f"load={ns}",
                                                         "-o", "json"))["items"]
    return [o for o in items if not o["metadata"].get("deletionTimestamp")]


def _warnings(kubeconfig: Path, ns: str) -> list[str]:
    """The distinct ``reason: message`` of the Warning Events in tenant namespace ``ns`` (what the syncer
    told about objects it did not sync, e.g. a quota that has no room), at most five."""
    got = _tenant(kubeconfig, "get", "events", "-n", ns, "--field-selector", "type=Warning", "-o", "json")
    if got.returncode != 0:
        return [got.stderr.strip()]
    told = dict.fromkeys(f"{e.get('reason')}: {e.get('message')}" for e in json.loads(got.stdout)["items"])
    return list(told)[:5]


def _super_pods(cli: Cli, p_ns: str | None, *, key: str = "", but: str = "") -> list[str]:
    """Every pod of super namespace ``p_ns`` (whatever its labels), or every pod of tenant ``key`` outside
    namespace ``but``, as ``namespace/name phase node [deleting]``."""
    where = ["-n", p_ns] if p_ns is not None else ["-A", "-l", f"{naming.LABEL_CLUSTER_KEY}={key}"]
    items = json.loads(cli.kubectl("get", "pods", *where, "-o", "json"))["items"]
    return [f"{o['metadata']['namespace']}/{o['metadata']['name']} {(o.get('status') or {}).get('phase')} "
            f"{(o.get('spec') or {}).get('nodeName')}" + (" deleting" if o["metadata"].get("deletionTimestamp") else "")
            for o in items if o["metadata"]["namespace"] != but]


def assert_converged(cli: Cli, kubeconfig: Path, load: Load, tenant: str = TENANT) -> tuple[int, int]:
    """Every tenant object of the load has exactly one super copy (none missing, orphaned or duplicated),
    and every tenant pod is Running (its status came back up).  Returns (configmaps, pods)."""
    assert not load.errors, load.errors[:3]
    key = json.loads(cli.kubectl("get", "tenant", tenant, "-o", "json"))["status"]["clusterKey"]
    p_ns = naming.super_namespace(key, load.ns)
    last: dict[str, Any] = {}

    def same() -> tuple[int, int] | None:
        counts = []
        for kind in ("configmaps", "pods"):
            made = _tenant(kubeconfig, "get", kind, "-n", load.ns, "-l", f"load={load.ns}", "-o", "json")
            assert made.returncode == 0, made.stderr
            tenant_items = json.loads(made.stdout)["items"]
            want = {o["metadata"]["name"]: o["metadata"]["uid"] for o in tenant_items}
            copies = _copies(cli, kind, p_ns, load.ns)
            got = {o["metadata"]["name"]: o["metadata"]["annotations"][naming.ANN_OBJECT_UID] for o in copies}
            last[kind] = (len(want), len(got), len(copies), sorted(set(want) ^ set(got))[:5])
            if want != got or len(copies) != len(got):
                return None
            if kind == "pods" and any((o.get("status") or {}).get("phase") != "Running" for o in tenant_items):
                last["pods not Running"] = [o["metadata"]["name"] for o in tenant_items
                                            if (o.get("status") or {}).get("phase") != "Running"][:5]
                return None
            counts.append(len(want))
        return counts[0], counts[1]

    try:
        got: tuple[int, int] = _poll(same, what="the super copies equal the tenant's objects", timeout=240)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last (tenant, super names, super objects, differing): {last}; "
                             f"the tenant's Warning Events in {load.ns}: {_warnings(kubeconfig, load.ns)}; "
                             f"the super pods in {p_ns}: {_super_pods(cli, p_ns)}; the tenant's super pods elsewhere: "
                             f"{_super_pods(cli, None, key=key, but=p_ns)}; its quota status: "
                             f"{json.loads(cli.kubectl('get', 'tenant', tenant, '-o', 'json'))['status'].get('quota')}"
                             ) from None
    assert got[0] == load.created, (got, load.created)
    return got


def test_super_etcd_restart_loses_nothing(cli: Cli, tenant_kubeconfig: Path) -> None:
    info = read_info(cli.state_dir.resolve() / "super")
    comp = info.components["etcd"]
    etcd = ManagedProcess(name="etcd", argv=list(comp.argv), log_path=Path(comp.log_file),
                          pid_path=Path(comp.pid_file))
    assert etcd.adopt(), "the super etcd runs from its pid file"
    with Load(tenant_kubeconfig, "etcd-restart") as load:
        load.wait_created(10)
        etcd.stop(grace=10)
        time.sleep(3)  # the fault: the super cluster has no storage for a while
        etcd.start()   # same argv, same data folder (``down`` finds it through the pid file)
        restarted_at = load.created
        load.wait_created(restarted_at + 10)
    assert_converged(cli, tenant_kubeconfig, load)
    assert cli.components()["etcd"]["state"] == "running"


def _connections(pid: int, port: int) -> list[str]:
    """``src`` addresses of ``pid``'s established TCP connections to 127.0.0.1:``port``."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [line.split()[2] for line in out.splitlines() if re.search(rf"pid={pid},", line)]


def test_cut_super_watch_resumes(cli: Cli, tenant_kubeconfig: Path) -> None:
    """The kernel resets every connection of the syncer to the super apiserver, its watches among them."""
    syncer = cli.components()["syncer"]
    port = urlsplit(read_info(cli.state_dir.resolve() / "super").server).port
    assert port is not None
    log_path = cli.state_dir / "logs" / "syncer.log"
    with Load(tenant_kubeconfig, "watch-cut") as load:
        load.wait_created(10)
        before = log_path.stat().st_size
        conns = _connections(syncer["pid"], port)
        assert conns, "the syncer holds connections to the super apiserver"
        for src in conns:
            subprocess.run(["ss", "-K", "-Htn", "src", src, "dst", f"127.0.0.1:{port}"], capture_output=True,
                           check=True, timeout=30)
        cut_at = load.created
        load.wait_created(cut_at + 10)
    assert_converged(cli, tenant_kubeconfig, load)
    with log_path.open("rb") as fh:
        fh.seek(before)
        after = fh.read().decode(errors="replace")
    assert "informer.remote.down" in after  # the cut was seen (and survived: the objects above converged)
    assert cli.components()["syncer"]["pid"] == syncer["pid"]  # no crash, no restart


def _listening(pids: set[int]) -> set[int]:
    """TCP ports these pids listen on."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True, timeout=30).stdout
    ports: set[int] = set()
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def test_operator_killed_mid_provisioning(cli: Cli) -> None:
    name = "halfmade"
    operator_dir = cli.state_dir.resolve() / "operator"
    made = cli.run("create", name)
    assert made.returncode == 0, made.stderr
    uid = json.loads(cli.kubectl("get", "tenant", name, "-o", "json"))["metadata"]["uid"]
    key = naming.cluster_key(name, uid)
    # Kill it once the control plane is half there: some of its processes run, the Tenant is not Ready.
    _poll(lambda: control_plane_processes(operator_dir, key), what="the first control-plane process", timeout=180)
    old = cli.components()["operator"]["pid"]
    os.kill(old, signal.SIGKILL)
    try:
        obj = _poll(lambda: (o := json.loads(cli.kubectl("get", "tenant", name, "-o", "json")))["status"].get(
            "phase") == "Ready" and o, what=f"{name} Ready after the operator's restart", timeout=300)
        assert cli.components()["operator"]["restarts"] >= 1
        assert obj["status"]["clusterKey"] == key
        # One healthy control plane: one process per component, no leftover of the killed attempt.
        procs = control_plane_processes(operator_dir, key)
        assert {c: len(p) for c, p in procs.items()} == {"etcd": 1, "kube-apiserver": 1,
                                                           "kube-controller-manager": 1}, procs
        backend = LocalBackend(state_dir=operator_dir, binary_settings=BinarySettings.from_env())
        everything = backend.processes(key)
        assert len(everything) == 3, everything
        # No leaked ports: what the tenant's processes listen on is what its ports file names.
        recorded = set(json.loads((backend.tenant_dir(key) / PORTS_FILE).read_text()).values())
        assert _listening({pid for pid, _ in everything}) <= recorded
        # No leaked namespaces: every namespace of the tenant carries this key; one root.
        namespaces = json.loads(cli.kubectl("get", "ns", "-l", f"{naming.LABEL_TENANT}={name}",
                                            "-o", "json"))["items"]
        assert {n["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] for n in namespaces} == {key}
        roots = [n for n in namespaces if n["metadata"]["labels"].get(naming.LABEL_NAMESPACE_ROLE) == naming.ROLE_ROOT]
        assert [n["metadata"]["name"] for n in roots] == [key]
        assert sorted(p.name for p in operator_dir.iterdir() if p.is_dir() and p.name.startswith(name)) == [key]
    finally:
        cli.run("delete", name, "--wait", timeout=240)


def test_kubelet_proxy_killed_under_logs_follow(cli: Cli, tenant_kubeconfig: Path) -> None:
    made = _tenant(tenant_kubeconfig, "run", "talker", "--image=registry.invalid/app:1")
    assert made.returncode == 0, made.stderr
    waited = _tenant(tenant_kubeconfig, "wait", "pod/talker", "--for=condition=Ready", "--timeout=180s",
                     timeout=200)
    assert waited.returncode == 0, waited.stderr
    follow = subprocess.Popen(["kubectl", f"--kubeconfig={tenant_kubeconfig}", "logs", "-f", "talker"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        assert SIMULATED_LOG_LINE in follow.stdout.readline()  # streaming, through the proxy
        assert follow.poll() is None, "kubectl logs -f is still following"
        proxy = cli.components()["kubelet-proxy"]["pid"]
        os.kill(proxy, signal.SIGKILL)
        # The stream ends (the tenant apiserver's connection to the proxy is gone); it does not hang.
        follow.wait(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
    _poll(lambda: (c := cli.components()["kubelet-proxy"])["state"] == "running" and c["pid"] != proxy,
          what="the supervisor restarted the kubelet proxy", timeout=60)
    # The tenant's next request works, once the proxy answers again.
    logs = _poll(lambda: (r := _tenant(tenant_kubeconfig, "logs", "talker")).returncode == 0 and r.stdout,
                 what="kubectl logs works again", timeout=60)
    assert SIMULATED_LOG_LINE in logs


# ---- the syncer's word on the Tenant, and broken tenants ----------------------------------------


def _synced(cli: Cli, name: str = TENANT) -> dict[str, Any]:
    obj = json.loads(cli.kubectl("get", "tenant", name, "-o", "json"))
    status = obj.get("status") or {}
    cond: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Synced"), {})
    return {**cond, "sync": status.get("sync") or {}, "ready": _ready_of(obj)}


def _ready_of(obj: dict[str, Any]) -> str:
    return str(next((c["status"] for c in obj["status"].get("conditions") or [] if c["type"] == "Ready"), ""))


def test_synced_condition_and_columns(cli: Cli) -> None:
    got = _poll(lambda: (s := _synced(cli)).get("status") == "True" and s, what="Synced=True on the Tenant")
    assert got["reason"] == "Synced"
    assert got["ready"] == "True"  # the operator's condition is still there beside the syncer's
    assert got["sync"]["reachable"] is True
    assert isinstance(got["sync"]["pending"], int)
    assert got["sync"]["lastFullSync"].endswith("Z")
    table = cli.kubectl("get", "tenant", TENANT).splitlines()
    header = table[0].split()
    assert header[:6] == ["NAME", "PHASE", "READY", "REASON", "SYNCED", "PENDING"]
    assert table[1].split()[4] == "True"
    assert "LAST SYNC" in cli.kubectl("get", "tenant", TENANT, "-o", "wide").splitlines()[0]


@pytest.fixture(scope="module")
def victim(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    """A second tenant, ``victim``, for broken input, with objects of its own (namespace ``victim-objs``)."""
    name = "victim"
    cli.ok("create", name, "--wait", "--timeout", "300")
    try:
        kubeconfig = tmp_path_factory.mktemp("faults-victim") / "victim.kubeconfig"
        cli.ok("kubeconfig", name, "-o", str(kubeconfig))
        status = json.loads(cli.kubectl("get", "tenant", name, "-o", "json"))["status"]
        ref = status["kubeconfigSecret"]
        _poll(lambda: _synced(cli, name).get("status") == "True", what="victim Synced")
        with Load(kubeconfig, "victim-objs") as load:
            load.wait_created(9)
        assert_converged(cli, kubeconfig, load, tenant=name)
        yield Victim(name=name, key=status["clusterKey"], kubeconfig=kubeconfig, load=load,
                     secret=["secret", ref["name"], "-n", ref["namespace"]])
    finally:
        cli.run("delete", name, "--wait", timeout=240)


class Victim:
    """Tenant ``victim``: its name, cluster key, kubeconfig, the objects it has, its kubeconfig Secret."""

    def __init__(self, *, name: str, key: str, kubeconfig: Path, load: Load, secret: list[str]) -> None:
        self.name = name
        self.key = key
        self.kubeconfig = kubeconfig
        self.load = load
        self.secret = secret

    def secret_data(self, cli: Cli) -> str:
        return str(json.loads(cli.kubectl("get", *self.secret, "-o", "json"))["data"][naming.KUBECONFIG_SECRET_KEY])

    def write_secret(self, cli: Cli, data: str) -> None:
        patch = {"data": {naming.KUBECONFIG_SECRET_KEY: data}}
        cli.kubectl("patch", *self.secret, "--type=merge", "-p", json.dumps(patch))


def test_corrupted_secret_is_repaired_by_the_operator(cli: Cli, tenant_kubeconfig: Path, victim: Victim) -> None:
    """``victim``'s kubeconfig Secret corrupted: told on ``victim`` and repaired by the operator, and tenant
    ``faulty``'s objects keep converging meanwhile."""
    garbage = base64.b64encode(b"apiVersion: v1\nclusters: [oops").decode()
    victim.write_secret(cli, garbage)
    with Load(tenant_kubeconfig, "beside-broken") as load:
        # told on the Tenant (the operator's health loop reads the Secret again within 30 s, the syncer
        # within 10 s: whichever comes first)
        _poll(lambda: ("Warning", "KubeconfigUnreadable") in _events(cli, victim.name),
              what="a KubeconfigUnreadable Event on victim", timeout=120)
        load.wait_created(15)
    assert_converged(cli, tenant_kubeconfig, load)  # the other tenant kept syncing
    assert _synced(cli)["status"] == "True"
    # ... and healed: the operator wrote the Secret again, the syncer serves victim again
    _poll(lambda: victim.secret_data(cli) != garbage, what="the operator wrote the Secret again", timeout=120)
    _poll(lambda: (s := _synced(cli, victim.name))["ready"] == "True" and s.get("status") == "True",
          what="victim Ready and Synced again", timeout=180)
    assert_converged(cli, victim.kubeconfig, victim.load, tenant=victim.name)


def _syncer_events(cli: Cli, name: str) -> list[tuple[str, str, str]]:
    """``(type, reason, message)`` of the syncer's Events on Tenant ``name``, oldest first."""
    items = json.loads(cli.kubectl("get", "events", "-n", "default", "--field-selector",
                                   f"involvedObject.name={name}", "-o", "json"))["items"]
    items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"], e.get("message", "")) for e in items
            if (e.get("source") or {}).get("component") == "vc-syncer"]


def test_syncer_tells_a_corrupted_secret(cli: Cli, tenant_kubeconfig: Path, victim: Victim) -> None:
    """The syncer's own word on a corrupted kubeconfig Secret: it reads each served tenant's Secret again
    (every 10 s), tells ``Synced=False KubeconfigUnreadable`` with an Event, keeps serving the others, and
    serves the tenant again once the Secret is restored.  The operator is paused (SIGSTOP) meanwhile so
    that its own repair of the Secret cannot come first: this is the syncer's detection alone."""
    good = victim.secret_data(cli)
    garbage = base64.b64encode(b"apiVersion: v1\nclusters: [{name: x, cluster: {server: ").decode()
    before = len(_syncer_events(cli, victim.name))
    operator = cli.components()["operator"]["pid"]
    os.kill(operator, signal.SIGSTOP)
    try:
        with Load(tenant_kubeconfig, "beside-syncer-told") as load:
            victim.write_secret(cli, garbage)
            got = _poll(lambda: (s := _synced(cli, victim.name)).get("reason") == "KubeconfigUnreadable" and s,
                        what="victim Synced=False KubeconfigUnreadable (the syncer's)", timeout=90)
            assert got["status"] == "False"
            assert "not a usable kubeconfig" in got["message"]
            assert got["sync"]["reachable"] is False
            told = _syncer_events(cli, victim.name)[before:]
            assert ("Warning", "KubeconfigUnreadable") in [(t, r) for t, r, _ in told], told
            load.wait_created(load.created + 10)  # the other tenant keeps creating while victim is broken
            victim.write_secret(cli, good)
    finally:
        os.kill(operator, signal.SIGCONT)
    assert_converged(cli, tenant_kubeconfig, load)
    _poll(lambda: _synced(cli, victim.name).get("status") == "True", what="victim Synced after the restore",
          timeout=120)
    assert ("Normal", "Synced") in [(t, r) for t, r, _ in _syncer_events(cli, victim.name)[before:]]
    assert_converged(cli, victim.kubeconfig, victim.load, tenant=victim.name)


def test_hung_tenant_apiserver_wedges_nothing(cli: Cli, tenant_kubeconfig: Path, victim: Victim) -> None:
    """``victim``'s kube-apiserver SIGSTOPped while ``faulty`` creates pods: every pod of ``faulty`` is
    synced meanwhile, ``victim`` reads ``Synced=False`` with the reason, and after SIGCONT ``victim``'s
    objects converge again -- a super copy deleted during the hang is made again, one copy each."""
    pids = control_plane_processes(cli.state_dir.resolve() / "operator", victim.key)
    (apiserver,) = pids["kube-apiserver"]
    p_ns = naming.super_namespace(victim.key, victim.load.ns)
    lost = "cm-0001"
    os.kill(apiserver, signal.SIGSTOP)  # hangs: connections accepted, nothing answered
    try:
        with Load(tenant_kubeconfig, "beside-hung") as load:
            got = _poll(lambda: (s := _synced(cli, victim.name)).get("status") == "False" and s,
                        what="victim not Synced while hung", timeout=120)
            # the operator's health loop says the apiserver does not answer (Ready=False), and the
            # syncer stops serving it and says why; or the syncer's informers say it first
            assert got["reason"] in ("NotServed", "TenantUnreachable"), got
            if got["reason"] == "NotServed":
                assert "ApiserverUnreachable" in got["message"], got
            # the super side of victim changes meanwhile: a copy is lost
            cli.kubectl("delete", "configmap", lost, "-n", p_ns, "--wait=true")
            load.wait_created(15)
        assert_converged(cli, tenant_kubeconfig, load)  # the other tenant's pods all synced, during the hang
    finally:
        os.kill(apiserver, signal.SIGCONT)
    _poll(lambda: _synced(cli, victim.name).get("status") == "True", what="victim Synced after the thaw", timeout=180)
    assert_converged(cli, victim.kubeconfig, victim.load, tenant=victim.name)  # the lost copy is back, one each
    assert [o["metadata"]["name"] for o in _copies(cli, "configmaps", p_ns, victim.load.ns)].count(lost) == 1


def _syncer_metrics(cli: Cli) -> str:
    records = json.loads((cli.state_dir / "embedded.json").read_text())["components"]
    url = str(records["syncer"]["health_url"]).rsplit("/", 1)[0] + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def test_garbage_tenant_apiserver_wedges_nothing(cli: Cli, tenant_kubeconfig: Path, victim: Victim) -> None:
    """``victim``'s kubeconfig Secret points at a listener answering garbage: the syncer says so
    (``Synced=False TenantUnreachable``, ``vc_remote_up 0``), does not crash, keeps serving ``faulty``, and
    serves ``victim`` again once the Secret is restored."""
    good = victim.secret_data(cli)
    syncer = cli.components()["syncer"]

    def remote_up() -> list[str]:
        return [line for line in _syncer_metrics(cli).splitlines()
                if line.startswith(f'vc_remote_up{{component="informer",target="{victim.key}/')]

    with GarbageApiserver() as garbage:
        victim.write_secret(cli, pointed_at(good, f"http://127.0.0.1:{garbage.port}"))
        try:
            got = _poll(lambda: (s := _synced(cli, victim.name)).get("reason") == "TenantUnreachable" and s,
                        what="victim Synced=False TenantUnreachable", timeout=120)
            assert got["status"] == "False"
            assert got["sync"]["reachable"] is False
            _poll(lambda: all(garbage.seen[m] > 0 for m in garbage.MODES),
                  what="the syncer met every kind of garbage", timeout=120)
            # every informer of victim that has a verdict says its remote is down: one whose list meets
            # the endless body says so when the request times out (30 s); until then it has no sample
            assert remote_up(), "vc_remote_up of victim's informers"
            _poll(lambda: all(line.endswith(" 0.0") for line in remote_up()),
                  what="vc_remote_up 0 for every informer of victim", timeout=120)
            with Load(tenant_kubeconfig, "beside-garbage") as load:
                load.wait_created(15)
            assert_converged(cli, tenant_kubeconfig, load)  # the other tenant, while victim answers garbage
            assert _synced(cli, victim.name)["reason"] == "TenantUnreachable"  # still told
        finally:
            victim.write_secret(cli, good)
    assert cli.components()["syncer"]["pid"] == syncer["pid"]  # no crash, no restart
    _poll(lambda: _synced(cli, victim.name).get("status") == "True", what="victim Synced after the restore",
          timeout=120)
    assert_converged(cli, victim.kubeconfig, victim.load, tenant=victim.name)
