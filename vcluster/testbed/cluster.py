"""The local super cluster: real etcd, kube-apiserver, controller-manager, scheduler and kwok.

Why this module exists: everything in this project is shown on real
Kubernetes components, and the shared "super" cluster that tenants' workloads
run in is, on a developer's machine, CI and the demo, this one.  It starts
the upstream binaries with their own PKI in a state folder, on free ports (so
several clusters live side by side), creates simulated nodes that kwok keeps
Ready and runs pods on, and waits for each step with a deadline, never a
blind sleep.  ``stop()`` stops exactly what it started.

The state folder holds everything, so ``python -m vcluster.testbed down``
can stop a cluster started by another process: ``testbed.json`` records each
component's argv and pid file, and a pid is only signalled when its
``/proc/<pid>/cmdline`` is that argv.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from vcluster import binaries, images, naming, pki
from vcluster.errors import VClusterError
from vcluster.files import write_atomic
from vcluster.kubeconfig import render_kubeconfig, write_kubeconfig
from vcluster.process import (
    ManagedProcess,
    ProcessError,
    https_check,
    pick_free_port,
    require_free_port,
    tcp_check,
    wait_until,
)
from vcluster.testbed import realnodes
from vcluster.testbed.hostnet import HostNetwork, HostNetworkError, HostPlan, tag_of
from vcluster.testbed.hostnet import plan as host_plan
from vcluster.testbed.kwok import kwok_config, rules_config, simulated_log
from vcluster.testbed.settings import TestbedSettings

log = structlog.get_logger(__name__)

#: Start order of the control plane; stop goes the other way.  Real nodes add
#: ``containerd-<node>``, ``kubelet-<node>``, ``kube-proxy`` (and ``kube-router`` with ``network_policy``)
#: and ``coredns`` after these.
COMPONENTS: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
IMAGES_FILE = "images.tar"
#: ``pki/<this>.crt|key``: the kubelet proxy's client certificate for the kubelets (CN
#: :data:`vcluster.naming.KUBELET_PROXY_USER`).
KUBELET_PROXY_CLIENT = "kubelet-proxy-client"
STATE_FILE = "testbed.json"
# written by `down` before it stops anything, so that a supervising `up` tells an intended stop
# from a crash even while a component is gone and its pid file is not yet removed
STOP_MARKER = "stopping"
KUBECONFIG_FILE = "kubeconfig"

#: Simulated nodes: kwok manages the nodes with this annotation; pods need no toleration.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
KWOK_NODE_LABEL = "type"
KWOK_NODE_LABEL_VALUE = "kwok"
KWOK_NODE_PREFIX = "kwok-node-"


class TestbedError(VClusterError):
    """The local super cluster could not be started, reached, or stopped."""

    __test__ = False


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    """What ``down``/``status`` need to find a running component again."""

    argv: tuple[str, ...]
    pid_file: str
    log_file: str


@dataclass(frozen=True, slots=True)
class TestbedInfo:
    """How to reach a running super cluster; written to ``<state>/testbed.json``."""

    __test__ = False

    state_dir: str
    server: str
    kubeconfig: str
    ca_file: str
    admin_cert_file: str
    admin_key_file: str
    etcd_url: str
    #: kwok's kubelet API (``https://<node_ip>:<kubelet_port>``): logs/exec of simulated pods.
    kubelet_port: int
    node_ip: str
    node_names: tuple[str, ...]
    components: dict[str, ComponentInfo]
    #: Real nodes (kubelet on containerd), tainted ``virtualcluster.dev/real-node``.
    real_node_names: tuple[str, ...] = ()
    #: The address the control plane binds: 127.0.0.1, or with real nodes one pods can reach.
    host_address: str = "127.0.0.1"
    #: The super cluster DNS Service's ClusterIP ('' without real nodes: no DNS then).
    cluster_dns: str = ""
    #: The cgroup parent of each real node's pods.
    cgroup_parents: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TestbedInfo:
        data = json.loads(text)
        data["node_names"] = tuple(data["node_names"])
        data["real_node_names"] = tuple(data.get("real_node_names", ()))
        data["cgroup_parents"] = tuple(data.get("cgroup_parents", ()))
        data["components"] = {
            name: ComponentInfo(argv=tuple(c["argv"]), pid_file=c["pid_file"], log_file=c["log_file"])
            for name, c in data["components"].items()
        }
        return cls(**data)


def node_name(index: int) -> str:
    """Name of the ``index``-th simulated node."""
    return f"{KWOK_NODE_PREFIX}{index}"


def node_manifest(name: str) -> dict[str, Any]:
    """A Node object for kwok to manage (no taint, so ordinary pods schedule on it)."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                KWOK_NODE_LABEL: KWOK_NODE_LABEL_VALUE,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
            },
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }


class _Layout:
    """Every path in the state folder, in one place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.run = root / "run"
        self.etcd_data = root / "etcd"
        self.kubeconfig = root / KUBECONFIG_FILE
        self.state = root / STATE_FILE
        self.tag = tag_of(root)

    def cert(self, name: str) -> Path:
        return self.pki / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.pki / f"{name}.key"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.run / f"{name}.pid"


class LocalSuperCluster:
    """One local super cluster in ``settings.state_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, settings: TestbedSettings) -> None:
        self.settings = settings
        self.layout = _Layout(settings.state_dir.resolve())
        self._procs: dict[str, ManagedProcess] = {}
        self._info: TestbedInfo | None = None
        self._admin: pki.CertKeyPair | None = None
        self._ca: pki.CertKeyPair | None = None
        self._kwok_text = ""
        self._host = settings.host
        self._plan: HostPlan | None = None
        self._facts: realnodes.HostFacts | None = None
        self._log = log.bind(state_dir=str(self.layout.root))

    # ---- public view -------------------------------------------------------------

    @property
    def info(self) -> TestbedInfo:
        if self._info is None:
            raise TestbedError("the super cluster is not started")
        return self._info

    @property
    def state_dir(self) -> Path:
        return self.layout.root

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        return self.info.server

    @property
    def admin(self) -> pki.CertKeyPair:
        """The admin client certificate (CN ``admin``, O ``system:masters``)."""
        if self._admin is None:
            raise TestbedError("the super cluster is not started")
        return self._admin

    @property
    def ca(self) -> pki.CertKeyPair:
        """The cluster CA (it also signs CSRs through the controller-manager)."""
        if self._ca is None:
            raise TestbedError("the super cluster is not started")
        return self._ca

    def processes(self) -> dict[str, ManagedProcess]:
        return dict(self._procs)

    def log_files(self) -> dict[str, Path]:
        """Each component's log file (those started so far)."""
        return {name: self.layout.log(name) for name in (*COMPONENTS, *self._procs)
                if self.layout.log(name).exists()}

    def __enter__(self) -> LocalSuperCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- start -------------------------------------------------------------------

    def _binary(self, name: str) -> str:
        path = binaries.binary_path(name, self.settings.binaries)
        if not path.is_file():
            hint = ("fix VC_ETCD or unset it" if name == "etcd" and self.settings.binaries.etcd_path
                    else "run `python -m vcluster.binaries build`")
            raise TestbedError(f"{name} binary not found at {path}: {hint}")
        return str(path)

    def _port(self, explicit: int | None, what: str, taken: list[int]) -> int:
        host = self._host
        port = (
            require_free_port(explicit, host=host, what=what)
            if explicit is not None
            else pick_free_port(host=host, exclude=taken)
        )
        taken.append(port)
        return port

    def _refuse_if_running(self) -> None:
        if not self.layout.state.exists():
            return
        try:
            old = TestbedInfo.from_json(self.layout.state.read_text())
        except (ValueError, KeyError, TypeError):
            return
        for name, comp in old.components.items():
            proc = _process_from_info(name, comp)
            if proc.adopt():
                raise TestbedError(
                    f"a super cluster is already running from {self.layout.root} ({name} pid {proc.pid}); "
                    f"stop it first: python -m vcluster.testbed down --state-dir {self.layout.root}"
                )

    def start(self) -> TestbedInfo:
        """Start every component and wait until the cluster is usable.

        On failure everything started so far is stopped again and a
        :class:`TestbedError` (one line, naming the cause) is raised.
        """
        s = self.settings
        # resolve binaries and ports first: a missing binary or a taken port fails before anything runs
        bins = {name: self._binary(name) for name in COMPONENTS}
        if s.real_nodes:
            bins.update({name: self._binary(name) for name in (*binaries.NODE_COMPONENTS, "coredns", "pause")})
            if s.network_policy:
                bins["kube-router"] = self._binary("kube-router")
            self._facts = realnodes.preflight()
        self._kwok_text = kwok_config(s.binaries)
        if s.real_nodes:
            self.layout.root.mkdir(parents=True, exist_ok=True)
            self._refuse_if_running()
            try:
                self._plan = HostNetwork(self.layout.root).setup(host_plan(
                    state_dir=self.layout.root, nodes=[realnodes.node_name(i) for i in range(s.real_nodes)],
                    pod_cidr=s.real_pod_cidr, service_cidr=s.service_cidr, kwok_pod_cidr=s.pod_cidr,
                    mangle_guard=s.network_policy,
                ))
            except HostNetworkError as exc:
                with contextlib.suppress(HostNetworkError):
                    HostNetwork(self.layout.root).teardown()
                raise TestbedError(str(exc)) from None
            self._host = self._plan.host_address
        taken: list[int] = []
        etcd_client = self._port(s.etcd_client_port, "etcd client port", taken)
        etcd_peer = self._port(s.etcd_peer_port, "etcd peer port", taken)
        api_port = self._port(s.apiserver_port, "kube-apiserver port", taken)
        kubelet_port = self._port(s.kwok_kubelet_port, "kwok kubelet port", taken)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        (self.layout.root / STOP_MARKER).unlink(missing_ok=True)
        try:
            self._start(bins, etcd_client=etcd_client, etcd_peer=etcd_peer, api_port=api_port,
                        kubelet_port=kubelet_port)
        except BaseException:
            self._log.warning("testbed.start_failed")
            self.stop()
            raise
        return self.info

    def _write_pki(self, host: str) -> None:
        """Keep the CA and service-account keys of an earlier run (its kubeconfigs, tokens and
        etcd data stay valid); issue every leaf certificate afresh."""
        lay = self.layout
        if lay.cert("ca").is_file() and lay.key("ca").is_file():
            ca = pki.CertKeyPair(cert_pem=lay.cert("ca").read_bytes(), key_pem=lay.key("ca").read_bytes())
            pki.load_private_key(ca.key_pem)  # a damaged key fails here, with a clear PKIError
        else:
            ca = pki.generate_ca(common_name="virtualcluster-super-ca")
            pki.write_pair(ca, cert_path=lay.cert("ca"), key_path=lay.key("ca"))
        self._ca = ca
        serving = pki.issue_server_cert(
            ca,
            common_name="kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"],
            ips=sorted({host, "127.0.0.1", _first_service_ip(self.settings.service_cidr)}),
        )
        pki.write_pair(serving, cert_path=lay.cert("apiserver"), key_path=lay.key("apiserver"))
        kubelet_client = pki.issue_client_cert(
            ca, common_name="kube-apiserver-kubelet-client", organizations=["system:masters"]
        )
        pki.write_pair(kubelet_client, cert_path=lay.cert("apiserver-kubelet-client"),
                       key_path=lay.key("apiserver-kubelet-client"))
        kubelet_serving = pki.issue_server_cert(
            ca, common_name="kwok-kubelet", dns_names=["localhost"], ips=sorted({host, "127.0.0.1"})
        )
        pki.write_pair(kubelet_serving, cert_path=lay.cert("kwok-kubelet"), key_path=lay.key("kwok-kubelet"))
        if not (lay.key("sa").is_file() and (lay.pki / "sa.pub").is_file()):
            sa = pki.service_account_key_pair()
            pki.write_bytes(lay.key("sa"), sa.private_pem)
            pki.write_bytes(lay.pki / "sa.pub", sa.public_pem, mode=0o644)
        # the kubelet proxy's own identity towards kubelets (RBAC: nodes/proxy only)
        proxy_client = pki.issue_client_cert(ca, common_name=naming.KUBELET_PROXY_USER)
        pki.write_pair(proxy_client, cert_path=lay.cert(KUBELET_PROXY_CLIENT),
                       key_path=lay.key(KUBELET_PROXY_CLIENT))
        self._admin = pki.issue_client_cert(ca, common_name="admin", organizations=["system:masters"])
        pki.write_pair(self._admin, cert_path=lay.cert("admin"), key_path=lay.key("admin"))

    def _client_kubeconfig(self, name: str, server: str, *, cn: str, orgs: list[str]) -> Path:
        assert self._ca is not None
        pair = pki.issue_client_cert(self._ca, common_name=cn, organizations=orgs)
        config = render_kubeconfig(
            server=server, ca_pem=self._ca.cert_pem, client_cert_pem=pair.cert_pem,
            client_key_pem=pair.key_pem, cluster_name="super", user_name=cn,
        )
        return write_kubeconfig(self.layout.component_kubeconfig(name), config)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name=name, argv=argv, log_path=self.layout.log(name), pid_path=self.layout.pid(name))
        proc.start()
        self._procs[name] = proc
        return proc

    def _start(self, bins: dict[str, str], *, etcd_client: int, etcd_peer: int, api_port: int,
               kubelet_port: int) -> None:
        s = self.settings
        lay = self.layout
        host = self._host
        timeout = s.start_timeout
        for folder in (lay.pki, lay.logs, lay.run, lay.etcd_data):
            folder.mkdir(parents=True, exist_ok=True)
        lay.etcd_data.chmod(0o700)
        self._write_pki(host)
        assert self._admin is not None
        assert self._ca is not None
        server = f"https://{host}:{api_port}"
        etcd_url = f"http://{host}:{etcd_client}"

        # etcd ------------------------------------------------------------------------
        etcd = self._spawn("etcd", [
            bins["etcd"],
            "--name=super",
            f"--data-dir={lay.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://{host}:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://{host}:{etcd_peer}",
            f"--initial-cluster=super=http://{host}:{etcd_peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
        ])
        etcd.wait_ready(https_check(f"{etcd_url}/health"), timeout=timeout, what="etcd")

        # kube-apiserver ----------------------------------------------------------------
        api = self._spawn("kube-apiserver", [
            bins["kube-apiserver"],
            f"--etcd-servers={etcd_url}",
            f"--bind-address={host}",
            f"--secure-port={api_port}",
            f"--tls-cert-file={lay.cert('apiserver')}",
            f"--tls-private-key-file={lay.key('apiserver')}",
            f"--client-ca-file={lay.cert('ca')}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={lay.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={lay.key('sa')}",
            f"--service-cluster-ip-range={s.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--kubelet-client-certificate={lay.cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={lay.key('apiserver-kubelet-client')}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--profiling=false",
        ])
        api.wait_ready(
            https_check(f"{server}/readyz", ca_file=lay.cert("ca"), cert_file=lay.cert("admin"),
                        key_file=lay.key("admin")),
            timeout=timeout, what="kube-apiserver /readyz",
        )
        write_kubeconfig(lay.kubeconfig, render_kubeconfig(
            server=server, ca_pem=self._ca.cert_pem, client_cert_pem=self._admin.cert_pem,
            client_key_pem=self._admin.key_pem, cluster_name="vc-super", user_name="admin",
            context_name="vc-super",
        ))

        # controller-manager and scheduler ---------------------------------------------------
        cm_kc = self._client_kubeconfig("kube-controller-manager", server,
                                        cn="system:kube-controller-manager", orgs=[])
        self._spawn("kube-controller-manager", [
            bins["kube-controller-manager"],
            f"--kubeconfig={cm_kc}",
            "--secure-port=0",
            "--leader-elect=false",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--root-ca-file={lay.cert('ca')}",
            f"--service-account-private-key-file={lay.key('sa')}",
            f"--cluster-signing-cert-file={lay.cert('ca')}",
            f"--cluster-signing-key-file={lay.key('ca')}",
            f"--service-cluster-ip-range={s.service_cidr}",
            "--allocate-node-cidrs=false",
            # kwok renews the simulated nodes' leases; on a loaded 2-core machine (hundreds of pods
            # churning) a renewal can lag past the 50 s default and every node would turn Unknown.
            "--node-monitor-grace-period=3m",
        ])
        sched_kc = self._client_kubeconfig("kube-scheduler", server, cn="system:kube-scheduler", orgs=[])
        self._spawn("kube-scheduler", [
            bins["kube-scheduler"],
            f"--kubeconfig={sched_kc}",
            "--secure-port=0",
            "--leader-elect=false",
        ])

        # kwok ---------------------------------------------------------------------------
        kwok_kc = self._client_kubeconfig("kwok", server, cn="kwok-controller", orgs=["system:masters"])
        kwok = self._spawn("kwok", [
            bins["kwok"],
            f"--kubeconfig={kwok_kc}",
            f"--config={self._kwok_config()}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
            f"--node-ip={host}",
            f"--node-port={kubelet_port}",
            f"--server-address={host}:{kubelet_port}",
            f"--cidr={s.pod_cidr}",
            "--node-lease-duration-seconds=40",
            f"--tls-cert-file={lay.cert('kwok-kubelet')}",
            f"--tls-private-key-file={lay.key('kwok-kubelet')}",
        ])

        self._info = TestbedInfo(
            state_dir=str(lay.root), server=server, kubeconfig=str(lay.kubeconfig),
            ca_file=str(lay.cert("ca")), admin_cert_file=str(lay.cert("admin")),
            admin_key_file=str(lay.key("admin")), etcd_url=etcd_url, kubelet_port=kubelet_port,
            node_ip=host, node_names=tuple(node_name(i) for i in range(s.nodes)),
            components={},
            real_node_names=tuple(realnodes.node_name(i) for i in range(s.real_nodes)),
            host_address=host,
            cluster_dns=_nth_service_ip(s.service_cidr, 10) if s.real_nodes else "",
            cgroup_parents=tuple(
                realnodes.cgroup_root(lay.tag, realnodes.node_name(i)) for i in range(s.real_nodes)
            ),
        )
        self._record()

        # simulated nodes, then wait for what users need -------------------------------------
        api_client = self.api()
        for collection, obj in realnodes.kubelet_proxy_rbac():
            api_client.create_if_missing(collection, obj)
        for name in self._info.node_names:
            api_client.create_if_missing("/api/v1/nodes", node_manifest(name))
        kwok.wait_ready(tcp_check(host, kubelet_port), timeout=timeout, what="kwok kubelet server")
        self._wait(lambda: self._nodes_ready(api_client), what="simulated nodes Ready")
        self._wait(
            lambda: api_client.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            what="ServiceAccount default/default (kube-controller-manager)",
        )
        if s.real_nodes:
            self._start_real_nodes(bins, server=server, taken=[etcd_client, etcd_peer, api_port, kubelet_port])
        self._log.info("testbed.ready", server=server, nodes=s.nodes, real_nodes=s.real_nodes,
                       kubeconfig=str(lay.kubeconfig))

    def _record(self) -> None:
        """Write ``testbed.json`` with every component started so far (``down`` reads it)."""
        assert self._info is not None
        self._info = replace(self._info, components={
            name: ComponentInfo(argv=tuple(p.argv), pid_file=str(p.pid_path), log_file=str(p.log_path))
            for name, p in self._procs.items()
        })
        write_atomic(self.layout.state, self._info.to_json())

    # ---- real nodes ------------------------------------------------------------------

    def _images_archive(self, bins: dict[str, str]) -> Path:
        """The pause and busybox images, packed once per state folder."""
        busybox = Path("/bin/busybox")
        if not busybox.is_file():
            raise TestbedError("/bin/busybox missing: apt-get install busybox-static (the test image)")
        openssl = Path("/usr/bin/openssl")
        extra = images.with_libraries(openssl, images.shared_libraries(openssl)) if openssl.is_file() else []
        specs = [images.pause_image(Path(bins["pause"])),
                 images.busybox_image(busybox, images.busybox_applets(busybox), extra=extra)]
        return images.write_archive([images.build(spec) for spec in specs], self.layout.root / IMAGES_FILE)

    def _start_real_nodes(self, bins: dict[str, str], *, server: str, taken: list[int]) -> None:
        s = self.settings
        lay = self.layout
        assert self._plan is not None
        assert self._facts is not None
        assert self._ca is not None
        facts, plan = self._facts, self._plan
        timeout = s.start_timeout
        cluster_dns = _nth_service_ip(s.service_cidr, 10)
        archive = self._images_archive(bins)
        api_client = self.api()
        for net in plan.nodes:
            node = realnodes.NodeLayout(lay.root, net.name)
            for folder in (node.containerd_root, node.containerd_state, node.cni_conf_dir, node.cni_data_dir,
                           node.kubelet_root, node.pod_logs, node.pki, node.sockets):
                folder.mkdir(parents=True, exist_ok=True)
            write_atomic(node.containerd_config, realnodes.containerd_config(
                node, cni_bin_dir=facts.cni_bin_dir, restrict_oom_score_adj=not facts.can_lower_oom_score))
            realnodes.write_json(node.cni_conf_dir / "10-virtualcluster.conflist",
                                 realnodes.cni_config(net, plan, data_dir=node.cni_data_dir))
            containerd = self._spawn(f"containerd-{net.name}", [
                "/usr/bin/containerd", f"--config={node.containerd_config}",
            ])
            self._record()
            containerd.wait_ready(node.containerd_socket.exists, timeout=timeout, what=f"containerd of {net.name}")
            try:
                images.import_into(archive, address=node.containerd_socket)
            except images.ImageError as exc:
                raise TestbedError(str(exc)) from None
            serving = pki.issue_server_cert(self._ca, common_name=f"system:node:{net.name}",
                                            dns_names=[net.name, "localhost"], ips=[net.gateway, "127.0.0.1"])
            pki.write_pair(serving, cert_path=node.pki / "kubelet.crt", key_path=node.pki / "kubelet.key")
            kubelet_kc = self._client_kubeconfig(f"kubelet-{net.name}", server, cn=f"system:node:{net.name}",
                                                 orgs=["system:nodes"])
            parent = realnodes.cgroup_root(lay.tag, net.name)
            realnodes.make_cgroup(facts, parent)
            port = self._port(None, "kubelet port", taken)
            realnodes.write_yaml(node.kubelet_config, realnodes.kubelet_config(
                node, net, port=port, ca_file=lay.cert("ca"), serving_cert=node.pki / "kubelet.crt",
                serving_key=node.pki / "kubelet.key", cluster_dns=cluster_dns, cgroup_parent=parent,
                cgroup_v1=not facts.cgroup_v2,
            ))
            self._spawn(f"kubelet-{net.name}", [
                bins["kubelet"],
                f"--config={node.kubelet_config}",
                f"--kubeconfig={kubelet_kc}",
                f"--root-dir={node.kubelet_root}",
                f"--cert-dir={node.pki}",
                f"--hostname-override={net.name}",
                f"--node-ip={net.gateway}",
                f"--node-labels={realnodes.REAL_NODE_LABEL}=true",
                "--v=1",
            ])
            self._record()
        proxy_kc = self._client_kubeconfig("kube-proxy", server, cn="system:kube-proxy", orgs=[])
        proxy_config = realnodes.write_yaml(lay.root / "kube-proxy.yaml", realnodes.kube_proxy_config(
            kubeconfig=proxy_kc, cluster_cidr=plan.pod_cidr, hostname=plan.nodes[0].name,
            bind_address=plan.host_address, metrics_port=self._port(None, "kube-proxy metrics port", taken),
        ))
        self._spawn("kube-proxy", [bins["kube-proxy"], f"--config={proxy_config}", "--v=1"])
        self._record()
        health, ready = self._port(None, "CoreDNS health port", taken), self._port(None, "CoreDNS ready port", taken)
        dns_kc = self._client_kubeconfig("coredns", server, cn="vc-super-coredns", orgs=["system:masters"])
        corefile = lay.root / "Corefile"
        write_atomic(corefile, realnodes.corefile(bind=plan.host_address, kubeconfig=dns_kc,
                                                   health_port=health, ready_port=ready))
        dns = self._spawn("coredns", [bins["coredns"], "-conf", str(corefile)])
        self._record()
        for collection, obj in realnodes.kube_dns_objects(cluster_ip=cluster_dns, host_address=plan.host_address):
            api_client.create_if_missing(collection, obj)
        dns.wait_ready(tcp_check("127.0.0.1", ready), timeout=timeout, what="CoreDNS")
        names = {n.name for n in plan.nodes}
        self._wait(lambda: self._ready_nodes(api_client, "") >= names, what="real nodes Ready")
        if s.network_policy:  # after its node exists: kube-router reads the node's IP once, at start
            self._start_kube_router(bins["kube-router"], server=server, node=plan.nodes[0].name)


    def _start_kube_router(self, binary: str, *, server: str, node: str) -> None:
        """kube-router's network policy controller for ``node``; ready once its FORWARD chain is hooked in."""
        for collection, obj in realnodes.kube_router_rbac():
            self.api().create_if_missing(collection, obj)
        kc = self._client_kubeconfig("kube-router", server, cn=realnodes.KUBE_ROUTER_USER, orgs=[])
        if shutil.which("ipset") is None:
            raise TestbedError("ipset not found: network policy enforcement (kube-router) needs Debian's ipset "
                               "(scripts/setup as root installs it)")
        proc = self._spawn("kube-router", [binary, *realnodes.kube_router_args(
            kubeconfig=kc, hostname=node, service_cidr=self.settings.service_cidr)])
        self._record()

        def hooked() -> bool:
            out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=False)
            return f"-j {realnodes.KUBE_ROUTER_FORWARD_CHAIN}" in out.stdout

        proc.wait_ready(hooked, timeout=self.settings.start_timeout, what="kube-router (network policy)")

    @property
    def attach_file(self) -> Path:
        """What ``kubectl attach`` to a simulated pod follows (lines appended after the attach)."""
        return self.layout.root / "kwok-attach.log"

    def _kwok_config(self) -> Path:
        """kwok's own configuration: its stages and the kubelet-API rules the settings ask for
        (and never the ~/.kwok of the user)."""
        s = self.settings
        log_file = self.layout.root / "kwok-container.log"
        if s.kwok_logs:
            write_atomic(log_file, simulated_log())
            self.attach_file.touch()
        rules = rules_config(
            log_file=log_file if s.kwok_logs else None,
            attach_file=self.attach_file if s.kwok_logs else None,
            exec_workdir=self.layout.root if s.kwok_exec else None,
            forward_port=s.kwok_port_forward_port,
        )
        path = self.layout.root / "kwok.yaml"
        write_atomic(path, self._kwok_text + ("---\n" + rules if rules else ""))
        return path

    def _wait(self, check: Callable[[], bool], *, what: str) -> None:
        def abort() -> str | None:
            for name, proc in self._procs.items():
                reason = proc.exit_reason()
                if reason is not None:
                    last = proc.log_tail(lines=1).strip()
                    return f"{name} {reason}" + (f"; last log line: {last}" if last else "") + \
                        f" (log: {proc.log_path})"
            return None

        try:
            wait_until(check, timeout=self.settings.start_timeout, what=what, abort=abort)
        except ProcessError as exc:
            raise TestbedError(str(exc)) from None

    def _ready_nodes(self, api_client: AdminClient, selector: str) -> set[str]:
        body = api_client.get("/api/v1/nodes" + (f"?labelSelector={selector}" if selector else ""))
        if body is None:
            return set()
        return {
            item["metadata"]["name"]
            for item in body.get("items", [])
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in item.get("status", {}).get("conditions", []))
        }

    def _nodes_ready(self, api_client: AdminClient) -> bool:
        return self._ready_nodes(api_client, f"{KWOK_NODE_LABEL}%3D{KWOK_NODE_LABEL_VALUE}") >= set(
            self.info.node_names)

    def api(self) -> AdminClient:
        """A tiny synchronous admin client (for the launcher's own few requests)."""
        return AdminClient(
            server=self.info.server, ca_file=Path(self.info.ca_file),
            cert_file=Path(self.info.admin_cert_file), key_file=Path(self.info.admin_key_file),
        )

    # ---- stop --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component this object started, in reverse order; keep the state folder.

        With real nodes, their pods are deleted through the API first and everything they left
        on the host (processes, mounts, cgroups, bridges, chains, sysctls) is removed after.
        """
        errors: list[str] = []
        if self._info is not None and self._info.real_node_names and "kube-apiserver" in self._procs:
            errors += _drain_real_nodes(self.api(), self._info.real_node_names, timeout=self.settings.stop_grace * 6)
        for name in reversed(list(self._procs)):
            proc = self._procs[name]
            if name == "kube-proxy":
                _kube_proxy_cleanup(proc.argv)
            try:
                proc.stop(grace=self.settings.stop_grace)
            except ProcessError as exc:
                errors.append(str(exc))
        self._procs.clear()
        if self._info is not None:
            errors += _clean_host(self.layout.root, self._info, self._facts)
        elif (self.layout.root / "hostnet.json").exists():
            errors += _clean_host(self.layout.root, None, self._facts)
        if errors:
            raise TestbedError("; ".join(errors))


class AdminClient:
    """Synchronous HTTPS requests with the admin certificate: only for the launcher's bootstrap."""

    def __init__(self, *, server: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(server)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 443
        self._ctx = ssl.create_default_context(cafile=str(ca_file))
        self._ctx.load_cert_chain(str(cert_file), str(key_file))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPSConnection(self._host, self._port, timeout=10, context=self._ctx)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TestbedError(f"{method} {path} on the super cluster failed: {exc}") from exc
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw[:200].decode(errors="replace")}
        return resp.status, parsed

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, ``None`` if it does not exist (or the server is not answering yet)."""
        try:
            status, body = self.request("GET", path)
        except TestbedError:
            return None
        return body if status == 200 else None

    def create_if_missing(self, collection: str, obj: dict[str, Any]) -> None:
        status, body = self.request("POST", collection, obj)
        if status not in (200, 201, 409):
            raise TestbedError(
                f"creating {obj['kind']} {obj['metadata']['name']} failed ({status}): {body.get('message', '')}"
            )


# ---- helpers for down/status (another process than the one that started) -------------


def _process_from_info(name: str, comp: ComponentInfo) -> ManagedProcess:
    log_file = Path(comp.log_file)
    return ManagedProcess(name=name, argv=list(comp.argv), log_path=log_file, pid_path=Path(comp.pid_file))


def read_info(state_dir: Path) -> TestbedInfo:
    """The ``testbed.json`` of a state folder, or a clear error."""
    path = state_dir.resolve() / STATE_FILE
    try:
        return TestbedInfo.from_json(path.read_text())
    except FileNotFoundError:
        raise TestbedError(f"no super cluster state in {state_dir} ({STATE_FILE} missing)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TestbedError(f"cannot read {path}: {exc}") from None


def status(state_dir: Path) -> dict[str, int | None]:
    """Each component's pid if it is running (verified by cmdline), else ``None``."""
    info = read_info(state_dir)
    out: dict[str, int | None] = {}
    for name, comp in info.components.items():
        proc = _process_from_info(name, comp)
        out[name] = proc.pid if proc.adopt() else None
    return out


def stop_requested(state_dir: Path) -> bool:
    """Whether `down` has begun stopping the super cluster of ``state_dir``."""
    return (state_dir.resolve() / STOP_MARKER).exists()


def stop_state_dir(state_dir: Path, *, grace: float = 10.0) -> list[str]:
    """Stop the components of a super cluster recorded in ``state_dir``; return the names stopped."""
    info = read_info(state_dir)
    root = state_dir.resolve()
    (root / STOP_MARKER).touch()
    stopped: list[str] = []
    errors: list[str] = []
    procs = {name: _process_from_info(name, comp) for name, comp in info.components.items()}
    running = {name for name, proc in procs.items() if proc.adopt()}
    if info.real_node_names and "kube-apiserver" in running:
        api = AdminClient(server=info.server, ca_file=Path(info.ca_file), cert_file=Path(info.admin_cert_file),
                          key_file=Path(info.admin_key_file))
        errors += _drain_real_nodes(api, info.real_node_names, timeout=grace * 6)
    for name in reversed(list(procs)):
        proc = procs[name]
        if name == "kube-proxy":
            _kube_proxy_cleanup(proc.argv)
        if name in running:
            try:
                proc.stop(grace=grace)
                stopped.append(name)
            except ProcessError as exc:
                errors.append(str(exc))
    errors += _clean_host(root, info, None)
    if errors:
        raise TestbedError("; ".join(errors))
    return stopped


# ---- real nodes: what stopping them involves -------------------------------------------------


def _drain_real_nodes(api: AdminClient, nodes: tuple[str, ...], *, timeout: float) -> list[str]:
    """Delete every pod bound to a real node through the API and wait until the kubelets confirm.

    Killing containers under a running kubelet would make it restart them; a pod deleted
    through the API is stopped by its kubelet, and its sandbox, veth and mounts with it.
    """
    import time

    def pods_on_nodes() -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for node in nodes:
            body = api.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
            for item in (body or {}).get("items", []):
                out.append((item["metadata"]["namespace"], item["metadata"]["name"]))
        return out

    try:
        for ns, name in pods_on_nodes():
            api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}",
                        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 1})
        deadline = time.monotonic() + timeout
        while pods_on_nodes():
            if time.monotonic() > deadline:
                return [f"pods still on real nodes after {timeout:.0f} s: {pods_on_nodes()[:5]}"]
            time.sleep(0.5)
    except TestbedError as exc:
        log.warning("testbed.drain_failed", error=str(exc))
    return []


def _kube_proxy_cleanup(argv: tuple[str, ...] | list[str]) -> None:
    """kube-proxy removes its iptables rules (``--cleanup``) before it is stopped; a failure is
    logged (the chains it leaves are swept with the test bed's own chains afterwards)."""
    import subprocess

    proc = subprocess.run([argv[0], "--cleanup", "--v=0"], capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        log.warning("testbed.kube_proxy_cleanup_failed", stderr=proc.stderr.strip()[-300:])


def _clean_host(root: Path, info: TestbedInfo | None, facts: realnodes.HostFacts | None) -> list[str]:
    """After the real nodes' processes are stopped: shims and leftover container processes,
    mounts, cgroups, then the host network (bridges, chain, address, sysctls)."""
    import shutil

    errors: list[str] = []
    nodes_dir = root / "nodes"
    sockets = realnodes.socket_root(root)
    if nodes_dir.is_dir():
        realnodes.kill_pids(realnodes.shim_pids(str(nodes_dir)) + realnodes.shim_pids(str(sockets)))
    for parent in info.cgroup_parents if info is not None else ():
        realnodes.kill_cgroup(facts, parent)
    if nodes_dir.is_dir():
        realnodes.kill_pids(realnodes.shim_pids(str(nodes_dir)) + realnodes.shim_pids(str(sockets)))
        errors += realnodes.unmount_all(nodes_dir)
    if sockets.is_dir():
        left = realnodes.unmount_all(sockets)
        errors += left
        if not left and not realnodes.mounts_under(sockets):
            shutil.rmtree(sockets, ignore_errors=True)
    for parent in info.cgroup_parents if info is not None else ():
        errors += [f"cgroup {c} not removed" for c in realnodes.remove_cgroup(parent)]
    try:
        HostNetwork(root).teardown()
    except HostNetworkError as exc:
        errors.append(str(exc))
    return errors


def _first_service_ip(cidr: str) -> str:
    return _nth_service_ip(cidr, 1)


def _nth_service_ip(cidr: str, n: int) -> str:
    import ipaddress

    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + n)

