"""A tenant's isolation policy as super-cluster objects and pod checks.

Why this module exists: tenants share the super cluster's nodes, so what keeps
one tenant from hurting another is the policy derived from
``Tenant.spec.isolation``.  Two components apply it and must agree exactly:
the operator (to the tenant's existing super namespaces) and the syncer (when
it creates a super namespace, and on every pod it copies down).  Everything
here is a pure function from the spec to plain dicts or to a list of
violations; the callers do the I/O.

* :func:`namespace_labels` — pod-security labels for a super namespace.
* :func:`policy_objects` — ResourceQuota, LimitRange and NetworkPolicy for a
  super namespace (only those the policy asks for).
* :func:`pod_policy` → :class:`PodPolicy`; :func:`check_pod` lists why a pod
  spec must not reach the super cluster; :func:`apply_pod_policy` returns the
  spec with node selector, tolerations and runtime class added.
* :func:`check_pvc` — storage classes a tenant may use.
* :func:`check_tolerations` — tolerations beyond the tenant's share of nodes;
  :func:`confine_affinity` — pod (anti-)affinity namespaces kept inside the
  tenant's own super namespaces.
* :func:`check_service` — NodePort, LoadBalancer, externalIPs, ExternalName
  only when the admin allows them (``spec.isolation.exposure``).
* :func:`check_endpoint_addresses` — hand-written endpoints only to the
  tenant's own pods or admin-allowed networks, never to special addresses.

Every reason names the tenant object's field and, when the admin could allow
it, the ``Tenant`` policy field that refused it: the tenant reads it in the
Warning Event on its object.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenant_crd.models import EgressPeer, IngressPeer, IsolationSpec, LimitRangeSpec
from vcluster import naming

#: Names of the policy objects the operator/syncer keep in each super namespace.
QUOTA_NAME = naming.POLICY_QUOTA_NAME
LIMIT_RANGE_NAME = naming.POLICY_LIMIT_RANGE_NAME
NETWORK_POLICY_NAME = naming.POLICY_NETWORK_POLICY_NAME
POLICY_OBJECT_NAMES: Mapping[str, str] = {
    "ResourceQuota": QUOTA_NAME,
    "LimitRange": LIMIT_RANGE_NAME,
    "NetworkPolicy": NETWORK_POLICY_NAME,
}

PSA_PREFIX = "pod-security.kubernetes.io"

_LEVEL_RANK = {"privileged": 0, "baseline": 1, "restricted": 2}
_BASELINE_CAPS = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
     "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)
_SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes"}
)
_RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
     "secret"}
)
_BASELINE_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})


@dataclass(frozen=True, slots=True)
class PodPolicy:
    """What the syncer enforces on, and adds to, every pod of one tenant."""

    pod_security: str = "baseline"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    runtime_class_name: str | None = None
    #: Empty means: no priority class may be named.
    allowed_priority_classes: tuple[str, ...] = ()
    #: Empty means: only the cluster's default storage class (no explicit class).
    allowed_storage_classes: tuple[str, ...] = ()
    #: Tolerations pods may carry besides ``tolerations`` and :data:`NODE_CONDITION_TAINTS`.
    allowed_tolerations: tuple[Mapping[str, Any], ...] = ()
    #: ``spec.isolation.exposure``: what Services and pods may open to the outside.
    node_port: bool = False
    load_balancer: bool = False
    external_ips: bool = False
    external_name: bool = False
    #: Inclusive container hostPort ranges allowed under baseline/restricted.
    host_ports: tuple[tuple[int, int], ...] = ()
    #: Networks (CIDR strings) hand-written endpoints may point into, besides the tenant's own pods.
    allowed_endpoint_cidrs: tuple[str, ...] = ()


def pod_policy(isolation: IsolationSpec) -> PodPolicy:
    exposure = isolation.exposure
    return PodPolicy(
        pod_security=isolation.pod_security,
        node_selector=dict(isolation.node_selector),
        tolerations=tuple(t.to_dict() for t in isolation.tolerations),
        runtime_class_name=isolation.runtime_class_name,
        allowed_priority_classes=isolation.allowed_priority_classes,
        allowed_storage_classes=isolation.allowed_storage_classes,
        allowed_tolerations=tuple(t.to_dict() for t in isolation.allowed_tolerations),
        node_port=exposure.node_port,
        load_balancer=exposure.load_balancer,
        external_ips=exposure.external_ips,
        external_name=exposure.external_name,
        host_ports=exposure.host_ports,
        allowed_endpoint_cidrs=isolation.allowed_endpoint_cidrs,
    )


def with_defaults(
    isolation: IsolationSpec, *, quota: Mapping[str, str], limits: Mapping[str, str] | None = None,
    requests: Mapping[str, str] | None = None,
) -> IsolationSpec:
    """The policy in force: the Tenant's, with the operator's default quota and LimitRange where it
    names none (a Tenant's own ``resourceQuota``/``limitRange``, even an empty one, replaces them)."""
    out = isolation
    if out.resource_quota is None and quota:
        out = dataclasses.replace(out, resource_quota=dict(quota))
    if out.limit_range is None and (limits or requests):
        out = dataclasses.replace(out, limit_range=LimitRangeSpec(defaults=dict(limits or {}),
                                                                  default_requests=dict(requests or {})))
    return out


def namespace_labels(isolation: IsolationSpec) -> dict[str, str]:
    """Pod Security Admission labels for a tenant's super namespace (a second line of defence)."""
    level = isolation.pod_security
    return {
        f"{PSA_PREFIX}/enforce": level,
        f"{PSA_PREFIX}/enforce-version": "latest",
        f"{PSA_PREFIX}/warn": level,
        f"{PSA_PREFIX}/audit": level,
    }


def _ip_block(host: str) -> dict[str, Any] | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return {"ipBlock": {"cidr": f"{ip}/{ip.max_prefixlen}"}}


def _pods(namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> dict[str, Any]:
    """A NetworkPolicy peer of super pods: a namespace selector, and a pod selector when labels are given."""
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": dict(sorted(namespace_labels.items()))}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(sorted(pod_labels.items()))}
    return peer


def _rule(direction: str, peer: dict[str, Any], ports: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """An ingress (``from``) or egress (``to``) rule for ``peer``, on ``ports`` (none: every port)."""
    rule: dict[str, Any] = {direction: [peer]}
    if ports:
        rule["ports"] = [{"protocol": proto, "port": port} for proto, port in ports]
    return rule


def _peer_rule(peer: IngressPeer) -> dict[str, Any]:
    return _rule("from", _pods(peer.namespace_labels, peer.pod_labels), peer.ports)


def _egress_rule(peer: EgressPeer) -> dict[str, Any]:
    if peer.cidr is None:
        return _rule("to", _pods(peer.namespace_labels, peer.pod_labels), peer.ports)
    block = {"cidr": peer.cidr, **({"except": list(peer.except_)} if peer.except_ else {})}
    return _rule("to", {"ipBlock": block}, peer.ports)


def network_policy_spec(
    cluster_key: str, *, apiserver: tuple[str, int] | None = None, dns: tuple[str, int] | None = None,
    allow_from: Iterable[IngressPeer] = (), allow_to: Iterable[EgressPeer] = (),
) -> dict[str, Any]:
    """The default NetworkPolicy of a tenant's super namespace: its own namespaces in and out, DNS and
    its own apiserver out, the admin's allowed peers in, nothing else in either direction.

    Other tenants' pods and the super control plane (nodes, the super apiserver) are neither allowed in
    nor reachable; so is anything outside the cluster (pod IPs fall inside any wide ``ipBlock`` on
    common CNIs, so "the internet but not other tenants" needs the cluster's CIDRs, which the policy
    does not know).  ``apiserver`` is the tenant apiserver as pods reach it (host, port), from the
    endpoint URL: an ``ipBlock`` when the host is an IP (local backend); a pods-backend apiserver lives
    in the tenant's root namespace, which the own-namespaces rule already covers.  ``dns`` is the
    tenant DNS server as kube-proxy forwards to it (``status.dns.endpoint``: the local backend's
    CoreDNS on the host; its Service's ClusterIP is DNATed to it before any policy applies, so the
    policy must name the endpoint, not the Service); a pods-backend DNS is in the root namespace.
    ``allow_from`` (``spec.isolation.allowedIngressFrom``) lets the admin's ingress controllers and
    monitoring in; ``allow_to`` (``spec.isolation.allowedEgressTo``) lets the tenant's pods out to what
    the admin names: addresses (e.g. the internet minus the cluster's networks) or super-cluster pods.
    """
    own = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: cluster_key}}}
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    egress: list[dict[str, Any]] = [
        {"to": [own]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
         "ports": dns_ports},
    ]
    if dns is not None and (block := _ip_block(dns[0])) is not None:
        egress.append({"to": [block], "ports": [{"protocol": "UDP", "port": dns[1]},
                                                 {"protocol": "TCP", "port": dns[1]}]})
    if apiserver is not None and (block := _ip_block(apiserver[0])) is not None:
        egress.append({"to": [block], "ports": [{"protocol": "TCP", "port": apiserver[1]}]})
    egress.extend(_egress_rule(p) for p in allow_to)
    return {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        # Only pods in namespaces of the same tenant (workload or root) may connect, and the admin's peers.
        "ingress": [{"from": [own]}, *(_peer_rule(p) for p in allow_from)],
        "egress": egress,
    }


def host_port(endpoint: str | None) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port``) as a pair; None when absent or not of that form."""
    if not endpoint:
        return None
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def policy_objects(
    isolation: IsolationSpec, *, super_namespace: str, cluster_key: str, tenant_name: str,
    apiserver: tuple[str, int] | None = None, dns: tuple[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The ResourceQuota, LimitRange and NetworkPolicy the policy asks for, in ``super_namespace``.

    ``apiserver`` (host, port of the tenant apiserver endpoint) and ``dns`` (``status.dns.endpoint``)
    open egress to them; the operator and the syncer both pass them from the same Tenant status, so
    they write the same object.
    """

    def meta(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": super_namespace,
            "labels": naming.owner_labels(cluster_key, tenant_name, managed_by=naming.MANAGED_BY_OPERATOR),
        }

    out: list[dict[str, Any]] = []
    # The LimitRange first: a pod created between the two would be refused for stating no requests.
    lr = isolation.limit_range
    if lr is not None and (lr.defaults or lr.default_requests):
        limit: dict[str, Any] = {"type": "Container"}
        if lr.defaults:
            limit["default"] = dict(sorted(lr.defaults.items()))
        if lr.default_requests:
            limit["defaultRequest"] = dict(sorted(lr.default_requests.items()))
        out.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta(LIMIT_RANGE_NAME),
                    "spec": {"limits": [limit]}})
    if isolation.resource_quota:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": meta(QUOTA_NAME),
                "spec": {"hard": dict(sorted(isolation.resource_quota.items()))},
            }
        )
    if isolation.network_policy:
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": meta(NETWORK_POLICY_NAME),
                "spec": network_policy_spec(cluster_key, apiserver=apiserver, dns=dns,
                                            allow_from=isolation.allowed_ingress_from,
                                            allow_to=isolation.allowed_egress_to),
            }
        )
    return out


def stale_policy_kinds(isolation: IsolationSpec) -> list[str]:
    """Kinds of policy objects that must be *removed* because the policy no longer asks for them."""
    wanted = {o["kind"] for o in policy_objects(isolation, super_namespace="x", cluster_key="k", tenant_name="t")}
    return [kind for kind in POLICY_OBJECT_NAMES if kind not in wanted]


# ---- pod checks -----------------------------------------------------------------


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod_spec.get(key) or []:
            yield f"{key}[{c.get('name', '?')}]", c


def _baseline_security_context(where: str, sc: Mapping[str, Any]) -> list[str]:
    """The baseline controls a pod and a container security context share: SELinux, AppArmor, HostProcess."""
    out: list[str] = []
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in _BASELINE_SELINUX_TYPES:
        out.append(f"{where}.seLinuxOptions.type {selinux['type']!r} is not allowed")
    for field_name in ("user", "role"):
        if selinux.get(field_name):
            out.append(f"{where}.seLinuxOptions.{field_name} must not be set")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        out.append(f"{where}.appArmorProfile Unconfined is not allowed")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{where}.windowsOptions.hostProcess is not allowed")
    return out


def _baseline(pod_spec: Mapping[str, Any], host_ports: tuple[tuple[int, int], ...] = ()) -> list[str]:
    out: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            out.append(f"{flag} is not allowed")
    for vol in pod_spec.get("volumes") or []:
        if "hostPath" in vol:
            out.append(f"volume {vol.get('name', '?')!r}: hostPath volumes are not allowed")
    pod_sc = pod_spec.get("securityContext") or {}
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl.get('name')!r} is not allowed")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("securityContext.seccompProfile Unconfined is not allowed")
    out += _baseline_security_context("securityContext", pod_sc)
    for where, c in _containers(pod_spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{where}: privileged containers are not allowed")
        added = set((sc.get("capabilities") or {}).get("add") or []) - _BASELINE_CAPS
        if added:
            out.append(f"{where}: capabilities {sorted(added)} are not allowed")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{where}: procMount {sc['procMount']!r} is not allowed")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where}: seccompProfile Unconfined is not allowed")
        out += _baseline_security_context(f"{where}: securityContext", sc)
        for port in c.get("ports") or []:
            hp = port.get("hostPort")
            if hp and not any(lo <= hp <= hi for lo, hi in host_ports):
                out.append(f"{where}: hostPort {hp} is not allowed (Tenant spec.isolation.exposure.hostPorts)")
    return out


def _restricted(pod_spec: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for vol in pod_spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if kinds and not kinds <= _RESTRICTED_VOLUMES and "hostPath" not in kinds:
            out.append(f"volume {vol.get('name', '?')!r}: type {sorted(kinds)} is not allowed by restricted")
    pod_sc = pod_spec.get("securityContext") or {}
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    if pod_sc.get("runAsUser") == 0:
        out.append("securityContext.runAsUser 0 is not allowed by restricted")
    for where, c in _containers(pod_spec):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot") is True or (pod_non_root and sc.get("runAsNonRoot") is not False)):
            out.append(f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            out.append(f"{where}: runAsUser 0 is not allowed by restricted")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if not (seccomp in ("RuntimeDefault", "Localhost") or (pod_seccomp and seccomp is None)):
            out.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities must drop ALL")
        # Capabilities outside the baseline set were already reported by _baseline.
        extra = (set(caps.get("add") or []) - {"NET_BIND_SERVICE"}) & _BASELINE_CAPS
        if extra:
            out.append(f"{where}: capabilities {sorted(extra)} are not allowed by restricted")
    return out


def check_pod(pod_spec: Mapping[str, Any], policy: PodPolicy) -> list[str]:
    """Why ``pod_spec`` (a tenant pod's spec) must not be created in the super cluster; empty if fine."""
    out: list[str] = []
    if pod_spec.get("nodeName"):
        out.append(f"nodeName {pod_spec['nodeName']!r}: pods must not be pinned to a super node")
    priority = pod_spec.get("priorityClassName")
    if priority and priority not in policy.allowed_priority_classes:
        out.append(f"priorityClassName {priority!r} is not allowed for this tenant "
                   "(Tenant spec.isolation.allowedPriorityClasses)")
    out += check_tolerations(pod_spec, policy)
    rank = _LEVEL_RANK.get(policy.pod_security, _LEVEL_RANK["baseline"])
    pss: list[str] = []
    if rank >= 1:
        pss += _baseline(pod_spec, policy.host_ports)
    if rank >= 2:
        pss += _restricted(pod_spec)
    level = f"(Tenant spec.isolation.podSecurity {policy.pod_security})"
    return out + [r if "(Tenant spec.isolation." in r else f"{r} {level}" for r in pss]


def apply_pod_policy(pod_spec: Mapping[str, Any], policy: PodPolicy) -> dict[str, Any]:
    """A copy of ``pod_spec`` with the tenant's node selector, tolerations and runtime class.

    The policy wins over the tenant: its node selector keys override the pod's,
    its runtime class replaces the pod's; tolerations are added once.
    """
    out = copy.deepcopy(dict(pod_spec))
    if policy.node_selector:
        out["nodeSelector"] = {**(out.get("nodeSelector") or {}), **policy.node_selector}
    if policy.tolerations:
        tolerations = list(out.get("tolerations") or [])
        for tol in policy.tolerations:
            if dict(tol) not in tolerations:
                tolerations.append(dict(tol))
        out["tolerations"] = tolerations
    if policy.runtime_class_name:
        out["runtimeClassName"] = policy.runtime_class_name
    return out


def check_pvc(pvc_spec: Mapping[str, Any], policy: PodPolicy) -> list[str]:
    """Why a tenant PVC must not be created in the super cluster; empty if fine."""
    cls = pvc_spec.get("storageClassName")
    if cls and cls not in policy.allowed_storage_classes:
        return [f"storageClassName {cls!r} is not allowed for this tenant "
                "(Tenant spec.isolation.allowedStorageClasses)"]
    return []


# ---- scheduling: tolerations and pod affinity -------------------------------------

#: Taints the super cluster itself puts on nodes for their condition.  Kubernetes' own admission
#: (DefaultTolerationSeconds) and DaemonSet controller add tolerations of them to tenant pods, so
#: refusing them would refuse every DaemonSet; tolerating them says nothing about whose node it is.
NODE_CONDITION_TAINTS = (
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/unschedulable",
)
_CONDITION_TOLERATIONS: tuple[Mapping[str, Any], ...] = tuple(
    {"key": k, "operator": "Exists"} for k in NODE_CONDITION_TAINTS
)


def toleration_covers(allowed: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether every taint ``wanted`` tolerates is also tolerated by ``allowed`` (Kubernetes semantics:
    an empty key with ``Exists`` matches every key, an empty effect every effect, a missing
    ``tolerationSeconds`` means forever)."""
    a_key, w_key = allowed.get("key") or "", wanted.get("key") or ""
    a_op, w_op = allowed.get("operator") or "Equal", wanted.get("operator") or "Equal"
    if a_key:
        if w_key != a_key:
            return False
    elif a_op != "Exists":
        return False
    a_effect, w_effect = allowed.get("effect") or "", wanted.get("effect") or ""
    if a_effect and w_effect != a_effect:
        return False
    if a_op != "Exists" and (w_op != "Equal" or (wanted.get("value") or "") != (allowed.get("value") or "")):
        return False
    a_secs = allowed.get("tolerationSeconds")
    if a_secs is not None and w_effect in ("", "NoExecute"):
        w_secs = wanted.get("tolerationSeconds")
        if w_secs is None or w_secs > a_secs:
            return False
    return True


def _describe_toleration(tol: Mapping[str, Any]) -> str:
    parts = [f"{k}={tol[k]}" for k in ("key", "operator", "value", "effect", "tolerationSeconds") if k in tol]
    return "{" + ", ".join(parts) + "}"


def check_tolerations(pod_spec: Mapping[str, Any], policy: PodPolicy) -> list[str]:
    """Tolerations that would reach past the tenant's share of nodes (dedicated nodes of others,
    control-plane nodes): each must be covered by the tenant's own node-placement tolerations, the
    admin's ``allowedTolerations`` or a node-condition toleration."""
    allowed = (*policy.tolerations, *policy.allowed_tolerations, *_CONDITION_TOLERATIONS)
    out = []
    for i, tol in enumerate(pod_spec.get("tolerations") or []):
        if not any(toleration_covers(a, tol) for a in allowed):
            out.append(f"tolerations[{i}] {_describe_toleration(tol)} is not allowed "
                       "(Tenant spec.isolation.allowedTolerations)")
    return out


_NAME_LABEL = "kubernetes.io/metadata.name"


def _label_key(v_key: str) -> str:
    """The super namespace label that stands for the tenant namespace label ``v_key``."""
    return naming.LABEL_TENANT_NAMESPACE if v_key == _NAME_LABEL else naming.tenant_label_key(v_key)


def tenant_namespace_selector(v_selector: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A selector over a tenant's namespace labels as a selector of the same tenant's super namespaces.

    Tenant namespace labels are mirrored onto super namespaces under
    :func:`vcluster.naming.tenant_label_key` keys (``kubernetes.io/metadata.name`` as
    :data:`vcluster.naming.LABEL_TENANT_NAMESPACE`), and the cluster-key label is ANDed in: the result
    can never select another tenant's namespace, however wide the tenant's selector (``{}``).
    """
    labels: dict[str, Any] = {_label_key(k): v for k, v in (v_selector.get("matchLabels") or {}).items()}
    labels[naming.LABEL_CLUSTER_KEY] = key
    out: dict[str, Any] = {"matchLabels": labels}
    expressions = [{**e, "key": _label_key(str(e.get("key") or ""))} for e in v_selector.get("matchExpressions") or []]
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _confine_term(term: Mapping[str, Any], key: str) -> dict[str, Any]:
    out = dict(term)
    if out.get("namespaces"):
        out["namespaces"] = [naming.super_namespace(key, ns) for ns in out["namespaces"]]
    if "namespaceSelector" in out:
        if out["namespaceSelector"] is None:
            del out["namespaceSelector"]
        else:
            selector = tenant_namespace_selector(out["namespaceSelector"] or {}, key)
            selector["matchLabels"][naming.LABEL_NAMESPACE_ROLE] = naming.ROLE_WORKLOAD
            out["namespaceSelector"] = selector
    return out


def confine_affinity(affinity: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Pod (anti-)affinity terms with ``namespaces`` and ``namespaceSelector`` turned into the tenant's
    own super namespaces (workload ones only: not its control plane's root namespace).

    Without it ``namespaceSelector: {}`` means *every* super namespace, so a tenant could co-locate
    with, or probe the placement of, other tenants' pods.  A term naming neither means the pod's own
    namespace, which is already the tenant's.  Node affinity is left alone: it is ANDed with the
    tenant's node selector, so it can only narrow the tenant's node placement.
    """
    out = copy.deepcopy(dict(affinity))
    for kind in ("podAffinity", "podAntiAffinity"):
        section = out.get(kind)
        if not section:
            continue
        required = "requiredDuringSchedulingIgnoredDuringExecution"
        preferred = "preferredDuringSchedulingIgnoredDuringExecution"
        if section.get(required):
            section[required] = [_confine_term(t, key) for t in section[required]]
        if section.get(preferred):
            section[preferred] = [
                {**w, "podAffinityTerm": _confine_term(w.get("podAffinityTerm") or {}, key)}
                for w in section[preferred]
            ]
    return out


# ---- exposure: services and endpoints ------------------------------------------------


def check_service(svc_spec: Mapping[str, Any], policy: PodPolicy) -> list[str]:
    """Why a tenant Service must not reach the super cluster: ways out of it the admin did not allow.

    A NodePort opens a port on every shared node, a LoadBalancer an external address, externalIPs
    capture traffic to addresses the tenant does not own, an ExternalName a DNS alias into names of
    the super cluster.  Refused (not silently turned into ClusterIP) so the tenant sees it at once.
    """
    out = []
    kind = svc_spec.get("type") or "ClusterIP"
    if kind == "NodePort" and not (policy.node_port or policy.load_balancer):
        out.append("spec.type NodePort is not allowed (Tenant spec.isolation.exposure.nodePort)")
    if kind == "LoadBalancer" and not policy.load_balancer:
        out.append("spec.type LoadBalancer is not allowed (Tenant spec.isolation.exposure.loadBalancer)")
    if kind == "ExternalName" and not policy.external_name:
        out.append("spec.type ExternalName is not allowed (Tenant spec.isolation.exposure.externalName)")
    if svc_spec.get("externalIPs") and not policy.external_ips:
        out.append("spec.externalIPs are not allowed (Tenant spec.isolation.exposure.externalIPs)")
    return out


def _special(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for what, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast)):
        if flag:
            return what
    return None


def check_endpoint_addresses(
    addresses: Iterable[tuple[str, str]],
    policy: PodPolicy,
    *,
    own_ips: Iterable[str] = (),
    reserved_ips: Iterable[str] = (),
) -> list[str]:
    """Why hand-written endpoint addresses must not reach the super cluster.

    ``addresses`` are (where, ip) pairs.  An address is allowed when it is one of the tenant's own pod
    IPs (``own_ips``, read from the super pods, never from what the tenant writes) or inside one of the
    admin's ``allowedEndpointCIDRs``, and never when it is loopback, link-local (cloud metadata),
    unspecified, multicast or one of ``reserved_ips`` (super nodes and super service addresses the
    caller knows) — the endpoint-hijack class of attack.
    """
    own = set(own_ips)
    reserved = set(reserved_ips)
    networks = [ipaddress.ip_network(c, strict=False) for c in policy.allowed_endpoint_cidrs]
    out = []
    for where, raw in addresses:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            out.append(f"{where} {raw!r} is not an IP address")
            continue
        special = _special(ip)
        if special is not None:
            out.append(f"{where} {raw} is a {special} address and never allowed")
        elif str(ip) in reserved:
            out.append(f"{where} {raw} is a super-cluster node or service address and never allowed")
        elif str(ip) not in own and not any(ip.version == n.version and ip in n for n in networks):
            out.append(f"{where} {raw} is neither a pod of this tenant nor in an allowed network "
                       "(Tenant spec.isolation.allowedEndpointCIDRs)")
    return out
