"""Settings of the foundation and the operator, as frozen dataclasses.

Why: one place says what can be configured, with documented defaults; each
group has one ``from_env()`` and nothing else in the project reads the
environment for these values.  The syncer and the virtual-node packages keep
their own groups in their own ``settings`` modules, built the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vcluster.errors import VClusterError

DEFAULT_KUBE_VERSION = "v1.36.3"
DEFAULT_KWOK_VERSION = "v0.8.0"
#: etcd built from go.etcd.io modules: 3.6 serves the watch progress requests kube-apiserver 1.36's
#: watch-list streams need (Debian's 3.4.23 does not, and kwok's informers then relist over and over).
DEFAULT_ETCD_VERSION = "v3.6.16"


_D = TypeVar("_D", int, float, None)


class SettingsError(VClusterError):
    """An environment variable holds a value we cannot use."""


def env_int(name: str, default: _D, *, minimum: int | None = None, maximum: int | None = None) -> int | _D:
    """The integer in ``$name`` (``default`` when unset or empty); a bad value is a :class:`SettingsError`.

    Every settings group's ``from_env()`` reads numbers through this and :func:`env_float`,
    so a typo in a Deployment ends as one line naming the variable, not a ``ValueError``.
    """
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" >= {minimum}"
        high = "" if maximum is None else f" <= {maximum}"
        raise SettingsError(f"{name} must be{low}{' and' if low and high else ''}{high}, got {raw!r}")
    return value


def env_float(name: str, default: _D, *, positive: bool = False) -> float | _D:
    """The number in ``$name`` (``default`` when unset or empty); a bad value is a :class:`SettingsError`."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if positive and not value > 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def check_lease_timing(prefix: str, *, duration: float, renew_deadline: float, retry_period: float) -> None:
    """Refuse a Lease timing its holder cannot keep (``retry_period < renew_deadline < duration``).

    Shared by the syncer's and the operator's ``from_env()``; the errors name
    ``{prefix}_LEASE_RENEW_DEADLINE`` / ``{prefix}_LEASE_RETRY_PERIOD``.
    """
    if renew_deadline >= duration:
        raise SettingsError(
            f"{prefix}_LEASE_RENEW_DEADLINE={renew_deadline:g} must be less than the lease duration {duration:g}"
        )
    if retry_period >= renew_deadline:
        raise SettingsError(
            f"{prefix}_LEASE_RETRY_PERIOD={retry_period:g} must be less than the renew deadline {renew_deadline:g}"
        )


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


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

    @classmethod
    def from_env(cls) -> BinarySettings:
        etcd = os.environ.get("VC_ETCD")
        return cls(
            kube_version=os.environ.get("VC_KUBE_VERSION", DEFAULT_KUBE_VERSION),
            kwok_version=os.environ.get("VC_KWOK_VERSION", DEFAULT_KWOK_VERSION),
            etcd_version=os.environ.get("VC_ETCD_VERSION", DEFAULT_ETCD_VERSION),
            cache_dir=Path(os.environ.get("VC_CACHE_DIR") or _cache_home() / "virtualcluster" / "bin"),
            etcd_path=Path(etcd) if etcd else None,
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
