"""The installation an admin applies, running as pods on a real node.

Why this module exists: README tells admins to build the images and
``kubectl apply -k`` the manifests, and until this module that path had only
been dry-run.  Here it runs the way README says, on a test bed with one real
node (kubelet on containerd, no anonymous access, webhook authentication and
authorization): the images ``scripts/images`` builds are imported into the node,
``overlays/testbed`` (the manifests with those images and the real node's
placement) is applied, and the operator, the syncer and the kubelet proxy must
run from the project image, pass their probes, elect leaders, and hold exactly
the RBAC a committed table says they need.

Costs: one test bed with one real node and no kwok node (a pod that does not
fit the real node stays Pending instead of "running" on kwok), the image build
(seconds when pip's cache is warm) and five component pods.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import SuperCluster, running_super_cluster
from e2e.syncer_fixtures import REPO, poll
from vcluster import imagebuild, images, naming
from vcluster.settings import BinarySettings
from vcluster.testbed import TestbedSettings

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
    settings = TestbedSettings(state_dir=tmp_path_factory.mktemp("deploysuper"), nodes=0, real_nodes=1,
                               binaries=binary_settings)
    with running_super_cluster(settings, component_logs) as cluster:
        yield cluster


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
def installed(super_cluster: SuperCluster, loaded_images: imagebuild.Built) -> SuperCluster:
    """README's ``kubectl apply --server-side -k overlays/testbed``, then every Deployment available."""
    super_cluster.kubectl("apply", "--server-side", "-k", str(OVERLAY), timeout=180)

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
    out = cluster.kubectl("create", "-f", "-", "-o", "json", f"--as=system:serviceaccount:{NS}:{account}",
                          input=json.dumps(review)).stdout
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
