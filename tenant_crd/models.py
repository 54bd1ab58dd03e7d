"""Frozen spec/status models of Tenant and ClusterVersion, with validation.

Why: the operator, the syncer and the CLI read the same fields; a typed model
built by ``from_dict`` gives them one reading with the schema's defaults, and
turns a malformed object (one that slipped past the apiserver, or a CLI
argument) into a :class:`SpecError` whose message names the field — never a
``KeyError`` deep in a handler.  :meth:`TenantSpec.problems` adds the semantic
checks a schema cannot express (conflicting policy).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tenant_crd import schema as s
from vcluster.errors import VClusterError


class SpecError(VClusterError):
    """A Tenant or ClusterVersion object that does not fit the schema."""


# ---- a small typed reader ----------------------------------------------------


class _At:
    """Reads typed values out of a dict, naming the path in every error."""

    __slots__ = ("data", "path")

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(f"{path}: must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}"

    def child(self, key: str) -> _At:
        return _At(self.data.get(key), self._p(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def opt_str(
        self, key: str, *, pattern: str | None = None, enum: tuple[str, ...] | None = None
    ) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SpecError(f"{self._p(key)}: must be a string, got {type(value).__name__}")
        if enum is not None and value not in enum:
            raise SpecError(f"{self._p(key)}: must be one of {', '.join(enum)}; got {value!r}")
        if pattern is not None and not re.match(pattern, value):
            raise SpecError(f"{self._p(key)}: {value!r} does not match {pattern}")
        return value

    def str_(self, key: str, *, default: str, enum: tuple[str, ...] | None = None) -> str:
        value = self.opt_str(key, enum=enum)
        return default if value is None else value

    def int_(self, key: str, *, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{self._p(key)}: must be an integer, got {value!r}")
        if not minimum <= value <= maximum:
            raise SpecError(f"{self._p(key)}: must be between {minimum} and {maximum}; got {value}")
        return value

    def bool_(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise SpecError(f"{self._p(key)}: must be true or false, got {value!r}")
        return value

    def str_list(self, key: str, *, pattern: str | None = None) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise SpecError(f"{self._p(key)}: must be a list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise SpecError(f"{self._p(key)}[{i}]: must be a non-empty string, got {item!r}")
            if pattern is not None and not re.match(pattern, item):
                raise SpecError(f"{self._p(key)}[{i}]: {item!r} does not match {pattern}")
        return tuple(dict.fromkeys(value))

    def str_map(self, key: str, *, key_pattern: str | None = None) -> dict[str, str]:
        value = self.data.get(key) or {}
        if not isinstance(value, Mapping):
            raise SpecError(f"{self._p(key)}: must be a map of strings")
        for k, v in value.items():
            if not isinstance(v, str):
                raise SpecError(f"{self._p(key)}.{k}: must be a string, got {v!r}")
            if key_pattern is not None and not re.match(key_pattern, k):
                raise SpecError(f"{self._p(key)}: key {k!r} does not match {key_pattern}")
        return dict(value)

    def quantity_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key) or {}
        if not isinstance(value, Mapping):
            raise SpecError(f"{self._p(key)}: must be a map of quantities")
        out: dict[str, str] = {}
        for k, v in value.items():
            text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            if not isinstance(text, str) or not re.match(s.QUANTITY_PATTERN, text):
                raise SpecError(f"{self._p(key)}.{k}: {v!r} is not a quantity (like 500m, 2, 1Gi)")
            out[k] = text
        return out


# ---- quantities ---------------------------------------------------------------

_SUFFIX: dict[str, Decimal | int] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity as a number (``500m`` → 0.5, ``1Gi`` → 1073741824)."""
    match = re.match(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[numkMGTPE])?$", text)
    if not match:
        raise SpecError(f"{text!r} is not a quantity")
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIX[suffix or ""]
    except InvalidOperation as exc:
        raise SpecError(f"{text!r} is not a quantity") from exc


# ---- Tenant spec ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExposeSpec:
    type: str = s.DEFAULT_EXPOSE_TYPE
    host: str | None = None


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """The etcd data volume of the pods backend."""

    size: str = s.DEFAULT_STORAGE_SIZE
    #: ``None``: the super cluster's default StorageClass.
    storage_class_name: str | None = None

    @classmethod
    def read(cls, at: _At) -> StorageSpec:
        size = at.data.get("size", s.DEFAULT_STORAGE_SIZE)
        if not isinstance(size, str) or not re.match(s.STORAGE_SIZE_PATTERN, size):
            raise SpecError(f"{at.path}.size: {size!r} is not a storage size (like 1Gi, 500M)")
        if parse_quantity(size) <= 0:
            raise SpecError(f"{at.path}.size: must be greater than zero; got {size!r}")
        return cls(size=size, storage_class_name=at.opt_str("storageClassName", pattern=s.NAME_PATTERN))


@dataclass(frozen=True, slots=True)
class ControlPlaneSpec:
    version: str | None = None
    cluster_version_ref: str | None = None
    #: ``None``: the operator's default (``OperatorSettings.default_backend``), kept once chosen.
    backend: str | None = None
    replicas: int = s.MIN_REPLICAS
    expose: ExposeSpec = field(default_factory=ExposeSpec)
    apiserver_args: Mapping[str, str] = field(default_factory=dict)
    controller_manager_args: Mapping[str, str] = field(default_factory=dict)
    etcd_args: Mapping[str, str] = field(default_factory=dict)
    storage: StorageSpec = field(default_factory=StorageSpec)

    @classmethod
    def read(cls, at: _At) -> ControlPlaneSpec:
        expose = at.child("expose")
        extra = at.child("extraArgs")
        out = cls(
            version=at.opt_str("version", pattern=s.VERSION_PATTERN),
            cluster_version_ref=at.opt_str("clusterVersionRef", pattern=s.NAME_PATTERN),
            backend=at.opt_str("backend", enum=s.BACKENDS),
            replicas=at.int_("replicas", default=s.MIN_REPLICAS, minimum=s.MIN_REPLICAS, maximum=s.MAX_REPLICAS),
            expose=ExposeSpec(
                type=expose.str_("type", default=s.DEFAULT_EXPOSE_TYPE, enum=s.EXPOSE_TYPES),
                host=expose.opt_str("host"),
            ),
            apiserver_args=extra.str_map("apiserver", key_pattern=s.FLAG_PATTERN),
            controller_manager_args=extra.str_map("controllerManager", key_pattern=s.FLAG_PATTERN),
            etcd_args=extra.str_map("etcd", key_pattern=s.FLAG_PATTERN),
            storage=StorageSpec.read(at.child("storage")),
        )
        if out.version and out.cluster_version_ref:
            raise SpecError(f"{at.path}: set at most one of version and clusterVersionRef")
        if out.backend == "local" and out.replicas != 1:
            raise SpecError(f"{at.path}: the local backend runs exactly one replica")
        return out


@dataclass(frozen=True, slots=True)
class OwnersSpec:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operator": self.operator}
        if self.key is not None:
            out["key"] = self.key
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out

    @classmethod
    def read(cls, at: _At) -> Toleration:
        seconds = at.data.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0):
            raise SpecError(f"{at.path}.tolerationSeconds: must be a non-negative integer")
        out = cls(
            key=at.opt_str("key"),
            operator=at.str_("operator", default="Equal", enum=s.TOLERATION_OPERATORS),
            value=at.opt_str("value"),
            effect=at.opt_str("effect", enum=s.TAINT_EFFECTS),
            toleration_seconds=seconds,
        )
        if out.operator == "Exists" and out.value:
            raise SpecError(f"{at.path}: a toleration with operator Exists must not have a value")
        if out.key is None and out.operator != "Exists":
            raise SpecError(f"{at.path}: a toleration without key must use operator Exists")
        return out


@dataclass(frozen=True, slots=True)
class LimitRangeSpec:
    defaults: Mapping[str, str] = field(default_factory=dict)
    default_requests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExposureSpec:
    """What a tenant may expose beyond the super cluster's own network (``spec.isolation.exposure``)."""

    node_port: bool = False
    load_balancer: bool = False
    external_ips: bool = False
    external_name: bool = False
    #: Inclusive (min, max) container hostPort ranges.
    host_ports: tuple[tuple[int, int], ...] = ()

    @classmethod
    def read(cls, at: _At) -> ExposureSpec:
        raw = at.data.get("hostPorts") or []
        if not isinstance(raw, list):
            raise SpecError(f"{at.path}.hostPorts: must be a list")
        ranges = []
        for i, item in enumerate(raw):
            r = _At(item, f"{at.path}.hostPorts[{i}]")
            lo = r.int_("min", default=0, minimum=1, maximum=65535)
            hi = r.int_("max", default=0, minimum=1, maximum=65535)
            if lo > hi:
                raise SpecError(f"{r.path}: min {lo} is above max {hi}")
            ranges.append((lo, hi))
        return cls(
            node_port=at.bool_("nodePort", default=False),
            load_balancer=at.bool_("loadBalancer", default=False),
            external_ips=at.bool_("externalIPs", default=False),
            external_name=at.bool_("externalName", default=False),
            host_ports=tuple(ranges),
        )


def _list(at: _At, key: str) -> list[Any]:
    raw = at.data.get(key) or []
    if not isinstance(raw, list):
        raise SpecError(f"{at.path}.{key}: must be a list")
    return raw


@dataclass(frozen=True, slots=True)
class IngressPeer:
    """Super-cluster pods the admin lets reach the tenant's pods (``spec.isolation.allowedIngressFrom[]``):
    an ingress controller, a monitoring scraper.  Pods matching both label maps (an empty map matches
    everything of its kind), on ``ports`` (empty: every port)."""

    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    #: (protocol, port) pairs.
    ports: tuple[tuple[str, int], ...] = ()

    @classmethod
    def read(cls, at: _At) -> IngressPeer:
        out = cls(namespace_labels=at.child("namespaceSelector").str_map("matchLabels"),
                  pod_labels=at.child("podSelector").str_map("matchLabels"), ports=_ports(at))
        if not at.has("namespaceSelector"):
            raise SpecError(f"{at.path}.namespaceSelector: required (the super namespaces the pods are in)")
        return out


def _ports(at: _At) -> tuple[tuple[str, int], ...]:
    raw_ports = at.data.get("ports") or []
    if not isinstance(raw_ports, list):
        raise SpecError(f"{at.path}.ports: must be a list")
    ports = []
    for i, item in enumerate(raw_ports):
        p = _At(item, f"{at.path}.ports[{i}]")
        ports.append((p.str_("protocol", default="TCP", enum=s.PROTOCOLS),
                      p.int_("port", default=0, minimum=1, maximum=65535)))
    return tuple(ports)


@dataclass(frozen=True, slots=True)
class EgressPeer:
    """Where the admin lets the tenant's pods connect past the default NetworkPolicy
    (``spec.isolation.allowedEgressTo[]``): addresses outside the cluster (``ipBlock``: ``cidr`` minus
    ``except``, e.g. the internet without the cluster's own networks), or super-cluster pods (a shared
    database, a log collector: ``namespaceSelector`` and ``podSelector``), on ``ports`` (empty: all)."""

    cidr: str | None = None
    except_: tuple[str, ...] = ()
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    #: (protocol, port) pairs.
    ports: tuple[tuple[str, int], ...] = ()

    @classmethod
    def read(cls, at: _At) -> EgressPeer:
        ports = _ports(at)
        if at.has("ipBlock") == at.has("namespaceSelector"):
            raise SpecError(f"{at.path}: give either ipBlock (addresses) or namespaceSelector (super pods), "
                            "not both and not neither")
        if at.has("podSelector") and not at.has("namespaceSelector"):
            raise SpecError(f"{at.path}.podSelector: only with namespaceSelector")
        if at.has("namespaceSelector"):
            return cls(namespace_labels=at.child("namespaceSelector").str_map("matchLabels"),
                       pod_labels=at.child("podSelector").str_map("matchLabels"), ports=ports)
        block = at.child("ipBlock")
        cidr = block.opt_str("cidr")
        if cidr is None:
            raise SpecError(f"{block.path}.cidr: required (a network in CIDR notation)")
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SpecError(f"{block.path}.cidr: {cidr!r} is not a network in CIDR notation") from None
        excepted = []
        for i, item in enumerate(block.str_list("except")):
            try:
                sub = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SpecError(f"{block.path}.except[{i}]: {item!r} is not a network in CIDR notation") from None
            if sub.version != net.version or not sub.subnet_of(net) or sub == net:  # type: ignore[arg-type]
                raise SpecError(f"{block.path}.except[{i}]: {item} is not a part of {net} (NetworkPolicy refuses "
                                "an except outside its cidr)")
            excepted.append(str(sub))
        return cls(cidr=str(net), except_=tuple(excepted), ports=ports)


def _cidrs(at: _At, key: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(at.str_list(key)):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SpecError(f"{at.path}.{key}[{i}]: {item!r} is not a network in CIDR notation") from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class IsolationSpec:
    #: ResourceQuota ``spec.hard``; ``None`` when the admin gave none.
    resource_quota: Mapping[str, str] | None = None
    limit_range: LimitRangeSpec | None = None
    network_policy: bool = True
    pod_security: str = s.DEFAULT_POD_SECURITY
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    runtime_class_name: str | None = None
    allowed_storage_classes: tuple[str, ...] = ()
    allowed_priority_classes: tuple[str, ...] = ()
    #: Tolerations tenant pods may ask for (besides ``tolerations`` and the node-condition ones).
    allowed_tolerations: tuple[Toleration, ...] = ()
    exposure: ExposureSpec = field(default_factory=ExposureSpec)
    #: Networks hand-written Endpoints of selector-less Services may point into (normalised).
    allowed_endpoint_cidrs: tuple[str, ...] = ()
    #: Super-cluster pods allowed to reach the tenant's pods past the default NetworkPolicy.
    allowed_ingress_from: tuple[IngressPeer, ...] = ()
    #: Addresses and super-cluster pods the tenant's pods may reach past the default NetworkPolicy.
    allowed_egress_to: tuple[EgressPeer, ...] = ()

    @classmethod
    def read(cls, at: _At) -> IsolationSpec:
        raw_tolerations = at.data.get("tolerations") or []
        if not isinstance(raw_tolerations, list):
            raise SpecError(f"{at.path}.tolerations: must be a list")
        raw_allowed = at.data.get("allowedTolerations") or []
        if not isinstance(raw_allowed, list):
            raise SpecError(f"{at.path}.allowedTolerations: must be a list")
        limit_range = None
        if at.has("limitRange"):
            lr = at.child("limitRange")
            limit_range = LimitRangeSpec(
                defaults=lr.quantity_map("defaults"), default_requests=lr.quantity_map("defaultRequests")
            )
        return cls(
            resource_quota=at.child("resourceQuota").quantity_map("hard") if at.has("resourceQuota") else None,
            limit_range=limit_range,
            network_policy=at.bool_("networkPolicy", default=True),
            pod_security=at.str_("podSecurity", default=s.DEFAULT_POD_SECURITY, enum=s.POD_SECURITY_LEVELS),
            node_selector=at.str_map("nodeSelector"),
            tolerations=tuple(
                Toleration.read(_At(t, f"{at.path}.tolerations[{i}]")) for i, t in enumerate(raw_tolerations)
            ),
            runtime_class_name=at.opt_str("runtimeClassName", pattern=s.NAME_PATTERN),
            allowed_storage_classes=at.str_list("allowedStorageClasses", pattern=s.NAME_PATTERN),
            allowed_priority_classes=at.str_list("allowedPriorityClasses", pattern=s.NAME_PATTERN),
            allowed_tolerations=tuple(
                Toleration.read(_At(t, f"{at.path}.allowedTolerations[{i}]")) for i, t in enumerate(raw_allowed)
            ),
            exposure=ExposureSpec.read(at.child("exposure")),
            allowed_endpoint_cidrs=_cidrs(at, "allowedEndpointCIDRs"),
            allowed_ingress_from=tuple(IngressPeer.read(_At(p, f"{at.path}.allowedIngressFrom[{i}]"))
                                       for i, p in enumerate(_list(at, "allowedIngressFrom"))),
            allowed_egress_to=tuple(EgressPeer.read(_At(p, f"{at.path}.allowedEgressTo[{i}]"))
                                    for i, p in enumerate(_list(at, "allowedEgressTo"))),
        )

    def problems(self) -> list[str]:
        """Conflicts inside the policy that no pod could satisfy."""
        out: list[str] = []
        lr = self.limit_range
        if lr is not None:
            for res, request in sorted(lr.default_requests.items()):
                limit = lr.defaults.get(res)
                if limit is not None and parse_quantity(request) > parse_quantity(limit):
                    out.append(
                        f"isolation.limitRange: default request {res}={request} exceeds default limit {limit}"
                    )
            for res, limit in sorted(lr.defaults.items()):
                hard = (self.resource_quota or {}).get(f"limits.{res}")
                if hard is not None and parse_quantity(limit) > parse_quantity(hard):
                    out.append(
                        f"isolation.limitRange: default limit {res}={limit} exceeds resourceQuota "
                        f"limits.{res}={hard}, so no container would fit"
                    )
        return out


@dataclass(frozen=True, slots=True)
class SyncSpec:
    extra_kinds: tuple[str, ...] = ()
    opaque_metadata_prefixes: tuple[str, ...] = ()
    transparent_metadata_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsSpec:
    #: The tenant's cluster domain (``spec.dns.clusterDomain``).
    cluster_domain: str = s.DEFAULT_CLUSTER_DOMAIN

    @classmethod
    def read(cls, at: _At) -> DnsSpec:
        domain = at.str_("clusterDomain", default=s.DEFAULT_CLUSTER_DOMAIN)
        if len(domain) > 253 or not re.match(s.DOMAIN_PATTERN, domain):
            raise SpecError(f"{at.path}.clusterDomain: {domain!r} is not a DNS subdomain (like cluster.local)")
        if domain == "arpa" or domain.endswith(".arpa"):
            raise SpecError(f"{at.path}.clusterDomain: {domain!r} is a reverse-lookup zone")
        return cls(cluster_domain=domain)


@dataclass(frozen=True, slots=True)
class TenantSpec:
    control_plane: ControlPlaneSpec = field(default_factory=ControlPlaneSpec)
    owners: OwnersSpec = field(default_factory=OwnersSpec)
    isolation: IsolationSpec = field(default_factory=IsolationSpec)
    sync: SyncSpec = field(default_factory=SyncSpec)
    dns: DnsSpec = field(default_factory=DnsSpec)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> TenantSpec:
        """Read ``Tenant.spec`` (defaults applied); raise :class:`SpecError` naming the bad field."""
        at = _At(spec, "spec")
        owners = at.child("owners")
        sync = at.child("sync")
        return cls(
            control_plane=ControlPlaneSpec.read(at.child("controlPlane")),
            owners=OwnersSpec(users=owners.str_list("users"), groups=owners.str_list("groups")),
            isolation=IsolationSpec.read(at.child("isolation")),
            sync=SyncSpec(
                extra_kinds=sync.str_list("extraKinds", pattern=s.EXTRA_KIND_PATTERN),
                opaque_metadata_prefixes=sync.str_list("opaqueMetadataPrefixes", pattern=s.PREFIX_PATTERN),
                transparent_metadata_prefixes=sync.str_list(
                    "transparentMetadataPrefixes", pattern=s.PREFIX_PATTERN
                ),
            ),
            dns=DnsSpec.read(at.child("dns")),
        )

    def problems(self) -> list[str]:
        """Semantic conflicts the schema cannot catch; empty when the spec is usable."""
        return self.isolation.problems()


# ---- ClusterVersion -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImagesSpec:
    etcd: str | None = None
    apiserver: str | None = None
    controller_manager: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterVersionSpec:
    version: str
    images: ImagesSpec = field(default_factory=ImagesSpec)
    apiserver_args: Mapping[str, str] = field(default_factory=dict)
    controller_manager_args: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> ClusterVersionSpec:
        at = _At(spec, "spec")
        version = at.opt_str("version", pattern=s.VERSION_PATTERN)
        if version is None:
            raise SpecError("spec.version: required (like v1.36.3)")
        images = at.child("images")
        return cls(
            version=version,
            images=ImagesSpec(
                etcd=images.opt_str("etcd", pattern=s.IMAGE_PATTERN),
                apiserver=images.opt_str("apiserver", pattern=s.IMAGE_PATTERN),
                controller_manager=images.opt_str("controllerManager", pattern=s.IMAGE_PATTERN),
            ),
            apiserver_args=at.child("apiserver").str_map("extraArgs", key_pattern=s.FLAG_PATTERN),
            controller_manager_args=at.child("controllerManager").str_map(
                "extraArgs", key_pattern=s.FLAG_PATTERN
            ),
        )


# ---- Tenant status --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "status": self.status, "reason": self.reason,
                               "message": self.message}
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        if self.last_transition_time is not None:
            out["lastTransitionTime"] = self.last_transition_time
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        gen = data.get("observedGeneration")
        return cls(
            type=str(data.get("type", "")),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
            observed_generation=gen if isinstance(gen, int) else None,
            last_transition_time=data.get("lastTransitionTime"),
        )


@dataclass(frozen=True, slots=True)
class TenantStatus:
    phase: str = "Pending"
    conditions: tuple[Condition, ...] = ()
    cluster_key: str | None = None
    endpoint: str | None = None
    version: str | None = None
    backend: str | None = None
    kubeconfig_secret: tuple[str, str] | None = None
    observed_generation: int | None = None
    #: ``status.dns.clusterIP``: the super ClusterIP of the tenant's DNS Service (pods' nameserver).
    dns_cluster_ip: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        cond = self.condition("Ready")
        return cond is not None and cond.status == "True"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase, "conditions": [c.to_dict() for c in self.conditions]}
        for key, value in (
            ("clusterKey", self.cluster_key),
            ("endpoint", self.endpoint),
            ("version", self.version),
            ("backend", self.backend),
            ("observedGeneration", self.observed_generation),
        ):
            if value is not None:
                out[key] = value
        if self.kubeconfig_secret is not None:
            ns, name = self.kubeconfig_secret
            out["kubeconfigSecret"] = {"namespace": ns, "name": name}
        if self.dns_cluster_ip is not None:
            out["dns"] = {"clusterIP": self.dns_cluster_ip}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TenantStatus:
        data = data or {}
        secret = data.get("kubeconfigSecret") or {}
        gen = data.get("observedGeneration")
        return cls(
            phase=str(data.get("phase") or "Pending"),
            conditions=tuple(Condition.from_dict(c) for c in data.get("conditions") or [] if isinstance(c, dict)),
            cluster_key=data.get("clusterKey"),
            endpoint=data.get("endpoint"),
            version=data.get("version"),
            backend=data.get("backend"),
            kubeconfig_secret=(secret["namespace"], secret["name"])
            if secret.get("namespace") and secret.get("name")
            else None,
            observed_generation=gen if isinstance(gen, int) else None,
            dns_cluster_ip=_dns_ip(data.get("dns")),
        )


def cluster_domain(obj: Mapping[str, Any]) -> str:
    """A Tenant object's cluster domain (``spec.dns.clusterDomain``); the default for a spec that
    does not read (the operator reports such specs; a reader here must not fail on them)."""
    try:
        return TenantSpec.from_dict(obj.get("spec")).dns.cluster_domain
    except SpecError:
        return DnsSpec().cluster_domain


def _dns_ip(dns: Any) -> str | None:
    ip = dns.get("clusterIP") if isinstance(dns, Mapping) else None
    return str(ip) if ip else None


#: The conditions the operator writes; any other type (the syncer's ``Synced``) it keeps as it finds it.
OPERATOR_CONDITIONS = frozenset({"Ready", "StorageApplied"})
#: The syncer's condition on each Tenant it serves (tenant reachable, last full sync, objects pending).
SYNCED_CONDITION = "Synced"


def merge_conditions(current: Sequence[Mapping[str, Any]], ours: Sequence[Mapping[str, Any]],
                     *, owned: Iterable[str]) -> list[dict[str, Any]]:
    """``current`` conditions with the ``owned`` types replaced by ``ours`` (pure).

    ``status.conditions`` is one list written by two controllers, and a JSON merge patch replaces a
    list whole: each writer sends the list as it read it (under a resourceVersion precondition),
    with only its own entries changed.  Others' entries keep their place; an owned type absent from
    ``ours`` is dropped; new ones are appended in ``ours``' order.
    """
    owned = set(owned) | {str(c.get("type")) for c in ours}
    by_type = {str(c.get("type")): dict(c) for c in ours}
    out: list[dict[str, Any]] = []
    for cond in current:
        type_ = str(cond.get("type"))
        if type_ not in owned:
            out.append(dict(cond))
        elif type_ in by_type:
            out.append(by_type.pop(type_))
    out.extend(dict(c) for c in ours if str(c.get("type")) in by_type)
    return out


def ready_condition(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``Ready`` condition of a Tenant object (raw dict), if the operator wrote one."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond
    return None


def is_ready(obj: Mapping[str, Any] | None) -> bool:
    """Ready per the status contract *for the object's current spec* (pure; one rule for every reader).

    The ``Ready`` condition is ``True`` and it was written for ``metadata.generation``: its
    ``observedGeneration`` (else ``status.observedGeneration``) equals the generation.  Right after a
    spec change the old ``Ready=True`` is stale, so the answer is ``False`` until the operator has
    reconciled the new generation; a status without any observed generation is never Ready.
    """
    cond = ready_condition(obj)
    if cond is None or cond.get("status") != "True":
        return False
    generation = ((obj or {}).get("metadata") or {}).get("generation")
    observed = cond.get("observedGeneration")
    if not isinstance(observed, int) or isinstance(observed, bool):
        observed = ((obj or {}).get("status") or {}).get("observedGeneration")
    return (isinstance(generation, int) and isinstance(observed, int)
            and not isinstance(observed, bool) and observed == generation)
