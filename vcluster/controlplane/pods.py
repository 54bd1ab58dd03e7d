"""The ``pods`` backend: a tenant's control plane as workloads in its root namespace.

Why: in a real deployment the tenant control planes run in the super cluster
itself.  :func:`render` turns the same :class:`~vcluster.controlplane.spec.ControlPlaneSpec`
the ``local`` backend runs into plain objects — an etcd StatefulSet with its
headless Service, a kube-apiserver Deployment with its Service (type from
``spec.controlPlane.expose``), a kube-controller-manager Deployment and the
controller-manager kubeconfig Secret — all mounting the PKI Secret the
operator keeps in the root namespace.  :class:`PodsBackend` applies them with
server-side apply (idempotent, so re-running after a crash is safe) and reads
their readiness back.

etcd keeps its data on a PersistentVolumeClaim made from the StatefulSet's
claim template (``spec.controlPlane.storage``: size, StorageClass), so a
rescheduled or restarted etcd pod finds the tenant's data again.  Claim
templates are immutable in Kubernetes: once the StatefulSet exists, the
reconciler renders the storage it already has (:func:`storage_of`) and reports
a differing spec (:func:`storage_change`) instead of failing every apply.  The
claims go with the StatefulSet (``persistentVolumeClaimRetentionPolicy``
``whenDeleted: Delete``) and with the root namespace on Tenant deletion.

Upgrades (a new version, image or flag from the Tenant or its ClusterVersion)
roll one pod at a time (:data:`APISERVER_STRATEGY`): a new kube-apiserver pod
starts and becomes Ready before an old one is told to stop, and an old one
keeps serving for :data:`APISERVER_SHUTDOWN_DELAY` after that while its
endpoint leaves the Service, so the tenant stays reachable throughout.  The
controller-manager is replaced (``Recreate``): it runs without leader
election, and two at once would run every controller twice; it serves no
requests, so the tenant stays reachable.  etcd is a single member: a change
of its pod (image, flags) stops the old pod before the new one starts on the
same volume, and for those seconds the tenant apiserver answers 5xx (its
``/readyz`` fails, so its Service has no ready endpoint): the one place an
upgrade interrupts the tenant.  Changing only the apiserver or the
controller-manager never touches etcd's pod.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tenant_crd.models import SpecError, parse_quantity
from vcluster import naming
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import BackendError
from vcluster.kube import ApiClient, Invalid
from vcluster.kube.resources import DEPLOYMENTS, SECRETS, SERVICES, STATEFULSETS, Resource

PKI_MOUNT = "/etc/virtualcluster/pki"
KUBECONFIG_MOUNT = "/etc/virtualcluster/kubeconfig"
ETCD_DATA = "/var/lib/etcd"
APISERVER_PORT = 6443
ETCD_PORT = 2379
ETCD_SERVICE = "etcd"
APISERVER_SERVICE = naming.TENANT_APISERVER_SERVICE
CM_NAME = "controller-manager"
FIELD_MANAGER = "vc-operator"
COMPONENT_LABEL = "app.kubernetes.io/component"
#: The etcd data volume: the claim template's name (claims are ``data-etcd-<ordinal>``).
DATA_VOLUME = "data"
#: The user the control-plane images run as (``vcluster.images.component_image``: 65534, nobody). The pod
#: runs as it with that group as ``fsGroup``, so the PKI and kubeconfig Secrets (mode 0440) and etcd's
#: data volume are readable by it and by nobody else in the pod.
COMPONENT_UID = 65534
SECRET_MODE = 0o440
#: The pod's own IP, which kube-apiserver advertises (pods have no default route to derive one from).
POD_IP_ENV = "POD_IP"
#: Claims are removed with the StatefulSet; a scale-down (never done: etcd runs one replica) keeps them.
PVC_RETENTION = {"whenDeleted": "Delete", "whenScaled": "Retain"}
#: kube-apiserver's rollout: a new pod Ready before an old one goes, never fewer ready than asked for.
APISERVER_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
#: How long a stopping kube-apiserver keeps serving (``--shutdown-delay-duration``) while its endpoint
#: leaves the Service and kube-proxy on every node stops sending new connections to it; its
#: ``/readyz`` fails meanwhile (the flag's documented purpose: let load balancers stop sending
#: traffic).  Without it the server starts its graceful termination at once, and new connections
#: still routed to it meet a closed listener.
APISERVER_SHUTDOWN_DELAY = 10
#: Grace of a stopping kube-apiserver pod: the delay above, then in-flight requests drain (watches
#: are closed; kube-apiserver's own limit for the rest is 60 s).
APISERVER_GRACE_SECONDS = APISERVER_SHUTDOWN_DELAY + 30


def internal_host(namespace: str) -> str:
    """The apiserver Service's in-cluster name: the host of the tenant's internal endpoint (what the
    syncer gives tenant pods as ``KUBERNETES_SERVICE_HOST``; the tenant DNS answers it)."""
    return f"{APISERVER_SERVICE}.{namespace}.svc"


def layout(namespace: str, *, host: str | None = None) -> cp.Layout:
    """Where things live inside the pods of one root namespace."""
    svc = internal_host(namespace)
    internal = f"https://{svc}:{APISERVER_PORT}"
    return cp.Layout(
        pki_dir=PKI_MOUNT,
        etcd_data_dir=ETCD_DATA,
        etcd_listen_client_url=f"https://0.0.0.0:{ETCD_PORT}",
        etcd_client_url=f"https://{ETCD_SERVICE}.{namespace}.svc:{ETCD_PORT}",
        etcd_peer_url="http://127.0.0.1:2380",
        apiserver_bind_address="0.0.0.0",
        apiserver_port=APISERVER_PORT,
        apiserver_dns_names=(
            APISERVER_SERVICE, f"{APISERVER_SERVICE}.{namespace}", svc, f"{svc}.cluster.local",
            "kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost",
        ),
        apiserver_ips=("127.0.0.1",),
        endpoint=f"https://{host}:{APISERVER_PORT}" if host else internal,
        internal_endpoint=internal,
        cm_kubeconfig=f"{KUBECONFIG_MOUNT}/{cp.CM_KUBECONFIG_KEY}",
        etcd_dns_names=(ETCD_SERVICE, f"{ETCD_SERVICE}.{namespace}", f"{ETCD_SERVICE}.{namespace}.svc"),
    )


def _labels(spec: cp.ControlPlaneSpec, component: str) -> dict[str, str]:
    return {
        **naming.owner_labels(spec.cluster_key, spec.tenant_name, managed_by=naming.MANAGED_BY_OPERATOR),
        COMPONENT_LABEL: component,
    }


def _selector(spec: cp.ControlPlaneSpec, component: str) -> dict[str, str]:
    return {naming.LABEL_CLUSTER_KEY: spec.cluster_key, COMPONENT_LABEL: component}


def inputs_hash(comp: cp.Component, pki_files: Mapping[str, bytes], *, extra: str = "") -> str:
    """A digest of the PKI files ``comp``'s flags name (and ``extra``, the controller-manager's kubeconfig):
    what the component reads at start only, so a renewal must roll its pods (pure)."""
    digest = hashlib.sha256()
    prefix = f"{PKI_MOUNT}/"
    for arg in comp.args:
        _, sep, value = arg.partition("=")
        if sep and value.startswith(prefix):
            name = value[len(prefix):]
            digest.update(name.encode() + b"\0" + pki_files.get(name, b"") + b"\0")
    digest.update(extra.encode())
    return digest.hexdigest()[:32]


def _env(comp: cp.Component) -> list[dict[str, Any]]:
    """The container's environment: the component's Go runtime settings."""
    return [{"name": name, "value": value} for name, value in comp.env]


def _pod_template(
    spec: cp.ControlPlaneSpec, comp: cp.Component, *, volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]], ports: list[dict[str, Any]], probe: dict[str, Any] | None,
    placement: Mapping[str, Any], inputs: str, grace_seconds: int | None = None,
) -> dict[str, Any]:
    command = [comp.name, *comp.args]
    container: dict[str, Any] = {
        "name": comp.name,
        "image": comp.image,
        "command": command,
        "ports": ports,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if comp.env:
        container["env"] = _env(comp)
    if comp.name == cp.APISERVER_COMPONENT and not any(a.startswith("--advertise-address") for a in comp.args):
        # kube-apiserver derives the address it advertises (the tenant's `kubernetes` Endpoints) from the
        # default route, which a pod may not have (the test bed's pods have none): give it the pod's IP.
        container["env"] = [*container.get("env", []),
                            {"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        command.append(f"--advertise-address=$({POD_IP_ENV})")
    delay_set = any(a.startswith("--shutdown-delay-duration") for a in comp.args)
    if comp.name == cp.APISERVER_COMPONENT and not delay_set:
        command.append(f"--shutdown-delay-duration={APISERVER_SHUTDOWN_DELAY}s")
    if probe is not None:
        container["readinessProbe"] = probe
    security = {"runAsNonRoot": True, "runAsUser": COMPONENT_UID, "runAsGroup": COMPONENT_UID,
                "fsGroup": COMPONENT_UID, "seccompProfile": {"type": "RuntimeDefault"}}
    pod: dict[str, Any] = {"automountServiceAccountToken": False, "securityContext": security,
                           "containers": [container], "volumes": volumes, **placement}
    if grace_seconds is not None:
        pod["terminationGracePeriodSeconds"] = grace_seconds
    return {"metadata": {"labels": _labels(spec, comp.name), "annotations": {naming.ANN_INPUTS_HASH: inputs}},
            "spec": pod}


def _pki_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": "pki", "secret": {"secretName": cp.PKI_SECRET, "defaultMode": SECRET_MODE}},
        {"name": "pki", "mountPath": PKI_MOUNT, "readOnly": True},
    )


def claim_template(spec: cp.ControlPlaneSpec, storage: cp.EtcdStorage) -> dict[str, Any]:
    """The etcd StatefulSet's volume claim template (immutable once the StatefulSet exists).

    Its labels are the etcd selector's (themselves immutable), so no later label change can
    make the template differ from the one already stored.
    """
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class is not None:
        claim_spec["storageClassName"] = storage.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": _selector(spec, cp.ETCD_COMPONENT)},
        "spec": claim_spec,
    }


def storage_of(statefulset: Mapping[str, Any]) -> cp.EtcdStorage | None:
    """The etcd storage an existing StatefulSet has (``None``: an ``emptyDir``, no claim template)."""
    for tmpl in (statefulset.get("spec") or {}).get("volumeClaimTemplates") or []:
        if (tmpl.get("metadata") or {}).get("name") != DATA_VOLUME:
            continue
        claim_spec = tmpl.get("spec") or {}
        size = ((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")
        return cp.EtcdStorage(size=str(size), storage_class=claim_spec.get("storageClassName"))
    return None


def _same_size(a: str, b: str) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except SpecError:
        return a == b


def describe_storage(storage: cp.EtcdStorage | None) -> str:
    if storage is None:
        return "an emptyDir"
    return f"size {storage.size}, storageClassName {storage.storage_class or '(cluster default)'}"


def storage_change(wanted: cp.EtcdStorage | None, current: cp.EtcdStorage | None) -> str | None:
    """Why the existing etcd storage cannot become ``wanted`` (``None`` when they are the same)."""
    if wanted == current:
        return None
    if wanted is not None and current is not None and wanted.storage_class == current.storage_class \
            and _same_size(wanted.size, current.size):
        return None
    return (
        f"spec.controlPlane.storage asks for {describe_storage(wanted)} but etcd's StatefulSet {ETCD_SERVICE} "
        f"has {describe_storage(current)}; its volume claim template is immutable, so the change is not "
        "applied and etcd keeps its data where it is (moving it needs a backup and restore of etcd)"
    )


def render(
    spec: cp.ControlPlaneSpec, *, namespace: str, cm_kubeconfig: str, placement: Mapping[str, Any] | None = None,
    pki_files: Mapping[str, bytes] | None = None,
) -> list[dict[str, Any]]:
    """Every object of the control plane (besides the PKI Secret), in apply order; ``placement`` (the
    operator's ``nodeSelector``/``tolerations``) goes into every pod template, and each template is
    annotated with :func:`inputs_hash` of ``pki_files`` (the PKI Secret's content): a renewed
    certificate rolls exactly the components that read it."""
    placement = dict(placement or {})
    files = pki_files or {}
    pki_vol, pki_mount = _pki_volume()

    def meta(name: str, component: str) -> dict[str, Any]:
        return {"name": name, "namespace": namespace, "labels": _labels(spec, component)}

    storage = spec.etcd_storage
    etcd_spec: dict[str, Any] = {
        "replicas": 1,
        "serviceName": ETCD_SERVICE,
        "selector": {"matchLabels": _selector(spec, cp.ETCD_COMPONENT)},
        "template": _pod_template(
            spec, spec.etcd,
            # No claim template only for a StatefulSet made before them: keep its emptyDir as it is.
            volumes=[pki_vol] if storage is not None else [pki_vol, {"name": DATA_VOLUME, "emptyDir": {}}],
            mounts=[pki_mount, {"name": DATA_VOLUME, "mountPath": ETCD_DATA}],
            ports=[{"name": "client", "containerPort": ETCD_PORT}],
            probe={"tcpSocket": {"port": ETCD_PORT}, "periodSeconds": 5}, placement=placement,
            inputs=inputs_hash(spec.etcd, files),
        ),
        "persistentVolumeClaimRetentionPolicy": dict(PVC_RETENTION),
    }
    if storage is not None:
        etcd_spec["volumeClaimTemplates"] = [claim_template(spec, storage)]
    etcd = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(ETCD_SERVICE, cp.ETCD_COMPONENT),
        "spec": etcd_spec,
    }
    etcd_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(ETCD_SERVICE, cp.ETCD_COMPONENT),
        "spec": {
            "clusterIP": "None",
            "selector": _selector(spec, cp.ETCD_COMPONENT),
            "ports": [{"name": "client", "port": ETCD_PORT, "targetPort": ETCD_PORT}],
            "publishNotReadyAddresses": True,
        },
    }
    apiserver = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(APISERVER_SERVICE, cp.APISERVER_COMPONENT),
        "spec": {
            "replicas": spec.replicas,
            "strategy": APISERVER_STRATEGY,
            "selector": {"matchLabels": _selector(spec, cp.APISERVER_COMPONENT)},
            "template": _pod_template(
                spec, spec.apiserver, volumes=[pki_vol], mounts=[pki_mount],
                ports=[{"name": "https", "containerPort": APISERVER_PORT}],
                probe={"httpGet": {"path": "/readyz", "port": APISERVER_PORT, "scheme": "HTTPS"},
                       "periodSeconds": 5},
                placement=placement, grace_seconds=APISERVER_GRACE_SECONDS,
                inputs=inputs_hash(spec.apiserver, files),
            ),
        },
    }
    apiserver_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(APISERVER_SERVICE, cp.APISERVER_COMPONENT),
        "spec": {
            "type": spec.expose_type,
            "selector": _selector(spec, cp.APISERVER_COMPONENT),
            # 443 as well: ``https://kubernetes.default.svc`` without a port (curl, some tools) uses it
            "ports": [{"name": "https", "port": APISERVER_PORT, "targetPort": APISERVER_PORT},
                      {"name": "https-443", "port": 443, "targetPort": APISERVER_PORT}],
        },
    }
    cm_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(cp.CM_KUBECONFIG_SECRET, cp.CM_COMPONENT),
        "type": "Opaque",
        "stringData": {cp.CM_KUBECONFIG_KEY: cm_kubeconfig},
    }
    cm = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(CM_NAME, cp.CM_COMPONENT),
        "spec": {
            "replicas": 1,
            # no leader election (cm_flags): never two at once, the old one goes before the new one starts
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _selector(spec, cp.CM_COMPONENT)},
            "template": _pod_template(
                spec, spec.controller_manager,
                volumes=[pki_vol, {"name": "kubeconfig", "secret": {"secretName": cp.CM_KUBECONFIG_SECRET,
                                                                    "defaultMode": SECRET_MODE}}],
                mounts=[pki_mount, {"name": "kubeconfig", "mountPath": KUBECONFIG_MOUNT, "readOnly": True}],
                ports=[], probe=None, placement=placement,
                inputs=inputs_hash(spec.controller_manager, files, extra=cm_kubeconfig),
            ),
        },
    }
    return [etcd_svc, etcd, apiserver_svc, apiserver, cm_secret, cm]


_RESOURCES: dict[str, Resource] = {
    "StatefulSet": STATEFULSETS, "Deployment": DEPLOYMENTS, "Service": SERVICES, "Secret": SECRETS,
}


class PodsBackend:
    """Applies :func:`render` output to the super cluster and reads readiness back."""

    name = "pods"

    async def current_storage(self, api: ApiClient, *, namespace: str) -> tuple[bool, cp.EtcdStorage | None]:
        """Whether etcd's StatefulSet exists, and the storage it has (see :func:`storage_of`)."""
        sts = await api.get_or_none(STATEFULSETS, ETCD_SERVICE, namespace=namespace)
        return (sts is not None, storage_of(sts) if sts is not None else None)

    async def apply(self, api: ApiClient, objects: list[dict[str, Any]]) -> None:
        """Server-side apply every object; one the apiserver refuses is a :class:`BackendError`."""
        for obj in objects:
            meta = obj["metadata"]
            try:
                await api.patch(
                    _RESOURCES[obj["kind"]], meta["name"], obj, namespace=meta["namespace"],
                    patch_type="apply", field_manager=FIELD_MANAGER, force=True,
                )
            except Invalid as exc:
                raise BackendError(f"{obj['kind']} {meta['namespace']}/{meta['name']} refused: {exc}") from None

    async def progress(self, api: ApiClient, spec: cp.ControlPlaneSpec, *, namespace: str) -> list[str]:
        """What is not ready yet (empty when every workload is available)."""
        waiting: list[str] = []
        etcd = await api.get_or_none(STATEFULSETS, ETCD_SERVICE, namespace=namespace)
        if etcd is None or (etcd.get("status") or {}).get("readyReplicas", 0) < 1:
            waiting.append("etcd")
        for name, want in ((APISERVER_SERVICE, spec.replicas), (CM_NAME, 1)):
            dep = await api.get_or_none(DEPLOYMENTS, name, namespace=namespace)
            status = (dep or {}).get("status") or {}
            # a status older than the spec just applied (a new template) says nothing about the rollout
            stale = status.get("observedGeneration", 0) < ((dep or {}).get("metadata") or {}).get("generation", 0)
            if dep is None or stale or status.get("availableReplicas", 0) < want \
                    or status.get("updatedReplicas", 0) < want:
                waiting.append(name)
        return waiting

    async def serving(self, api: ApiClient, *, namespace: str) -> bool:
        """Whether the tenant is reachable while :meth:`progress` still waits: etcd ready and at least one
        kube-apiserver pod available (a rolling upgrade keeps them: :data:`APISERVER_STRATEGY`)."""
        etcd = await api.get_or_none(STATEFULSETS, ETCD_SERVICE, namespace=namespace)
        dep = await api.get_or_none(DEPLOYMENTS, APISERVER_SERVICE, namespace=namespace)
        etcd_ready = int(((etcd or {}).get("status") or {}).get("readyReplicas", 0))
        available = int(((dep or {}).get("status") or {}).get("availableReplicas", 0))
        return etcd_ready >= 1 and available >= 1
