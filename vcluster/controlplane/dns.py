"""Tenant DNS: one stock CoreDNS per tenant, serving the tenant's names from the super cluster.

Why: a tenant's pods run in the super cluster, so the addresses they must
resolve are *super* addresses (a Service's super ClusterIP, a pod's super
IP).  The tenant apiserver knows only tenant ClusterIPs, which route nowhere.
So the tenant's DNS reads the **super** cluster, restricted to that tenant:

* CoreDNS' ``kubernetes`` plugin against the super apiserver with
  ``namespace_labels <cluster-key>=<key>,<namespace-role>=workload``: only the
  tenant's own synced namespaces exist for it (not its root namespace, not
  another tenant's, not the super cluster's own);
* ``rewrite`` rules map a question ``<name>.<ns>.svc.<domain>`` to
  ``<name>.<key>--<ns>.svc.<domain>`` (the super namespace,
  :func:`vcluster.naming.super_namespace`) and the answer's names and values
  (SRV targets, CNAMEs) back, so the pod sees the names it asked for;
  every question in the zone goes through a rewrite, so a tenant cannot
  even name a super namespace;
* a super namespace past 63 characters is shortened with a hash, which no
  regex can compute: each such namespace of the tenant gets its own rule
  (listed by the operator, the Corefile rewritten and picked up by
  ``reload``), and one that has no rule yet simply does not resolve;
* ``kubernetes.default`` answers the tenant's own apiserver (``hosts``): the
  ClusterIP of the super Service in front of it, which listens on 443 as a
  cluster's ``kubernetes`` Service does (the local backend's is
  :func:`apiserver_service`);
* names outside the cluster domain go to the super cluster's resolver
  (``forward``, when the operator knows one), nothing else leaves: reverse
  lookups and the super cluster's own domain are answered NXDOMAIN here
  (:func:`sealed_zones`), since the super resolver would name other tenants'
  super namespaces;
* a Tenant may choose its own cluster domain (``spec.dns.clusterDomain``): the
  zone, the rewrites and the pods' search path (the syncer) use it.

No fork and no records maintained by us: freshness is CoreDNS' watch on the
super apiserver.  Everything here is pure rendering; the operator does the
I/O and the backends run the result (a process, or a Deployment).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from vcluster import naming

#: The cluster domain of a tenant that names none (``spec.dns.clusterDomain``), and of the super
#: cluster unless the operator is told otherwise (``VC_OPERATOR_DNS_SUPER_DOMAIN``).
CLUSTER_DOMAIN = "cluster.local"
#: What the tenant DNS' identity may read in the super cluster: exactly what the ``kubernetes``
#: plugin lists and watches (Services, EndpointSlices, Namespaces for ``namespace_labels``).
RBAC_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
)
#: Port the CoreDNS container listens on in the pods backend (53 would need NET_BIND_SERVICE).
POD_PORT = 1053
POD_READY_PORT = 8181
#: How often CoreDNS' ``reload`` looks at its Corefile (the shortened-namespace rules change there).
RELOAD_INTERVAL = "2s"
#: TTL of every answer (seconds): the kubernetes plugin's default.
TTL = 5
#: Name of the Corefile in the ConfigMap (pods backend).
COREFILE_KEY = "Corefile"


def _labels(key: str, tenant_name: str) -> dict[str, str]:
    return {
        **naming.owner_labels(key, tenant_name, managed_by=naming.MANAGED_BY_OPERATOR),
        "app.kubernetes.io/name": naming.TENANT_DNS_APP,
    }


def namespace_selector(key: str) -> str:
    """The label selector of the super namespaces the tenant's DNS may see (its workload namespaces)."""
    return f"{naming.LABEL_CLUSTER_KEY}={key},{naming.LABEL_NAMESPACE_ROLE}={naming.ROLE_WORKLOAD}"


def shortened(key: str, tenant_namespaces: Sequence[str]) -> dict[str, str]:
    """Tenant namespace → super namespace, for those whose super name is shortened (needs its own rule)."""
    out: dict[str, str] = {}
    for ns in tenant_namespaces:
        super_ns = naming.super_namespace(key, ns)
        if super_ns != f"{key}{naming.SEPARATOR}{ns}":
            out[ns] = super_ns
    return dict(sorted(out.items()))


def _block(lines: Sequence[str], indent: str = "    ") -> str:
    return "".join(f"{indent}{line}\n" for line in lines)


def rewrite_rules(key: str, *, long_namespaces: Mapping[str, str], domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The ``rewrite`` directives (one per shortened namespace, then the general one), as Corefile text."""
    d = re.escape(domain)
    rules: list[str] = []
    for tenant_ns, super_ns in sorted(long_namespaces.items()):
        t, s = re.escape(tenant_ns), re.escape(super_ns)
        rules.append(
            "rewrite stop {\n"
            f"        name regex ^(.+)\\.{t}\\.svc\\.{d}\\.$ {{1}}.{super_ns}.svc.{domain}.\n"
            f"        answer name ^(.+)\\.{s}\\.svc\\.{d}\\.$ {{1}}.{tenant_ns}.svc.{domain}.\n"
            f"        answer value ^(.+)\\.{s}\\.svc\\.{d}\\.$ {{1}}.{tenant_ns}.svc.{domain}.\n"
            "    }"
        )
    k = re.escape(f"{key}{naming.SEPARATOR}")
    rules.append(
        "rewrite stop {\n"
        f"        name regex ^(.+)\\.([a-z0-9-]+)\\.svc\\.{d}\\.$ {{1}}.{key}{naming.SEPARATOR}{{2}}.svc.{domain}.\n"
        f"        answer name ^(.+)\\.{k}([a-z0-9-]+)\\.svc\\.{d}\\.$ {{1}}.{{2}}.svc.{domain}.\n"
        f"        answer value ^(.+)\\.{k}([a-z0-9-]+)\\.svc\\.{d}\\.$ {{1}}.{{2}}.svc.{domain}.\n"
        "    }"
    )
    return rules


def corefile(
    *,
    key: str,
    port: int,
    bind: str | None,
    ready: str,
    kubeconfig: str | None,
    apiserver_ip: str | None,
    apiserver_names: Sequence[str] = (),
    upstream: Sequence[str] = (),
    long_namespaces: Mapping[str, str] | None = None,
    domain: str = CLUSTER_DOMAIN,
    super_domain: str = CLUSTER_DOMAIN,
) -> str:
    """The Corefile of one tenant's CoreDNS (pure).

    ``bind``: the address to listen on (``None``: every address, as in a pod); ``ready``: the
    ``host:port`` of the ``ready`` plugin (200 once the super cluster's objects are listed);
    ``kubeconfig``: the super cluster as the tenant DNS' identity (``None``: in-cluster);
    ``apiserver_ip``: what ``kubernetes.default`` answers (``None``: nothing), and also
    ``apiserver_names``, asked as they are (the host of the endpoint the syncer gives pods as
    ``KUBERNETES_SERVICE_HOST``: outside the tenant's zone, it would otherwise go upstream);
    ``upstream``: where names outside ``domain`` go (empty: nowhere, REFUSED by CoreDNS);
    ``domain``: the tenant's cluster domain (``spec.dns.clusterDomain``); ``super_domain``: the
    super cluster's, whose names (and reverse lookups) never go upstream (:func:`sealed_zones`).
    """
    lines: list[str] = []
    if bind:
        lines.append(f"bind {bind}")
    lines += ["errors", f"ready {ready}", f"reload {RELOAD_INTERVAL}"]
    lines += rewrite_rules(key, long_namespaces=long_namespaces or {}, domain=domain)
    if apiserver_ip:
        # the question arrives rewritten (default -> <key>--default); the answer is rewritten back
        lines.append(
            "hosts {\n"
            f"        {apiserver_ip} kubernetes.{naming.super_namespace(key, 'default')}.svc.{domain}"
            + "".join(f" {n}" for n in apiserver_names) + "\n"
            f"        ttl {TTL}\n"
            "        no_reverse\n"
            "        fallthrough\n"
            "    }"
        )
    k8s = [f"namespace_labels {namespace_selector(key)}", f"ttl {TTL}"]
    if kubeconfig:
        k8s.insert(0, f"kubeconfig {kubeconfig}")
    lines.append(f"kubernetes {domain} {{\n" + "".join(f"        {x}\n" for x in k8s) + "    }")
    sealed = sealed_zones(domain, super_domain)
    if sealed:
        lines.append(f"template ANY ANY {' '.join(sealed)} {{\n        rcode NXDOMAIN\n    }}")
    if upstream:
        never = " ".join(_never_upstream(super_domain))
        lines.append(f"forward . {' '.join(upstream)} {{\n        except {never}\n    }}")
    return f".:{port} {{\n{_block(lines)}}}\n"


#: Reverse-lookup zones: the super cluster's resolver would name any super Service or pod by its
#: IP there (another tenant's namespace and name), so they are never asked upstream.
REVERSE_ZONES: tuple[str, ...] = ("in-addr.arpa", "ip6.arpa")


def _under(name: str, zone: str) -> bool:
    return name == zone or name.endswith(f".{zone}")


def _never_upstream(super_domain: str) -> list[str]:
    """Zones the tenant DNS must not forward: the super cluster's names and every reverse lookup
    (the tenant's own zone never reaches ``forward``: the ``kubernetes`` plugin answers it)."""
    return list(dict.fromkeys([super_domain, *REVERSE_ZONES]))


def sealed_zones(domain: str, super_domain: str) -> list[str]:
    """Zones the tenant DNS answers NXDOMAIN itself (``template``), before anything else could.

    Why: the upstream is the super cluster's resolver, which answers for the *super* cluster: a
    reverse lookup of a super IP there names another tenant's super namespace and Service, and a
    tenant whose cluster domain differs from the super cluster's could ask for
    ``kube-dns.kube-system.svc.<super domain>``.  The super domain is sealed here only when it
    is not the tenant's own and does not contain it (``template`` would otherwise also catch the
    tenant's own names, rewritten into its zone); in that case ``forward``'s ``except`` still
    keeps it from going upstream (SERVFAIL instead of NXDOMAIN).
    """
    zones = [] if _under(domain, super_domain) or _under(super_domain, domain) else [super_domain]
    return [*zones, *REVERSE_ZONES]


def super_kubeconfig(*, server: str, ca_pem: bytes | None, token_file: str) -> dict[str, Any]:
    """The kubeconfig a local tenant DNS reads the super cluster with: its ServiceAccount's token file
    (client-go re-reads it, so the operator rotates the token by rewriting the file)."""
    import base64

    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "super", "cluster": cluster}],
        "users": [{"name": naming.TENANT_DNS_SERVICE_ACCOUNT, "user": {"tokenFile": token_file}}],
        "contexts": [{"name": "super", "context": {"cluster": "super", "user": naming.TENANT_DNS_SERVICE_ACCOUNT}}],
        "current-context": "super",
    }


def cluster_role() -> dict[str, Any]:
    """The one ClusterRole every tenant DNS is bound to: list/watch of what the kubernetes plugin reads."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": naming.TENANT_DNS_CLUSTER_ROLE,
                     "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY_OPERATOR}},
        "rules": [dict(rule) for rule in RBAC_RULES],
    }


def identity_objects(key: str, tenant_name: str) -> list[dict[str, Any]]:
    """The tenant DNS' ServiceAccount (root namespace) and its ClusterRoleBinding to :func:`cluster_role`."""
    ns = naming.root_namespace(key)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": naming.TENANT_DNS_SERVICE_ACCOUNT, "namespace": ns,
                      "labels": _labels(key, tenant_name)},
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": naming.tenant_dns_binding_name(key), "labels": _labels(key, tenant_name)},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": naming.TENANT_DNS_CLUSTER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": naming.TENANT_DNS_SERVICE_ACCOUNT, "namespace": ns}]},
    ]


def service(key: str, tenant_name: str, *, target_port: int, selector: bool) -> dict[str, Any]:
    """The super Service (root namespace) whose ClusterIP is the tenant pods' nameserver, port 53.

    ``selector``: select the pods backend's CoreDNS pods; without, the operator writes its
    EndpointSlice (:func:`endpoint_slice`) pointing at the local process.
    """
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "ports": [
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": target_port},
            {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": target_port},
        ],
    }
    if selector:
        spec["selector"] = {naming.LABEL_CLUSTER_KEY: key, "app.kubernetes.io/name": naming.TENANT_DNS_APP}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": naming.TENANT_DNS_SERVICE, "namespace": naming.root_namespace(key),
                     "labels": _labels(key, tenant_name)},
        "spec": spec,
    }


def endpoint_slice(key: str, tenant_name: str, *, address: str, port: int) -> dict[str, Any]:
    """The EndpointSlice of :func:`service` (local backend): the CoreDNS process at ``address:port``.

    kube-proxy DNATs the Service's port 53 there; the address must be one pods reach (the test
    bed's host address), not loopback.
    """
    return _process_slice(key, tenant_name, naming.TENANT_DNS_SERVICE, address,
                          [{"name": "dns", "protocol": "UDP", "port": port},
                           {"name": "dns-tcp", "protocol": "TCP", "port": port}])


def _process_slice(key: str, tenant_name: str, service: str, address: str,
                   ports: list[dict[str, Any]]) -> dict[str, Any]:
    """The EndpointSlice of the selectorless root-namespace Service ``service``: one ready endpoint,
    a local-backend process at ``address``, on ``ports``."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": service, "namespace": naming.root_namespace(key),
            "labels": {**_labels(key, tenant_name), "kubernetes.io/service-name": service,
                       "endpointslice.kubernetes.io/managed-by": f"{naming.GROUP}-operator"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": ports,
    }


#: The ports of the local backend's apiserver Service: 443 (``https://kubernetes.default.svc`` without a
#: port) and 6443 (as in the pods backend); both lead to the apiserver process's own port.
APISERVER_SERVICE_PORTS = (("https-443", 443), ("https", 6443))


def apiserver_service(key: str, tenant_name: str) -> dict[str, Any]:
    """The local backend's super Service in front of the tenant apiserver process (root namespace).

    The tenant DNS answers ``kubernetes.default`` with its ClusterIP, so that a tenant pod reaches its
    apiserver on 443 as in any cluster; the process listens on a port of its own on the host address
    (:func:`apiserver_endpoint_slice`).  Without a selector: the operator writes the EndpointSlice.
    """
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": naming.TENANT_APISERVER_SERVICE, "namespace": naming.root_namespace(key),
                     "labels": _labels(key, tenant_name)},
        "spec": {"type": "ClusterIP",
                 "ports": [{"name": name, "protocol": "TCP", "port": port}
                           for name, port in APISERVER_SERVICE_PORTS]},
    }


def apiserver_endpoint_slice(key: str, tenant_name: str, *, address: str, port: int) -> dict[str, Any]:
    """The EndpointSlice of :func:`apiserver_service`: the apiserver process at ``address:port``
    (every Service port leads there; a selectorless Service's target is the slice's port of its name)."""
    return _process_slice(key, tenant_name, naming.TENANT_APISERVER_SERVICE, address,
                          [{"name": name, "protocol": "TCP", "port": port} for name, _ in APISERVER_SERVICE_PORTS])


def pod_objects(
    key: str, tenant_name: str, *, image: str, corefile_text: str, placement: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The pods backend's tenant DNS: a ConfigMap with the Corefile and a two-replica Deployment
    running as the tenant DNS' ServiceAccount (in-cluster credentials, rotated by the kubelet), placed
    like the control plane (``placement``: the operator's ``nodeSelector``/``tolerations``)."""
    ns = naming.root_namespace(key)
    labels = _labels(key, tenant_name)
    selector = {naming.LABEL_CLUSTER_KEY: key, "app.kubernetes.io/name": naming.TENANT_DNS_APP}
    config = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": naming.TENANT_DNS_SERVICE, "namespace": ns, "labels": labels},
        "data": {COREFILE_KEY: corefile_text},
    }
    container = {
        "name": "coredns", "image": image, "args": ["-conf", f"/etc/coredns/{COREFILE_KEY}"],
        "ports": [{"name": "dns", "containerPort": POD_PORT, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": POD_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": POD_READY_PORT}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": naming.TENANT_DNS_SERVICE, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
                "spec": {
                    "serviceAccountName": naming.TENANT_DNS_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": True,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": naming.TENANT_DNS_SERVICE}}],
                    **(placement or {}),
                },
            },
        },
    }
    return [config, deployment]
