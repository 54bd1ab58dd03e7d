"""Every naming rule and every label/annotation key of the project.

Why this module exists: the operator, the syncer and the kubelet proxy must
agree on how a tenant's objects are named in the super cluster, and a mistake
here is a cross-tenant leak.  So there is exactly one place that says it, and
everything else calls it; nobody builds a super namespace name by hand.

The scheme (see docs/architecture.md for why it differs from ``key-ns``):

* A tenant's *cluster key* is ``<tenant-name>-<sha256(uid)[:6]>``.  It is the
  name of the tenant's *root namespace* in the super cluster (control plane,
  secrets).  Tenant names are DNS labels of at most 32 characters without
  ``--``, so a cluster key never contains ``--``.
* The super namespace of tenant namespace ``ns`` is ``<key>--<ns>``.  The
  first ``--`` ends the key, so two tenants can never produce the same super
  namespace, whatever their names.
* If ``<key>--<ns>`` would pass 63 characters, it becomes
  ``<key>---<cut of ns>-<hash>`` (at most 63 characters: the cut loses
  trailing dashes).  No namespace name starts with ``-``, so a shortened
  name never equals a plain one; ``<hash>`` is sha256 of the key and the
  full namespace name.
* The mapping back goes through annotations on the super namespace
  (:data:`ANN_TENANT_NAMESPACE`), which :func:`parse_super_namespace` reads
  when the name alone does not carry the whole namespace.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

GROUP = "tenancy.virtualcluster.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: Namespace of the system components in the super cluster.
SYSTEM_NAMESPACE = "vc-system"

MAX_NAME = 63
MAX_TENANT_NAME = 32
KEY_HASH_LEN = 6
NS_HASH_LEN = 12
SEPARATOR = "--"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# ---- labels (selectable) ---------------------------------------------------
#: Marks every object the syncer created in the super cluster; super informers select on it.
LABEL_MANAGED_BY = f"{GROUP}/managed-by"
MANAGED_BY_SYNCER = "vc-syncer"
MANAGED_BY_OPERATOR = "vc-operator"
#: The tenant's cluster key, on every super object that belongs to a tenant.
LABEL_CLUSTER_KEY = f"{GROUP}/cluster-key"
#: The Tenant object's name.
LABEL_TENANT = f"{GROUP}/tenant"
#: Role of a super namespace: ``root`` (control plane) or ``workload`` (synced).
LABEL_NAMESPACE_ROLE = f"{GROUP}/namespace-role"
ROLE_ROOT = "root"
ROLE_WORKLOAD = "workload"
#: Marks a Node object in a tenant control plane as virtual.
LABEL_VIRTUAL_NODE = f"{GROUP}/virtual-node"
#: On a synced super namespace: the tenant namespace it stands for (label values fit: namespace names
#: are DNS labels).  Translated tenant NetworkPolicies select super namespaces with it.
LABEL_TENANT_NAMESPACE = f"{GROUP}/tenant-namespace"
#: On a super StorageClass or PriorityClass: ``"true"`` makes the syncer mirror it into every tenant.
#: Tenant namespace labels are copied onto the super namespace under keys ``<hash>.<this>/<name>``
#: (see :func:`tenant_label_key`): translated NetworkPolicy namespace selectors can match them,
#: and a tenant's label can never be read as a super-cluster label (pod security, ours).
TENANT_LABEL_DOMAIN = f"nslabel.{GROUP}"
TENANT_LABEL_HASH_LEN = 10
LABEL_PUBLIC = f"{GROUP}/public"
PUBLIC_TRUE = "true"
#: On an object in a tenant control plane that the syncer mirrors from the super cluster (read-only).
LABEL_MIRRORED_FROM_SUPER = f"{GROUP}/mirrored-from-super"

# ---- annotations (not selectable, carry exact values) ------------------------
ANN_TENANT_NAME = f"{GROUP}/tenant-name"
ANN_TENANT_UID = f"{GROUP}/tenant-uid"
ANN_CLUSTER_KEY = f"{GROUP}/cluster-key"
#: The tenant namespace a super object (or super namespace) stands for.
ANN_TENANT_NAMESPACE = f"{GROUP}/tenant-namespace"
#: The tenant object's name and uid; the engine acts only when the uid matches.
ANN_OBJECT_NAME = f"{GROUP}/object-name"
ANN_OBJECT_UID = f"{GROUP}/object-uid"
#: On a tenant Service: its cluster IP in the super cluster.
ANN_SUPER_CLUSTER_IP = f"{GROUP}/super-cluster-ip"
#: Hash of the synced part of a tenant object, on its super copy.
ANN_SYNC_HASH = f"{GROUP}/sync-hash"
#: On a pods-backend control-plane pod template: a digest of the PKI files (and kubeconfig) the component
#: reads at start; a renewed certificate changes it, so the Deployment/StatefulSet rolls.
ANN_INPUTS_HASH = f"{GROUP}/inputs-hash"

FINALIZER = f"{GROUP}/finalizer"


class NamingError(ValueError):
    """A name that cannot be mapped (wrong shape, too long, not ours)."""


def is_dns_label(value: str) -> bool:
    return len(value) <= MAX_NAME and bool(_DNS_LABEL.match(value))


def validate_tenant_name(name: str) -> None:
    """Raise :class:`NamingError` unless ``name`` can name a Tenant."""
    if not is_dns_label(name):
        raise NamingError(f"tenant name {name!r} is not a DNS label (lowercase letters, digits, '-')")
    if len(name) > MAX_TENANT_NAME:
        raise NamingError(f"tenant name {name!r} is longer than {MAX_TENANT_NAME} characters")
    if SEPARATOR in name:
        raise NamingError(f"tenant name {name!r} must not contain {SEPARATOR!r}")


def _hex(value: str, length: int) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def cluster_key(tenant_name: str, tenant_uid: str) -> str:
    """The tenant's cluster key, also the name of its root namespace."""
    validate_tenant_name(tenant_name)
    if not tenant_uid:
        raise NamingError("tenant uid is empty")
    return f"{tenant_name}-{_hex(tenant_uid, KEY_HASH_LEN)}"


def tenant_label_key(label_key: str) -> str:
    """The super-namespace label key that carries the tenant namespace label ``label_key``.

    ``prefix/name`` (or ``name``) becomes ``<hash of prefix>.nslabel.<group>/name``: the name part
    (at most 63 characters) is kept, so the result is a valid label key, and distinct keys map to
    distinct keys (up to a hash collision, which could only merge two of one tenant's own labels:
    selectors are confined to the tenant by the cluster-key label).
    """
    prefix, _, name = label_key.rpartition("/")
    return f"{_hex(prefix, TENANT_LABEL_HASH_LEN)}.{TENANT_LABEL_DOMAIN}/{name}"


def is_tenant_label_key(label_key: str) -> bool:
    """Whether a super label key is one of :func:`tenant_label_key`'s."""
    prefix = label_key.partition("/")[0] if "/" in label_key else ""
    return prefix.endswith(f".{TENANT_LABEL_DOMAIN}")


def root_namespace(key: str) -> str:
    """The super namespace that holds a tenant's control plane and secrets."""
    return key


#: The local backend's shared etcd (operator setting ``VC_OPERATOR_SHARED_ETCD``): each tenant apiserver
#: stores under its own prefix, as its own etcd user (its client certificate's CN) whose one role may
#: read and write that prefix only.
SHARED_ETCD_USER_PREFIX = "vc-tenant-"


def shared_etcd_prefix(key: str) -> str:
    """The tenant apiserver's ``--etcd-prefix`` on the shared etcd: ``/<cluster key>``.  A cluster key never
    contains ``/``, so one tenant's keys (``/<key>/…``) are never below another's prefix."""
    return f"/{key}"


def shared_etcd_user(key: str) -> str:
    """The etcd user (and role) of a tenant apiserver on the shared etcd: its client certificate's CN."""
    return f"{SHARED_ETCD_USER_PREFIX}{key}"


def super_namespace(key: str, tenant_namespace: str) -> str:
    """The super namespace that stands for ``tenant_namespace`` of the tenant ``key``."""
    if SEPARATOR in key or not is_dns_label(key):
        raise NamingError(f"{key!r} is not a cluster key")
    if not is_dns_label(tenant_namespace):
        raise NamingError(f"{tenant_namespace!r} is not a namespace name")
    plain = f"{key}{SEPARATOR}{tenant_namespace}"
    if len(plain) <= MAX_NAME:
        return plain
    digest = _hex(f"{key}/{tenant_namespace}", NS_HASH_LEN)
    room = MAX_NAME - len(key) - len(SEPARATOR) - 1 - 1 - NS_HASH_LEN
    cut = tenant_namespace[: max(room, 0)].rstrip("-")
    middle = f"-{cut}-" if cut else "-"
    return f"{key}{SEPARATOR}{middle}{digest}"[:MAX_NAME]


@dataclass(frozen=True, slots=True)
class SuperNamespaceRef:
    """What a super namespace name says on its own."""

    cluster_key: str
    #: The tenant namespace, or ``None`` when the name was shortened (read the annotation).
    tenant_namespace: str | None


def parse_super_namespace(name: str, annotations: dict[str, str] | None = None) -> SuperNamespaceRef:
    """Map a super namespace back to (cluster key, tenant namespace).

    A shortened name needs its :data:`ANN_TENANT_NAMESPACE` annotation; the
    annotation is trusted only if it maps forward to the same name.
    """
    key, sep, rest = name.partition(SEPARATOR)
    if not sep or not key or not rest:
        raise NamingError(f"{name!r} is not a tenant's super namespace")
    if not rest.startswith("-"):
        return SuperNamespaceRef(key, rest)
    claimed = (annotations or {}).get(ANN_TENANT_NAMESPACE)
    if claimed is not None and super_namespace(key, claimed) == name:
        return SuperNamespaceRef(key, claimed)
    return SuperNamespaceRef(key, None)


def is_super_namespace_of(name: str, key: str) -> bool:
    """True if ``name`` is one of the tenant ``key``'s synced super namespaces."""
    return name.startswith(f"{key}{SEPARATOR}")


def owner_labels(key: str, tenant_name: str, *, managed_by: str = MANAGED_BY_SYNCER) -> dict[str, str]:
    """Labels every super object of a tenant carries."""
    return {LABEL_MANAGED_BY: managed_by, LABEL_CLUSTER_KEY: key, LABEL_TENANT: tenant_name}


def kubeconfig_secret_name() -> str:
    """Name of the Secret (in the root namespace) holding the tenant admin kubeconfig."""
    return "admin-kubeconfig"


#: Key of the kubeconfig inside that Secret's data.
KUBECONFIG_SECRET_KEY = "kubeconfig"

# ---- virtual nodes and the kubelet proxy ------------------------------------------
#: Taint on every virtual Node (same key as the label): tenant schedulers and
#: DaemonSet controllers leave virtual nodes alone; the syncer binds pods itself.
TAINT_VIRTUAL_NODE = LABEL_VIRTUAL_NODE
#: Secret (in :data:`SYSTEM_NAMESPACE`) holding the CA shared by the kubelet
#: proxy's serving certificate and every tenant apiserver's kubelet client certificate.
KUBELET_PROXY_CA_SECRET = "kubelet-proxy-ca"
#: Organization (group) of a tenant apiserver's kubelet client certificate; its CN is the cluster key.
KUBELET_CLIENT_GROUP = "virtualcluster:tenants"
#: Namespace of node Leases in every control plane (a Kubernetes constant).
NODE_LEASE_NAMESPACE = "kube-node-lease"
#: The user (client certificate CN) the kubelet proxy presents to real kubelets; kubelets
#: authorize it by webhook (SubjectAccessReview) against :data:`KUBELET_PROXY_KUBELET_ROLE`.
KUBELET_PROXY_USER = "virtualcluster:kubelet-proxy"
#: Super-cluster ClusterRole (and binding) that allows only the kubelet API (``nodes/proxy``).
KUBELET_PROXY_KUBELET_ROLE = "vc-kubelet-proxy-kubelet-api"

# ---- the local test bed -----------------------------------------------------------
#: Real nodes (kubelet on containerd) carry this label and a NoSchedule taint of the same key,
#: so that only pods that tolerate it land there and the scale tests stay on kwok.
LABEL_REAL_NODE = f"{GROUP}/real-node"

# ---- syncer -------------------------------------------------------------------------
#: On a super Secret the syncer made to hold a tenant ServiceAccount's token
#: (from the tenant's TokenRequest API): the ServiceAccount's name.
ANN_TOKEN_FOR_SERVICE_ACCOUNT = f"{GROUP}/token-for-service-account"
#: On a token Secret: when its token was issued and when it expires (RFC 3339, from the TokenRequest).
ANN_TOKEN_ISSUED = f"{GROUP}/token-issued"
ANN_TOKEN_EXPIRES = f"{GROUP}/token-expires"
#: Lease (in :data:`SYSTEM_NAMESPACE`) that elects the active syncer replica.
SYNCER_LEASE_NAME = "vc-syncer"
#: Lease (in :data:`SYSTEM_NAMESPACE`) whose holder is the one operator replica that acts.
OPERATOR_LEASE_NAME = "vc-operator"
#: Longest Secret name (a DNS subdomain).
MAX_SUBDOMAIN = 253
_TOKEN_SECRET_PREFIX = "vc-token-"
#: Tenant Secrets whose names start with this are refused: the name space is the syncer's.
TOKEN_SECRET_PREFIX = _TOKEN_SECRET_PREFIX


def token_secret_name(service_account: str) -> str:
    """Name of the super Secret holding the tenant token of ``service_account`` (same super namespace)."""
    if not service_account:
        raise NamingError("service account name is empty")
    plain = f"{_TOKEN_SECRET_PREFIX}{service_account}"
    if len(plain) <= MAX_SUBDOMAIN:
        return plain
    digest = _hex(service_account, NS_HASH_LEN)
    cut = service_account[: MAX_SUBDOMAIN - len(_TOKEN_SECRET_PREFIX) - 1 - NS_HASH_LEN].rstrip("-.")
    return f"{_TOKEN_SECRET_PREFIX}{cut}-{digest}"


def is_reserved_secret_name(name: str) -> bool:
    """True if a tenant Secret of this name could collide with a token Secret in its super namespace."""
    return name.startswith(_TOKEN_SECRET_PREFIX)


def refusal_event_name(object_name: str, object_uid: str, reason: str) -> str:
    """Stable name of the tenant Event that says why the super cluster refused a tenant object.

    Stable so that every retry updates the same Event instead of piling up new ones.
    """
    digest = _hex(f"{object_uid}/{reason}", NS_HASH_LEN)
    cut = object_name[: MAX_SUBDOMAIN - 1 - NS_HASH_LEN - len(".vc-")].rstrip("-.")
    return f"{cut}.vc-{digest}"


# ---- objects the operator owns ------------------------------------------------------
#: Policy objects in every workload super namespace of a tenant.
POLICY_QUOTA_NAME = "vc-tenant-quota"
POLICY_LIMIT_RANGE_NAME = "vc-tenant-limits"
POLICY_NETWORK_POLICY_NAME = "vc-tenant-isolation"
#: Secrets in the root namespace.
CONTROL_PLANE_PKI_SECRET = "control-plane-pki"
CONTROLLER_MANAGER_KUBECONFIG_SECRET = "controller-manager-kubeconfig"
#: Tenant DNS (one CoreDNS per tenant, see vcluster.controlplane.dns): the super Service in the root
#: namespace whose cluster IP is the nameserver of the tenant's pods, the ServiceAccount its CoreDNS
#: reads the super cluster as, and the ClusterRole that ServiceAccount is bound to (read-only).
TENANT_DNS_SERVICE = "vc-dns"
#: The super Service (root namespace) in front of a tenant's apiserver: the pods backend's selects its
#: pods; the local backend's has an EndpointSlice naming the process (``https://kubernetes.default.svc``
#: without a port reaches it on 443).
TENANT_APISERVER_SERVICE = "apiserver"
TENANT_DNS_SERVICE_ACCOUNT = "vc-dns"
TENANT_DNS_CLUSTER_ROLE = "vc-tenant-dns"
#: The annotation kube-apiserver's LimitRanger admission writes on a pod it gave default requests or
#: limits (on create only).  The super cluster's to set on a super pod (the operator's LimitRange in each
#: tenant super namespace), the tenant's on a tenant pod: the syncer neither compares nor copies it.
ANN_LIMIT_RANGER = "kubernetes.io/limit-ranger"
#: Value of ``app.kubernetes.io/name`` on the tenant DNS objects (the pods backend selects on it).
TENANT_DNS_APP = "vc-dns"


def tenant_dns_binding_name(key: str) -> str:
    """The ClusterRoleBinding that grants one tenant's DNS ServiceAccount :data:`TENANT_DNS_CLUSTER_ROLE`."""
    return f"{TENANT_DNS_CLUSTER_ROLE}:{key}"


#: On a Tenant: the ClusterVersion generation last rolled out to it.
ANN_CLUSTER_VERSION_SEEN = f"{GROUP}/cluster-version-seen"
