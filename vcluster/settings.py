"""Settings of the foundation and the operator, as frozen dataclasses.

Why: one place says what can be configured, with documented defaults; each
group has one ``from_env()`` and nothing else in the project reads the
environment for these values.  The syncer and the virtual-node packages keep
their own groups in their own ``settings`` modules, built the same way.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from vcluster.errors import VClusterError

DEFAULT_KUBE_VERSION = "v1.36.3"
DEFAULT_KWOK_VERSION = "v0.8.0"


class KubeRelease(NamedTuple):
    """A Kubernetes version as its parts: ``v1.36.3`` is (1, 36, "3"); the patch keeps a pre-release
    suffix (``v1.36.0-rc.1``: "0-rc.1") and is empty when the version names none (``v1.36``)."""

    major: int
    minor: int
    patch: str


_KUBE_RELEASE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+(?:[-+][0-9A-Za-z.+-]*)?))?")


def kube_release(version: str) -> KubeRelease | None:
    """The parts of a Kubernetes version (``v1.36.3`` or ``1.36.3``); None when it is not one.  The one
    parser of version strings: the binary builder and the control-plane builder both read it."""
    found = _KUBE_RELEASE.fullmatch(version.strip())
    if found is None:
        return None
    return KubeRelease(int(found[1]), int(found[2]), found[3] or "")
#: etcd built from go.etcd.io modules: 3.6 serves the watch progress requests kube-apiserver 1.36's
#: watch-list streams need (Debian's 3.4.23 does not, and kwok's informers then relist over and over).
DEFAULT_ETCD_VERSION = "v3.6.16"
#: CoreDNS (the super cluster's DNS and the tenants' DNS), built from github.com/coredns/coredns.
DEFAULT_COREDNS_VERSION = "v1.14.7"
#: rancher/local-path-provisioner: the test bed's volume provisioner (a default StorageClass on real nodes).
DEFAULT_LOCAL_PATH_VERSION = "v0.0.30"
#: kube-router, run with only its network policy controller: what enforces NetworkPolicy on the test
#: bed's real nodes (the only version the module proxy here serves; see docs/testbed.md on its flaws).
DEFAULT_KUBE_ROUTER_VERSION = "v2.1.0"


_D = TypeVar("_D", int, float, None)
_P = TypeVar("_P", Path, None)
Env = Mapping[str, str]

#: How every process spells a boolean (case-insensitive): ``VC_LOG_JSON=TRUE`` means the same everywhere.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class SettingsError(VClusterError):
    """An environment variable holds a value we cannot use."""


def _raw(name: str, env: Env | None) -> str | None:
    raw = (os.environ if env is None else env).get(name)
    return raw if raw else None  # unset and empty alike mean "the default"


def env_int(name: str, default: _D, *, minimum: int | None = None, maximum: int | None = None,
            env: Env | None = None) -> int | _D:
    """The integer in ``$name`` (``default`` when unset or empty); a bad value is a :class:`SettingsError`.

    Every settings group's ``from_env()`` reads the environment through the ``env_*`` readers of this
    module (``env`` instead of ``os.environ`` in tests), so a typo in a Deployment ends as one line
    naming the variable, worded the same whichever process reads it.
    """
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    _check_range(name, raw, value, minimum, maximum)
    return value


def env_float(name: str, default: _D, *, positive: bool = False, minimum: float | None = None,
              env: Env | None = None) -> float | _D:
    """The number in ``$name`` (``default`` when unset or empty); a bad value is a :class:`SettingsError`."""
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if positive and not value > 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    _check_range(name, raw, value, minimum, None)
    return value


def _check_range(name: str, raw: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" >= {minimum:g}"
        high = "" if maximum is None else f" <= {maximum:g}"
        raise SettingsError(f"{name} must be{low}{' and' if low and high else ''}{high}, got {raw!r}")


def env_bool(name: str, default: bool, *, env: Env | None = None) -> bool:
    """``$name`` as a boolean (:data:`TRUE_WORDS` / :data:`FALSE_WORDS`, any case); else a :class:`SettingsError`."""
    raw = _raw(name, env)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be one of {'/'.join(sorted(TRUE_WORDS | FALSE_WORDS))}, got {raw!r}")


#: Units :func:`env_duration` accepts (a bare number is seconds).
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def env_duration(name: str, default: _dt.timedelta, *, minimum: _dt.timedelta | None = None,
                 env: Env | None = None) -> _dt.timedelta:
    """``$name`` as a duration: a number with one unit of :data:`DURATION_UNITS` (``120s``, ``90m``, ``1y``)
    or a bare number of seconds (``default`` when unset or empty); anything else is a :class:`SettingsError`."""
    raw = _raw(name, env)
    if raw is None:
        return default
    text = raw.strip().lower()
    unit = DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit is not None else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise SettingsError(f"{name} must be a duration like 120s, 90m, 24h, 30d or 1y; got {raw!r}") from None
    if not 0 < seconds < 1000 * DURATION_UNITS["y"]:  # also refuses nan and inf
        raise SettingsError(f"{name} must be a positive duration, got {raw!r}")
    value = _dt.timedelta(seconds=seconds)
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum.total_seconds():g}s, got {raw!r}")
    return value


def env_str(name: str, default: str, *, env: Env | None = None) -> str:
    """``$name`` (``default`` when unset or empty)."""
    raw = _raw(name, env)
    return default if raw is None else raw


def env_path(name: str, default: _P, *, env: Env | None = None) -> Path | _P:
    """``$name`` as a path, ``~`` expanded (``default`` when unset or empty)."""
    raw = _raw(name, env)
    return default if raw is None else Path(raw).expanduser()


def env_list(name: str, *, env: Env | None = None) -> tuple[str, ...]:
    """``$name`` as a comma-separated list (blanks dropped; empty when unset)."""
    return tuple(part.strip() for part in (_raw(name, env) or "").split(",") if part.strip())


def env_pairs(name: str, *, env: Env | None = None, value: str = "a value") -> dict[str, str]:
    """``$name`` as ``key=value`` pairs separated by commas; an entry without ``=``, key or value is a
    :class:`SettingsError` (``value`` names what the value should be, for the message)."""
    out: dict[str, str] = {}
    for part in env_list(name, env=env):
        key, sep, val = part.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise SettingsError(f"{name} entry {part!r}: expected <key>=<{value}>")
        out[key.strip()] = val.strip()
    return out


def check_lease_timing(prefix: str, *, duration: float, renew_deadline: float, retry_period: float) -> None:
    """Refuse a Lease timing its holder cannot keep (``retry_period < renew_deadline < duration``).

    The errors name ``{prefix}_LEASE_RENEW_DEADLINE`` / ``{prefix}_LEASE_RETRY_PERIOD``.
    """
    if renew_deadline >= duration:
        raise SettingsError(
            f"{prefix}_LEASE_RENEW_DEADLINE={renew_deadline:g} must be less than the lease duration {duration:g}"
        )
    if retry_period >= renew_deadline:
        raise SettingsError(
            f"{prefix}_LEASE_RETRY_PERIOD={retry_period:g} must be less than the renew deadline {renew_deadline:g}"
        )


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Leader-election timing, the same group for the syncer (``VC_SYNCER_``) and the operator (``VC_OPERATOR_``)."""

    #: Seconds a Lease stays valid without renewal (a standby takes over after that).
    duration: float = 15.0
    #: The leader stops when it could not renew for this long (< ``duration``); default 2/3 of it.
    renew_deadline: float = 10.0
    #: Seconds between renewals (leader) and attempts (standby) (< ``renew_deadline``); default
    #: min(2 s, deadline/4).
    retry_period: float = 2.0

    @classmethod
    def from_env(cls, prefix: str, *, env: Env | None = None) -> LeaseTiming:
        """``{prefix}_LEASE_DURATION``, ``_LEASE_RENEW_DEADLINE``, ``_LEASE_RETRY_PERIOD``, checked together."""
        duration = env_float(f"{prefix}_LEASE_DURATION", 15.0, positive=True, env=env)
        renew_deadline = env_float(f"{prefix}_LEASE_RENEW_DEADLINE", duration * 2 / 3, positive=True, env=env)
        retry_period = env_float(f"{prefix}_LEASE_RETRY_PERIOD", min(2.0, renew_deadline / 4), positive=True,
                                 env=env)
        check_lease_timing(prefix, duration=duration, renew_deadline=renew_deadline, retry_period=retry_period)
        return cls(duration=duration, renew_deadline=renew_deadline, retry_period=retry_period)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Logging of every process: ``VC_LOG_LEVEL`` (default INFO) and ``VC_LOG_JSON`` (a boolean)."""

    level: str = "INFO"
    json: bool = False

    @classmethod
    def from_env(cls, *, env: Env | None = None) -> LogSettings:
        return cls(level=env_str("VC_LOG_LEVEL", "INFO", env=env), json=env_bool("VC_LOG_JSON", False, env=env))


def _cache_home(env: Env | None = None) -> Path:
    return env_path("XDG_CACHE_HOME", Path.home() / ".cache", env=env)


@dataclass(frozen=True, slots=True)
class BinarySettings:
    """Which upstream binaries to build and where to cache them."""

    #: Kubernetes version of kube-apiserver, kube-controller-manager, kube-scheduler.
    kube_version: str = DEFAULT_KUBE_VERSION
    #: kwok version (simulated nodes).
    kwok_version: str = DEFAULT_KWOK_VERSION
    #: Cache folder outside the repository; one sub-folder per component version.
    cache_dir: Path = Path("/nonexistent")
    #: etcd version built from the go.etcd.io modules.
    etcd_version: str = DEFAULT_ETCD_VERSION
    #: An explicit etcd binary instead of the built one (``VC_ETCD``).
    etcd_path: Path | None = None
    #: CoreDNS version built from its Go module (plugins: :data:`vcluster.binaries.COREDNS_PLUGINS`).
    coredns_version: str = DEFAULT_COREDNS_VERSION
    #: rancher/local-path-provisioner version built from its Go module (the test bed's storage).
    local_path_version: str = DEFAULT_LOCAL_PATH_VERSION
    #: kube-router version built from its Go module (NetworkPolicy enforcement on real nodes).
    kube_router_version: str = DEFAULT_KUBE_ROUTER_VERSION

    @classmethod
    def from_env(cls, *, env: Env | None = None) -> BinarySettings:
        return cls(
            kube_version=env_str("VC_KUBE_VERSION", DEFAULT_KUBE_VERSION, env=env),
            kwok_version=env_str("VC_KWOK_VERSION", DEFAULT_KWOK_VERSION, env=env),
            etcd_version=env_str("VC_ETCD_VERSION", DEFAULT_ETCD_VERSION, env=env),
            cache_dir=env_path("VC_CACHE_DIR", _cache_home(env) / "virtualcluster" / "bin", env=env),
            etcd_path=env_path("VC_ETCD", None, env=env),
            coredns_version=env_str("VC_COREDNS_VERSION", DEFAULT_COREDNS_VERSION, env=env),
            local_path_version=env_str("VC_LOCAL_PATH_VERSION", DEFAULT_LOCAL_PATH_VERSION, env=env),
            kube_router_version=env_str("VC_KUBE_ROUTER_VERSION", DEFAULT_KUBE_ROUTER_VERSION, env=env),
        )


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """How the embedded default's supervisor restarts an exited component (``VC_SUPERVISOR_*``).

    Like a kubelet's restart policy ``Always``, with shorter delays (a laptop, not a fleet):
    the delay doubles per exit from ``backoff_initial`` up to ``backoff_max`` and starts over
    once a component has run ``backoff_reset`` seconds.
    """

    #: Seconds before the first restart (``VC_SUPERVISOR_BACKOFF_INITIAL``).
    backoff_initial: float = 1.0
    #: Longest delay between restarts (``VC_SUPERVISOR_BACKOFF_MAX``).
    backoff_max: float = 60.0
    #: Seconds of running after which the delay starts over (``VC_SUPERVISOR_BACKOFF_RESET``).
    backoff_reset: float = 120.0
    #: Seconds between looks at the components (``VC_SUPERVISOR_POLL_INTERVAL``).
    poll_interval: float = 1.0
    #: Seconds a component gets between SIGTERM and SIGKILL when the supervisor stops (``VC_SUPERVISOR_GRACE``).
    grace: float = 10.0

    @classmethod
    def from_env(cls) -> SupervisorSettings:
        out = cls(
            backoff_initial=env_float("VC_SUPERVISOR_BACKOFF_INITIAL", 1.0, positive=True),
            backoff_max=env_float("VC_SUPERVISOR_BACKOFF_MAX", 60.0, positive=True),
            backoff_reset=env_float("VC_SUPERVISOR_BACKOFF_RESET", 120.0, positive=True),
            poll_interval=env_float("VC_SUPERVISOR_POLL_INTERVAL", 1.0, positive=True),
            grace=env_float("VC_SUPERVISOR_GRACE", 10.0, positive=True),
        )
        if out.backoff_max < out.backoff_initial:
            raise SettingsError(f"VC_SUPERVISOR_BACKOFF_MAX={out.backoff_max:g} must be at least "
                                f"VC_SUPERVISOR_BACKOFF_INITIAL={out.backoff_initial:g}")
        return out
