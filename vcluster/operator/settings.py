"""Settings of the operator, as one frozen dataclass with one ``from_env()``.

Why: the operator is configured from the command line and, in a Deployment,
from the environment; this is the only place that reads ``VC_OPERATOR_*``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vcluster.settings import check_lease_timing, env_float, env_int


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """What the operator needs besides the Tenant objects themselves."""

    #: Kubeconfig of the super cluster; ``None`` means in-cluster/Kopf's defaults.
    kubeconfig: Path | None = None
    #: Root of the ``local`` backend's state (one folder per cluster key).
    state_dir: Path = Path("/nonexistent")
    #: Seconds a local component may take to become healthy.
    start_timeout: float = 90.0
    #: Seconds between rounds of the tenant health loop (one loop probes every provisioned tenant,
    #: reports ``Ready`` truthfully and restarts dead local processes).
    health_interval: float = 5.0
    #: Seconds to wait for the tenant's default ServiceAccount (controller-manager up) before Ready.
    bootstrap_timeout: float = 90.0
    #: Apply the CRDs of tenant_crd on start.
    install_crds: bool = True
    #: Port of /healthz, /readyz, /metrics; ``None`` disables it, 0 picks a free port.
    health_port: int | None = None
    #: Address the health server binds: loopback on a laptop, ``0.0.0.0`` in a pod (probes, scraping).
    health_host: str = "127.0.0.1"
    #: Written into the operator Lease's ``holderIdentity``; empty means ``<hostname>-<pid>``.
    identity: str = ""
    #: Seconds the operator Lease stays valid without renewal (a standby takes over after that).
    lease_duration: float = 15.0
    #: The leader stops (exits non-zero) when it could not renew for this long (< ``lease_duration``).
    lease_renew_deadline: float = 10.0
    #: Seconds between a standby's attempts and the leader's renewals (< ``lease_renew_deadline``).
    lease_retry_period: float = 2.0
    log_level: str = "INFO"
    log_json: bool = False
    #: Failed apiserver probes in a row before a tenant reads ``Ready=False`` (a process found
    #: gone counts at once): one slow answer under load must not make the syncer drop a tenant.
    health_failure_threshold: int = 2
    #: Seconds one probe of a tenant apiserver (``/readyz``) may take.
    health_probe_timeout: float = 3.0

    @classmethod
    def from_env(cls) -> OperatorSettings:
        kubeconfig = os.environ.get("VC_OPERATOR_KUBECONFIG")
        duration = env_float("VC_OPERATOR_LEASE_DURATION", 15.0, positive=True)
        renew_deadline = env_float("VC_OPERATOR_LEASE_RENEW_DEADLINE", duration * 2 / 3, positive=True)
        retry_period = env_float("VC_OPERATOR_LEASE_RETRY_PERIOD", min(2.0, renew_deadline / 4), positive=True)
        check_lease_timing("VC_OPERATOR", duration=duration, renew_deadline=renew_deadline, retry_period=retry_period)
        return cls(
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
            state_dir=Path(
                os.environ.get("VC_OPERATOR_STATE_DIR") or _state_home() / "virtualcluster" / "operator"
            ),
            start_timeout=env_float("VC_OPERATOR_START_TIMEOUT", 90.0),
            health_interval=env_float("VC_OPERATOR_HEALTH_INTERVAL", 5.0, positive=True),
            bootstrap_timeout=env_float("VC_OPERATOR_BOOTSTRAP_TIMEOUT", 90.0),
            install_crds=os.environ.get("VC_OPERATOR_INSTALL_CRDS", "1") not in ("0", "false", "no"),
            health_port=env_int("VC_OPERATOR_HEALTH_PORT", None, minimum=0, maximum=65535),
            health_host=os.environ.get("VC_OPERATOR_HEALTH_HOST", "127.0.0.1"),
            identity=os.environ.get("VC_OPERATOR_IDENTITY", ""),
            lease_duration=duration,
            lease_renew_deadline=renew_deadline,
            lease_retry_period=retry_period,
            log_level=os.environ.get("VC_LOG_LEVEL", "INFO"),
            log_json=os.environ.get("VC_LOG_JSON", "0") in ("1", "true", "yes"),
            health_failure_threshold=env_int("VC_OPERATOR_HEALTH_FAILURE_THRESHOLD", 2, minimum=1),
            health_probe_timeout=env_float("VC_OPERATOR_HEALTH_PROBE_TIMEOUT", 3.0, positive=True),
        )
