"""The embedded default: a local super cluster plus the operator, kubelet proxy and syncer as background processes.

Why this module exists: ``kubectl vc up`` must give a laptop (and the demo,
and CI) the whole system in one command, and ``kubectl vc down`` must take
it all away again -- no process, no port left behind -- even when run from
another shell later.  So everything lives in one state folder:

* ``super/`` -- the local super cluster (:mod:`vcluster.testbed`), whose
  ``kubeconfig`` is the admin kubeconfig users export;
* ``operator/`` -- the operator's ``local`` backend (one folder per tenant
  control plane);
* ``run/``, ``logs/`` -- pid and log files of the components started here;
* ``embedded.json`` -- each component's argv, pid file, log, health URL and
  endpoint, so ``status`` and ``down`` find them (a pid is trusted only when
  its ``/proc/<pid>/cmdline`` is that argv, see :mod:`vcluster.process`).

The components run under one supervisor process (``python -m
vcluster.cli.supervise <state folder>``, :mod:`vcluster.supervisor`) that
``up`` leaves behind: it restarts an exited component with back-off, the way
a kubelet restarts a crashed container, and keeps restart counts and the
last exit reason in ``run/supervisor.json`` for ``status``.

``down`` stops the supervisor (which stops its components), the components
it may have left, then the super cluster, then sweeps any process whose
command line points into the state folder (the tenants' local control
planes, which outlive an operator restart on purpose).

The components are an explicit registry (:data:`COMPONENTS`); one whose
entry point does not exist yet is reported as missing, not faked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from vcluster.errors import VClusterError
from vcluster.files import write_atomic
from vcluster.process import (
    ManagedProcess,
    ProcessError,
    https_check,
    pick_free_port,
    processes_in,
    terminate,
    wait_until,
)
from vcluster.supervisor import STOPPED, WAITING, describe, read_status, write_status

log = structlog.get_logger(__name__)

STATE_FILE = "embedded.json"
HEALTH_HOST = "127.0.0.1"


class EmbeddedError(VClusterError):
    """The embedded default could not be started, inspected or stopped."""


class Layout:
    """Every path of the embedded default's state folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.super_dir = self.root / "super"
        self.super_kubeconfig = self.super_dir / "kubeconfig"
        self.super_state = self.super_dir / "testbed.json"
        self.operator_dir = self.root / "operator"
        self.run = self.root / "run"
        self.logs = self.root / "logs"
        self.state = self.root / STATE_FILE
        self.supervisor_status = self.run / "supervisor.json"

    def pid(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


# ---- the component registry ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What a component's command line and environment are built from."""

    layout: Layout
    python: str
    super_kubeconfig: Path
    #: ``pki/`` of the super cluster (CA and the apiserver's kubelet client certificate).
    super_pki: Path
    base_env: Mapping[str, str]
    ports: Mapping[str, int]
    start_timeout: float
    #: Where tenant apiservers bind: loopback, or with real nodes the address pods reach.
    local_host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One background component: ``python -m <module> <args>`` with its environment."""

    name: str
    module: str
    describe: str
    #: Names of the ports it needs (picked free; the first is its health/metrics port).
    port_names: tuple[str, ...]
    argv: Callable[[Context], list[str]]
    env: Callable[[Context], dict[str, str]]
    #: Its endpoint for ``status`` (besides health), if it serves one.
    endpoint: Callable[[Context], str | None] = lambda _ctx: None
    health_path: str = "/healthz"


def _operator_env(ctx: Context) -> dict[str, str]:
    return {
        "VC_OPERATOR_KUBECONFIG": str(ctx.super_kubeconfig),
        "VC_OPERATOR_STATE_DIR": str(ctx.layout.operator_dir),
        "VC_OPERATOR_HEALTH_PORT": str(ctx.ports["operator-health"]),
        "VC_OPERATOR_START_TIMEOUT": str(int(ctx.start_timeout)),
        # tenant apiservers bind where the super cluster's pods can reach them
        "VC_OPERATOR_LOCAL_HOST": ctx.local_host,
    }


def _proxy_env(ctx: Context) -> dict[str, str]:
    pki = ctx.super_pki
    return {
        "VC_SUPER_KUBECONFIG": str(ctx.super_kubeconfig),
        "VC_PROXY_HOST": HEALTH_HOST,
        "VC_PROXY_PORT": str(ctx.ports["kubelet-proxy"]),
        "VC_PROXY_METRICS_PORT": str(ctx.ports["kubelet-proxy-health"]),
        "VC_PROXY_SERVING_NAMES": f"{HEALTH_HOST},localhost",
        # kwok and the real kubelets serve the kubelet API with certificates of the super cluster's
        # CA; the proxy presents its own client certificate, which real kubelets authorize by
        # webhook against the ClusterRole the test bed grants it (nodes/proxy, nothing else).
        "VC_KUBELET_CLIENT_CERT_FILE": str(pki / "kubelet-proxy-client.crt"),
        "VC_KUBELET_CLIENT_KEY_FILE": str(pki / "kubelet-proxy-client.key"),
        "VC_KUBELET_CA_FILE": str(pki / "ca.crt"),
    }


def _syncer_env(ctx: Context) -> dict[str, str]:
    return {
        "VC_SYNCER_METRICS_PORT": str(ctx.ports["syncer-health"]),
        "VC_KUBELET_PROXY_ADDRESS": HEALTH_HOST,
        "VC_KUBELET_PROXY_PORT": str(ctx.ports["kubelet-proxy"]),
    }


#: Start order (``down`` goes the other way): the syncer needs the proxy's port for virtual nodes.
COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec(
        name="operator", module="vcluster.operator", describe="Tenant → control plane (Kopf)",
        port_names=("operator-health",),
        argv=lambda ctx: [ctx.python, "-m", "vcluster.operator", "--kubeconfig", str(ctx.super_kubeconfig)],
        env=_operator_env,
    ),
    ComponentSpec(
        name="kubelet-proxy", module="virtual_node.proxy", describe="kubectl logs/exec for tenants",
        port_names=("kubelet-proxy-health", "kubelet-proxy"),
        argv=lambda ctx: [ctx.python, "-m", "virtual_node.proxy"],
        env=_proxy_env,
        endpoint=lambda ctx: f"https://{HEALTH_HOST}:{ctx.ports['kubelet-proxy']}",
    ),
    ComponentSpec(
        name="syncer", module="syncer", describe="tenant objects ⇄ super cluster",
        port_names=("syncer-health",),
        argv=lambda ctx: [ctx.python, "-m", "syncer", "--kubeconfig", str(ctx.super_kubeconfig)],
        env=_syncer_env,
    ),
)


def available(module: str) -> bool:
    """Whether ``python -m module`` has something to run (a module, or a package with ``__main__``)."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{module}.__main__") is not None
    except (ImportError, ValueError):
        return False
    return True


# ---- persisted state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentRecord:
    """A started component, as ``embedded.json`` keeps it."""

    argv: list[str]
    pid_file: str
    log_file: str
    health_url: str
    endpoint: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    #: The component's own variables (``spec.env``: paths and ports, no secrets); the supervisor
    #: starts it with its own environment plus ``KUBECONFIG`` and these.
    env: dict[str, str] = field(default_factory=dict)

    def process(self, name: str, *, env: Mapping[str, str] | None = None) -> ManagedProcess:
        return ManagedProcess(name=name, argv=self.argv, log_path=Path(self.log_file),
                              pid_path=Path(self.pid_file), env=env)


def read_records(layout: Layout) -> dict[str, ComponentRecord]:
    try:
        data = json.loads(layout.state.read_text())
        return {name: ComponentRecord(**rec) for name, rec in data.get("components", {}).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise EmbeddedError(f"cannot read {layout.state}: {exc}") from None


def write_records(layout: Layout, records: Mapping[str, ComponentRecord]) -> None:
    write_atomic(layout.state, json.dumps({"components": {n: asdict(r) for n, r in records.items()}}, indent=2))


# ---- status ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One row of ``kubectl vc status``."""

    name: str
    pid: int | None
    state: str
    endpoint: str
    #: Restarts by the supervisor (``None``: not supervised, e.g. the super cluster's components).
    restarts: int | None = None
    #: Why it last exited, and when (``-``: never).
    last_exit: str = "-"


def super_cluster_running(layout: Layout) -> bool:
    """Whether the embedded super cluster's kube-apiserver runs (verified by its cmdline)."""
    if not layout.super_state.exists():
        return False
    from vcluster.testbed import TestbedError, status

    try:
        return bool(status(layout.super_dir).get("kube-apiserver"))
    except TestbedError:
        return False


def state_processes(layout: Layout) -> list[tuple[int, list[str]]]:
    """Live processes whose command line points into the state folder (not ``kubectl vc`` itself)."""
    return processes_in(layout.root, keep=lambda cmd: not _is_cli(cmd), exclude=_ancestors())


def _is_cli(cmd: list[str]) -> bool:
    return Path(cmd[0]).name.startswith("kubectl-vc") or cmd[1:3] == ["-m", "vcluster"]


def _ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        pids.add(pid)
    return pids


def status(layout: Layout) -> tuple[list[ComponentStatus], int]:
    """Rows for every component (super cluster first) and the number of tenant control-plane processes."""
    rows: list[ComponentStatus] = []
    if layout.super_state.exists():
        from vcluster.testbed import COMPONENTS as SUPER_COMPONENTS
        from vcluster.testbed import TestbedError, read_info
        from vcluster.testbed import status as super_status

        try:
            info = read_info(layout.super_dir)
            pids = super_status(layout.super_dir)
        except TestbedError as exc:
            raise EmbeddedError(str(exc)) from None
        for name in SUPER_COMPONENTS:
            pid = pids.get(name)
            endpoint = {
                "kube-apiserver": info.server,
                "etcd": info.etcd_url,
                "kwok": f"https://{info.node_ip}:{info.kubelet_port}",
            }.get(name, "")
            rows.append(ComponentStatus(name, pid, "running" if pid else "stopped", endpoint))
    records = read_records(layout)
    sup = _running_supervisor(layout) if records else None
    sup_running = sup is not None
    if records:
        rows.append(ComponentStatus(SUPERVISOR, sup.pid if sup is not None else None,
                                    "running" if sup_running else "stopped", "restarts the components below"))
    supervised = read_status(layout.supervisor_status)
    for spec in COMPONENTS:
        rec = records.get(spec.name)
        if rec is None:
            state = "missing" if not available(spec.module) else "not started"
            rows.append(ComponentStatus(spec.name, None, state, ""))
            continue
        proc = rec.process(spec.name)
        running = proc.adopt()
        endpoint = rec.endpoint or rec.health_url
        seen = supervised.get(spec.name)
        state = "running" if running else "stopped"
        if not running and seen is not None and seen.state == WAITING and sup_running:
            state = "restarting"  # exited; the supervisor starts it again after its back-off
        rows.append(ComponentStatus(spec.name, proc.pid if running else None, state, endpoint,
                                    restarts=seen.restarts if seen is not None else 0,
                                    last_exit=describe(seen) if seen is not None else "-"))
    super_pids = {r.pid for r in rows if r.pid}
    tenants = [pid for pid, _ in state_processes(layout) if pid not in super_pids]
    return rows, len(tenants)


# ---- the supervisor ---------------------------------------------------------------------------

SUPERVISOR = "supervisor"
SUPERVISOR_MODULE = "vcluster.cli.supervise"


def supervisor_process(layout: Layout, *, python: str = sys.executable,
                       env: Mapping[str, str] | None = None) -> ManagedProcess:
    """The supervisor of ``layout``'s components (its argv names the state folder, so ``down``'s sweep finds it too)."""
    return ManagedProcess(name=SUPERVISOR, argv=[python, "-m", SUPERVISOR_MODULE, str(layout.root)],
                          log_path=layout.log(SUPERVISOR), pid_path=layout.pid(SUPERVISOR), env=env)


def _running_supervisor(layout: Layout) -> ManagedProcess | None:
    """The live supervisor of ``layout`` started by any Python (its pid file names it), or ``None``."""
    for python in dict.fromkeys((sys.executable, *_recorded_pythons(layout))):
        proc = supervisor_process(layout, python=python)
        if proc.adopt():
            return proc
    return None


def _recorded_pythons(layout: Layout) -> list[str]:
    with contextlib.suppress(EmbeddedError):
        return [rec.argv[0] for rec in read_records(layout).values()]
    return []


def _forget_waiting(layout: Layout) -> None:
    """Mark what a dead supervisor left "waiting" as stopped (counts and reasons kept), so a new one's
    start is not mistaken for an exit by :func:`component_exit`."""
    children = read_status(layout.supervisor_status)
    if any(c.state == WAITING for c in children.values()):
        for child in children.values():
            if child.state == WAITING:
                child.state, child.next_start_at = STOPPED, None
        write_status(layout.supervisor_status, children)


def component_exit(layout: Layout, name: str) -> str | None:
    """Why the supervisor last saw ``name`` exit (``None``: it did not), for ``up``'s health waits."""
    seen = read_status(layout.supervisor_status).get(name)
    return seen.last_exit if seen is not None and seen.state == WAITING else None


# ---- up ----------------------------------------------------------------------------------------

Say = Callable[[str], None]


#: The super cluster component that enforces NetworkPolicy (``TestbedSettings.network_policy``).
ENFORCER = "kube-router"


@dataclass(slots=True)
class UpResult:
    """What ``up`` did, for its summary."""

    already_up: bool = False
    server: str = ""
    nodes: int = 0
    real_nodes: int = 0
    #: kube-router enforces NetworkPolicy on the real node.
    network_policy: bool = False
    started: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _http_check(url: str) -> Callable[[], bool]:
    return https_check(url, timeout=2.0)


def _pick_ports(names: tuple[str, ...], previous: Mapping[str, int], taken: list[int]) -> dict[str, int]:
    from vcluster.process import port_is_free

    ports: dict[str, int] = {}
    for name in names:
        old = previous.get(name)
        port = old if old is not None and old not in taken and port_is_free(old) else pick_free_port(exclude=taken)
        taken.append(port)
        ports[name] = port
    return ports


def ensure_super_prerequisites(layout: Layout, *, timeout: float) -> None:
    """CRDs established and ``vc-system`` present, so ``create`` works right after ``up``."""
    from vcluster import bootstrap
    from vcluster.process import wait_until
    from vcluster.testbed import AdminClient, read_info

    info = read_info(layout.super_dir)
    api = AdminClient(server=info.server, ca_file=Path(info.ca_file), cert_file=Path(info.admin_cert_file),
                      key_file=Path(info.admin_key_file))
    crds = bootstrap.crds()
    for crd in crds:
        api.create_if_missing("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    api.create_if_missing("/api/v1/namespaces", bootstrap.system_namespace())

    def established() -> bool:
        return all(bootstrap.is_established(
            api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"))
            for crd in crds)

    try:
        wait_until(established, timeout=timeout, what="Tenant and ClusterVersion CRDs established")
    except ProcessError as exc:
        raise EmbeddedError(str(exc)) from None


def up(
    layout: Layout,
    *,
    nodes: int,
    real_nodes: int = 0,
    network_policy: bool = False,
    start_timeout: float,
    env: Mapping[str, str],
    step: Callable[[str], contextlib.AbstractContextManager[None]],
    note: Say,
) -> UpResult:
    """Start whatever of the embedded default is not running; roll back on failure.

    The components are started by the supervisor this call leaves running (or
    by the one already running, which restarts what exited); ``up`` waits for
    each one's health.  On failure the supervisor and its components stop, and
    the super cluster too if this call started it.
    """
    from vcluster import binaries
    from vcluster.settings import BinarySettings
    from vcluster.testbed import LocalSuperCluster, TestbedSettings, read_info

    result = UpResult()
    records = read_records(layout)
    super_was_running = super_cluster_running(layout)
    supervisor = _running_supervisor(layout)
    running_components = {
        spec.name for spec in COMPONENTS
        if spec.name in records and records[spec.name].process(spec.name).adopt()
    }
    wanted = {spec.name for spec in COMPONENTS if available(spec.module)}
    result.missing = [spec.name for spec in COMPONENTS if spec.name not in wanted]
    if super_was_running and wanted <= running_components and supervisor is not None:
        info = read_info(layout.super_dir)
        result.already_up = True
        result.server, result.nodes = info.server, len(info.node_names)
        result.real_nodes = len(info.real_node_names)
        result.network_policy = ENFORCER in info.components
        result.adopted = sorted(running_components)
        return result

    started_supervisor: ManagedProcess | None = None
    cluster: LocalSuperCluster | None = None
    try:
        if not super_was_running:
            bin_settings = BinarySettings.from_env()
            with step("upstream binaries (etcd, kube-apiserver, controller-manager, scheduler, kwok)"):
                binaries.ensure(bin_settings, progress=note)
            real = f", {real_nodes} real nodes" if real_nodes else ""
            enforcer = ", kube-router (NetworkPolicy)" if network_policy else ""
            what = f"etcd, kube-apiserver, controller-manager, scheduler, kwok{enforcer}; {nodes} nodes{real}"
            with step(f"super cluster ({what})"):
                cluster = LocalSuperCluster(TestbedSettings(
                    state_dir=layout.super_dir, nodes=nodes, real_nodes=real_nodes, network_policy=network_policy,
                    start_timeout=start_timeout, binaries=bin_settings,
                ))
                cluster.start()
        info = read_info(layout.super_dir)
        result.server, result.nodes = info.server, len(info.node_names)
        result.real_nodes = len(info.real_node_names)
        result.network_policy = ENFORCER in info.components
        with step("Tenant/ClusterVersion CRDs and namespace vc-system"):
            ensure_super_prerequisites(layout, timeout=start_timeout)

        if supervisor is None:
            records = _plan_components(layout, records, running_components, wanted, env=env,
                                       start_timeout=start_timeout)
            _forget_waiting(layout)
            with step("supervisor: restarts exited components with back-off"):
                started_supervisor = supervisor_process(layout, env={**env, "KUBECONFIG": str(layout.super_kubeconfig)})
                started_supervisor.start()
                supervisor = started_supervisor
        for spec in COMPONENTS:
            if spec.name not in wanted:
                continue
            if spec.name in running_components:
                result.adopted.append(spec.name)
                continue
            with step(f"{spec.name}: {spec.describe}"):
                _wait_component(layout, spec, records[spec.name], supervisor, timeout=start_timeout)
            result.started.append(spec.name)
    except BaseException:
        note("start failed: stopping what this run started")
        if started_supervisor is not None:
            with contextlib.suppress(VClusterError):
                started_supervisor.stop(grace=5.0 * (len(COMPONENTS) + 1))
            for spec in COMPONENTS:  # what the supervisor could not stop, or started as it died
                rec = records.get(spec.name)
                proc = rec.process(spec.name) if rec is not None else None
                if proc is not None and spec.name not in running_components and proc.adopt():
                    with contextlib.suppress(VClusterError):
                        proc.stop(grace=5.0)
        if cluster is not None:
            with contextlib.suppress(VClusterError):
                cluster.stop()
            _sweep(layout, grace=5.0)
        raise
    return result


def _plan_components(
    layout: Layout,
    records: dict[str, ComponentRecord],
    running: set[str],
    wanted: set[str],
    *,
    env: Mapping[str, str],
    start_timeout: float,
) -> dict[str, ComponentRecord]:
    """The records the supervisor starts from: running components keep theirs (ports, argv), the rest get new ones."""
    from vcluster.testbed import read_info

    out = dict(records)
    local_host = read_info(layout.super_dir).host_address
    ctx_ports: dict[str, int] = {}
    taken: list[int] = []
    for rec in records.values():
        taken.extend(rec.ports.values())
    for spec in COMPONENTS:
        if spec.name not in wanted:
            continue
        old = records.get(spec.name)
        if spec.name in running and old is not None:
            ctx_ports.update(old.ports)
        else:
            prev = old.ports if old is not None else {}
            ctx_ports.update(_pick_ports(spec.port_names, prev, [p for p in taken if p not in prev.values()]))
        ctx = Context(
            layout=layout, python=sys.executable, super_kubeconfig=layout.super_kubeconfig,
            super_pki=layout.super_dir / "pki", base_env=env, ports=dict(ctx_ports), start_timeout=start_timeout,
            local_host=local_host,
        )
        if spec.name in running and old is not None:
            # the record of a process started before the supervisor existed may lack its variables
            out[spec.name] = ComponentRecord(**{**asdict(old), "env": old.env or spec.env(ctx)})
            continue
        rec = ComponentRecord(
            argv=spec.argv(ctx), pid_file=str(layout.pid(spec.name)), log_file=str(layout.log(spec.name)),
            health_url=f"http://{HEALTH_HOST}:{ctx_ports[spec.port_names[0]]}{spec.health_path}",
            endpoint=spec.endpoint(ctx), ports={n: ctx_ports[n] for n in spec.port_names}, env=spec.env(ctx),
        )
        proc = rec.process(spec.name)
        if proc.adopt():  # a live process from the pid file that `embedded.json` forgot
            proc.stop()
        out[spec.name] = rec
    write_records(layout, out)
    return out


def _wait_component(layout: Layout, spec: ComponentSpec, rec: ComponentRecord, supervisor: ManagedProcess, *,
                    timeout: float) -> None:
    """Wait for ``spec``'s health; fail at once (with its last log line) when it exits or the supervisor dies."""
    proc = rec.process(spec.name)

    def abort() -> str | None:
        reason = component_exit(layout, spec.name)
        if reason is None and not supervisor.is_running():
            reason = f"the supervisor {supervisor.exit_reason()} (log: {supervisor.log_path})"
        if reason is None:
            return None
        tail = proc.log_tail(lines=1).strip()
        return reason + (f"; last log line: {tail}" if tail else "") + f" (log: {proc.log_path})"

    try:
        wait_until(_http_check(rec.health_url), timeout=timeout, what=f"{spec.name} {spec.health_path}", abort=abort)
    except ProcessError as exc:
        text = str(exc)
        raise EmbeddedError(text if "(log:" in text else f"{text} (log: {proc.log_path})") from None


# ---- down -----------------------------------------------------------------------------------


@dataclass(slots=True)
class DownResult:
    stopped: list[str] = field(default_factory=list)
    swept: int = 0
    errors: list[str] = field(default_factory=list)


def _sweep(layout: Layout, *, grace: float) -> int:
    """SIGTERM (then SIGKILL) every process whose command line points into the state folder."""
    victims = state_processes(layout)
    left = terminate(victims, grace=grace)
    if left:
        raise EmbeddedError(f"processes {', '.join(map(str, left))} did not exit after SIGKILL")
    return len(victims)


def down(layout: Layout, *, grace: float = 10.0) -> DownResult:
    """Stop the components, the super cluster, and every process left pointing into the state folder."""
    from vcluster.testbed import TestbedError, stop_state_dir

    result = DownResult()
    records = read_records(layout)
    procs = [(spec.name, records[spec.name].process(spec.name)) for spec in reversed(COMPONENTS)
             if spec.name in records]
    running = [name for name, proc in procs if proc.adopt()]
    supervisor = _running_supervisor(layout)
    if supervisor is not None:  # first, or it would restart what is being stopped; it stops its components
        try:
            supervisor.stop(grace=grace * (len(COMPONENTS) + 1))
            result.stopped.append(SUPERVISOR)
        except ProcessError as exc:
            result.errors.append(str(exc))
    for name, proc in procs:
        if proc.adopt():
            try:
                proc.stop(grace=grace)
            except ProcessError as exc:
                result.errors.append(str(exc))
                continue
        if name in running:
            result.stopped.append(name)
    if layout.super_state.exists():
        try:
            result.stopped.extend(stop_state_dir(layout.super_dir, grace=grace))
        except TestbedError as exc:
            result.errors.append(str(exc))
    try:
        result.swept = _sweep(layout, grace=grace)
    except EmbeddedError as exc:
        result.errors.append(str(exc))
    return result


def to_json(rows: list[ComponentStatus], tenants: int) -> dict[str, Any]:
    return {"components": [asdict(r) for r in rows], "tenantProcesses": tenants}
