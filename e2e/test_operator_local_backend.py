"""The local backend on real binaries: start, re-adopt, replace on change, destroy.

No super cluster needed: this is the part of the operator that must never
leave a duplicate or an orphan process behind, checked on its own.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from e2e.operator_fixtures import control_plane_processes
from tenant_crd import TenantSpec
from vcluster import pki
from vcluster.controlplane import builder, certs
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import LocalBackend
from vcluster.process import read_cmdline
from vcluster.settings import BinarySettings

pytestmark = pytest.mark.e2e


def test_start_adopt_replace_destroy(binary_settings: BinarySettings, tmp_path: Path) -> None:
    backend = LocalBackend(state_dir=tmp_path / "state", binary_settings=binary_settings)
    key = "solo-abc123"

    def plane(extra: dict[str, str]) -> cp.ControlPlaneSpec:
        spec = TenantSpec.from_dict({"controlPlane": {"extraArgs": {"apiserver": extra}}})
        return builder.build(tenant_name="solo", cluster_key=key, tenant=spec, cluster_version=None,
                             layout=backend.layout(key))

    first = plane({})
    files, _ = certs.complete_pki({}, first.certs, kubelet_ca=pki.generate_ca(common_name="k"), tenant_name="solo")
    cm = certs.kubeconfig_for(cp.CONTROLLER_MANAGER, server=first.internal_endpoint, files=files, cluster_name=key)
    admin = tmp_path / "admin.kubeconfig"
    admin.write_text(certs.kubeconfig_for(cp.ADMIN, server=first.endpoint, files=files, cluster_name=key))
    try:
        backend.apply(first, pki_files=files, cm_kubeconfig=cm)
        started = control_plane_processes(backend.state_dir, key)
        assert {k: len(v) for k, v in started.items()} == dict.fromkeys(cp.COMPONENTS, 1)
        assert backend.healthy(first)
        got = subprocess.run(["kubectl", f"--kubeconfig={admin}", "get", "ns", "default"], capture_output=True,
                             text=True, check=False, timeout=60)
        assert got.returncode == 0, got.stderr
        # a watch cache for pods and for nothing else (builder.UNCACHED_RESOURCES), by the apiserver's own metric
        metrics = subprocess.run(["kubectl", f"--kubeconfig={admin}", "get", "--raw", "/metrics"], capture_output=True,
                                 text=True, check=True, timeout=60).stdout
        cached = set(re.findall(r'^watch_cache_capacity\{group="([^"]*)",resource="([^"]*)"\}', metrics, re.M))
        assert cached == {("", "pods")}

        # a second backend object (a restarted operator) adopts: same pids, same endpoint
        again = LocalBackend(state_dir=tmp_path / "state", binary_settings=binary_settings)
        assert again.layout(key) == backend.layout(key)
        again.apply(first, pki_files=files, cm_kubeconfig=cm)
        assert control_plane_processes(backend.state_dir, key) == started

        # a changed flag replaces exactly the apiserver; no duplicate survives
        second = plane({"v": "1"})
        assert not backend.healthy(second)
        backend.apply(second, pki_files=files, cm_kubeconfig=cm)
        now = control_plane_processes(backend.state_dir, key)
        assert {k: len(v) for k, v in now.items()} == dict.fromkeys(cp.COMPONENTS, 1)
        assert now["kube-apiserver"] != started["kube-apiserver"]
        assert now["etcd"] == started["etcd"]
        assert "--v=1" in (read_cmdline(now["kube-apiserver"][0]) or [])
        assert backend.healthy(second)
    finally:
        backend.destroy(key)
    assert control_plane_processes(backend.state_dir, key) == {}
    assert not backend.tenant_dir(key).exists()


def test_new_certificates_restart_exactly_the_components_that_read_them(
    binary_settings: BinarySettings, tmp_path: Path
) -> None:
    """Renewed files keep their names (same command lines): the inputs stamp tells which process to restart."""
    backend = LocalBackend(state_dir=tmp_path / "state", binary_settings=binary_settings)
    key = "renew-abc123"
    plane = builder.build(tenant_name="renew", cluster_key=key, tenant=TenantSpec.from_dict({}),
                          cluster_version=None, layout=backend.layout(key))
    files, _ = certs.complete_pki({}, plane.certs, kubelet_ca=pki.generate_ca(common_name="k"), tenant_name="renew")
    ca = pki.CertKeyPair(files[cp.crt(cp.CA)], files[cp.key(cp.CA)])
    etcd_ca = pki.CertKeyPair(files[cp.crt(cp.ETCD_CA)], files[cp.key(cp.ETCD_CA)])

    def kubeconfig(pki_files: dict[str, bytes]) -> str:
        return certs.kubeconfig_for(cp.CONTROLLER_MANAGER, server=plane.internal_endpoint, files=pki_files,
                                    cluster_name=key)

    def reissued(pki_files: dict[str, bytes], name: str, pair: pki.CertKeyPair) -> dict[str, bytes]:
        return {**pki_files, cp.crt(name): pair.cert_pem, cp.key(name): pair.key_pem}

    admin = tmp_path / "admin.kubeconfig"
    admin.write_text(certs.kubeconfig_for(cp.ADMIN, server=plane.endpoint, files=files, cluster_name=key))

    def controllers_running() -> bool:  # the controller-manager made the default ServiceAccount
        got = subprocess.run(["kubectl", f"--kubeconfig={admin}", "get", "sa", "default"], capture_output=True,
                             text=True, check=False, timeout=30)
        return got.returncode == 0

    def cm_log() -> str:
        path = backend.tenant_dir(key) / "logs" / "kube-controller-manager.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-15:]) if path.exists() else ""

    try:
        backend.apply(plane, pki_files=files, cm_kubeconfig=kubeconfig(files))
        deadline = time.monotonic() + 60
        while not controllers_running():
            assert time.monotonic() < deadline, cm_log()
            time.sleep(0.5)
        started = control_plane_processes(backend.state_dir, key)
        # the admin certificate is read by no component: nothing restarts
        files = reissued(files, cp.ADMIN, pki.issue_client_cert(ca, common_name="a", organizations=("system:masters",)))
        backend.apply(plane, pki_files=files, cm_kubeconfig=kubeconfig(files))
        assert control_plane_processes(backend.state_dir, key) == started
        # the apiserver's client certificate towards etcd: the apiserver alone
        files = reissued(files, cp.APISERVER_ETCD_CLIENT,
                         pki.issue_client_cert(etcd_ca, common_name="kube-apiserver-etcd-client"))
        backend.apply(plane, pki_files=files, cm_kubeconfig=kubeconfig(files))
        now = control_plane_processes(backend.state_dir, key)
        assert now["etcd"] == started["etcd"]
        assert now["kube-controller-manager"] == started["kube-controller-manager"], cm_log()
        assert now["kube-apiserver"] != started["kube-apiserver"]
        assert len(now["kube-apiserver"]) == 1
        # the controller-manager's certificate (its kubeconfig): the controller-manager alone
        files = reissued(files, cp.CONTROLLER_MANAGER, pki.issue_client_cert(
            ca, common_name="system:kube-controller-manager"))
        backend.apply(plane, pki_files=files, cm_kubeconfig=kubeconfig(files))
        after = control_plane_processes(backend.state_dir, key)
        assert after["kube-controller-manager"] != now["kube-controller-manager"]
        assert {k: v for k, v in after.items() if k != "kube-controller-manager"} == \
            {k: v for k, v in now.items() if k != "kube-controller-manager"}
        assert backend.healthy(plane)
    finally:
        backend.destroy(key)
