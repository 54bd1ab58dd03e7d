"""The syncer's settings, one frozen dataclass with one ``from_env()``.

Why: the syncer is tuned per deployment (worker count, tenant weights, patrol
period, metrics port, leader election); one place documents every knob and its default, and
nothing else in the package reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from vcluster.settings import SettingsError, check_lease_timing

__all__ = ["SettingsError", "SyncerSettings", "parse_weights"]


_N = TypeVar("_N", int, float)


def _number(env: Mapping[str, str], name: str, default: _N, *, parse: Callable[[str], _N], noun: str,
            minimum: _N) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not {noun}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    return _number(env, name, default, parse=int, noun="an integer", minimum=minimum)


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    return _number(env, name, default, parse=float, noun="a number", minimum=minimum)


def parse_weights(raw: str) -> dict[str, int]:
    """``"key-a=3,key-b=1"`` → ``{"key-a": 3, "key-b": 1}``; a bad entry is a :class:`SettingsError`."""
    out: dict[str, int] = {}
    for raw_part in raw.split(","):
        part = raw_part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(f"VC_SYNCER_WEIGHTS entry {part!r}: expected <cluster-key>=<positive integer>")
        out[key.strip()] = int(value)
    return out


@dataclass(frozen=True, slots=True)
class SyncerSettings:
    """Every knob of the syncer, with its default."""

    #: Concurrent reconcile workers (one asyncio task each).
    workers: int = 32
    #: Relative share of the queue per tenant (by cluster key); tenants not listed get ``default_weight``.
    weights: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    default_weight: int = 1
    #: Seconds between two patrols (full diffs); 0 turns the patrol off.
    patrol_period: float = 60.0
    #: Port of the Prometheus endpoint; 0 turns it off.
    metrics_port: int = 0
    #: Per-key back-off after a failed reconcile: first delay and cap, in seconds.
    backoff_base: float = 0.005
    backoff_max: float = 30.0
    #: Seconds a watch request stays open before the informer renews it.
    watch_timeout: int = 300
    #: Connections per apiserver (keep-alive pool).
    max_connections: int = 64
    #: Validity asked of the tenant's TokenRequest API for pod tokens.
    token_expiration: int = 86400 * 365
    #: Run leader election (a Lease in vc-system) so two replicas can run.
    leader_election: bool = False
    #: Identity written into the Lease; defaults to hostname and pid.
    identity: str = ""
    #: Seconds a Lease stays valid without renewal (followers take over after that).
    lease_duration: float = 15.0
    #: The leader stops its work when it could not renew for this long (< ``lease_duration``).
    lease_renew_deadline: float = 10.0
    #: Seconds between two renewals (leader) or acquisition attempts (followers).
    lease_retry_period: float = 2.0
    log_level: str = "INFO"
    log_json: bool = False

    def weight(self, cluster_key: str) -> int:
        return self.weights.get(cluster_key, self.default_weight)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SyncerSettings:
        env = os.environ if env is None else env
        duration = _float(env, "VC_SYNCER_LEASE_DURATION", 15.0, minimum=1.0)
        renew_deadline = _float(env, "VC_SYNCER_LEASE_RENEW_DEADLINE", duration * 2 / 3, minimum=0.5)
        retry_period = _float(env, "VC_SYNCER_LEASE_RETRY_PERIOD", min(2.0, renew_deadline / 4), minimum=0.1)
        check_lease_timing("VC_SYNCER", duration=duration, renew_deadline=renew_deadline, retry_period=retry_period)
        return cls(
            workers=_int(env, "VC_SYNCER_WORKERS", 32, minimum=1),
            weights=MappingProxyType(parse_weights(env.get("VC_SYNCER_WEIGHTS", ""))),
            default_weight=_int(env, "VC_SYNCER_DEFAULT_WEIGHT", 1, minimum=1),
            patrol_period=_float(env, "VC_SYNCER_PATROL_PERIOD", 60.0),
            metrics_port=_int(env, "VC_SYNCER_METRICS_PORT", 0),
            backoff_base=_float(env, "VC_SYNCER_BACKOFF_BASE", 0.005, minimum=0.001),
            backoff_max=_float(env, "VC_SYNCER_BACKOFF_MAX", 30.0, minimum=0.01),
            watch_timeout=_int(env, "VC_SYNCER_WATCH_TIMEOUT", 300, minimum=1),
            max_connections=_int(env, "VC_SYNCER_MAX_CONNECTIONS", 64, minimum=1),
            token_expiration=_int(env, "VC_SYNCER_TOKEN_EXPIRATION", 86400 * 365, minimum=600),
            leader_election=env.get("VC_SYNCER_LEADER_ELECTION", "").lower() in ("1", "true", "yes"),
            identity=env.get("VC_SYNCER_IDENTITY", ""),
            lease_duration=duration,
            lease_renew_deadline=renew_deadline,
            lease_retry_period=retry_period,
            log_level=env.get("VC_LOG_LEVEL", "INFO"),
            log_json=env.get("VC_LOG_JSON", "").lower() in ("1", "true", "yes"),
        )
