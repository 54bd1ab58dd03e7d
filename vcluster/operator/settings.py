"""Settings of the operator, as one frozen dataclass with one ``from_env()``.

Why: the operator is configured from the command line and, in a Deployment,
from the environment; this is the only place that reads ``VC_OPERATOR_*``.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tenant_crd.models import SpecError, parse_quantity
from vcluster.controlplane.certs import Lifetimes
from vcluster.settings import (
    LeaseTiming,
    LogSettings,
    SettingsError,
    env_bool,
    env_duration,
    env_float,
    env_int,
    env_list,
    env_pairs,
    env_path,
    env_str,
)

#: Taint effects a toleration may name (empty: every effect).
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
#: The tenant-wide quota of a Tenant that names none (``VC_OPERATOR_DEFAULT_QUOTA``): what one tenant
#: may hold across all its super namespaces together (docs/architecture.md, "Tenant-wide quota").
DEFAULT_TENANT_QUOTA: Mapping[str, str] = MappingProxyType({
    # (node ports and load balancers: whether at all is spec.isolation.exposure's to say)
    "pods": "100", "requests.cpu": "16", "requests.memory": "32Gi", "services": "50", "persistentvolumeclaims": "20",
    "requests.storage": "100Gi", "configmaps": "500", "secrets": "500",
})
#: Container requests of a Tenant that names no ``limitRange`` (``VC_OPERATOR_DEFAULT_REQUESTS``): the
#: quota counts requests, and a namespace with a quota on them refuses containers that state none.
DEFAULT_CONTAINER_REQUESTS: Mapping[str, str] = MappingProxyType({"cpu": "100m", "memory": "128Mi"})


def _quantities(name: str, default: Mapping[str, str], env: Mapping[str, str] | None) -> Mapping[str, str]:
    """``$name`` as ``resource=quantity`` pairs; unset: ``default``; set to ``none``: nothing."""
    raw = (os.environ if env is None else env).get(name)
    if raw is None:
        return default
    if raw.strip().lower() == "none":
        return MappingProxyType({})
    pairs = env_pairs(name, env={name: raw}, value="quantity")
    for key, value in pairs.items():
        try:
            parse_quantity(value)
        except SpecError:
            raise SettingsError(f"{name} entry {key}={value!r}: not a Kubernetes quantity") from None
    return MappingProxyType(pairs)


@dataclass(frozen=True, slots=True)
class TenantDnsSettings:
    """The DNS server the operator provides with every tenant (``VC_OPERATOR_DNS_*``)."""

    #: Provide it at all (``VC_OPERATOR_DNS``); off, tenant pods keep the cluster's default DNS.
    enabled: bool = True
    #: Where names outside the cluster domain go (``VC_OPERATOR_DNS_UPSTREAM``, comma-separated
    #: ``ip[:port]``); empty: the super cluster's ``kube-system/kube-dns`` ClusterIP if it has one.
    upstream: tuple[str, ...] = ()
    #: Lifetime of the tenant DNS' super-cluster token (local backend), renewed at half of it.
    token_seconds: int = 3600
    #: CoreDNS image of the pods backend.
    image: str = "registry.k8s.io/coredns/coredns:v1.12.1"
    #: The super cluster's own cluster domain (``VC_OPERATOR_DNS_SUPER_DOMAIN``): the tenant DNS
    #: never forwards its names (nor reverse lookups) to the super cluster's resolver.
    super_domain: str = "cluster.local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TenantDnsSettings:
        return cls(
            enabled=env_bool("VC_OPERATOR_DNS", True, env=env),
            upstream=env_list("VC_OPERATOR_DNS_UPSTREAM", env=env),
            token_seconds=env_int("VC_OPERATOR_DNS_TOKEN_SECONDS", 3600, minimum=600, env=env),
            image=env_str("VC_OPERATOR_DNS_IMAGE", "registry.k8s.io/coredns/coredns:v1.12.1", env=env),
            super_domain=env_str("VC_OPERATOR_DNS_SUPER_DOMAIN", "cluster.local", env=env),
        )


@dataclass(frozen=True, slots=True)
class ControlPlanePlacement:
    """Where the ``pods`` backend runs tenant control planes and tenant DNS (``VC_OPERATOR_CONTROL_PLANE_*``).

    The admin's choice (a node pool kept for control planes, tainted nodes), never the tenant's:
    a Tenant places its own workloads with ``spec.isolation``, not the pods that enforce it.
    """

    #: ``VC_OPERATOR_CONTROL_PLANE_NODE_SELECTOR``: ``key=value`` pairs, comma-separated.
    node_selector: tuple[tuple[str, str], ...] = ()
    #: ``VC_OPERATOR_CONTROL_PLANE_TOLERATIONS``: ``key[=value][:Effect]``, comma-separated; without a
    #: value the toleration matches any (``Exists``), without an effect every effect.
    tolerations: tuple[tuple[str, str, str], ...] = ()

    def pod_spec(self) -> dict[str, Any]:
        """The pod-spec fields (``nodeSelector``, ``tolerations``) to merge into every control-plane pod."""
        out: dict[str, Any] = {}
        if self.node_selector:
            out["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            tolerations = []
            for key, value, effect in self.tolerations:
                tol = {"key": key, "operator": "Equal", "value": value} if value else {"key": key, "operator": "Exists"}
                if effect:
                    tol["effect"] = effect
                tolerations.append(tol)
            out["tolerations"] = tolerations
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControlPlanePlacement:
        selector: list[tuple[str, str]] = []
        for item in env_list("VC_OPERATOR_CONTROL_PLANE_NODE_SELECTOR", env=env):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SettingsError(f"VC_OPERATOR_CONTROL_PLANE_NODE_SELECTOR: {item!r} is not key=value")
            selector.append((key, value))
        tolerations: list[tuple[str, str, str]] = []
        for item in env_list("VC_OPERATOR_CONTROL_PLANE_TOLERATIONS", env=env):
            rest, _, effect = item.partition(":")
            key, _, value = rest.partition("=")
            if not key:
                raise SettingsError(f"VC_OPERATOR_CONTROL_PLANE_TOLERATIONS: {item!r} has no key")
            if effect and effect not in TAINT_EFFECTS:
                raise SettingsError(f"VC_OPERATOR_CONTROL_PLANE_TOLERATIONS: {item!r}: effect must be one of "
                                    f"{', '.join(TAINT_EFFECTS)}")
            tolerations.append((key, value, effect))
        return cls(node_selector=tuple(selector), tolerations=tuple(tolerations))


#: The shortest certificate lifetime the operator accepts (an e2e uses about two minutes).
MIN_CERT_VALIDITY = _dt.timedelta(seconds=60)


def certificate_lifetimes(env: Mapping[str, str] | None = None) -> Lifetimes:
    """``VC_OPERATOR_CERT_VALIDITY`` / ``_CERT_RENEW_BEFORE`` / ``_CA_VALIDITY`` / ``_CA_RENEW_BEFORE``:
    durations (``120s``, ``30d``, ``1y``); the leaf window defaults to the last third of its validity."""
    default = Lifetimes()
    validity = env_duration("VC_OPERATOR_CERT_VALIDITY", default.validity, minimum=MIN_CERT_VALIDITY, env=env)
    ca_validity = env_duration("VC_OPERATOR_CA_VALIDITY", default.ca_validity, minimum=MIN_CERT_VALIDITY, env=env)
    lifetimes = Lifetimes(
        validity=validity,
        renew_before=env_duration("VC_OPERATOR_CERT_RENEW_BEFORE", validity / 3, env=env),
        ca_validity=ca_validity,
        ca_renew_before=env_duration("VC_OPERATOR_CA_RENEW_BEFORE", min(default.ca_renew_before, ca_validity / 3),
                                     env=env),
    )
    problems = lifetimes.problems()
    if problems:
        raise SettingsError("VC_OPERATOR_CERT_*/VC_OPERATOR_CA_*: " + "; ".join(problems))
    return lifetimes


BACKENDS = ("local", "pods")


def _repository(env: Mapping[str, str] | None) -> str:
    """``VC_OPERATOR_IMAGE_REPOSITORY``: a registry host (with port) and path, never a tag or digest."""
    value = env_str("VC_OPERATOR_IMAGE_REPOSITORY", "registry.k8s.io", env=env).rstrip("/")
    host, _, path = value.partition("/")
    if not host or any(c.isspace() for c in value) or "@" in value or ":" in path:
        raise SettingsError(f"VC_OPERATOR_IMAGE_REPOSITORY {value!r}: not an image repository "
                            "(e.g. registry.example.com/k8s)")
    return value


def _default_backend(env: Mapping[str, str] | None) -> str:
    in_pod = bool(env_str("KUBERNETES_SERVICE_HOST", "", env=env))
    value = env_str("VC_OPERATOR_DEFAULT_BACKEND", "pods" if in_pod else "local", env=env)
    if value not in BACKENDS:
        raise SettingsError(f"VC_OPERATOR_DEFAULT_BACKEND must be one of {', '.join(BACKENDS)}; got {value!r}")
    return value


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
    #: Operator Lease timing (``VC_OPERATOR_LEASE_*``): a lost Lease stops the operator (exit non-zero).
    lease: LeaseTiming = field(default_factory=LeaseTiming)
    #: ``VC_LOG_LEVEL`` / ``VC_LOG_JSON``, as for every process.
    logs: LogSettings = field(default_factory=LogSettings)
    #: Address the ``local`` backend's tenant components bind (``VC_OPERATOR_LOCAL_HOST``): loopback,
    #: or with real nodes an address tenant pods can reach (the test bed's host address).
    local_host: str = "127.0.0.1"
    #: The tenant DNS (``VC_OPERATOR_DNS_*``).
    dns: TenantDnsSettings = field(default_factory=TenantDnsSettings)
    #: The backend of a Tenant that names none (``VC_OPERATOR_DEFAULT_BACKEND``): ``pods`` when the
    #: operator runs in a pod (``KUBERNETES_SERVICE_HOST`` set: a real cluster), else ``local``.
    default_backend: str = "local"
    #: Where the pods backend's control-plane pods go (``VC_OPERATOR_CONTROL_PLANE_*``).
    placement: ControlPlanePlacement = field(default_factory=ControlPlanePlacement)
    #: Failed apiserver probes in a row before a tenant reads ``Ready=False`` (a process found
    #: gone counts at once): one slow answer under load must not make the syncer drop a tenant.
    health_failure_threshold: int = 2
    #: Seconds one probe of a tenant apiserver (``/readyz``) may take.
    health_probe_timeout: float = 3.0
    #: Tenant-wide quota of a Tenant without ``spec.isolation.resourceQuota`` (``VC_OPERATOR_DEFAULT_QUOTA``,
    #: ``pods=100,requests.cpu=16``; ``none``: no quota).  A Tenant's own ``resourceQuota`` replaces it
    #: (``hard: {}``: none for that tenant).
    default_quota: Mapping[str, str] = field(default_factory=lambda: DEFAULT_TENANT_QUOTA)
    #: LimitRange of a Tenant without ``spec.isolation.limitRange``: default container limits
    #: (``VC_OPERATOR_DEFAULT_LIMITS``, none by default) and requests (``VC_OPERATOR_DEFAULT_REQUESTS``).
    default_limits: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    default_requests: Mapping[str, str] = field(default_factory=lambda: DEFAULT_CONTAINER_REQUESTS)
    #: Where the pods backend's kube-apiserver and kube-controller-manager images come from when no
    #: ClusterVersion names them (``VC_OPERATOR_IMAGE_REPOSITORY``, kubeadm's ``imageRepository``):
    #: ``<repository>/kube-apiserver:<version>``; a registry mirror in an air-gapped cluster.
    image_repository: str = "registry.k8s.io"
    #: etcd's image then (``VC_OPERATOR_ETCD_IMAGE``); empty: ``<repository>/etcd:3.6.5-0``.
    etcd_image: str = ""
    #: Lifetimes of the certificates the operator issues and when it renews them (``VC_OPERATOR_CERT_*``,
    #: ``VC_OPERATOR_CA_*``; default: one year, renewed in its last third; CAs ten years).
    certificates: Lifetimes = field(default_factory=Lifetimes)
    #: The ``local`` backend's new tenants store in one shared etcd, each apiserver under its own prefix as
    #: its own etcd user confined to it (``VC_OPERATOR_SHARED_ETCD``, default off: an etcd per tenant;
    #: docs/architecture.md "Shared etcd").  Decided per tenant at its first provisioning and kept.
    shared_etcd: bool = False
    #: The ``local`` backend seeds a new tenant's own etcd with the objects every fresh apiserver of its
    #: configuration writes at start, kept from the first such tenant (``VC_OPERATOR_BOOTSTRAP_SEED``,
    #: default on: ~1 s less to Ready; :mod:`vcluster.controlplane.bootstrap_seed`).
    bootstrap_seed: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        state_home = env_path("XDG_STATE_HOME", Path.home() / ".local" / "state", env=env)
        return cls(
            kubeconfig=env_path("VC_OPERATOR_KUBECONFIG", None, env=env),
            state_dir=env_path("VC_OPERATOR_STATE_DIR", state_home / "virtualcluster" / "operator", env=env),
            start_timeout=env_float("VC_OPERATOR_START_TIMEOUT", 90.0, env=env),
            health_interval=env_float("VC_OPERATOR_HEALTH_INTERVAL", 5.0, positive=True, env=env),
            bootstrap_timeout=env_float("VC_OPERATOR_BOOTSTRAP_TIMEOUT", 90.0, env=env),
            install_crds=env_bool("VC_OPERATOR_INSTALL_CRDS", True, env=env),
            health_port=env_int("VC_OPERATOR_HEALTH_PORT", None, minimum=0, maximum=65535, env=env),
            health_host=env_str("VC_OPERATOR_HEALTH_HOST", "127.0.0.1", env=env),
            identity=env_str("VC_OPERATOR_IDENTITY", "", env=env),
            lease=LeaseTiming.from_env("VC_OPERATOR", env=env),
            logs=LogSettings.from_env(env=env),
            local_host=env_str("VC_OPERATOR_LOCAL_HOST", "127.0.0.1", env=env),
            dns=TenantDnsSettings.from_env(env=env),
            placement=ControlPlanePlacement.from_env(env=env),
            default_backend=_default_backend(env),
            health_failure_threshold=env_int("VC_OPERATOR_HEALTH_FAILURE_THRESHOLD", 2, minimum=1, env=env),
            health_probe_timeout=env_float("VC_OPERATOR_HEALTH_PROBE_TIMEOUT", 3.0, positive=True, env=env),
            default_quota=_quantities("VC_OPERATOR_DEFAULT_QUOTA", DEFAULT_TENANT_QUOTA, env),
            default_limits=_quantities("VC_OPERATOR_DEFAULT_LIMITS", MappingProxyType({}), env),
            default_requests=_quantities("VC_OPERATOR_DEFAULT_REQUESTS", DEFAULT_CONTAINER_REQUESTS, env),
            image_repository=_repository(env),
            etcd_image=env_str("VC_OPERATOR_ETCD_IMAGE", "", env=env),
            certificates=certificate_lifetimes(env),
            shared_etcd=env_bool("VC_OPERATOR_SHARED_ETCD", False, env=env),
            bootstrap_seed=env_bool("VC_OPERATOR_BOOTSTRAP_SEED", True, env=env),
        )
