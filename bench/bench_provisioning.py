"""How long from ``kubectl apply`` of a Tenant to the tenant apiserver answering kubectl.

Why: the operator adds work around starting the components (validation, PKI
in Secrets, owners binding, waiting for kube-controller-manager's default
ServiceAccount, status).  This script measures that overhead against the
floor on the same machine in the same run: the same etcd + kube-apiserver +
kube-controller-manager started directly by the ``local`` backend with a
ready PKI, until kubectl answers.  Not a test: it prints both times and the
ratio.

    python bench/bench_provisioning.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402

from tenant_crd import TenantSpec  # noqa: E402
from vcluster import naming, pki  # noqa: E402
from vcluster.controlplane import builder, certs  # noqa: E402
from vcluster.controlplane import spec as cp  # noqa: E402
from vcluster.controlplane.local import LocalBackend  # noqa: E402
from vcluster.settings import BinarySettings  # noqa: E402
from vcluster.testbed import LocalSuperCluster, TestbedSettings  # noqa: E402


def kubectl_ok(kubeconfig: Path) -> bool:
    got = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "get", "ns", "default", "-o", "name"],
                         capture_output=True, text=True, check=False, timeout=30)
    return got.returncode == 0


def bare_start(work: Path, binaries: BinarySettings, index: int) -> float:
    """The floor: the local backend starts the same components from a ready PKI; until kubectl answers."""
    backend = LocalBackend(state_dir=work / "bare", binary_settings=binaries)
    key = f"bare{index}-000000"
    plane = builder.build(tenant_name=f"bare{index}", cluster_key=key, tenant=TenantSpec.from_dict({}),
                          cluster_version=None, layout=backend.layout(key))
    files, _ = certs.complete_pki({}, plane.certs, kubelet_ca=pki.generate_ca(common_name="k"),
                                  tenant_name=f"bare{index}")
    cm = certs.kubeconfig_for(cp.CONTROLLER_MANAGER, server=plane.internal_endpoint, files=files, cluster_name=key)
    admin = work / f"{key}.kubeconfig"
    admin.write_text(certs.kubeconfig_for(cp.ADMIN, server=plane.endpoint, files=files, cluster_name=key))
    start = time.monotonic()
    try:
        backend.apply(plane, pki_files=files, cm_kubeconfig=cm)
        while not kubectl_ok(admin):
            time.sleep(0.05)
        return time.monotonic() - start
    finally:
        backend.destroy(key)


def tenant_start(super_kubeconfig: Path, work: Path, index: int) -> float:
    """Tenant object created → kubectl with the kubeconfig from the admin Secret answers."""
    k = ["kubectl", f"--kubeconfig={super_kubeconfig}"]
    name = f"bench{index}-{os.getpid() % 10000}"
    manifest = {"apiVersion": naming.API_VERSION, "kind": "Tenant", "metadata": {"name": name}, "spec": {}}
    start = time.monotonic()
    subprocess.run([*k, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True,
                   capture_output=True)
    admin = work / f"{name}.kubeconfig"
    try:
        while True:
            got = subprocess.run([*k, "get", "tenant", name, "-o", "json"], capture_output=True, text=True,
                                 check=True)
            status = json.loads(got.stdout).get("status") or {}
            ref = status.get("kubeconfigSecret")
            if ref:
                secret = subprocess.run([*k, "get", "secret", "-n", ref["namespace"], ref["name"], "-o", "json"],
                                        capture_output=True, text=True, check=False)
                if secret.returncode == 0:
                    admin.write_bytes(base64.b64decode(json.loads(secret.stdout)["data"]["kubeconfig"]))
                    if kubectl_ok(admin):
                        return time.monotonic() - start
            if time.monotonic() - start > 300:
                raise SystemExit(f"tenant {name} not serving after 300s: {status}")
            time.sleep(0.05)
    finally:
        subprocess.run([*k, "delete", "tenant", name, "--wait=true", "--timeout=120s"], capture_output=True,
                       check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    binaries = BinarySettings.from_env()
    work = workdir.make("vc-bench-provisioning-", keep=args.keep)
    testbed = LocalSuperCluster(TestbedSettings(state_dir=work / "super", nodes=1, binaries=binaries))
    testbed.start()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    op_log = (work / "operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "vcluster.operator", f"--kubeconfig={testbed.kubeconfig}",
         f"--state-dir={work / 'operator'}"], cwd=REPO, env=env, stdout=op_log, stderr=subprocess.STDOUT)
    try:
        while subprocess.run(["kubectl", f"--kubeconfig={testbed.kubeconfig}", "get", "tenants"],
                             capture_output=True, check=False).returncode != 0:
            time.sleep(0.2)
        bare, tenant = [], []
        for i in range(args.rounds):  # interleaved, so machine load drifts hit both alike
            bare.append(bare_start(work, binaries, i))
            tenant.append(tenant_start(testbed.kubeconfig, work, i))
            print(f"round {i + 1}: bare control plane {bare[-1]:.2f}s, tenant via operator {tenant[-1]:.2f}s")
        b, t = statistics.median(bare), statistics.median(tenant)
        print(f"median bare control plane start (etcd+apiserver+controller-manager → kubectl): {b:.2f}s")
        print(f"median Tenant create → tenant apiserver answers kubectl:                      {t:.2f}s")
        print(f"ratio tenant/bare: {t / b:.2f}")
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        for child in (work / "operator").iterdir() if (work / "operator").is_dir() else []:
            LocalBackend(state_dir=work / "operator", binary_settings=binaries).destroy(child.name)
        testbed.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
