"""The local backend on real binaries: start, re-adopt, replace on change, destroy.

No super cluster needed: this is the part of the operator that must never
leave a duplicate or an orphan process behind, checked on its own.
"""

from __future__ import annotations

import subprocess
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
