"""Run the real operator against the session's super cluster and get Ready tenants from it.

Why: the syncer, virtual-node and CLI e2e tests all need real tenant control
planes.  This module is the one way to get them: it starts
``python -m vcluster.operator`` as a subprocess (its own state folder, its
own log), creates Tenant objects with ``kubectl``, waits for ``Ready`` and
hands back the tenant's admin kubeconfig as a file.  Everything it starts is
stopped and every tenant it created is deleted when the fixture ends, even if
the test failed.

Use::

    from e2e.operator_fixtures import create_tenant, vc_operator  # noqa: F401  (fixture import)

    @pytest.mark.e2e
    def test_something(super_cluster, vc_operator, unique_name):
        t = create_tenant(super_cluster, unique_name, owners={"users": ["alice"]})
        t.kubectl("create", "namespace", "app")          # against the tenant apiserver
        super_cluster.kubectl("get", "ns", t.cluster_key)  # its root namespace

``vc_operator`` is session-scoped: one operator serves every test module.
``create_tenant(..., wait=False)`` returns at once (``kubeconfig_path`` is
then ``None``); :func:`wait_tenant` waits for any condition on the object.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.child import ChildProcess
from tenant_crd import models
from vcluster import naming
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import DNS_COMPONENT, LocalBackend
from vcluster.settings import BinarySettings

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 240.0


class OperatorProcess(ChildProcess):
    """The operator as a child process; ``kill()`` (SIGKILL) and ``start()`` again at will."""

    def __init__(self, super_cluster: Any, *, state_dir: Path, log_path: Path, health_interval: float = 5.0,
                 env: dict[str, str] | None = None) -> None:
        self.super_cluster = super_cluster
        #: Extra environment (``VC_OPERATOR_*`` settings of one module's operator).
        self.env = dict(env or {})
        self.state_dir = state_dir
        self.log_path = log_path
        self.health_interval = health_interval
        self.proc: subprocess.Popen[bytes] | None = None
        #: Tenants created through :func:`create_tenant` with this operator; deleted at the end.
        self.tenants: set[str] = set()
        self.workdir = Path(tempfile.mkdtemp(prefix="vc-tenants-"))

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        # tenant apiservers bind where the super cluster's pods reach them (127.0.0.1 without real nodes)
        info = getattr(self.super_cluster, "info", None)
        env.setdefault("VC_OPERATOR_LOCAL_HOST", getattr(info, "host_address", "127.0.0.1"))
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==> operator start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vcluster.operator", f"--kubeconfig={self.super_cluster.kubeconfig}",
                 f"--state-dir={self.state_dir}", f"--health-interval={self.health_interval}"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}; log: {self.log_path}")
            got = self.super_cluster.kubectl("get", "tenants.tenancy.virtualcluster.dev", check=False)
            if got.returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"operator did not install the CRDs within 60s; log: {self.log_path}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, needle: str, *, timeout: float = 60.0, since: int = 0) -> str:
        """Poll the log (from character ``since``) until a line contains ``needle``; return that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text()[since:].splitlines():
                if needle in line:
                    return line
            if not self.alive():
                break
            time.sleep(0.3)
        raise AssertionError(f"operator log has no {needle!r} (alive: {self.alive()}):\n{self.log_tail()}")


@dataclass(frozen=True)
class TenantHandle:
    """A tenant as tests need it: names, endpoint and the admin kubeconfig as a file."""

    name: str
    cluster_key: str
    kubeconfig_path: Path | None
    endpoint: str | None
    status: dict[str, Any] = field(default_factory=dict)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """kubectl against the tenant's own apiserver (admin identity)."""
        if self.kubeconfig_path is None:
            raise AssertionError(f"tenant {self.name} was created without waiting: no kubeconfig yet")
        proc = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig_path}", *args], capture_output=True,
                              text=True, input=input, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"tenant {self.name}: kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc


def get_tenant(super_cluster: Any, name: str) -> dict[str, Any] | None:
    got = super_cluster.kubectl("get", "tenant", name, "-o", "json", check=False)
    if got.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(got.stdout)
    return obj


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The Ready condition (``{}`` when there is none yet)."""
    return dict(models.ready_condition(obj) or {})


def wait_tenant(
    super_cluster: Any, name: str, predicate: Callable[[dict[str, Any]], bool], *,
    timeout: float = READY_TIMEOUT, what: str = "condition", operator: OperatorProcess | None = None,
) -> dict[str, Any]:
    """Poll the Tenant until ``predicate(obj)``; fail with its last status (and the operator log)."""
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        obj = get_tenant(super_cluster, name)
        if obj is not None and predicate(obj):
            return obj
        time.sleep(0.5)
    tail = f"\noperator log:\n{operator.log_tail()}" if operator is not None else ""
    raise AssertionError(f"tenant {name}: {what} not reached in {timeout:.0f}s; status: "
                         f"{json.dumps((obj or {}).get('status'))}{tail}")


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready for the current spec (the one generation-aware rule, ``tenant_crd.models.is_ready``)."""
    return models.is_ready(obj)


def control_plane_processes(state_dir: Path, key: str, *, dns: bool = False) -> dict[str, list[int]]:
    """Live control-plane pids of tenant ``key`` under a local backend's ``state_dir``, by component name
    (with ``dns``, the tenant DNS' CoreDNS too)."""
    backend = LocalBackend(state_dir=state_dir, binary_settings=BinarySettings.from_env())
    names = (*cp.COMPONENTS, DNS_COMPONENT) if dns else cp.COMPONENTS
    out: dict[str, list[int]] = {}
    for pid, cmd in backend.processes(key):
        if Path(cmd[0]).name in names:
            out.setdefault(Path(cmd[0]).name, []).append(pid)
    return out


def tenant_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": naming.API_VERSION, "kind": "Tenant", "metadata": {"name": name}, "spec": spec}


def handle_from(super_cluster: Any, obj: dict[str, Any], *, workdir: Path) -> TenantHandle:
    """Read the admin kubeconfig Secret named in the status into a file."""
    status = obj.get("status") or {}
    ref = status["kubeconfigSecret"]
    got = super_cluster.kubectl("get", "secret", "-n", ref["namespace"], ref["name"], "-o", "json")
    data = json.loads(got.stdout)["data"][naming.KUBECONFIG_SECRET_KEY]
    path = workdir / f"{obj['metadata']['name']}.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64decode(data))
    return TenantHandle(name=obj["metadata"]["name"], cluster_key=status["clusterKey"], kubeconfig_path=path,
                        endpoint=status.get("endpoint"), status=status)


_current: OperatorProcess | None = None


def create_tenant(
    super_cluster: Any, name: str, *, wait: bool = True, timeout: float = READY_TIMEOUT,
    operator: OperatorProcess | None = None, **spec: Any,
) -> TenantHandle:
    """Create Tenant ``name`` (spec fields as camelCase keywords) and, with ``wait``, wait until Ready."""
    op = operator or _current
    super_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(tenant_manifest(name, **spec)))
    if op is not None:
        op.tenants.add(name)
    obj = get_tenant(super_cluster, name)
    assert obj is not None
    if not wait:
        return TenantHandle(name=name, cluster_key=naming.cluster_key(name, obj["metadata"]["uid"]),
                            kubeconfig_path=None, endpoint=None)
    obj = wait_tenant(super_cluster, name, is_ready, timeout=timeout, what="Ready", operator=op)
    workdir = op.workdir if op is not None else Path(tempfile.mkdtemp(prefix="vc-tenants-"))
    return handle_from(super_cluster, obj, workdir=workdir)


def delete_tenant(super_cluster: Any, name: str, *, wait: bool = True, timeout: float = 120) -> None:
    """Delete a Tenant; with ``wait``, until the object (and so its finalizer's work) is gone."""
    super_cluster.kubectl("delete", "tenant", name, "--ignore-not-found", "--wait=false")
    if _current is not None:
        _current.tenants.discard(name)
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_tenant(super_cluster, name) is None:
            return
        time.sleep(0.5)
    raise AssertionError(f"tenant {name} still exists {timeout:.0f}s after delete")


@contextlib.contextmanager
def running_operator(super_cluster: Any, *, state_dir: Path, log_path: Path,
                     health_interval: float = 5.0, env: dict[str, str] | None = None) -> Iterator[OperatorProcess]:
    """An operator subprocess for the duration of the block; tenants it made are deleted afterwards.

    Operators elect one leader per super cluster (the Lease ``vc-system/vc-operator``), so an operator
    already running against the same super cluster is stopped (its Lease released) for the block and
    started again afterwards; otherwise the new one would only stand by.
    """
    global _current
    paused = _current if _current is not None and _current.super_cluster is super_cluster and _current.alive() \
        else None
    if paused is not None:
        paused.stop()
    op = OperatorProcess(super_cluster, state_dir=state_dir, log_path=log_path, health_interval=health_interval,
                         env=env)
    op.start()
    previous, _current = _current, op
    try:
        yield op
    finally:
        _current = previous
        try:
            for name in sorted(op.tenants):
                with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                    if op.proc is None or op.proc.poll() is not None:
                        op.start()
                    delete_tenant(super_cluster, name, timeout=90)
        finally:
            op.stop()
            # Safety net: no control-plane process of ours outlives the fixture.
            backend = LocalBackend(state_dir=state_dir, binary_settings=BinarySettings.from_env())
            if state_dir.is_dir():
                for child in state_dir.iterdir():
                    if child.is_dir():
                        backend.destroy(child.name)
            if paused is not None:
                paused.start()


@pytest.fixture(scope="module", autouse=True)
def _module_tenants() -> Iterator[None]:
    """Tenants a module created through the session operator are deleted when the module ends."""
    before = set(_current.tenants) if _current is not None else set()
    yield
    op = _current
    if op is None or not op.alive():
        return
    for name in sorted(op.tenants - before):
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            delete_tenant(op.super_cluster, name, timeout=90)


@pytest.fixture(scope="session")
def vc_operator(
    super_cluster: Any, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path]
) -> Iterator[OperatorProcess]:
    """One operator for the whole session (``python -m vcluster.operator`` against ``super_cluster``)."""
    root = tmp_path_factory.mktemp("operator")
    component_logs["operator"] = root / "operator.log"
    with running_operator(super_cluster, state_dir=root / "state", log_path=root / "operator.log") as op:
        yield op
