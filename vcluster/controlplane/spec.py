"""The data model of a tenant control plane, shared by the builder and both backends.

Why: the ``local`` and ``pods`` backends must run the *same* components with
the *same* flags and PKI; only where files live and how components reach each
other differ.  The backend describes that in a :class:`Layout`; the builder
(:mod:`vcluster.controlplane.builder`) turns a Tenant plus a layout into a
:class:`ControlPlaneSpec`; the backend runs it.  Everything here is frozen
data without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from vcluster import naming

# ---- PKI file names (keys of the PKI Secret, files in the pki folder) ----------------
CA = "ca"
ETCD_CA = "etcd-ca"
#: The kubelet proxy's CA (certificate only: its key stays in vc-system).
KUBELET_CA = "kubelet-ca"
SA_KEY_FILE = "sa.key"
SA_PUB_FILE = "sa.pub"

APISERVER = "apiserver"
APISERVER_ETCD_CLIENT = "apiserver-etcd-client"
APISERVER_KUBELET_CLIENT = "apiserver-kubelet-client"
ETCD_SERVER = "etcd-server"
ADMIN = "admin"
CONTROLLER_MANAGER = "controller-manager"

#: Names of objects in the root namespace (both backends).
PKI_SECRET = naming.CONTROL_PLANE_PKI_SECRET
CM_KUBECONFIG_SECRET = naming.CONTROLLER_MANAGER_KUBECONFIG_SECRET
CM_KUBECONFIG_KEY = "kubeconfig"

#: Names of the components, also their binaries (:func:`vcluster.binaries.binary_path`).
ETCD_COMPONENT = "etcd"
APISERVER_COMPONENT = "kube-apiserver"
CM_COMPONENT = "kube-controller-manager"
COMPONENTS: tuple[str, ...] = (ETCD_COMPONENT, APISERVER_COMPONENT, CM_COMPONENT)

#: The admin identity of the tenant apiserver (the syncer and the operator use it).
ADMIN_USER = "virtualcluster:admin"
ADMIN_GROUP = "system:masters"


def crt(name: str) -> str:
    return f"{name}.crt"


def key(name: str) -> str:
    return f"{name}.key"


@dataclass(frozen=True, slots=True)
class CertRequest:
    """One certificate the control plane needs, issued by one of its CAs."""

    name: str
    ca: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = False
    #: A server certificate that may also authenticate as a client (etcd's: its JSON gateway calls its
    #: own gRPC server with it, under ``--client-cert-auth``; kubeadm's etcd certificate does the same).
    client_auth: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a backend puts files and how its components reach each other."""

    #: Folder holding every PKI file (:func:`crt`/:func:`key` names).
    pki_dir: str
    etcd_data_dir: str
    #: URL etcd listens on for clients and the URL kube-apiserver dials.
    etcd_listen_client_url: str
    etcd_client_url: str
    etcd_peer_url: str
    apiserver_bind_address: str
    apiserver_port: int
    #: DNS names and IPs in the apiserver serving certificate.
    apiserver_dns_names: tuple[str, ...]
    apiserver_ips: tuple[str, ...]
    #: URL clients (the operator, the syncer, users) use.
    endpoint: str
    #: URL kube-controller-manager uses.
    internal_endpoint: str
    #: Path of kube-controller-manager's kubeconfig.
    cm_kubeconfig: str
    #: Extra etcd server names (the pods backend's Service).
    etcd_dns_names: tuple[str, ...] = ()
    #: kube-apiserver's ``--etcd-prefix``: ``/registry`` in a tenant's own etcd, ``/<cluster key>`` in the
    #: local backend's shared etcd.
    etcd_prefix: str = "/registry"
    #: Paths of the CA, client certificate and key the apiserver presents to etcd; ``None``: the tenant's
    #: own (:data:`ETCD_CA`, :data:`APISERVER_ETCD_CLIENT` in ``pki_dir``).
    etcd_client_files: tuple[str, str, str] | None = None
    #: kube-apiserver's ``--etcd-compaction-interval`` when set (``0``: the shared etcd compacts itself).
    etcd_compaction_interval: str | None = None


@dataclass(frozen=True, slots=True)
class Component:
    """One process/container: its name (= binary), image, flags and Go runtime environment."""

    name: str
    image: str
    args: tuple[str, ...]
    #: Environment variables of the Go runtime (``GOMAXPROCS``, ``GOGC``), sorted; empty: the runtime's defaults.
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EtcdStorage:
    """etcd's data volume in the pods backend: a PVC from the StatefulSet's claim template."""

    #: Requested size, a quantity (``1Gi``).
    size: str
    #: StorageClass; ``None`` leaves it to the super cluster's default class.
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class ControlPlaneSpec:
    """Everything a backend needs to run one tenant's control plane."""

    tenant_name: str
    cluster_key: str
    version: str
    backend: str
    replicas: int
    expose_type: str
    etcd_prefix: str
    endpoint: str
    internal_endpoint: str
    etcd: Component
    apiserver: Component
    controller_manager: Component
    certs: tuple[CertRequest, ...]
    #: etcd's volume (pods backend).  ``None`` only for an etcd StatefulSet created before claim
    #: templates (an ``emptyDir``), which the reconciler keeps as it is (see ``pods.storage_of``).
    etcd_storage: EtcdStorage | None

    @property
    def components(self) -> tuple[Component, ...]:
        return (self.etcd, self.apiserver, self.controller_manager)
