"""Settings of the local super cluster (the test bed), as one frozen dataclass.

Why: the CLI's ``up``, the demo and the e2e fixtures start the same launcher
with different state folders, node counts and (rarely) fixed ports.  They all
go through :class:`TestbedSettings`; only :meth:`TestbedSettings.from_env`
reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vcluster.errors import VClusterError
from vcluster.settings import BinarySettings, env_bool, env_float, env_int, env_path, env_str

DEFAULT_STATE_DIR = Path(".vcluster") / "super"


@dataclass(frozen=True, slots=True)
class TestbedSettings:
    """How to run one local super cluster.

    Every port left as ``None`` is picked free at start; an explicit port that
    is taken makes the start fail with a one-line error naming it.
    """

    __test__ = False  # not a pytest test class, despite the name

    #: Folder for PKI, kubeconfigs, etcd data, logs and pid files of this cluster.
    state_dir: Path = DEFAULT_STATE_DIR
    #: Number of simulated (kwok) nodes the launcher creates.
    nodes: int = 3
    #: Address every component listens on.
    host: str = "127.0.0.1"
    etcd_client_port: int | None = None
    etcd_peer_port: int | None = None
    apiserver_port: int | None = None
    #: kwok's kubelet API server (logs/exec/port-forward of simulated pods).
    kwok_kubelet_port: int | None = None
    #: Service cluster IP range of the super cluster.
    service_cidr: str = "10.96.0.0/16"
    #: Pod IPs kwok hands out.
    pod_cidr: str = "10.244.0.0/16"
    #: Real nodes: a kubelet on its own containerd each (root only; see docs/testbed.md).
    real_nodes: int = 0
    #: Pod network of the real nodes: a /24 per node, the first /24's first address for the host.
    real_pod_cidr: str = "10.245.0.0/16"
    #: Enforce NetworkPolicy on the real node: kube-router's network policy controller alone (no routes,
    #: no service proxy) in the host network namespace its pods' bridge is in.  One real node only:
    #: every real node shares that namespace, and one enforcer owns its filter rules.
    network_policy: bool = False
    #: Deadline for each readiness wait (seconds).
    start_timeout: float = 90.0
    #: Grace between SIGTERM and SIGKILL when stopping a component (seconds).
    stop_grace: float = 10.0
    #: kwok serves ``kubectl logs`` (a simulated log line) and ``attach`` for every pod.
    kwok_logs: bool = True
    #: kwok serves ``kubectl exec`` for every pod by running the command *on this machine*, in the
    #: state folder, as the user running kwok: for tests only, never for untrusted tenants.
    kwok_exec: bool = False
    #: kwok forwards ``kubectl port-forward`` of any pod port to this local port (``None``: off).
    kwok_port_forward_port: int | None = None
    #: Where the upstream binaries are (required: ``BinarySettings.from_env()`` is the caller's to read, so
    #: constructing settings never reads the environment behind the caller's back).
    binaries: BinarySettings = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.nodes < 0:
            raise VClusterError(f"node count must be >= 0, got {self.nodes}")
        if not 0 <= self.real_nodes <= 8:
            raise VClusterError(f"real node count must be 0-8, got {self.real_nodes}")
        if self.network_policy and self.real_nodes != 1:
            raise VClusterError(
                f"network policy enforcement needs exactly one real node, got {self.real_nodes}: every real node "
                "shares this host's network namespace, and one kube-router owns its filter rules"
            )
        for name in ("etcd_client_port", "etcd_peer_port", "apiserver_port", "kwok_kubelet_port",
                     "kwok_port_forward_port"):
            port = getattr(self, name)
            if port is not None and not 0 < port < 65536:
                raise VClusterError(f"{name.replace('_', ' ')} must be 1-65535, got {port}")

    @classmethod
    def from_env(cls) -> TestbedSettings:
        """``VC_TESTBED_STATE_DIR``, ``VC_TESTBED_NODES``, ``VC_TESTBED_APISERVER_PORT``, ..."""

        def port(name: str) -> int | None:
            return env_int(f"VC_TESTBED_{name}", None)

        return cls(
            state_dir=env_path("VC_TESTBED_STATE_DIR", DEFAULT_STATE_DIR),
            nodes=env_int("VC_TESTBED_NODES", 3),
            real_nodes=env_int("VC_TESTBED_REAL_NODES", 0, minimum=0, maximum=8),
            host=env_str("VC_TESTBED_HOST", "127.0.0.1"),
            etcd_client_port=port("ETCD_CLIENT_PORT"),
            etcd_peer_port=port("ETCD_PEER_PORT"),
            apiserver_port=port("APISERVER_PORT"),
            kwok_kubelet_port=port("KWOK_KUBELET_PORT"),
            start_timeout=env_float("VC_TESTBED_START_TIMEOUT", 90.0),
            kwok_logs=env_bool("VC_TESTBED_KWOK_LOGS", True),
            kwok_exec=env_bool("VC_TESTBED_KWOK_EXEC", False),
            network_policy=env_bool("VC_TESTBED_NETWORK_POLICY", False),
            binaries=BinarySettings.from_env(),
        )

