"""One quota for a whole tenant, across all of its super namespaces: the accounting.

Why this module exists: Kubernetes' ResourceQuota is per namespace, and a
tenant makes as many namespaces as it likes (it is cluster-admin of its own
apiserver), so a quota per super namespace multiplies with every namespace
it creates.  There is no cross-namespace quota object in Kubernetes, but the
syncer is the only writer of a tenant's super objects: it can gate every
*create*, and every update that grows an object, on the tenant's aggregate usage.  This module is that gate's pure
part, shared by the syncer (which admits) and the operator (which documents
the effective quota in the Tenant status):

* :func:`object_usage` — what one object counts for, with Kubernetes' quota
  semantics (pods: non-terminal ones; effective requests/limits =
  max(sum of containers, largest init container) + overhead, after the
  tenant's LimitRange defaults; Services: node ports, load balancers; PVCs:
  requested storage; every kind: ``count/<resource>``);
* :class:`Ledger` — one tenant's usage: what the super caches show, plus
  *reservations* for creates in flight (admitted, not yet seen in the cache),
  so two workers creating at once cannot overshoot; :meth:`Ledger.admit`
  says why a new object does not fit (empty: it fits, and is reserved).

Quota names the ledger does not compute (per storage class, hugepages,
extended resources) are left to the per-namespace ResourceQuota backstop the
policy also writes (``vcluster.policy.policy_objects``), which equals the
whole tenant quota: one namespace can never use more than the tenant may.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from tenant_crd.models import LimitRangeSpec, SpecError, parse_quantity

Usage = dict[str, Decimal]
#: A super object: (kind, namespace, name).
Ref = tuple[str, str, str]

#: Quota names with the same meaning (``cpu`` is ``requests.cpu`` for ResourceQuota).
_ALIASES = {"cpu": "requests.cpu", "memory": "requests.memory", "ephemeral-storage": "requests.ephemeral-storage"}
#: The old, group-less count names of core kinds.
_LEGACY_COUNTS = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                  "persistentvolumeclaims": "persistentvolumeclaims",
                  "replicationcontrollers": "replicationcontrollers", "resourcequotas": "resourcequotas"}
#: Where a tenant's quota comes from, as a refusal names it (the policy field that refused).
SOURCE_TENANT = "Tenant spec.isolation.resourceQuota"
SOURCE_DEFAULT = ("the operator's default quota VC_OPERATOR_DEFAULT_QUOTA; "
                  "Tenant spec.isolation.resourceQuota overrides it")
_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_TERMINAL = frozenset({"Succeeded", "Failed"})


def canonical(name: str) -> str:
    """A quota name in the one spelling the ledger uses (``cpu`` → ``requests.cpu``)."""
    return _ALIASES.get(name, name)


def parse_hard(hard: Mapping[str, Any]) -> Usage:
    """A quota's ``hard`` map as numbers, names canonical; a bad quantity is a :class:`SpecError`."""
    out: Usage = {}
    for name, value in hard.items():
        limit = parse_quantity(str(value))
        key = canonical(name)
        out[key] = min(limit, out[key]) if key in out else limit  # ``cpu`` and ``requests.cpu``: both hold
    return out


@dataclass(frozen=True, slots=True)
class TenantQuota:
    """The quota in force for one tenant, as the syncer enforces it."""

    #: Canonical quota names → limits (:func:`parse_hard`).
    hard: Mapping[str, Decimal]
    #: The LimitRange defaults its super namespaces apply to containers without requests/limits.
    limit_range: LimitRangeSpec | None = None
    #: Where the quota comes from, for refusal messages (the policy field that refused).
    source: str = SOURCE_TENANT
    #: The quota's names as the Tenant spells them (``status.quota.used`` uses the same).
    names: tuple[str, ...] = ()


def _quantity(raw: Any) -> Decimal:
    return _quantity_of(str(raw))


@functools.lru_cache(maxsize=1024)
def _quantity_of(text: str) -> Decimal:
    """:func:`parse_quantity` memoised (a Decimal is immutable): the syncer counts every super pod event
    and every create, and a tenant's pods spell the same few quantities (round 10 of the syncer
    benchmarks: the regex and the Decimal were ~2 % of the syncer's CPU in a burst)."""
    try:
        return parse_quantity(text)
    except SpecError:
        return Decimal(0)  # the apiserver refuses such an object anyway


def _container_resources(
    container: Mapping[str, Any], limit_range: LimitRangeSpec | None
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(requests, limits) of one container as admitted: API defaulting (requests default to limits),
    then the LimitRange (missing limit → ``defaults``; missing request → ``defaultRequests``, else
    ``defaults``, as the LimitRange's own defaulting does)."""
    res = container.get("resources") or {}
    requests = dict(res.get("requests") or {})
    limits = dict(res.get("limits") or {})
    defaults = dict(limit_range.defaults) if limit_range is not None else {}
    default_requests = dict(limit_range.default_requests) if limit_range is not None else {}
    out_req: dict[str, Decimal] = {}
    out_lim: dict[str, Decimal] = {}
    for name in _COMPUTE:
        limit = limits.get(name, defaults.get(name))
        request = requests.get(name, limits.get(name, default_requests.get(name, defaults.get(name))))
        if limit is not None:
            out_lim[name] = _quantity(limit)
        if request is not None:
            out_req[name] = _quantity(request)
    return out_req, out_lim


def pod_usage(pod: Mapping[str, Any], limit_range: LimitRangeSpec | None = None) -> Usage:
    """What a pod counts for: nothing once it has terminated, else one pod and its effective
    requests/limits (Kubernetes: max(sum of app containers, largest init container) + overhead)."""
    if ((pod.get("status") or {}).get("phase")) in _TERMINAL:
        return {}
    spec = pod.get("spec") or {}
    sums: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        req, lim = _container_resources(c, limit_range)
        for prefix, values in (("requests", req), ("limits", lim)):
            for name, value in values.items():
                sums[f"{prefix}.{name}"] = sums.get(f"{prefix}.{name}", Decimal(0)) + value
    for c in spec.get("initContainers") or []:
        req, lim = _container_resources(c, limit_range)
        for prefix, values in (("requests", req), ("limits", lim)):
            for name, value in values.items():
                key = f"{prefix}.{name}"
                sums[key] = max(sums.get(key, Decimal(0)), value)
    for name, raw in (spec.get("overhead") or {}).items():
        for prefix in ("requests", "limits"):
            key = f"{prefix}.{name}"
            if key in sums:
                sums[key] += _quantity(raw)
    out: Usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    out.update({k: v for k, v in sums.items() if v})
    return out


def object_usage(group: str, plural: str, obj: Mapping[str, Any],
                 limit_range: LimitRangeSpec | None = None) -> Usage:
    """What one object of resource ``plural``.``group`` counts for in a tenant's quota."""
    if plural == "pods" and not group:
        return pod_usage(obj, limit_range)
    count = f"count/{plural}" if not group else f"count/{plural}.{group}"
    out: Usage = {count: Decimal(1)}
    if not group and plural in _LEGACY_COUNTS:
        out[_LEGACY_COUNTS[plural]] = Decimal(1)
    spec = obj.get("spec") or {}
    if plural == "services" and not group:
        kind = spec.get("type")
        if kind in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = Decimal(len(spec.get("ports") or []))
        if kind == "LoadBalancer":
            out["services.loadbalancers"] = Decimal(1)
    elif plural == "persistentvolumeclaims" and not group:
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if storage is not None:
            out["requests.storage"] = _quantity(storage)
    return {k: v for k, v in out.items() if v}


def dump(usage: Mapping[str, Decimal]) -> dict[str, str]:
    """Usage as a map of quantity strings (for caches and the Tenant status), sorted."""
    return {k: format_quantity(v) for k, v in sorted(usage.items())}


def load(raw: Mapping[str, Any] | None) -> Usage:
    """:func:`dump`'s output back as numbers."""
    return {k: _quantity(v) for k, v in (raw or {}).items()}


def format_quantity(value: Decimal) -> str:
    """A number as a Kubernetes quantity: integral values plain, others in milli-units (``1500m``),
    rounded up (usage is never shown below what it is)."""
    if value == value.to_integral_value():
        return str(int(value))
    milli = (value * 1000).to_integral_value(rounding=ROUND_CEILING)
    return f"{int(milli)}m"


def add(into: Usage, usage: Mapping[str, Decimal], sign: int = 1) -> None:
    for k, v in usage.items():
        into[k] = into.get(k, Decimal(0)) + sign * v


@dataclass(slots=True)
class Ledger:
    """One tenant's usage: observed super objects plus reservations of creates in flight."""

    observed: dict[Ref, Usage] = field(default_factory=dict)
    reserved: dict[Ref, Usage] = field(default_factory=dict)
    #: The running sum of ``observed`` and ``reserved`` (kept incrementally: admit is on the hot path).
    _total: Usage = field(default_factory=dict)

    def total(self) -> Usage:
        return {k: v for k, v in self._total.items() if v}

    def observe(self, ref: Ref, usage: Usage | None) -> bool:
        """The super cache shows ``ref`` with ``usage`` (None: gone); its reservation ends.

        True when the tenant's total went down (something waiting may fit now).
        """
        if usage and ref not in self.reserved and self.observed.get(ref) == usage:
            return False  # the object's next event, counting for what it counted for (most pod events)
        before = dict(self._total)
        old = self.observed.pop(ref, None)
        if old is not None:
            add(self._total, old, -1)
        held = self.reserved.pop(ref, None)
        if held is not None:
            add(self._total, held, -1)
        if usage:
            self.observed[ref] = usage
            add(self._total, usage)
        return any(self._total[k] < v for k, v in before.items())  # (a name once counted stays, at 0)

    def release(self, ref: Ref) -> None:
        """A create that was admitted did not happen: its reservation ends."""
        held = self.reserved.pop(ref, None)
        if held is not None:
            add(self._total, held, -1)

    def admit(self, ref: Ref, usage: Usage, hard: Mapping[str, Decimal], *, where: str) -> list[str]:
        """Why ``usage`` does not fit under ``hard`` next to everything else; empty: it fits and is
        reserved for ``ref`` until the cache shows it (:meth:`observe`) or the create fails
        (:meth:`release`).  An object already counted is admitted as it is (a retry)."""
        if ref in self.observed:
            return []
        total = dict(self._total)
        held = self.reserved.get(ref)
        if held is not None:
            add(total, held, -1)
        out = _over(usage, total, hard, where=where, what="this object needs")
        if not out:
            self.release(ref)
            self.reserved[ref] = usage
            add(self._total, usage)
        return out

    def admit_growth(self, ref: Ref, usage: Usage, hard: Mapping[str, Decimal], *, where: str) -> list[str]:
        """Why an update of ``ref`` to ``usage`` does not fit (only what it adds counts: a bigger claim,
        a Service that becomes a NodePort); empty: it fits, and what it adds is reserved until the
        cache shows the updated object (:meth:`observe`) or the update fails (:meth:`release`)."""
        have: Usage = dict(self.observed.get(ref) or {})
        add(have, self.reserved.get(ref) or {})
        growth = {k: v - have.get(k, Decimal(0)) for k, v in usage.items() if v > have.get(k, Decimal(0))}
        if not growth:
            return []
        out = _over(growth, self._total, hard, where=where, what="this change adds")
        if not out:
            add(self.reserved.setdefault(ref, {}), growth)
            add(self._total, growth)
        return out


def _over(usage: Mapping[str, Decimal], total: Mapping[str, Decimal], hard: Mapping[str, Decimal], *,
          where: str, what: str) -> list[str]:
    """Why ``usage`` on top of ``total`` exceeds ``hard``, one line per quota name."""
    out = []
    for name, limit in sorted(hard.items()):
        want = usage.get(name, Decimal(0))
        if want <= 0:
            continue
        used = total.get(name, Decimal(0))
        if used + want > limit:
            out.append(f"{name}: {what} {format_quantity(want)}, the tenant uses {format_quantity(used)} of "
                       f"{format_quantity(limit)} across all its namespaces ({where})")
    return out


def status_used(ledger: Ledger | None, hard: Iterable[str]) -> dict[str, str]:
    """``status.quota.used``: the tenant's usage of each name its quota limits (zero included)."""
    total = ledger.total() if ledger is not None else {}
    return {name: format_quantity(total.get(canonical(name), Decimal(0))) for name in sorted(hard)}
