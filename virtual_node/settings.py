"""Settings of the virtual-node manager and of the kubelet proxy.

Why: both are configured from the environment of the process that runs them
(the syncer for the manager, ``python -m virtual_node.proxy`` for the proxy);
one frozen dataclass per group with one ``from_env()`` says what can be set
and what the defaults are, and nothing else reads the environment.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from vcluster import pki
from vcluster.kube import ClientConfig
from vcluster.kube.client import SERVICE_ACCOUNT_DIR
from vcluster.kubeconfig import KubeconfigError
from vcluster.settings import (
    LogSettings,
    SettingsError,
    env_duration,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
)

__all__ = ["ProxySettings", "SettingsError", "VirtualNodeSettings", "super_client_config"]


def _path(name: str) -> Path | None:
    return env_path(name, None)


@dataclass(frozen=True, slots=True)
class VirtualNodeSettings:
    """How virtual nodes look and live (read by the syncer's VirtualNodeManager)."""

    #: Address of the kubelet proxy as tenant apiservers reach it (an IP or a DNS name);
    #: every virtual node's address.
    proxy_address: str = "127.0.0.1"
    #: Port of the kubelet proxy: every virtual node's ``daemonEndpoints.kubeletEndpoint.Port``.
    proxy_port: int = 10550
    #: Seconds between Lease renewals (the kubelet's default is 10 s).
    heartbeat_period: float = 10.0
    #: Seconds between node status posts when nothing changed (refreshes lastHeartbeatTime).
    status_report_period: float = 60.0
    #: Seconds a virtual node stays without any bound tenant pod before it is deleted.
    gc_grace_period: float = 120.0
    #: The Lease's ``leaseDurationSeconds`` (the kubelet uses 40).
    lease_duration_seconds: int = 40
    #: Upper bound (seconds) of detach_tenant's clean-up, so a tenant apiserver that is
    #: already gone never holds up the syncer.
    detach_timeout: float = 10.0

    @classmethod
    def from_env(cls) -> VirtualNodeSettings:
        d = cls()
        return cls(
            proxy_address=env_str("VC_KUBELET_PROXY_ADDRESS", d.proxy_address),
            proxy_port=env_int("VC_KUBELET_PROXY_PORT", d.proxy_port, minimum=0, maximum=65535),
            heartbeat_period=env_float("VC_VNODE_HEARTBEAT_PERIOD", d.heartbeat_period, positive=True),
            status_report_period=env_float("VC_VNODE_STATUS_REPORT_PERIOD", d.status_report_period, positive=True),
            gc_grace_period=env_float("VC_VNODE_GC_GRACE_PERIOD", d.gc_grace_period, positive=True),
            lease_duration_seconds=int(env_float("VC_VNODE_LEASE_DURATION", d.lease_duration_seconds, positive=True)),
            detach_timeout=env_float("VC_VNODE_DETACH_TIMEOUT", d.detach_timeout, positive=True),
        )


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How the kubelet proxy listens, proves itself, and reaches the real kubelets."""

    #: Listen host and port (port 0 picks a free one; the bound port is logged).
    host: str = "0.0.0.0"
    port: int = 10550
    #: Serving certificate and key (PEM files).  Without them the proxy issues its own
    #: from the shared CA Secret, for :attr:`serving_names`.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: CA that signs tenant apiservers' kubelet client certificates (PEM file).  Without it
    #: the CA certificate of the shared Secret is used.
    client_ca_file: Path | None = None
    #: DNS names and IPs for a self-issued serving certificate.
    serving_names: tuple[str, ...] = ("127.0.0.1", "localhost")
    #: Lifetime of a self-issued serving certificate (``VC_PROXY_CERT_VALIDITY``; never past the CA's
    #: expiry) and how long before its expiry it is reissued (``VC_PROXY_CERT_RENEW_BEFORE``, default
    #: the last third), by the rule of :func:`vcluster.pki.due`.
    cert_validity: _dt.timedelta = pki.CERT_VALIDITY
    cert_renew_before: _dt.timedelta = pki.CERT_VALIDITY / 3
    #: Seconds between checks of the serving certificate (due? the CA Secret or the files changed?);
    #: a new one is loaded into the listening TLS context, for every later connection.
    cert_check_period: float = 60.0
    #: Kubeconfig of the super cluster (``None``: in-cluster service account).
    super_kubeconfig: Path | None = None
    #: Scheme of the real kubelets' endpoints (kwok serves both; kubelets serve https).
    kubelet_scheme: str = "https"
    #: Client certificate and key for the real kubelets, and the CA that signs their serving
    #: certificates (``None``: do not verify, as kube-apiserver does without
    #: ``--kubelet-certificate-authority``).
    kubelet_client_cert_file: Path | None = None
    kubelet_client_key_file: Path | None = None
    kubelet_ca_file: Path | None = None
    #: A file holding a bearer token for the real kubelets (``VC_KUBELET_TOKEN_FILE``), read again
    #: whenever it changes: in a pod, the service account's own token, which kubelets accept through
    #: webhook authentication (the account needs ``nodes/proxy``).  Instead of, or with, a client certificate.
    kubelet_token_file: Path | None = None
    #: Node address types to try, in order (kube-apiserver's --kubelet-preferred-address-types).
    kubelet_address_types: tuple[str, ...] = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")
    #: Port of the plain-HTTP metrics and health endpoint (0: a free port; -1: off).
    metrics_port: int = 0
    #: Seconds a resolved pod → kubelet endpoint stays cached.
    lookup_cache_seconds: float = 2.0
    #: The super apiserver when running in a pod (from KUBERNETES_SERVICE_HOST/PORT).
    in_cluster_server: str | None = None
    #: ``VC_LOG_LEVEL`` / ``VC_LOG_JSON``, as for the operator and the syncer.
    logs: LogSettings = field(default_factory=LogSettings)

    @classmethod
    def from_env(cls) -> ProxySettings:
        d = cls()
        scheme = env_str("VC_KUBELET_SCHEME", d.kubelet_scheme)
        if scheme not in ("http", "https"):
            raise SettingsError(f"VC_KUBELET_SCHEME={scheme!r} must be 'http' or 'https'")
        names = env_list("VC_PROXY_SERVING_NAMES")
        validity = env_duration("VC_PROXY_CERT_VALIDITY", d.cert_validity, minimum=_dt.timedelta(seconds=60))
        renew_before = env_duration("VC_PROXY_CERT_RENEW_BEFORE", validity / 3)
        if renew_before >= validity:
            raise SettingsError(f"VC_PROXY_CERT_RENEW_BEFORE ({renew_before}) must be shorter than "
                                f"VC_PROXY_CERT_VALIDITY ({validity})")
        types = env_list("VC_KUBELET_ADDRESS_TYPES")
        return cls(
            host=env_str("VC_PROXY_HOST", d.host),
            port=env_int("VC_PROXY_PORT", d.port, minimum=0, maximum=65535),
            cert_file=_path("VC_PROXY_CERT_FILE"),
            key_file=_path("VC_PROXY_KEY_FILE"),
            client_ca_file=_path("VC_PROXY_CLIENT_CA_FILE"),
            serving_names=names or d.serving_names,
            cert_validity=validity,
            cert_renew_before=renew_before,
            cert_check_period=env_float("VC_PROXY_CERT_CHECK_PERIOD", d.cert_check_period, positive=True),
            super_kubeconfig=_path("VC_SUPER_KUBECONFIG") or _path("KUBECONFIG"),
            kubelet_scheme=scheme,
            kubelet_client_cert_file=_path("VC_KUBELET_CLIENT_CERT_FILE"),
            kubelet_client_key_file=_path("VC_KUBELET_CLIENT_KEY_FILE"),
            kubelet_ca_file=_path("VC_KUBELET_CA_FILE"),
            kubelet_token_file=_path("VC_KUBELET_TOKEN_FILE"),
            kubelet_address_types=types or d.kubelet_address_types,
            metrics_port=env_int("VC_PROXY_METRICS_PORT", d.metrics_port, minimum=-1, maximum=65535),
            lookup_cache_seconds=env_float("VC_PROXY_LOOKUP_CACHE_SECONDS", d.lookup_cache_seconds, positive=True),
            in_cluster_server=_in_cluster_server(),
            logs=LogSettings.from_env(),
        )


def _in_cluster_server() -> str | None:
    host, port = env_str("KUBERNETES_SERVICE_HOST", ""), env_str("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def super_client_config(settings: ProxySettings, *, account_dir: Path = SERVICE_ACCOUNT_DIR) -> ClientConfig:
    """How the proxy reaches the super apiserver: its kubeconfig, else the pod's service account.

    The service account's token is re-read as the kubelet rotates it (projected tokens expire).
    """
    if settings.super_kubeconfig is not None:
        return ClientConfig.from_kubeconfig(settings.super_kubeconfig)
    if settings.in_cluster_server is None:
        raise SettingsError("set VC_SUPER_KUBECONFIG (or KUBECONFIG), or run in a pod with a service account")
    try:
        return ClientConfig.in_cluster(settings.in_cluster_server, account_dir=account_dir)
    except KubeconfigError as exc:
        raise SettingsError(str(exc)) from exc
