"""The ``local`` backend: a tenant's control plane as supervised local processes.

Why: on a laptop, in a demo and in the test bed there is no room for pods
that really run; the tenant gets the same three components (etcd,
kube-apiserver, kube-controller-manager) with the same flags and PKI as the
``pods`` backend, as child processes supervised by :mod:`vcluster.process`.

Each tenant gets **its own etcd** (not a prefix on the super etcd): the
operator needs no credentials for the super cluster's etcd (it only has a
kubeconfig), deleting a tenant is deleting a folder instead of a key-range
sweep, one tenant's write load or compaction cannot stall the super cluster
or another tenant, and the ``pods`` backend works the same way.  The price is
~45 MB and < 1 s of start-up per tenant (TESTBED.md).

State lives under ``<state_dir>/<cluster key>/`` (pki, etcd data, logs, pid
files, the ports picked).  The ports are chosen once and kept, so the command
line of every component is deterministic: an operator restarted at any point
re-adopts the running processes through their pid files instead of starting
duplicates, and a process still running with an *old* command line (the spec
changed) or without a pid file (the operator died between spawn and pid file)
is found by its state folder in its command line and replaced.

Renewed certificates (:mod:`vcluster.controlplane.certs`) keep their file
names, so the command line does not change with them; instead each component
has an *inputs stamp* (``run/<component>.inputs``: a digest of every file its
flags name under the state folder, PKI and kubeconfig).  A running process
whose stamp differs from the files now written is restarted: etcd and
kube-apiserver read their client certificates (towards etcd, the kubelet
proxy) only at start, the controller-manager its kubeconfig.  The stamp is
written after the component is ready, so an operator that dies between writing
the files and the restart restarts it on its next reconcile.

With the operator setting ``VC_OPERATOR_SHARED_ETCD`` a *new* tenant stores in
the backend's one shared etcd instead (:mod:`vcluster.controlplane.shared_etcd`:
a prefix per tenant, each apiserver confined to it by etcd's auth).  Which etcd a
tenant uses is decided at its first provisioning and kept in its folder
(``etcd-mode``): changing the setting never moves a tenant away from its data.

A new tenant's own etcd is seeded, before its apiserver first starts, with the
objects every fresh apiserver of that configuration writes at start
(:mod:`vcluster.controlplane.bootstrap_seed`); the first new tenant of a
configuration leaves the seed behind (``bootstrap_seed`` off: neither).

The functions here block (process start, health waits); the operator calls
them in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from vcluster import binaries, naming, pki
from vcluster.controlplane import bootstrap_seed as seeds
from vcluster.controlplane import spec as cp
from vcluster.controlplane.shared_etcd import DIR as SHARED_ETCD_DIR
from vcluster.controlplane.shared_etcd import SharedEtcd, SharedEtcdError
from vcluster.errors import VClusterError
from vcluster.files import write_atomic
from vcluster.process import (
    EXIT_WAIT,
    HealthCheck,
    ManagedProcess,
    https_check,
    pick_free_port,
    pid_alive,
    pid_exiting,
    port_is_free,
    processes_in,
    read_cmdline,
    terminate,
    wait_pid_gone,
)
from vcluster.settings import BinarySettings

log = structlog.get_logger(__name__)

#: Default address of the tenant components; with real nodes the test bed's host address instead,
#: so that tenant pods reach their apiserver (pods cannot reach 127.0.0.1).
HOST = "127.0.0.1"
PORTS_FILE = "ports.json"
_PORT_NAMES = ("apiserver", "etcd_client", "etcd_peer")
#: The tenant DNS (:mod:`vcluster.controlplane.dns`): its binary name, its folder, its ports' file
#: (apart from ``ports.json``, so control planes from before tenant DNS keep their ports).
DNS_COMPONENT = "coredns"
DNS_DIR = "dns"
DNS_PORTS_FILE = "dns-ports.json"
_DNS_PORT_NAMES = ("dns", "ready")
#: A tenant folder's record of its etcd: ``own`` (its etcd process) or ``shared`` (a prefix in the shared one).
ETCD_MODE_FILE = "etcd-mode"
OWN_ETCD, SHARED_ETCD = "own", "shared"
#: The shared etcd's CA and the tenant apiserver's client certificate towards it, in the tenant's pki folder.
SHARED_ETCD_FILES = ("shared-etcd-ca.crt", "shared-etcd-client.crt", "shared-etcd-client.key")


class BackendError(VClusterError):
    """The control plane could not be run (a missing binary, a component that does not come up)."""


class VersionUnavailable(BackendError):
    """The binaries of the requested Kubernetes version are not built."""


@dataclass(frozen=True, slots=True)
class DnsPorts:
    """The tenant DNS' ports on the backend's host: DNS (UDP and TCP) and CoreDNS' ``ready``."""

    dns: int
    ready: int


@dataclass(frozen=True, slots=True)
class DnsFiles:
    """Where the local tenant DNS keeps its Corefile, its super-cluster kubeconfig and token."""

    corefile: Path
    kubeconfig: Path
    token: Path


@dataclass(frozen=True, slots=True)
class LocalPorts:
    apiserver: int
    etcd_client: int
    etcd_peer: int


class LocalBackend:
    """Runs control planes as local processes under ``state_dir``."""

    name = "local"

    def __init__(
        self, *, state_dir: Path, binary_settings: BinarySettings, start_timeout: float = 90.0, host: str = HOST,
        shared_etcd: bool = False, bootstrap_seed: bool = True,
    ) -> None:
        self.state_dir = state_dir
        self.binary_settings = binary_settings
        self.start_timeout = start_timeout
        self.host = host
        #: Whether a tenant provisioned for the first time goes to the shared etcd.
        self.shared_etcd_default = shared_etcd
        #: Whether a new tenant's own etcd gets the bootstrap seed (and the first one leaves it behind).
        self.bootstrap_seed = bootstrap_seed
        # on loopback: only the tenant apiservers on this host talk to it
        self.shared = SharedEtcd(state_dir=state_dir, binary_settings=binary_settings, start_timeout=start_timeout)

    # ---- which etcd ----------------------------------------------------------------
    def etcd_mode(self, key: str, *, decide: bool = False) -> str | None:
        """``own`` or ``shared``: recorded in the tenant's folder; with ``decide``, recorded now if not yet
        (a folder with etcd data from before the record is ``own``); else ``None`` when not recorded."""
        path = self.tenant_dir(key) / ETCD_MODE_FILE
        with contextlib.suppress(OSError):
            mode = path.read_text().strip()
            if mode in (OWN_ETCD, SHARED_ETCD):
                return mode
        if not decide:
            return OWN_ETCD if (self.tenant_dir(key) / "etcd" / "member").is_dir() else None
        mode = OWN_ETCD if (self.shared_etcd_default is False
                            or (self.tenant_dir(key) / "etcd" / "member").is_dir()) else SHARED_ETCD
        write_atomic(path, mode)
        return mode

    def _shared(self, key: str) -> bool:
        return self.etcd_mode(key) == SHARED_ETCD

    def _components(self, spec: cp.ControlPlaneSpec) -> tuple[cp.Component, ...]:
        if self._shared(spec.cluster_key):
            return tuple(c for c in spec.components if c.name != cp.ETCD_COMPONENT)
        return spec.components

    # ---- paths -------------------------------------------------------------------
    def tenant_dir(self, key: str) -> Path:
        return self.state_dir / key

    def _pki_dir(self, key: str) -> Path:
        return self.tenant_dir(key) / "pki"

    def _pid_path(self, key: str, component: str) -> Path:
        return self.tenant_dir(key) / "run" / f"{component}.pid"

    def _stamp_path(self, key: str, component: str) -> Path:
        return self.tenant_dir(key) / "run" / f"{component}.inputs"

    def _log_path(self, key: str, component: str) -> Path:
        return self.tenant_dir(key) / "logs" / f"{component}.log"

    # ---- layout --------------------------------------------------------------------
    def ports(self, key: str) -> LocalPorts:
        """The tenant's ports: those picked before if still usable, else new ones (saved)."""
        path = self.tenant_dir(key) / PORTS_FILE
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            ports = LocalPorts(**{n: int(data[n]) for n in _PORT_NAMES})
            if not all(port_is_free(p, host=HOST) for p in _as_tuple(ports)):
                self._settle_exits(key)
            ours = {p for pid, _ in self.processes(key) for p in _listening_ports(pid)}
            if all((port_is_free(p, host=HOST) and port_is_free(p, host=self.host)) or p in ours
                   for p in _as_tuple(ports)):
                return ports
        picked: list[int] = []
        for _ in _PORT_NAMES:
            port = pick_free_port(host=self.host, exclude=picked)
            while not port_is_free(port, host=HOST):
                port = pick_free_port(host=self.host, exclude=[*picked, port])
            picked.append(port)
        ports = LocalPorts(*picked)
        write_atomic(path, json.dumps({n: getattr(ports, n) for n in _PORT_NAMES}))
        return ports

    def _settle_exits(self, key: str) -> None:
        """Wait for the tenant's components that are on their way out: until the last thread of a killed
        process has exited, it still holds the process's ports (:func:`vcluster.process.pid_gone`), and a
        port held by nothing of ours would make :meth:`ports` pick new ones (a new endpoint)."""
        for name in (*cp.COMPONENTS, DNS_COMPONENT):
            try:
                pid = int(self._pid_path(key, name).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if pid_exiting(pid):
                wait_pid_gone(pid, timeout=EXIT_WAIT)

    def layout(self, key: str) -> cp.Layout:
        ports = self.ports(key)
        root = self.tenant_dir(key)
        host = self.host
        endpoint = f"https://{host}:{ports.apiserver}"
        shared: dict[str, object] = {}
        if self.etcd_mode(key, decide=True) == SHARED_ETCD:
            pki_dir = self._pki_dir(key)
            ca, cert, key_file = (str(pki_dir / name) for name in SHARED_ETCD_FILES)
            shared = {"etcd_client_url": self.shared.url, "etcd_prefix": naming.shared_etcd_prefix(key),
                      "etcd_client_files": (ca, cert, key_file), "etcd_compaction_interval": "0"}
        layout = cp.Layout(
            pki_dir=str(self._pki_dir(key)),
            etcd_data_dir=str(root / "etcd"),
            # etcd serves only its own apiserver: it stays on loopback
            etcd_listen_client_url=f"https://{HOST}:{ports.etcd_client}",
            etcd_client_url=f"https://{HOST}:{ports.etcd_client}",
            etcd_peer_url=f"http://{HOST}:{ports.etcd_peer}",
            apiserver_bind_address=host,
            apiserver_port=ports.apiserver,
            apiserver_dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            apiserver_ips=tuple(sorted({host, HOST})),
            endpoint=endpoint,
            internal_endpoint=endpoint,
            cm_kubeconfig=str(root / "controller-manager.kubeconfig"),
        )
        return replace(layout, **shared) if shared else layout  # type: ignore[arg-type]

    # ---- tenant DNS ------------------------------------------------------------------
    def dns_files(self, key: str) -> DnsFiles:
        root = self.tenant_dir(key) / DNS_DIR
        return DnsFiles(corefile=root / "Corefile", kubeconfig=root / "super.kubeconfig", token=root / "token")

    def dns_ports(self, key: str) -> DnsPorts:
        """The tenant DNS' ports: those picked before if still usable, else new ones (saved)."""
        path = self.tenant_dir(key) / DNS_PORTS_FILE
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            ports = DnsPorts(**{n: int(data[n]) for n in _DNS_PORT_NAMES})
            ours = {p for pid, cmd in self.processes(key) if Path(cmd[0]).name == DNS_COMPONENT
                    for p in _listening_ports(pid)}
            if all(port_is_free(p, host=self.host) or p in ours for p in (ports.dns, ports.ready)):
                return ports
        dns_port = pick_free_port(host=self.host)
        ports = DnsPorts(dns=dns_port, ready=pick_free_port(host=self.host, exclude=[dns_port]))
        write_atomic(path, json.dumps({n: getattr(ports, n) for n in _DNS_PORT_NAMES}))
        return ports

    def _dns_process(self, key: str) -> ManagedProcess:
        binary = binaries.binary_path(DNS_COMPONENT, self.binary_settings)
        return ManagedProcess(
            name=f"{key}/{DNS_COMPONENT}", argv=[str(binary), "-conf", str(self.dns_files(key).corefile)],
            log_path=self._log_path(key, DNS_COMPONENT), pid_path=self._pid_path(key, DNS_COMPONENT),
        )

    def apply_dns(self, key: str, *, corefile: str, kubeconfig: str, token: str | None) -> None:
        """Write the tenant DNS' files (a new token only when given) and run its CoreDNS; wait for ``ready``.

        A changed Corefile is picked up by CoreDNS' ``reload`` (the command line never changes),
        a rewritten token file by client-go, which re-reads it.
        """
        binary = binaries.binary_path(DNS_COMPONENT, self.binary_settings)
        if not binary.is_file():
            raise BackendError(
                f"CoreDNS not built for the tenant DNS: {binary} (run: python -m vcluster.binaries build)"
            )
        files = self.dns_files(key)
        files.corefile.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("run", "logs"):
            (self.tenant_dir(key) / sub).mkdir(parents=True, exist_ok=True)
        if token is not None:
            write_atomic(files.token, token, mode=0o600)
        write_atomic(files.kubeconfig, kubeconfig, mode=0o600, if_changed=True)
        write_atomic(files.corefile, corefile, mode=0o644, if_changed=True)
        proc = self._dns_process(key)
        if not proc.adopt():
            for pid, cmd in self.processes(key):
                if Path(cmd[0]).name == DNS_COMPONENT:
                    _terminate(pid, cmd)
            proc.start()
        ready = self.dns_ports(key).ready
        proc.wait_ready(https_check(f"http://{self.host}:{ready}/ready"), timeout=self.start_timeout,
                        what=f"tenant DNS of {key}")

    def dns_healthy(self, key: str) -> bool:
        """Whether the tenant DNS runs with its command line."""
        proc = self._dns_process(key)
        try:
            pid = int(self._pid_path(key, DNS_COMPONENT).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return pid_alive(pid) and read_cmdline(pid, settle=0.2) == proc.argv

    def dns_token_age(self, key: str) -> float | None:
        """Seconds since the tenant DNS' token file was written (``None``: there is none)."""
        try:
            return max(0.0, time.time() - self.dns_files(key).token.stat().st_mtime)
        except OSError:
            return None

    def binaries_for(self, version: str) -> dict[str, Path]:
        settings = replace(self.binary_settings, kube_version=version)
        out = {name: binaries.binary_path(name, settings) for name in cp.COMPONENTS}
        missing = [name for name, path in out.items() if not path.is_file()]
        if missing:
            raise VersionUnavailable(
                f"{', '.join(missing)} {version} not built for the local backend "
                f"(run: VC_KUBE_VERSION={version} python -m vcluster.binaries build)"
            )
        return out

    # ---- run ----------------------------------------------------------------------
    def apply(self, spec: cp.ControlPlaneSpec, *, pki_files: Mapping[str, bytes], cm_kubeconfig: str) -> None:
        """Make the running processes match ``spec`` (start, adopt or replace); wait until healthy."""
        key = spec.cluster_key
        bins = self.binaries_for(spec.version)
        root = self.tenant_dir(key)
        logger = log.bind(tenant=spec.tenant_name, key=key)
        for sub in ("run", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "etcd").mkdir(mode=0o700, exist_ok=True)
        # a new tenant's own etcd: nothing stored yet (an etcd that ever ran has its member folder)
        fresh = self.bootstrap_seed and not self._shared(key) and not any((root / "etcd").iterdir())
        seeded = False
        pki_dir = self._pki_dir(key)
        pki_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data in pki_files.items():
            write_atomic(pki_dir / name, data, mode=0o600 if name.endswith(".key") else 0o644, if_changed=True)
        write_atomic(root / "controller-manager.kubeconfig", cm_kubeconfig, mode=0o600, if_changed=True)
        if self._shared(key):
            self._apply_shared_etcd(key)
        etcd = self._etcd_access(spec)
        checks: dict[str, HealthCheck] = {
            cp.ETCD_COMPONENT: https_check(
                etcd.url + "/health", ca_file=etcd.ca_file, cert_file=etcd.cert_file, key_file=etcd.key_file,
            ),
            cp.APISERVER_COMPONENT: https_check(
                f"{spec.endpoint}/readyz",
                ca_file=pki_dir / cp.crt(cp.CA),
                cert_file=pki_dir / cp.crt(cp.ADMIN),
                key_file=pki_dir / cp.key(cp.ADMIN),
            ),
        }
        for comp in self._components(spec):
            argv = [str(bins[comp.name]), *comp.args]
            proc = ManagedProcess(
                name=f"{key}/{comp.name}", argv=argv,
                log_path=self._log_path(key, comp.name), pid_path=self._pid_path(key, comp.name),
                env={**os.environ, **dict(comp.env)} if comp.env else None,
            )
            stamp = self._stamp_path(key, comp.name)
            inputs = inputs_digest(comp.args, root, env=comp.env)
            adopted = proc.adopt()
            old = _read_text(stamp)
            if adopted and old is not None and old != inputs:
                # its certificates or kubeconfig changed (a renewal): they are read at start only
                logger.info("controlplane.local.restart", component=comp.name, reason="inputs changed")
                proc.stop()
                adopted = False
            for pid, cmd in self.processes(key):
                if Path(cmd[0]).name == comp.name and pid != proc.pid:
                    logger.info("controlplane.local.replace", component=comp.name, pid=pid)
                    _terminate(pid, cmd)
            if not adopted:
                proc.start()
            # a component without a health endpoint (the controller-manager) is ready once it runs its own
            # binary: right after the fork its command line is still ours, and a scan would miss it
            check = checks.get(comp.name) or _runs_argv(proc)
            # polled at most 0.2 s apart: each component waits for the one before, and a Tenant's time to
            # Ready is their sum (the default back-off up to 1 s added ~1 s per component; issue 16)
            proc.wait_ready(check, timeout=self.start_timeout, what=f"{comp.name} of tenant {spec.tenant_name}",
                            cap=START_POLL_CAP)
            write_atomic(stamp, inputs, if_changed=True)
            if fresh and comp.name == cp.ETCD_COMPONENT:
                seeded = self._seed(spec, bins, etcd)
            elif fresh and comp.name == cp.APISERVER_COMPONENT and not seeded:
                self._leave_seed(spec, bins, etcd)
        logger.info("controlplane.local.ready", endpoint=spec.endpoint)

    # ---- bootstrap seed ----------------------------------------------------------------
    def _seed_path(self, spec: cp.ControlPlaneSpec, bins: Mapping[str, Path]) -> Path:
        key = spec.cluster_key
        ports = self.ports(key)
        name = seeds.seed_name(bins[cp.APISERVER_COMPONENT], spec.apiserver.args, root=self.tenant_dir(key), key=key,
                               ports=_as_tuple(ports))
        return self.state_dir / seeds.DIR / name

    def _etcd_access(self, spec: cp.ControlPlaneSpec) -> seeds.EtcdAccess:
        pki_dir = self._pki_dir(spec.cluster_key)
        return seeds.EtcdAccess(url=_flag(spec.etcd.args, "advertise-client-urls"),
                                ca_file=pki_dir / cp.crt(cp.ETCD_CA),
                                cert_file=pki_dir / cp.crt(cp.APISERVER_ETCD_CLIENT),
                                key_file=pki_dir / cp.key(cp.APISERVER_ETCD_CLIENT))

    def _seed(self, spec: cp.ControlPlaneSpec, bins: Mapping[str, Path], etcd: seeds.EtcdAccess) -> bool:
        """Write the configuration's seed into the new tenant's etcd; False when there is none (yet).

        A seed that cannot be read or written is logged and skipped: the apiserver then bootstraps as
        without one (slower, never different)."""
        logger = log.bind(key=spec.cluster_key)
        path = self._seed_path(spec, bins)
        try:
            entries = seeds.read(path)
            if entries is None:
                return False
            written = seeds.load(etcd, spec.etcd_prefix, entries)
        except (seeds.SeedError, OSError) as exc:
            logger.warning("controlplane.local.seed_failed", seed=path.name, error=str(exc))
            return True  # not left behind by this tenant either: its etcd may hold part of a seed
        logger.info("controlplane.local.seeded", seed=path.name, objects=written)
        return True

    def _leave_seed(self, spec: cp.ControlPlaneSpec, bins: Mapping[str, Path], etcd: seeds.EtcdAccess) -> None:
        """The first new tenant of a configuration: keep what its apiserver wrote at start as the seed.

        Called right after that apiserver's first ``/readyz`` and before the controller-manager starts
        and the kubeconfig Secret exists: nothing but the apiserver itself has written to this etcd."""
        logger = log.bind(key=spec.cluster_key)
        path = self._seed_path(spec, bins)
        try:
            entries = seeds.capture(etcd, spec.etcd_prefix)
            if entries:
                seeds.save(path, entries)
        except (seeds.SeedError, OSError) as exc:
            logger.warning("controlplane.local.seed_capture_failed", seed=path.name, error=str(exc))
            return
        logger.info("controlplane.local.seed_captured", seed=path.name, objects=len(entries))

    def _apply_shared_etcd(self, key: str) -> None:
        """Run the shared etcd, give the tenant its user and role, and its client certificate (a new one only
        when it has none signed by the shared etcd's CA)."""
        try:
            self.shared.ensure()
            self.shared.add_tenant(key)
        except SharedEtcdError as exc:
            raise BackendError(str(exc)) from exc
        pki_dir = self._pki_dir(key)
        ca_path, cert_path, key_path = (pki_dir / name for name in SHARED_ETCD_FILES)
        ca = self.shared.ca_pem()
        with contextlib.suppress(OSError):
            if ca_path.read_bytes() == ca and key_path.is_file() and pki.verify_signed_by(cert_path.read_bytes(), ca):
                return
        files = self.shared.client_files(key)
        write_atomic(key_path, files.key, mode=0o600)
        write_atomic(cert_path, files.cert, mode=0o644)
        write_atomic(ca_path, files.ca, mode=0o644)

    def healthy(self, spec: cp.ControlPlaneSpec) -> bool:
        """Whether every component runs with exactly the command line of ``spec``."""
        try:
            bins = self.binaries_for(spec.version)
        except VersionUnavailable:
            return False
        if self._shared(spec.cluster_key) and not self.shared.running():
            return False
        for comp in self._components(spec):
            try:
                pid = int(self._pid_path(spec.cluster_key, comp.name).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return False
            if read_cmdline(pid, settle=0.2) != [str(bins[comp.name]), *comp.args] or not pid_alive(pid):
                return False
        return True

    def destroy(self, key: str) -> None:
        """Stop every process of the tenant and remove its state folder."""
        order = {cp.CM_COMPONENT: 0, cp.APISERVER_COMPONENT: 1, cp.ETCD_COMPONENT: 2}
        procs = sorted(self.processes(key), key=lambda pc: order.get(Path(pc[1][0]).name, 3))
        for pid, cmd in procs:
            _terminate(pid, cmd)
        if key != SHARED_ETCD_DIR and self.etcd_mode(key) == SHARED_ETCD and self.shared.root.is_dir():
            # its data is a key range in the shared etcd: deleted before the folder that records it
            try:
                self.shared.ensure()
                self.shared.remove_tenant(key)
            except SharedEtcdError as exc:
                raise BackendError(f"tenant {key}: its keys in the shared etcd were not deleted: {exc}") from exc
        shutil.rmtree(self.tenant_dir(key), ignore_errors=True)
        log.info("controlplane.local.destroyed", key=key, stopped=len(procs))

    def exited(self, key: str) -> list[str]:
        """Components of the tenant whose process is gone (pid file missing, dead, or another program's pid).

        Cheap enough for a health loop over every tenant: a pid file and ``/proc`` per component,
        no spec built; whether the command line is still the wanted one is :meth:`healthy`'s question.
        """
        marker = f"{self.tenant_dir(key)}{os.sep}"
        gone: list[str] = []
        shared = self._shared(key)
        if shared and not self.shared.running():
            gone.append(cp.ETCD_COMPONENT)  # the shared etcd: restarted by the next apply
        for name in cp.COMPONENTS:
            if shared and name == cp.ETCD_COMPONENT:
                continue
            try:
                pid = int(self._pid_path(key, name).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                gone.append(name)
                continue
            cmd = read_cmdline(pid, settle=0) if pid_alive(pid) else None
            if not cmd or Path(cmd[0]).name != name or not any(marker in arg for arg in cmd[1:]):
                gone.append(name)
        return gone

    def processes(self, key: str) -> list[tuple[int, list[str]]]:
        """Live processes of our components whose command line points into the tenant's folder."""
        names = (*cp.COMPONENTS, DNS_COMPONENT)
        return processes_in(self.tenant_dir(key), keep=lambda cmd: Path(cmd[0]).name in names)


#: Longest pause between two readiness polls of a tenant component being started.
START_POLL_CAP = 0.2


def _runs_argv(proc: ManagedProcess) -> HealthCheck:
    """Whether ``proc`` has finished its exec: its command line is the one it was started with."""

    def check() -> bool:
        return proc.pid is not None and read_cmdline(proc.pid, settle=0) == proc.argv

    return check


def inputs_digest(args: tuple[str, ...], root: Path, *, env: tuple[tuple[str, str], ...] = ()) -> str:
    """A digest of every file under ``root`` a component's flags name (``--flag=/path``), with its content,
    and of its Go runtime environment (not on the command line): what the component read at start and does
    not read again.  Without ``env`` the digest is the one from before it existed (no restart on upgrade)."""
    digest = hashlib.sha256()
    for name, value in env:
        digest.update(f"env:{name}={value}".encode() + b"\0")
    prefix = f"{root}{os.sep}"
    for arg in args:
        _, sep, value = arg.partition("=")
        if not sep or not value.startswith(prefix):
            continue
        path = Path(value)
        if path.is_file():
            digest.update(value.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _as_tuple(ports: LocalPorts) -> tuple[int, ...]:
    return tuple(getattr(ports, n) for n in _PORT_NAMES)


def _flag(args: tuple[str, ...], name: str) -> str:
    prefix = f"--{name}="
    return next(a[len(prefix):] for a in args if a.startswith(prefix))


def _listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` listens on (read from /proc; empty if unknown)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9 and parts[3] == "0A" and parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def _terminate(pid: int, argv: list[str], *, grace: float = 10.0) -> None:
    """SIGTERM then SIGKILL one of our processes (command line re-checked before each signal)."""
    if terminate([(pid, argv)], grace=grace):
        raise BackendError(f"process {pid} ({Path(argv[0]).name}) did not exit after SIGKILL")
