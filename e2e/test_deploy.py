"""The installation an admin applies, running as pods on a real node.

Why this module exists: README tells admins to build the images and
``kubectl apply -k`` the manifests, and until this module that path had only
been dry-run.  Here it runs the way README says, on a test bed with one real
node (kubelet on containerd, no anonymous access, webhook authentication and
authorization): the images ``scripts/images`` builds are imported into the node,
``overlays/testbed`` (the manifests with those images and the real node's
placement) is applied, and the operator, the syncer and the kubelet proxy must
run from the project image, pass their probes, elect leaders, and hold exactly
the RBAC a committed table says they need.  Then the ``pods`` backend for real:
the local-path provisioner (``overlays/testbed-storage``) is the default
StorageClass, a Tenant with ``backend: pods`` gets etcd (on a claim),
kube-apiserver, kube-controller-manager and its DNS as pods that become Ready,
tenant kubectl works through the apiserver Service, the syncer pod runs a
tenant workload on the real node with logs and exec through the kubelet proxy
pods, and deleting the Tenant leaves nothing behind.

Costs: one test bed with one real node and no kwok node (a pod that does not
fit the real node stays Pending instead of "running" on kwok), the image build
(seconds when pip's cache is warm), five component pods, one provisioner and
one tenant control plane (six pods).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.conftest import SuperCluster, super_cluster_of
from e2e.syncer_fixtures import REPO, poll
from tenant_crd import models as tenant_models
from vcluster import imagebuild, images, naming, pki
from vcluster.controlplane import pods
from vcluster.controlplane import spec as cp
from vcluster.settings import BinarySettings

pytestmark = pytest.mark.e2e

OVERLAY = REPO / "overlays" / "testbed"
NS = naming.SYSTEM_NAMESPACE
#: Deployment -> (ServiceAccount, replicas the manifests ask for).
COMPONENTS = {"vc-operator": ("vc-operator", 1), "vc-syncer": ("vc-syncer", 2),
              "vc-kubelet-proxy": ("vc-kubelet-proxy", 2)}
TIMEOUT = 240.0


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def super_cluster(  # overrides the session fixture of conftest: one real node, no kwok node
    binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path],
) -> Iterator[SuperCluster]:
    yield from super_cluster_of(binary_settings, tmp_path_factory, component_logs, name="deploysuper", nodes=0,
                                real_nodes=1)


@pytest.fixture(scope="module")
def loaded_images(super_cluster: SuperCluster, binary_settings: BinarySettings,
                  tmp_path_factory: pytest.TempPathFactory) -> imagebuild.Built:
    """``scripts/images --load STATE_DIR``: every image built and imported into the real node."""
    out = tmp_path_factory.mktemp("images")
    proc = subprocess.run(
        [sys.executable, "-m", "vcluster.imagebuild", "--out", str(out),
         "--load", str(super_cluster.state_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, f"image build failed: {proc.stderr}"
    names = tuple(line.strip() for line in proc.stdout.splitlines() if line.startswith("  "))
    assert images.project_image_name(imagebuild.project_version()) in names
    assert "loaded into real-node-0" in proc.stdout, proc.stdout
    return imagebuild.Built(archive=out / "virtualcluster-images.tar", names=names)


def _pods_of(cluster: SuperCluster, deployment: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", NS, "-l", f"app.kubernetes.io/name={deployment}", "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def _diagnosis(cluster: SuperCluster) -> str:
    pods = cluster.kubectl("get", "pods", "-n", NS, "-o", "wide", check=False).stdout
    events = cluster.kubectl("get", "events", "-n", NS, "--sort-by=.lastTimestamp", check=False).stdout
    logs = []
    for deployment in COMPONENTS:
        for pod in _pods_of(cluster, deployment):
            name = pod["metadata"]["name"]
            for previous in ("--previous=false", "--previous=true"):
                got = cluster.kubectl("logs", "-n", NS, name, previous, "--tail=15", check=False)
                logs.append(f"--- {name} {previous}\n{got.stdout}{got.stderr}")
    return f"\n{pods}\n{events[-3000:]}\n" + "\n".join(logs)


@pytest.fixture(scope="module")
def installed(super_cluster: SuperCluster, loaded_images: imagebuild.Built) -> Iterator[SuperCluster]:
    """README's ``kubectl apply --server-side -k overlays/testbed``, then every Deployment available.

    Afterwards everything is removed again while the control plane still runs (tenants first, so the
    operator tears their control planes down; then the namespaces): the test bed's stop refuses to
    leave pods on a real node, and controllers would recreate any pod it drained.
    """
    super_cluster.kubectl("apply", "--server-side", "-k", str(OVERLAY), timeout=180)
    try:
        yield _wait_installed(super_cluster)
    finally:
        _uninstall(super_cluster)


def _uninstall(cluster: SuperCluster) -> None:
    cluster.kubectl("delete", "tenants", "--all", "--wait=true", "--timeout=180s", check=False, timeout=200)
    namespaces = [n["metadata"]["name"] for n in (_json(cluster, "namespaces") or {}).get("items", [])
                  if naming.LABEL_CLUSTER_KEY in (n["metadata"].get("labels") or {})]
    cluster.kubectl("delete", "namespace", "--ignore-not-found", "--wait=true", "--timeout=180s",
                    *namespaces, NS, "local-path-storage", check=False, timeout=200)
    with contextlib.suppress(OSError):
        shutil.rmtree(LOCAL_PATH_ROOT.parent)


def _wait_installed(super_cluster: SuperCluster) -> SuperCluster:
    def all_ready() -> bool:
        for deployment, (_, replicas) in COMPONENTS.items():
            pods = _pods_of(super_cluster, deployment)
            if len(pods) != replicas or not all(_ready(p) for p in pods):
                return False
        return True

    poll("operator, syncer and kubelet proxy pods Ready", all_ready, timeout=TIMEOUT,
         detail=lambda: _diagnosis(super_cluster))
    return super_cluster


# ---- the components as pods -------------------------------------------------------------------------


def test_components_run_from_the_project_image_and_pass_their_probes(installed: SuperCluster) -> None:
    project = images.project_image_name(imagebuild.project_version())
    for deployment, (account, replicas) in COMPONENTS.items():
        pods = _pods_of(installed, deployment)
        assert len(pods) == replicas, deployment
        for pod in pods:
            spec, status = pod["spec"], pod["status"]
            assert spec["nodeName"] == "real-node-0"
            assert spec["serviceAccountName"] == account
            (container,) = spec["containers"]
            assert container["image"] == project
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            (cstatus,) = status["containerStatuses"]
            assert cstatus["ready"] is True, cstatus
            assert "running" in cstatus["state"], cstatus
            assert cstatus["restartCount"] == 0, f"{pod['metadata']['name']} restarted: {cstatus}"
    # the process inside really is the project's, as the image's non-root user
    operator = _pods_of(installed, "vc-operator")[0]["metadata"]["name"]
    out = installed.kubectl("exec", "-n", NS, operator, "--", "python", "-c",
                            "import os, vcluster; print(os.getuid(), vcluster.__file__)").stdout.split()
    assert out == [str(images.PROJECT_UID), f"/{images.SITE_DIR}/vcluster/__init__.py"]


def _metric(cluster: SuperCluster, pod: str, name: str) -> float | None:
    """A sample of the pod's /metrics, read through the super apiserver's pod proxy."""
    text = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}:9090/proxy/metrics").stdout
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_exactly_one_leader_per_lease(installed: SuperCluster) -> None:
    """Two syncer replicas: the Lease names one of them, which syncs; the other stands by, still ready."""
    syncers = [p["metadata"]["name"] for p in _pods_of(installed, "vc-syncer")]
    assert len(syncers) == 2

    def holder(lease: str) -> str:
        got = installed.kubectl("get", "lease", "-n", NS, lease, "-o", "jsonpath={.spec.holderIdentity}", check=False)
        return got.stdout.strip()

    leader = poll("vc-syncer Lease held", lambda: holder("vc-syncer") in syncers and holder("vc-syncer"),
                  timeout=60)
    gauges = poll("both syncers report vc_syncer_leader",
                  lambda: (g := {p: _metric(installed, p, "vc_syncer_leader") for p in syncers})
                  and None not in g.values() and g, timeout=60)
    assert gauges == {p: (1.0 if p == leader else 0.0) for p in syncers}
    operators = [p["metadata"]["name"] for p in _pods_of(installed, "vc-operator")]
    assert poll("vc-operator Lease held", lambda: holder("vc-operator"), timeout=60).startswith(operators[0])
    assert _metric(installed, operators[0], "vc_operator_leader") == 1.0


# ---- least privilege -------------------------------------------------------------------------------

#: What each component needs, as ``group resource verbs [resourceName]`` (``""`` group: core), per scope:
#: ``*`` cluster-wide (every namespace), or one namespace.  Why each line is there is said in the
#: component's rbac.yaml; a grant there that is not here (or the other way round) fails the test.
NEEDS: dict[str, dict[str, str]] = {
    "vc-operator": {
        "*": """
            tenancy.virtualcluster.dev tenants get,list,watch,patch,update
            tenancy.virtualcluster.dev clusterversions get,list,watch,patch,update
            tenancy.virtualcluster.dev tenants/status get,patch,update
            apiextensions.k8s.io customresourcedefinitions get,list,watch
            "" namespaces get,list,watch,create,patch,update,delete
            "" secrets get,list,watch,create,patch,update,delete
            apps statefulsets get,list,watch,create,patch,update,delete
            apps deployments get,list,watch,create,patch,update,delete
            "" services get,list,watch,create,patch,update,delete
            "" configmaps get,list,watch,create,patch,update,delete
            "" pods get,list,watch
            "" resourcequotas get,list,watch,create,patch,update,delete
            "" limitranges get,list,watch,create,patch,update,delete
            networking.k8s.io networkpolicies get,list,watch,create,patch,update,delete
            "" events create,patch
            events.k8s.io events create,patch
            "" serviceaccounts get,create,patch,update
            "" serviceaccounts/token create
            discovery.k8s.io endpointslices get,list,watch,create,patch,update,delete
            rbac.authorization.k8s.io clusterroles get,create,patch,update,delete
            rbac.authorization.k8s.io clusterrolebindings get,create,patch,update,delete
            rbac.authorization.k8s.io clusterroles bind vc-tenant-dns
        """,
        NS: """
            coordination.k8s.io leases get,update,patch vc-operator
            coordination.k8s.io leases create
        """,
    },
    "vc-syncer": {
        "*": """
            tenancy.virtualcluster.dev tenants get,list,watch
            tenancy.virtualcluster.dev tenants/status get,patch
            "" namespaces get,list,watch,create,patch,update,delete
            "" pods get,list,watch,create,patch,update,delete
            "" services get,list,watch,create,patch,update,delete
            "" endpoints get,list,watch,create,patch,update,delete
            "" secrets get,list,watch,create,patch,update,delete
            "" configmaps get,list,watch,create,patch,update,delete
            "" serviceaccounts get,list,watch,create,patch,update,delete
            "" persistentvolumeclaims get,list,watch,create,patch,update,delete
            networking.k8s.io ingresses get,list,watch,create,patch,update,delete
            networking.k8s.io networkpolicies get,list,watch,create,patch,update,delete
            policy poddisruptionbudgets get,list,watch,create,patch,update,delete
            "" resourcequotas get,list,watch,create,patch,update,delete
            "" limitranges get,list,watch,create,patch,update,delete
            "" events get,list,watch
            "" nodes get,list,watch
            "" persistentvolumes get,list,watch
            events.k8s.io events get,list,watch
            storage.k8s.io storageclasses get,list,watch
            scheduling.k8s.io priorityclasses get,list,watch
        """,
        NS: """
            coordination.k8s.io leases get,update,patch vc-syncer
            coordination.k8s.io leases create
        """,
        "default": """
            "" events create,patch
        """,
    },
    "vc-kubelet-proxy": {
        "*": """
            "" pods get
            "" nodes get
            "" nodes/proxy get,create
        """,
        NS: """
            "" secrets get kubelet-proxy-ca
            "" secrets create
        """,
    },
}

Rule = tuple[str, str, str, str]  # group, resource, verb, resourceName ("" = any)


def _parse_needs(text: str) -> set[Rule]:
    out: set[Rule] = set()
    for line in text.strip().splitlines():
        group, resource, verbs, *name = line.split()
        out |= {(group.strip('"'), resource, verb, name[0] if name else "") for verb in verbs.split(",")}
    return out


def needed(account: str, namespace: str) -> set[Rule]:
    scopes = NEEDS[account]
    return _parse_needs(scopes["*"]) | _parse_needs(scopes.get(namespace, ""))


#: What the apiserver grants every authenticated identity (system:basic-user): not the manifests'.
_EVERYONE = {("authorization.k8s.io", "selfsubjectaccessreviews"), ("authorization.k8s.io", "selfsubjectrulesreviews"),
             ("authentication.k8s.io", "selfsubjectreviews")}


def granted(cluster: SuperCluster, account: str, namespace: str) -> set[Rule]:
    """What the apiserver says ``vc-system:<account>`` may do in ``namespace`` (a SelfSubjectRulesReview)."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": namespace}}
    # --validate=false: client-side validation would list CRDs as that account (the proxy may not)
    out = cluster.kubectl("create", "--validate=false", "-f", "-", "-o", "json",
                          f"--as=system:serviceaccount:{NS}:{account}", input=json.dumps(review)).stdout
    status = json.loads(out)["status"]
    assert not status.get("incomplete"), status
    rules: set[Rule] = set()
    for rule in status["resourceRules"]:
        for group in rule.get("apiGroups", [""]):
            for resource in rule["resources"]:
                if (group, resource) in _EVERYONE:
                    continue
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        rules.add((group, resource, verb, name))
    return rules


@pytest.mark.parametrize("account", list(NEEDS))
def test_service_accounts_hold_exactly_what_they_need(installed: SuperCluster, account: str) -> None:
    for namespace in (NS, "default", "some-tenant-namespace"):
        got, want = granted(installed, account, namespace), needed(account, namespace)
        assert got == want, (f"{account} in {namespace}: granted but not needed {sorted(got - want)}; "
                             f"needed but not granted {sorted(want - got)}")


def test_the_rules_review_sees_a_missing_or_extra_grant(installed: SuperCluster) -> None:
    """The comparison above can fail: the syncer holds no kubelet API, the proxy no Secret listing."""
    syncer = granted(installed, "vc-syncer", "some-tenant-namespace")
    assert ("", "nodes/proxy", "get", "") not in syncer
    assert ("", "pods", "create", "") in syncer
    proxy = granted(installed, "vc-kubelet-proxy", NS)
    assert ("", "secrets", "list", "") not in proxy
    assert ("", "secrets", "get", "kubelet-proxy-ca") in proxy
    assert needed("vc-kubelet-proxy", NS) != needed("vc-kubelet-proxy", "default")


# ---- the pods backend: a tenant's control plane as pods on the real node -------------------------------

STORAGE = REPO / "overlays" / "testbed-storage"
#: Where the test bed's local-path StorageClass keeps volumes (overlays/testbed-storage).
LOCAL_PATH_ROOT = Path("/var/lib/virtualcluster-testbed/local-path")
TENANT_OVERLAY = REPO / "overlays" / "testbed-tenant"
TENANT = "pods-e2e"


def _json(cluster: SuperCluster, *args: str) -> Any:
    got = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


@pytest.fixture(scope="module")
def storage(installed: SuperCluster) -> str:
    """README's storage step on the test bed: the local-path provisioner as the default StorageClass."""
    installed.kubectl("apply", "--server-side", "-k", str(STORAGE), timeout=120)
    poll("local-path provisioner Ready",
         lambda: any(_ready(p) for p in (_json(installed, "pods", "-n", "local-path-storage") or {}).get("items", [])),
         timeout=TIMEOUT, detail=lambda: installed.kubectl("get", "pods,events", "-n", "local-path-storage",
                                                            check=False).stdout)
    return "local-path"  # removed with everything else by ``installed``


@dataclass(frozen=True)
class PodsTenant:
    key: str
    status: dict[str, Any]
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"tenant kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc


@pytest.fixture(scope="module")
def pods_tenant(installed: SuperCluster, storage: str, tmp_path_factory: pytest.TempPathFactory) -> PodsTenant:
    """README's tenant step: ``kubectl apply -k overlays/testbed-tenant`` (a ClusterVersion of the built
    control-plane images, a Tenant with ``backend: pods``), then Ready, and its kubeconfig Secret."""
    installed.kubectl("apply", "-k", str(TENANT_OVERLAY))

    def ready() -> dict[str, Any] | None:
        obj = _json(installed, "tenant", TENANT)
        return obj if obj and tenant_models.is_ready(obj) else None

    def detail() -> str:
        obj = _json(installed, "tenant", TENANT) or {}
        key = (obj.get("status") or {}).get("clusterKey", "")
        pods = installed.kubectl("get", "pods,pvc,svc", "-n", key, "-o", "wide", check=False).stdout if key else ""
        events = installed.kubectl("get", "events", "-n", key, check=False).stdout[-2500:] if key else ""
        return f"\nstatus: {obj.get('status')}\n{pods}\n{events}{_diagnosis(installed)}"

    obj = poll(f"Tenant {TENANT} (backend pods) Ready", ready, timeout=420, interval=2, detail=detail)
    status = obj["status"]
    path = _host_kubeconfig(installed, status, tmp_path_factory.mktemp("podstenant") / "kubeconfig")
    return PodsTenant(key=status["clusterKey"], status=status, kubeconfig=path)


def _host_kubeconfig(installed: SuperCluster, status: dict[str, Any], path: Path) -> Path:
    """The tenant's kubeconfig Secret as it is now, written to ``path`` for kubectl on this host."""
    secret = _json(installed, "secret", "-n", status["kubeconfigSecret"]["namespace"],
                   status["kubeconfigSecret"]["name"])
    text = base64.b64decode(secret["data"][naming.KUBECONFIG_SECRET_KEY]).decode()
    kubeconfig = yaml.safe_load(text)
    # The kubeconfig names the apiserver Service (a cluster DNS name); this host is a node, not a pod, so
    # it reaches the Service's ClusterIP through kube-proxy and checks the certificate for that name.
    svc = _json(installed, "svc", "-n", status["clusterKey"], "apiserver")
    server = urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://{svc['spec']['clusterIP']}:{server.port}"
    kubeconfig["clusters"][0]["cluster"]["tls-server-name"] = server.hostname
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def test_pods_backend_control_plane_runs_on_the_real_node(installed: SuperCluster, pods_tenant: PodsTenant) -> None:
    key = pods_tenant.key
    assert pods_tenant.status["backend"] == "pods"
    assert pods_tenant.status["endpoint"] == f"https://apiserver.{key}.svc:6443"

    def all_ready() -> bool:
        # the tenant DNS is not part of the Tenant's Ready: its pods may still be starting
        items = _json(installed, "pods", "-n", key)["items"]
        return bool(items) and all(_ready(p) for p in items)

    poll(f"every pod in {key} Ready", all_ready, timeout=TIMEOUT,
         detail=lambda: installed.kubectl("get", "pods", "-n", key, "-o", "wide", check=False).stdout)
    pods = _json(installed, "pods", "-n", key)["items"]
    by_component = {p["metadata"]["labels"].get("app.kubernetes.io/component", p["metadata"]["labels"].get(
        "app.kubernetes.io/name")): p for p in pods}
    for component in ("etcd", "apiserver", "controller-manager"):
        pod = next((p for p in pods if component in p["metadata"]["name"]), None)
        assert pod is not None, f"no {component} pod in {key}: {sorted(by_component)}"
        assert pod["spec"]["nodeName"] == "real-node-0"
        assert _ready(pod), pod["status"]
    assert all(p["spec"]["nodeName"] == "real-node-0" and _ready(p) for p in pods), [
        (p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    # etcd keeps its data on a volume the provisioner made for its claim
    (claim,) = _json(installed, "pvc", "-n", key)["items"]
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "local-path"
    volume = _json(installed, "pv", claim["spec"]["volumeName"])
    assert volume["spec"]["storageClassName"] == "local-path"
    # the kubeconfig Secret's server is the endpoint the Tenant reports
    secret = _json(installed, "secret", "-n", key, naming.kubeconfig_secret_name())
    text = base64.b64decode(secret["data"][naming.KUBECONFIG_SECRET_KEY]).decode()
    assert yaml.safe_load(text)["clusters"][0]["cluster"]["server"] == pods_tenant.status["endpoint"]


def test_tenant_kubectl_works_through_the_apiserver_service(pods_tenant: PodsTenant) -> None:
    pods_tenant.kubectl("create", "namespace", "shop")
    namespaces = pods_tenant.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/shop" in namespaces
    assert "namespace/kube-system" in namespaces


def test_syncer_pod_runs_a_tenant_workload_with_logs_and_exec(installed: SuperCluster,
                                                             pods_tenant: PodsTenant) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
           "spec": {"containers": [{"name": "main", "image": images.BUSYBOX_IMAGE,
                                    "command": ["sh", "-c", "echo hello-from-$(hostname); exec sleep 600"]}],
                    "terminationGracePeriodSeconds": 1}}
    subprocess.run(["kubectl", f"--kubeconfig={pods_tenant.kubeconfig}", "apply", "-f", "-"],
                   input=json.dumps(pod), capture_output=True, text=True, check=True, timeout=60)
    super_ns = naming.super_namespace(pods_tenant.key, "default")

    def running() -> bool:
        got = pods_tenant.kubectl("get", "pod", "hello", "-o", "jsonpath={.status.phase}", check=False)
        return got.stdout == "Running"

    poll("tenant pod Running", running, timeout=TIMEOUT,
         detail=lambda: installed.kubectl("get", "pods,events", "-n", super_ns, check=False).stdout
         + _diagnosis(installed))
    super_pod = _json(installed, "pod", "-n", super_ns, "hello")
    assert super_pod["spec"]["nodeName"] == "real-node-0"
    # logs and exec: tenant apiserver pod -> kubelet proxy pods (Service) -> the real kubelet
    assert "hello-from-hello" in pods_tenant.kubectl("logs", "hello", timeout=60).stdout
    out = pods_tenant.kubectl("exec", "hello", "--", "cat", "/proc/1/cmdline", timeout=60).stdout
    assert out.startswith("sleep")


def _busybox_pod(name: str, script: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                             "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": images.BUSYBOX_IMAGE, "command": ["sh", "-c", script]}],
                     "terminationGracePeriodSeconds": 1}}


def _addresses(out: str) -> list[str]:
    """The addresses busybox ``nslookup`` printed for the name (not the server's own)."""
    answer = out.split("Name:", 1)[1] if "Name:" in out else ""
    return [line.split()[-1] for line in answer.splitlines() if line.strip().startswith("Address")]


def test_tenant_dns_in_the_pods_backend(installed: SuperCluster, pods_tenant: PodsTenant) -> None:
    """Issue 11 on the pods backend: a tenant pod on the real node resolves its tenant's Service ``web``
    (short and full name) to the super copy's ClusterIP through the tenant's CoreDNS pods, connects to
    it by name, and ``kubernetes.default`` answers the tenant's own apiserver Service."""
    server = "while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-web\\n' | nc -l -p 8080; done"
    objects = [
        _busybox_pod("web-0", server, {"app": "web"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        _busybox_pod("client", "exec sleep 3600"),
    ]
    subprocess.run(["kubectl", f"--kubeconfig={pods_tenant.kubeconfig}", "apply", "-f", "-"],
                   input=yaml.safe_dump_all(objects), capture_output=True, text=True, check=True, timeout=60)
    super_ns = naming.super_namespace(pods_tenant.key, "default")
    def pods_ready() -> bool:
        return all(_ready(_json(installed, "pod", "-n", super_ns, pod) or {}) for pod in ("web-0", "client"))

    poll("super pods web-0 and client Ready", pods_ready, timeout=TIMEOUT,
         detail=lambda: installed.kubectl("get", "pods,events", "-n", super_ns, check=False).stdout)

    def sh(script: str) -> subprocess.CompletedProcess[str]:
        return installed.kubectl("exec", "-n", super_ns, "client", "--", "sh", "-c", script, check=False, timeout=60)

    conf = sh("cat /etc/resolv.conf").stdout
    assert f"nameserver {pods_tenant.status['dns']['clusterIP']}" in conf, conf
    web_ip = _json(installed, "svc", "-n", super_ns, "web")["spec"]["clusterIP"]
    apiserver_ip = _json(installed, "svc", "-n", pods_tenant.key, "apiserver")["spec"]["clusterIP"]
    # the first answer is awaited: the DNS pods and their Service are fresh (kube-proxy programs it
    # asynchronously); everything after is asserted as is
    poll("the tenant DNS answers web", lambda: _addresses(sh("nslookup -type=A web").stdout) == [web_ip],
         timeout=TIMEOUT, detail=lambda: sh("nslookup -type=A web").stdout + _json_text(installed, pods_tenant.key))
    for name, want in (("web", web_ip), ("web.default.svc.cluster.local", web_ip),
                       ("kubernetes.default.svc.cluster.local", apiserver_ip)):
        out = sh(f"nslookup -type=A {name}")
        assert _addresses(out.stdout) == [want], (name, out.stdout, out.stderr)
    got = sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 80")
    assert "hello-from-web" in got.stdout, got.stdout + got.stderr
    # in-cluster config as client libraries read it: the host and port the syncer set, the pod's token
    env = sh("echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT").stdout.strip()
    assert env == f"{pods.internal_host(pods_tenant.key)}:{pods.APISERVER_PORT}", env
    token = "$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
    api = sh(f'wget -q -O - --no-check-certificate --header "Authorization: Bearer {token}" '
             "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api")
    assert '"kind":"APIVersions"' in api.stdout.replace(" ", ""), api.stdout + api.stderr


def _json_text(cluster: SuperCluster, key: str) -> str:
    return cluster.kubectl("get", "pods,svc,configmap", "-n", key, "-o", "wide", check=False).stdout


def test_an_apiserver_upgrade_rolls_with_the_tenant_reachable(installed: SuperCluster, pods_tenant: PodsTenant,
                                                              loaded_images: imagebuild.Built) -> None:
    """A new apiserver image in the tenant's ClusterVersion rolls its kube-apiserver pods one at a time:
    tenant kubectl never fails and the Tenant stays Ready while the roll runs, and it ends with the new
    pods Ready.

    The change: there is one set of binaries here (v1.36.3), so the "new version" is a second tag of
    the same local image (``...:v1.36.3-rolled``, tagged in the real node's containerd).  What a version
    upgrade changes in the Deployment is exactly that, the container's image reference: a new pod
    template, a new ReplicaSet, the same rollout as for v1.36.4.  (etcd is a single member: changing its
    image stops it before its successor starts, the one place an upgrade interrupts a tenant; see
    vcluster/controlplane/pods.py.  It is not rolled here.)
    """
    key = pods_tenant.key
    old_image = images.component_image_name("kube-apiserver", imagebuild.component_version(
        "kube-apiserver", BinarySettings.from_env()))
    assert old_image in loaded_images.names
    new_image = f"{old_image}-rolled"
    for socket in imagebuild.node_sockets(installed.state_dir):
        subprocess.run(["ctr", "--address", str(socket), "-n", "k8s.io", "images", "tag", "--force",
                        old_image, new_image], capture_output=True, text=True, check=True, timeout=60)

    def apiserver_pods() -> list[dict[str, Any]]:
        selector = f"{pods.COMPONENT_LABEL}={cp.APISERVER_COMPONENT}"
        out = installed.kubectl("get", "pods", "-n", key, "-l", selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    before = apiserver_pods()
    assert [p["spec"]["containers"][0]["image"] for p in before] == [old_image]
    ref = _json(installed, "tenant", TENANT)["spec"]["controlPlane"]["clusterVersionRef"]
    installed.kubectl("patch", "clusterversion", ref, "--type=merge", "-p",
                      json.dumps({"spec": {"images": {"apiserver": new_image}}}))
    failures: list[str] = []
    not_ready: list[str] = []
    overlap = requests = 0
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"rollout not done in {TIMEOUT:.0f}s" + _json_text(installed, key)
        got = pods_tenant.kubectl("get", "namespaces", "-o", "name", check=False, timeout=30)
        requests += 1
        if got.returncode != 0 or "namespace/default" not in got.stdout:
            failures.append(got.stderr.strip()[-300:])
        tenant = _json(installed, "tenant", TENANT)
        if not tenant_models.is_ready(tenant):
            not_ready.append(str((tenant_models.ready_condition(tenant) or {}).get("reason")))
        now = apiserver_pods()
        running = {p["spec"]["containers"][0]["image"] for p in now}
        if running == {old_image, new_image}:
            overlap += 1  # old and new both there (one stopping or the other starting): the roll itself
        if running == {new_image} and all(_ready(p) and not p["metadata"].get("deletionTimestamp") for p in now):
            break
    assert failures == [], f"{len(failures)} of {requests} tenant requests failed during the roll: {failures}"
    assert not_ready == [], f"the Tenant left Ready during the roll: {not_ready}"
    assert overlap > 0, "the loop never saw old and new apiserver pods together"
    after = apiserver_pods()
    (pod,) = after
    assert _ready(pod), pod["status"]
    assert not {p["metadata"]["name"] for p in after} & {p["metadata"]["name"] for p in before}
    dep = _json(installed, "deployment", "-n", key, "apiserver")
    assert dep["status"]["updatedReplicas"] == dep["status"]["availableReplicas"] == 1, dep["status"]
    assert "namespace/default" in pods_tenant.kubectl("get", "namespaces", "-o", "name").stdout


def _set_operator_env(installed: SuperCluster, *assignments: str) -> None:
    """``kubectl set env`` on the operator Deployment, then its rollout done (a new operator pod leads)."""
    installed.kubectl("set", "env", "-n", NS, "deployment/vc-operator", *assignments)
    installed.kubectl("rollout", "status", "-n", NS, "deployment/vc-operator", f"--timeout={TIMEOUT:.0f}s",
                      timeout=TIMEOUT + 30)


def _client_serial(kubeconfig: Path) -> int:
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    return pki.serial_of(base64.b64decode(user["client-certificate-data"]))


def test_a_certificate_renewal_rolls_the_control_plane_pods(installed: SuperCluster, pods_tenant: PodsTenant,
                                                            tmp_path: Path) -> None:
    """The deployed operator renews the pods-backend tenant's certificates and rolls its pods.

    How the certificates come due: a second rollout of the operator in this test (``kubectl set env``)
    with a renewal window just wider than what is left of the tenant's leaf certificates, so every leaf
    is due at once, and a validity 15 minutes longer than that window, so the new leaves come due only
    after this module has ended (a short validity for the whole module would renew in the middle of the
    other tests, e.g. roll etcd during the apiserver upgrade that must not fail a request).  The env is
    taken off again at the end.
    """
    key = pods_tenant.key
    tenant = _json(installed, "tenant", TENANT)
    not_after = dt.datetime.fromisoformat(tenant["status"]["certificates"]["notAfter"].replace("Z", "+00:00"))
    window = int((not_after - dt.datetime.now(dt.UTC)).total_seconds()) + 30
    before = _json(installed, "deployment", "-n", key, "apiserver")
    old_hash = before["spec"]["template"]["metadata"]["annotations"][naming.ANN_INPUTS_HASH]
    old_pods = {p["metadata"]["uid"] for p in _json(installed, "pods", "-n", key)["items"]}
    old_serial = _client_serial(pods_tenant.kubeconfig)

    def renewal_events() -> list[dict[str, Any]]:
        got = _json(installed, "events", "-n", "default", "--field-selector",
                    f"involvedObject.name={TENANT},reason=CertificatesRenewed")
        return list((got or {}).get("items") or [])

    assert renewal_events() == []
    try:
        _set_operator_env(installed, f"VC_OPERATOR_CERT_VALIDITY={window + 900}s",
                          f"VC_OPERATOR_CERT_RENEW_BEFORE={window}s")
        events = poll("CertificatesRenewed Event", renewal_events, timeout=TIMEOUT, interval=2,
                      detail=lambda: _diagnosis(installed))
        message = events[0]["message"]
        for name in (cp.APISERVER, cp.ADMIN, cp.CONTROLLER_MANAGER, cp.ETCD_SERVER, cp.APISERVER_KUBELET_CLIENT):
            assert name in message, message
        assert "pods control plane" in message, message

        # the apiserver Deployment rolled: a new inputs hash in its template, new Ready pods
        def rolled() -> bool:
            dep = _json(installed, "deployment", "-n", key, "apiserver") or {}
            hashes = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations", {})
            st = dep.get("status") or {}
            done = st.get("updatedReplicas") == st.get("availableReplicas") == st.get("replicas") == 1
            current = st.get("observedGeneration") == (dep.get("metadata") or {}).get("generation")
            return bool(hashes.get(naming.ANN_INPUTS_HASH) not in (None, old_hash) and done and current)

        poll("the apiserver Deployment rolled with a new inputs hash", rolled, timeout=TIMEOUT, interval=2,
             detail=lambda: _json_text(installed, key))
        poll(f"Tenant {TENANT} Ready after the renewal",
             lambda: tenant_models.is_ready(_json(installed, "tenant", TENANT) or {}),
             timeout=TIMEOUT, interval=2, detail=lambda: _json_text(installed, key))

        def all_rolled() -> bool:  # each reads its certificates at start only: all three are new pods, Ready
            now = [p for p in _json(installed, "pods", "-n", key)["items"]
                   if not p["metadata"].get("deletionTimestamp")]
            for component in cp.COMPONENTS:  # (etcd is a StatefulSet: the same name etcd-0, a new uid)
                mine = [p for p in now if p["metadata"].get("labels", {}).get(pods.COMPONENT_LABEL) == component]
                if len(mine) != 1 or mine[0]["metadata"]["uid"] in old_pods or not _ready(mine[0]):
                    return False
            return True

        poll("new etcd, apiserver and controller-manager pods Ready", all_rolled, timeout=TIMEOUT, interval=2,
             detail=lambda: _json_text(installed, key))

        # the kubeconfig Secret holds the renewed client certificate, and tenant kubectl works with it
        renewed = PodsTenant(key=key, status=pods_tenant.status,
                             kubeconfig=_host_kubeconfig(installed, pods_tenant.status, tmp_path / "kubeconfig"))
        assert _client_serial(renewed.kubeconfig) != old_serial
        poll("tenant kubectl with the renewed kubeconfig",
             lambda: renewed.kubectl("get", "namespace", "default", check=False).returncode == 0, timeout=TIMEOUT)

        # the syncer (which re-read the kubeconfig Secret) still syncs: a pod made after the renewal runs
        pod = _busybox_pod("after-renewal", "echo renewed; exec sleep 600")
        subprocess.run(["kubectl", f"--kubeconfig={renewed.kubeconfig}", "apply", "-f", "-"],
                       input=json.dumps(pod), capture_output=True, text=True, check=True, timeout=60)
        super_ns = naming.super_namespace(key, "default")

        def running() -> bool:
            got = renewed.kubectl("get", "pod", "after-renewal", "-o", "jsonpath={.status.phase}", check=False)
            return got.stdout == "Running"

        poll("a pod made after the renewal Running", running, timeout=TIMEOUT,
             detail=lambda: installed.kubectl("get", "pods,events", "-n", super_ns, check=False).stdout)
        assert _json(installed, "pod", "-n", super_ns, "after-renewal")["spec"]["nodeName"] == "real-node-0"
        renewed.kubectl("delete", "pod", "after-renewal", "--wait=false")
    finally:
        _set_operator_env(installed, "VC_OPERATOR_CERT_VALIDITY-", "VC_OPERATOR_CERT_RENEW_BEFORE-")


def test_deleting_the_tenant_leaves_nothing(installed: SuperCluster, pods_tenant: PodsTenant) -> None:
    key = pods_tenant.key
    volumes_before = {v["metadata"]["name"] for v in _json(installed, "pv")["items"]
                      if (v["spec"].get("claimRef") or {}).get("namespace") == key}
    assert volumes_before, "etcd's volume should exist before the deletion"
    installed.kubectl("delete", "tenant", TENANT, "--wait=true", "--timeout=240s", timeout=300)

    def gone() -> bool:
        namespaces = [n["metadata"]["name"] for n in _json(installed, "namespaces")["items"]]
        volumes = {v["metadata"]["name"] for v in _json(installed, "pv")["items"]}
        return not [n for n in namespaces if n == key or n.startswith(key)] and not volumes & volumes_before

    poll("the tenant's namespaces and volumes gone", gone, timeout=TIMEOUT,
         detail=lambda: installed.kubectl("get", "ns,pv", check=False).stdout)
    selector = f"{naming.LABEL_CLUSTER_KEY}={key}"
    for kind in ("pods", "services", "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"):
        left = _json(installed, kind, "-A", "-l", selector)["items"]
        assert left == [], f"{kind} left: {[o['metadata']['name'] for o in left]}"
    # the provisioner's teardown helper removed the volume's folder on the node
    assert not any(LOCAL_PATH_ROOT.glob(f"*{key}*")), list(LOCAL_PATH_ROOT.iterdir())


# ---- the shipped samples ------------------------------------------------------------------------------

SAMPLES = REPO / "manifests" / "samples"
SAMPLES_OVERLAY = REPO / "overlays" / "testbed-samples"
SAMPLE_TENANTS = ("team-a", "team-b")


def _images_of(doc: dict[str, Any]) -> dict[str, str]:
    return dict((doc.get("spec") or {}).get("images") or {}) if doc["kind"] == "ClusterVersion" else {}


def test_the_shipped_samples_become_ready(installed: SuperCluster, storage: str,
                                          loaded_images: imagebuild.Built) -> None:
    """README's samples step: ``kubectl apply -k overlays/testbed-samples``, which is ``manifests/samples``
    with nothing changed but the ClusterVersion's image names (no registry serves registry.k8s.io here):
    both sample Tenants become Ready with their control planes from the built images.  ``team-a`` names no
    backend and no ClusterVersion: it gets ``pods`` (the operator runs in the cluster) and the images of
    the operator's ``VC_OPERATOR_IMAGE_REPOSITORY``/``VC_OPERATOR_ETCD_IMAGE`` (overlays/testbed)."""
    rendered = list(yaml.safe_load_all(installed.kubectl("kustomize", str(SAMPLES_OVERLAY)).stdout))
    shipped = {(d["kind"], d["metadata"]["name"]): d for f in sorted(SAMPLES.glob("*.yaml"))
               if f.name != "kustomization.yaml" for d in yaml.safe_load_all(f.read_text()) if d}
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == set(shipped)
    for doc in rendered:
        original = shipped[(doc["kind"], doc["metadata"]["name"])]
        if doc["kind"] == "ClusterVersion":
            assert set(_images_of(doc).values()) <= set(loaded_images.names), _images_of(doc)
            original = {**original, "spec": {**original["spec"], "images": _images_of(doc)}}
        assert doc == original, f"the overlay changed more than image names in {doc['kind']} {doc['metadata']}"
    installed.kubectl("apply", "-k", str(SAMPLES_OVERLAY))
    try:
        def ready() -> bool:
            return all(tenant_models.is_ready(_json(installed, "tenant", name)) for name in SAMPLE_TENANTS)

        poll("the sample Tenants Ready", ready, timeout=420, interval=2,
             detail=lambda: installed.kubectl("get", "tenants", "-o", "yaml", check=False).stdout[-4000:]
             + _diagnosis(installed))
        built = set(loaded_images.names)
        for name in SAMPLE_TENANTS:
            status = _json(installed, "tenant", name)["status"]
            assert status["backend"] == "pods", (name, status)
            pods_in = _json(installed, "pods", "-n", status["clusterKey"])["items"]
            used = {c["image"] for p in pods_in for c in p["spec"]["containers"]}
            assert used, name
            assert used <= built, (name, used - built)
    finally:
        installed.kubectl("delete", "-k", str(SAMPLES_OVERLAY), "--wait=true", "--timeout=240s", check=False,
                          timeout=300)
    left = [t["metadata"]["name"] for t in _json(installed, "tenants")["items"]]
    assert not set(left) & set(SAMPLE_TENANTS), left
