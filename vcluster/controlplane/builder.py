"""The one builder: Tenant (+ ClusterVersion) + backend layout → ControlPlaneSpec.

Why: both backends must start identical components; keeping every flag,
certificate and default in one pure function means a flag fixed for ``local``
is fixed for ``pods`` too, and the whole mapping is unit-testable without a
cluster.  Semantic mistakes (a protected flag in ``extraArgs``) raise
:class:`~tenant_crd.SpecError` before anything is provisioned.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenant_crd import ClusterVersionSpec, SpecError, TenantSpec
from tenant_crd.schema import DEFAULT_BACKEND
from vcluster import naming
from vcluster.controlplane import spec as cp
from vcluster.settings import DEFAULT_KUBE_VERSION, kube_release

#: Where the pods backend's control-plane images come from unless a ClusterVersion names them: the
#: operator's ``VC_OPERATOR_IMAGE_REPOSITORY`` (kubeadm's ``imageRepository``: a mirror of these).
DEFAULT_REGISTRY = "registry.k8s.io"
#: etcd's tag there (the local backend runs the etcd that vcluster.binaries builds).
DEFAULT_ETCD_TAG = "3.6.5-0"
DEFAULT_ETCD_IMAGE = f"{DEFAULT_REGISTRY}/etcd:{DEFAULT_ETCD_TAG}"
#: Service range of every tenant apiserver; tenant ClusterIPs are replaced by super ones by the syncer.
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: ``--controllers`` of every tenant kube-controller-manager: all on-by-default controllers except
#: node-lifecycle.  A tenant's nodes are virtual: the syncer's VirtualNodeManager keeps them alive
#: (Lease, status copied from the super node).  With node-lifecycle on, a syncer outage longer than
#: ``--node-monitor-grace-period`` (50 s) made the tenant mark its virtual nodes ``Unknown`` and
#: ``unreachable:NoSchedule`` and every tenant pod NotReady (out of its Services' endpoints; measured),
#: and a node going stale while another was still Ready got ``unreachable:NoExecute``: its pods were
#: evicted after their toleration and the syncer, once back, deleted the real super pods on healthy
#: nodes -- a control-plane outage reached the data plane.  Node loss is the super cluster's business: it
#: evicts the super pods of a lost node (with the tenant pods' tolerations), the syncer then deletes
#: the tenant pods whose super pod is gone, and the virtual node of a lost super node reads
#: ``Ready=Unknown``.  taint-eviction stays: with node-lifecycle off only a tenant admin adds
#: NoExecute taints to a virtual node, and then evicting is what they asked for.
#: ``extraArgs.controllerManager.controllers`` may still override this (not a protected flag).
#:
#: Also off (issue 16, idle cost and start-up time of a small tenant; docs/benchmarks-syncer.md round 7):
#: the attach-detach controller (a tenant's nodes are virtual, the super cluster attaches volumes; its
#: reconciler wakes every 100 ms), the ttl controller (it annotates nodes for a kubelet's ConfigMap cache:
#: no kubelet reads a virtual node), the DRA controllers (resourceclaim, device-taint-eviction: the
#: syncer does not map resource claims) and the storage-version ones (migrator, storageversion GC: one
#: apiserver, one version).  Everything a tenant user expects keeps running: namespace, serviceaccount
#: (and its token controller), garbage collector, deployment, replicaset, statefulset, daemonset, job,
#: cronjob, ttl-after-finished, endpoints, endpointslice(-mirroring), disruption, resourcequota, HPA,
#: pv-binder, pvc/pv protection, ephemeral volumes, csr signing and approving, root-ca publisher.
TENANT_CONTROLLERS = ",".join([
    "*", "-node-lifecycle-controller", "-persistentvolume-attach-detach-controller", "-ttl-controller",
    "-resourceclaim-controller", "-device-taint-eviction-controller", "-storage-version-migrator-controller",
    "-storageversion-garbage-collector-controller",
])
#: The tenant controller-manager's client to its own apiserver: with ``--use-service-account-credentials``
#: every controller first reads or creates its ServiceAccount and requests a token (about three requests
#: each, ~40 controllers) through one client throttled to the default 20 requests/s, burst 30: the start
#: took 4.4 s, in steps of 50 ms ("Waited before sending request ... client-side throttling", -v=3).
#: Burst 300 covers the whole start; the steady rate stays modest (it only talks to its own apiserver).
TENANT_CM_QPS = {"kube-api-qps": "100", "kube-api-burst": "300"}
#: The built-in resources of a v1.36 kube-apiserver that have a watch cache (its ``watch_cache_capacity``
#: metric with ``watch-cache=true``; events have none by default), except pods.  A resource of another
#: version missing here keeps its cache (an idle cost, nothing breaks); one listed but unknown is ignored.
UNCACHED_RESOURCES = (
    "configmaps", "endpoints", "limitranges", "namespaces", "nodes", "persistentvolumeclaims",
    "persistentvolumes", "podtemplates", "replicationcontrollers", "resourcequotas", "secrets",
    "serviceaccounts", "services",
    *(f"{r}.admissionregistration.k8s.io" for r in (
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "mutatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings", "validatingwebhookconfigurations")),
    "customresourcedefinitions.apiextensions.k8s.io", "apiservices.apiregistration.k8s.io",
    *(f"{r}.apps" for r in ("controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets")),
    "horizontalpodautoscalers.autoscaling", "cronjobs.batch", "jobs.batch",
    "certificatesigningrequests.certificates.k8s.io", "leases.coordination.k8s.io",
    "endpointslices.discovery.k8s.io",
    "flowschemas.flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
    *(f"{r}.networking.k8s.io" for r in (
        "ingressclasses", "ingresses", "ipaddresses", "networkpolicies", "servicecidrs")),
    "runtimeclasses.node.k8s.io", "poddisruptionbudgets.policy",
    *(f"{r}.rbac.authorization.k8s.io" for r in ("clusterrolebindings", "clusterroles", "rolebindings", "roles")),
    *(f"{r}.resource.k8s.io" for r in ("deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices")),
    "priorityclasses.scheduling.k8s.io",
    *(f"{r}.storage.k8s.io" for r in (
        "csidrivers", "csinodes", "csistoragecapacities", "storageclasses", "volumeattachments",
        "volumeattributesclasses")),
)
#: kube-apiserver flags for a small tenant (each measured in docs/benchmarks-syncer.md rounds 7 and 10):
#: * a watch cache for pods only (``watch-cache=true`` and size 0, "no cache", for every other resource):
#:   without any cache (round 7's ``watch-cache=false``) an idle apiserver saved ~60 cachers, each with
#:   its etcd watch, a 1-s bookmark timer and its memory (0.40-0.45 % of a core per tenant), but every
#:   watcher of the tenant's pods (the syncer, the controller-manager's informers, a user's ``kubectl
#:   get -w``) was served by its own etcd watch and each event decoded once per watcher: 5.1 ms of CPU
#:   per synced pod in a burst (round 9).  Pods are what a burst writes; one cacher costs an idle tenant
#:   next to nothing.  A tenant takes every cache back with ``extraArgs.apiserver: {watch-cache-sizes:
#:   ""}``, or none with ``{watch-cache: "false"}``;
#: * ``endpoint-reconciler-type=none``: no lease write every 10 s to keep the ``kubernetes`` Service's
#:   endpoints (the syncer never maps that Service; tenant pods reach their apiserver through host
#:   aliases and the tenant DNS, ``kubernetes.default``);
#: * ``enable-priority-and-fairness=false``: the max-in-flight limits instead of APF's configuration
#:   controller and per-request seat estimates (one tenant's apiserver serves one tenant);
#: * ``etcd-count-metric-poll-period=0``: no per-minute count of every resource in etcd.
#: (``APIServerIdentity=false`` does not start in 1.36: UnknownVersionInteroperabilityProxy depends on it.)
TENANT_APISERVER_LEAN = {
    "watch-cache": "true",
    "watch-cache-sizes": ",".join(f"{r}#0" for r in UNCACHED_RESOURCES),
    "endpoint-reconciler-type": "none",
    "enable-priority-and-fairness": "false",
    "etcd-count-metric-poll-period": "0",
}

#: kube-apiserver feature gates of a small tenant (issue 16, docs/benchmarks-syncer.md round 10): no identity
#: lease.  With ``APIServerIdentity`` on, every tenant apiserver PUTs its Lease in ``kube-system`` every 10 s
#: (an etcd write, fsynced, and a request through the whole handler chain), runs the lease garbage collector
#: and the peer-endpoint lease controller: 2-3 % of an idle tenant apiserver's samples and its etcd's only
#: steady write.  What reads those leases is for apiservers of different versions side by side
#: (``UnknownVersionInteroperabilityProxy``, beta in 1.36, which needs the identity and so goes with it; the
#: storage-version API, alpha and off): a tenant's apiservers run one version -- except while a pods-backend
#: tenant with several replicas rolls to a new version, when an old replica answers 404 for an API only the
#: new one serves instead of proxying the request to it (what Kubernetes did before 1.36).  Set only for the versions
#: where both gates exist and may be turned off (:func:`_feature_gates`); a tenant's own
#: ``extraArgs.apiserver.feature-gates`` replaces this value as a whole.
TENANT_APISERVER_GATES = "APIServerIdentity=false,UnknownVersionInteroperabilityProxy=false"
#: Kubernetes minors (1.x) whose apiserver accepts :data:`TENANT_APISERVER_GATES` (UnknownVersionInteroperabilityProxy
#: exists since 1.28; APIServerIdentity is beta, not locked, through 1.36).
IDENTITY_GATE_MINORS = range(28, 37)

#: etcd flags of every tenant's own etcd, one member (issue 16, docs/benchmarks-syncer.md round 10); ``extraArgs.etcd``
#: overrides them.  ``election-timeout=500`` (the shortest etcd takes with the default 100-ms heartbeat): a new
#: member advances all but one tick of its election timeout and then waits a random 1 to 10 ticks before it
#: elects itself; with 5 it waits 1 to 5, and the step "etcd started → healthy" of a Tenant's start fell from
#: 0.69 s to 0.39 s (median of 4 each), at no idle cost (the heartbeat, what ticks, is unchanged).  A single
#: voter never loses its leadership to a slow disk: there is nobody to call an election.  Not kept: a 200-ms
#: heartbeat (-0.08 % of a core, but it needs a 1-s election timeout: +0.3 s to Ready again) and
#: ``backend-batch-interval=1s`` (-0.05 %: within one run's noise).
TENANT_ETCD_LEAN: Mapping[str, str] = {"election-timeout": "500"}

#: Go runtime settings a tenant's ``extraArgs`` may carry next to the flags of a component: no Kubernetes
#: component or etcd has a flag of these names, so the key is taken as the Go runtime's environment
#: variable (``extraArgs.apiserver: {gomaxprocs: "1"}`` starts kube-apiserver with ``GOMAXPROCS=1``).
#: Values: a positive integer (``GOGC`` also ``off``).
GO_RUNTIME_KEYS = {"gomaxprocs": "GOMAXPROCS", "gogc": "GOGC"}
#: The Go runtime settings of every tenant component unless ``extraArgs`` sets them (issue 16, measured in
#: docs/benchmarks-syncer.md round 8): ``GOMAXPROCS=1``, one P per process.  An idle tenant's three
#: processes burnt 0.29 % of a core less (1.55 → 1.26 %, each of the three ~0.1 %: fewer idle Ps spinning
#: for work, GC on one thread), same memory, same time to Ready.  The price: a tenant component runs Go
#: code on one core at a time; a large tenant takes it back with ``extraArgs.apiserver: {gomaxprocs: "2"}``.
#: ``GOGC=400`` was not kept: -0.07 % (noise) for +120 MiB per tenant apiserver.
TENANT_GO_RUNTIME: Mapping[str, str] = {"gomaxprocs": "1"}

#: Flags that wire components and PKI together; extraArgs must not override them.
PROTECTED_FLAGS = frozenset(
    {
        "etcd-servers", "etcd-cafile", "etcd-certfile", "etcd-keyfile", "etcd-prefix",
        "secure-port", "bind-address", "tls-cert-file", "tls-private-key-file", "client-ca-file",
        "service-account-issuer", "service-account-key-file", "service-account-signing-key-file",
        "service-account-private-key-file", "kubelet-client-certificate", "kubelet-client-key",
        "kubelet-certificate-authority", "kubeconfig", "root-ca-file", "cluster-signing-cert-file",
        "cluster-signing-key-file", "data-dir",
    }
)


#: etcd flags that wire it to its apiserver and health check, or would open it beyond loopback (metrics
#: without authentication); ``extraArgs.etcd`` must not set them.
PROTECTED_ETCD_FLAGS = frozenset(
    {
        "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
        "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state", "cert-file", "key-file",
        "trusted-ca-file", "client-cert-auth", "peer-cert-file", "peer-key-file", "peer-trusted-ca-file",
        "peer-client-cert-auth", "auto-tls", "peer-auto-tls", "listen-metrics-urls",
    }
)


def resolve_version(tenant: TenantSpec, cluster_version: ClusterVersionSpec | None) -> str:
    if cluster_version is not None:
        return cluster_version.version
    return tenant.control_plane.version or DEFAULT_KUBE_VERSION


def _feature_gates(version: str) -> dict[str, str]:
    """The apiserver's ``feature-gates`` for ``version``: :data:`TENANT_APISERVER_GATES` where it is known to
    start (:data:`IDENTITY_GATE_MINORS`), nothing for other versions."""
    release = kube_release(version)
    ok = release is not None and release.major == 1 and release.minor in IDENTITY_GATE_MINORS
    return {"feature-gates": TENANT_APISERVER_GATES} if ok else {}


def _go_runtime(*extras: tuple[str, Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    """The Go runtime environment of one component: :data:`TENANT_GO_RUNTIME`, then each ``extras``' keys of
    :data:`GO_RUNTIME_KEYS` (validated; a later source wins)."""
    env = {GO_RUNTIME_KEYS[k]: v for k, v in TENANT_GO_RUNTIME.items()}
    for where, extra in extras:
        for key, value in extra.items():
            if key not in GO_RUNTIME_KEYS:
                continue
            ok = (value.isdigit() and int(value) > 0) or (key == "gogc" and value == "off")
            if not ok:
                allowed = "a positive integer or off" if key == "gogc" else "a positive integer"
                raise SpecError(f"{where}.{key}: {value!r} is not {allowed} (the Go runtime's {GO_RUNTIME_KEYS[key]})")
            env[GO_RUNTIME_KEYS[key]] = value
    return tuple(sorted(env.items()))


def _merge(
    base: Mapping[str, str], *extras: tuple[str, Mapping[str, str]], protected: frozenset[str] = PROTECTED_FLAGS,
) -> tuple[str, ...]:
    flags = dict(base)
    for where, raw in extras:
        extra = {k: v for k, v in raw.items() if k not in GO_RUNTIME_KEYS}
        bad = sorted(set(extra) & protected)
        if bad:
            raise SpecError(f"{where}: flags {', '.join(bad)} are set by the operator and cannot be overridden")
        flags.update(extra)
    return tuple(f"--{k}={v}" for k, v in flags.items())


def build(
    *,
    tenant_name: str,
    cluster_key: str,
    tenant: TenantSpec,
    cluster_version: ClusterVersionSpec | None,
    layout: cp.Layout,
    registry: str = DEFAULT_REGISTRY,
    etcd_image: str | None = None,
) -> cp.ControlPlaneSpec:
    """The control plane of one tenant for one backend layout (pure).

    Images a ClusterVersion does not name: ``<registry>/kube-apiserver:<version>`` (and
    kube-controller-manager), etcd ``etcd_image`` or else ``<registry>/etcd:``:data:`DEFAULT_ETCD_TAG`.
    """
    version = resolve_version(tenant, cluster_version)
    images = cluster_version.images if cluster_version is not None else None
    pki = layout.pki_dir.rstrip("/")

    def f(name: str) -> str:
        return f"{pki}/{name}"

    etcd_prefix = layout.etcd_prefix
    etcd_ca, etcd_cert, etcd_key = layout.etcd_client_files or (
        f(cp.crt(cp.ETCD_CA)), f(cp.crt(cp.APISERVER_ETCD_CLIENT)), f(cp.key(cp.APISERVER_ETCD_CLIENT)))
    etcd_flags = {
        "name": "tenant",
        "data-dir": layout.etcd_data_dir,
        "listen-client-urls": layout.etcd_listen_client_url,
        "advertise-client-urls": layout.etcd_client_url,
        "listen-peer-urls": layout.etcd_peer_url,
        "initial-advertise-peer-urls": layout.etcd_peer_url,
        "initial-cluster": f"tenant={layout.etcd_peer_url}",
        "initial-cluster-state": "new",
        "cert-file": f(cp.crt(cp.ETCD_SERVER)),
        "key-file": f(cp.key(cp.ETCD_SERVER)),
        "trusted-ca-file": f(cp.crt(cp.ETCD_CA)),
        "client-cert-auth": "true",
        "log-level": "warn",
        **TENANT_ETCD_LEAN,
    }
    apiserver_flags = {
        "etcd-servers": layout.etcd_client_url,
        "etcd-cafile": etcd_ca,
        "etcd-certfile": etcd_cert,
        "etcd-keyfile": etcd_key,
        "etcd-prefix": etcd_prefix,
        "bind-address": layout.apiserver_bind_address,
        "secure-port": str(layout.apiserver_port),
        "tls-cert-file": f(cp.crt(cp.APISERVER)),
        "tls-private-key-file": f(cp.key(cp.APISERVER)),
        "client-ca-file": f(cp.crt(cp.CA)),
        "service-account-issuer": SERVICE_ACCOUNT_ISSUER,
        "service-account-key-file": f(cp.SA_PUB_FILE),
        "service-account-signing-key-file": f(cp.SA_KEY_FILE),
        "service-cluster-ip-range": SERVICE_CIDR,
        "authorization-mode": "RBAC",
        "allow-privileged": "true",
        "kubelet-client-certificate": f(cp.crt(cp.APISERVER_KUBELET_CLIENT)),
        "kubelet-client-key": f(cp.key(cp.APISERVER_KUBELET_CLIENT)),
        "kubelet-certificate-authority": f(cp.crt(cp.KUBELET_CA)),
        "kubelet-preferred-address-types": "InternalIP,Hostname",
        "profiling": "false",
        **TENANT_APISERVER_LEAN,
        **_feature_gates(version),
        **({"etcd-compaction-interval": layout.etcd_compaction_interval}
           if layout.etcd_compaction_interval is not None else {}),
    }
    cm_flags = {
        "kubeconfig": layout.cm_kubeconfig,
        "secure-port": "0",
        "leader-elect": "false",
        "controllers": TENANT_CONTROLLERS,
        "use-service-account-credentials": "true",
        "root-ca-file": f(cp.crt(cp.CA)),
        "service-account-private-key-file": f(cp.SA_KEY_FILE),
        "cluster-signing-cert-file": f(cp.crt(cp.CA)),
        "cluster-signing-key-file": f(cp.key(cp.CA)),
        "service-cluster-ip-range": SERVICE_CIDR,
        "allocate-node-cidrs": "false",
        "cluster-name": cluster_key,
        **TENANT_CM_QPS,
    }
    cv_api: Mapping[str, str] = cluster_version.apiserver_args if cluster_version else {}
    cv_cm: Mapping[str, str] = cluster_version.controller_manager_args if cluster_version else {}
    cpl = tenant.control_plane
    registry = registry.rstrip("/")
    apiserver = cp.Component(
        name=cp.APISERVER_COMPONENT,
        image=(images.apiserver if images and images.apiserver else f"{registry}/kube-apiserver:{version}"),
        args=_merge(
            apiserver_flags,
            ("ClusterVersion spec.apiserver.extraArgs", cv_api),
            ("spec.controlPlane.extraArgs.apiserver", cpl.apiserver_args),
        ),
        env=_go_runtime(("ClusterVersion spec.apiserver.extraArgs", cv_api),
                        ("spec.controlPlane.extraArgs.apiserver", cpl.apiserver_args)),
    )
    controller_manager = cp.Component(
        name=cp.CM_COMPONENT,
        image=(
            images.controller_manager
            if images and images.controller_manager
            else f"{registry}/kube-controller-manager:{version}"
        ),
        args=_merge(
            cm_flags,
            ("ClusterVersion spec.controllerManager.extraArgs", cv_cm),
            ("spec.controlPlane.extraArgs.controllerManager", cpl.controller_manager_args),
        ),
        env=_go_runtime(("ClusterVersion spec.controllerManager.extraArgs", cv_cm),
                        ("spec.controlPlane.extraArgs.controllerManager", cpl.controller_manager_args)),
    )
    etcd = cp.Component(
        name=cp.ETCD_COMPONENT,
        image=images.etcd if images and images.etcd else (etcd_image or f"{registry}/etcd:{DEFAULT_ETCD_TAG}"),
        args=_merge(etcd_flags, ("spec.controlPlane.extraArgs.etcd", cpl.etcd_args), protected=PROTECTED_ETCD_FLAGS),
        env=_go_runtime(("spec.controlPlane.extraArgs.etcd", cpl.etcd_args)),
    )
    host_dns, host_ips = _split_host(cpl.expose.host)
    certs = (
        cp.CertRequest(
            name=cp.APISERVER, ca=cp.CA, common_name="kube-apiserver", server=True,
            dns_names=tuple(dict.fromkeys((*layout.apiserver_dns_names, *host_dns))),
            ips=tuple(dict.fromkeys((*layout.apiserver_ips, *host_ips))),
        ),
        cp.CertRequest(
            name=cp.ETCD_SERVER, ca=cp.ETCD_CA, common_name="etcd", server=True, client_auth=True,
            dns_names=("localhost", *layout.etcd_dns_names), ips=("127.0.0.1",),
        ),
        cp.CertRequest(name=cp.APISERVER_ETCD_CLIENT, ca=cp.ETCD_CA, common_name="kube-apiserver-etcd-client"),
        cp.CertRequest(
            name=cp.APISERVER_KUBELET_CLIENT, ca=cp.KUBELET_CA, common_name=cluster_key,
            organizations=(naming.KUBELET_CLIENT_GROUP,),
        ),
        cp.CertRequest(name=cp.ADMIN, ca=cp.CA, common_name=cp.ADMIN_USER, organizations=(cp.ADMIN_GROUP,)),
        cp.CertRequest(name=cp.CONTROLLER_MANAGER, ca=cp.CA, common_name="system:kube-controller-manager"),
    )
    return cp.ControlPlaneSpec(
        tenant_name=tenant_name,
        cluster_key=cluster_key,
        version=version,
        backend=cpl.backend or DEFAULT_BACKEND,  # the operator resolves it first (reconcile.resolve_backend)
        replicas=cpl.replicas,
        expose_type=cpl.expose.type,
        etcd_prefix=etcd_prefix,
        endpoint=layout.endpoint,
        internal_endpoint=layout.internal_endpoint,
        etcd=etcd,
        apiserver=apiserver,
        controller_manager=controller_manager,
        certs=certs,
        etcd_storage=cp.EtcdStorage(size=cpl.storage.size, storage_class=cpl.storage.storage_class_name),
    )


def _split_host(host: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not host:
        return (), ()
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return (host,), ()
    return (), (host,)
