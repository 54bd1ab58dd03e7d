"""Every manifest in manifests/ is accepted by a real kube-apiserver (server-side dry-run).

Why: a typo in a Deployment or a ClusterRole is only found by the apiserver
that validates it.  The CRDs are applied for real first (a Tenant sample
cannot be validated without its CRD), the rest of the kustomization and the
samples are sent with ``--dry-run=server`` so the shared session cluster is
left as it was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e.conftest import SuperCluster

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"

pytestmark = pytest.mark.e2e


def _kinds(rendered: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in rendered.splitlines() if line.startswith("kind:")]


def test_kustomization_passes_server_side_dry_run(super_cluster: SuperCluster) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    kinds = _kinds(rendered)
    # the installation has what the issue asks for: CRDs, RBAC, the three Deployments, the metrics Service
    for kind, count in (("CustomResourceDefinition", 2), ("Deployment", 3), ("ClusterRole", 3),
                        ("ServiceAccount", 3), ("Namespace", 1)):
        assert kinds.count(kind) == count, f"{kind}: {kinds.count(kind)} in the kustomization"

    # CRDs and the namespace for real (CRs and namespaced objects cannot be dry-run without them)
    super_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(MANIFESTS / "crds"))
    super_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/tenants.tenancy.virtualcluster.dev", "crd/clusterversions.tenancy.virtualcluster.dev")
    super_cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "base" / "namespace.yaml"))

    out = super_cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS)).stdout
    applied = [line for line in out.splitlines() if line.strip()]
    assert len(applied) == len(kinds), out
    assert all("(server dry run)" in line for line in applied), out

    samples = super_cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS / "samples")).stdout
    assert samples.count("(server dry run)") == 3, samples


def test_dry_run_catches_a_broken_manifest(super_cluster: SuperCluster, tmp_path: Path) -> None:
    """The check above can fail: the same dry-run refuses a Tenant that breaks the schema."""
    super_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(MANIFESTS / "crds"))
    super_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/tenants.tenancy.virtualcluster.dev")
    bad = (MANIFESTS / "samples" / "tenant.yaml").read_text().replace("podSecurity: restricted",
                                                                     "podSecurity: lax")
    path = tmp_path / "bad-tenant.yaml"
    path.write_text(bad)
    proc = super_cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert proc.returncode != 0
    assert "podSecurity" in proc.stderr
