"""The syncer's settings, one frozen dataclass with one ``from_env()``.

Why: the syncer is tuned per deployment (worker count, tenant weights, patrol
period, metrics port, leader election); one place documents every knob and its default, and
nothing else in the package reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vcluster.settings import LeaseTiming, LogSettings, SettingsError, env_bool, env_float, env_int, env_pairs, env_str

__all__ = ["SettingsError", "SyncerSettings", "parse_weights"]


def parse_weights(raw: str) -> dict[str, int]:
    """``"key-a=3,key-b=1"`` → ``{"key-a": 3, "key-b": 1}``; a bad entry is a :class:`SettingsError`."""
    pairs = env_pairs("VC_SYNCER_WEIGHTS", env={"VC_SYNCER_WEIGHTS": raw}, value="positive integer")
    out: dict[str, int] = {}
    for key, value in pairs.items():
        if not value.isdigit() or int(value) < 1:
            raise SettingsError(f"VC_SYNCER_WEIGHTS entry {key}={value!r}: expected <cluster-key>=<positive integer>")
        out[key] = int(value)
    return out


def _fraction(name: str, default: float, env: Mapping[str, str] | None) -> float:
    value = env_float(name, default, positive=True, env=env)
    if value >= 1:
        raise SettingsError(f"{name}={value:g}: must be a fraction of the token's validity, above 0 and below 1")
    return value


@dataclass(frozen=True, slots=True)
class SyncerSettings:
    """Every knob of the syncer, with its default."""

    #: Concurrent reconcile workers (one asyncio task each).
    workers: int = 32
    #: Keys of one tenant processed at once, at most (0: ``workers`` minus an eighth of them, at least
    #: one worker left to the others): a tenant whose apiserver hangs cannot hold every worker.
    tenant_in_flight: int = 0
    #: Relative share of the queue per tenant (by cluster key); tenants not listed get ``default_weight``.
    weights: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    default_weight: int = 1
    #: Upward keys (status, bindings, Events into a tenant) a tenant's turn of the queue takes before each
    #: waiting downward key (creates and updates into the super cluster); 0: one FIFO per tenant.
    up_share: int = 4
    #: Live keys the queue takes per re-check key while both wait (re-checks: every object already synced,
    #: queued once more after a start or a changed translation context); 0: re-checks are live keys.
    resync_share: int = 16
    #: Seconds between two patrols (full diffs); 0 turns the patrol off.
    patrol_period: float = 60.0
    #: Seconds between two writes of each served Tenant's ``Synced`` condition (only when it changed);
    #: 0 turns them off.
    status_period: float = 10.0
    #: Port of the Prometheus endpoint; 0 turns it off.
    metrics_port: int = 0
    #: Per-key back-off after a failed reconcile: first delay and cap, in seconds.
    backoff_base: float = 0.005
    backoff_max: float = 30.0
    #: Seconds a watch request stays open before the informer renews it.
    watch_timeout: int = 300
    #: Connections per apiserver (keep-alive pool).
    max_connections: int = 64
    #: Validity asked of the tenant's TokenRequest API for pod tokens (seconds; at least 600, the API's minimum).
    token_expiration: int = 3600
    #: A pod token is renewed once this fraction of its validity has passed (the kubelet updates the
    #: mounted file within about a minute; clients re-read it).
    token_refresh_at: float = 0.5
    #: Seconds between two scans for token Secrets due for renewal.
    token_refresh_period: float = 30.0
    #: Seconds between two reads of each served tenant's kubeconfig Secret (an edited Secret is served
    #: again, an unusable one is told as ``Synced=False KubeconfigUnreadable``), and until a tenant whose
    #: Secret was unusable is looked at again; 0 turns the reads of served tenants off.
    secret_recheck: float = 10.0
    #: Seconds between two writes of each Tenant's ``status.quota.used`` (only when it changed); 0: never.
    quota_status_period: float = 5.0
    #: Run leader election (a Lease in vc-system) so two replicas can run.
    leader_election: bool = False
    #: Identity written into the Lease; defaults to hostname and pid.
    identity: str = ""
    #: Lease timing (``VC_SYNCER_LEASE_*``), the group the operator has too.
    lease: LeaseTiming = field(default_factory=LeaseTiming)
    #: ``VC_LOG_LEVEL`` / ``VC_LOG_JSON``, as for every process.
    logs: LogSettings = field(default_factory=LogSettings)

    def tenant_limit(self) -> int:
        """The cap of keys of one tenant in progress (``tenant_in_flight``, or its default)."""
        if self.tenant_in_flight > 0:
            return min(self.tenant_in_flight, self.workers)
        return max(1, self.workers - max(1, self.workers // 8))

    def weight(self, cluster_key: str) -> int:
        return self.weights.get(cluster_key, self.default_weight)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SyncerSettings:
        return cls(
            workers=env_int("VC_SYNCER_WORKERS", 32, minimum=1, env=env),
            tenant_in_flight=env_int("VC_SYNCER_TENANT_IN_FLIGHT", 0, minimum=0, env=env),
            weights=MappingProxyType(parse_weights(env_str("VC_SYNCER_WEIGHTS", "", env=env))),
            default_weight=env_int("VC_SYNCER_DEFAULT_WEIGHT", 1, minimum=1, env=env),
            up_share=env_int("VC_SYNCER_UP_SHARE", 4, minimum=0, env=env),
            resync_share=env_int("VC_SYNCER_RESYNC_SHARE", 16, minimum=0, env=env),
            patrol_period=env_float("VC_SYNCER_PATROL_PERIOD", 60.0, minimum=0.0, env=env),
            status_period=env_float("VC_SYNCER_STATUS_PERIOD", 10.0, minimum=0.0, env=env),
            metrics_port=env_int("VC_SYNCER_METRICS_PORT", 0, minimum=0, maximum=65535, env=env),
            backoff_base=env_float("VC_SYNCER_BACKOFF_BASE", 0.005, minimum=0.001, env=env),
            backoff_max=env_float("VC_SYNCER_BACKOFF_MAX", 30.0, minimum=0.01, env=env),
            watch_timeout=env_int("VC_SYNCER_WATCH_TIMEOUT", 300, minimum=1, env=env),
            max_connections=env_int("VC_SYNCER_MAX_CONNECTIONS", 64, minimum=1, env=env),
            token_expiration=env_int("VC_SYNCER_TOKEN_EXPIRATION", 3600, minimum=600, env=env),
            token_refresh_at=_fraction("VC_SYNCER_TOKEN_REFRESH_AT", 0.5, env),
            token_refresh_period=env_float("VC_SYNCER_TOKEN_REFRESH_PERIOD", 30.0, minimum=0.1, env=env),
            secret_recheck=env_float("VC_SYNCER_SECRET_RECHECK", 10.0, minimum=0.0, env=env),
            quota_status_period=env_float("VC_SYNCER_QUOTA_STATUS_PERIOD", 5.0, minimum=0.0, env=env),
            leader_election=env_bool("VC_SYNCER_LEADER_ELECTION", False, env=env),
            identity=env_str("VC_SYNCER_IDENTITY", "", env=env),
            lease=LeaseTiming.from_env("VC_SYNCER", env=env),
            logs=LogSettings.from_env(env=env),
        )
