"""The local backend's shared etcd on real binaries: two tenants in one etcd, each confined to its prefix.

Why a module of its own: the shared etcd (``VC_OPERATOR_SHARED_ETCD``, issue 16) is only worth its
idle-cost saving if etcd itself keeps one tenant apiserver out of another's keys, and if deleting a
tenant deletes its keys and nothing else.  Both are properties of real etcd auth and a real
kube-apiserver, shown here; no super cluster needed (the backend is driven directly, as in
e2e/test_operator_local_backend.py).
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from e2e.operator_fixtures import control_plane_processes
from tenant_crd import TenantSpec
from vcluster import naming, pki
from vcluster.controlplane import builder, certs, shared_etcd
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import LocalBackend
from vcluster.process import pick_free_port, processes_in
from vcluster.settings import BinarySettings

pytestmark = pytest.mark.e2e

ALPHA, BETA = "alpha-aaa111", "beta-bbb222"


def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    got = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                         check=False, timeout=60)
    if check:
        assert got.returncode == 0, f"kubectl {' '.join(args)}: {got.stderr}"
    return got


def _provision(backend: LocalBackend, key: str, tmp_path: Path) -> tuple[cp.ControlPlaneSpec, dict[str, bytes], Path]:
    name = key.partition("-")[0]
    plane = builder.build(tenant_name=name, cluster_key=key, tenant=TenantSpec.from_dict({}), cluster_version=None,
                          layout=backend.layout(key))
    files, _ = certs.complete_pki({}, plane.certs, kubelet_ca=pki.generate_ca(common_name="k"), tenant_name=name)
    cm = certs.kubeconfig_for(cp.CONTROLLER_MANAGER, server=plane.internal_endpoint, files=files, cluster_name=key)
    admin = tmp_path / f"{name}.kubeconfig"
    admin.write_text(certs.kubeconfig_for(cp.ADMIN, server=plane.endpoint, files=files, cluster_name=key))
    backend.apply(plane, pki_files=files, cm_kubeconfig=cm)
    return plane, files, admin


def _etcd_pids(backend: LocalBackend) -> list[int]:
    return [pid for pid, cmd in processes_in(backend.shared.root) if Path(cmd[0]).name == "etcd"]


def _https_get(port: int, path: str, pki_dir: Path) -> tuple[int, str] | None:
    ctx = ssl.create_default_context(cafile=str(pki_dir / cp.crt(cp.CA)))
    ctx.load_cert_chain(str(pki_dir / cp.crt(cp.ADMIN)), str(pki_dir / cp.key(cp.ADMIN)))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _intruder(
    plane: cp.ControlPlaneSpec, *, prefix: str, port: int, binary: Path, log: Path,
) -> subprocess.Popen[bytes]:
    """``plane``'s kube-apiserver -- its etcd credentials -- on another port, pointed at ``prefix``."""
    args = [a for a in plane.apiserver.args if not a.startswith(("--etcd-prefix=", "--secure-port="))]
    with log.open("wb") as fh:
        return subprocess.Popen([str(binary), *args, f"--etcd-prefix={prefix}", f"--secure-port={port}"],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **dict(plane.apiserver.env)}, start_new_session=True)


def test_two_tenants_share_one_etcd_each_confined_to_its_prefix_and_deleted_alone(
    binary_settings: BinarySettings, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    backend = LocalBackend(state_dir=state, binary_settings=binary_settings, shared_etcd=True)
    intruder: subprocess.Popen[bytes] | None = None
    try:
        alpha, _, alpha_kc = _provision(backend, ALPHA, tmp_path)
        beta, beta_files, beta_kc = _provision(backend, BETA, tmp_path)

        # one etcd for both tenants: none in a tenant's folder, one in the shared folder
        for key in (ALPHA, BETA):
            running = control_plane_processes(state, key)
            assert set(running) == {cp.APISERVER_COMPONENT, cp.CM_COMPONENT}, running
        assert len(_etcd_pids(backend)) == 1
        assert backend.healthy(alpha)
        assert backend.healthy(beta)

        # each tenant sees only its own objects
        _kubectl(alpha_kc, "create", "configmap", "only-alpha", "--from-literal=secret=alpha")
        _kubectl(beta_kc, "create", "configmap", "only-beta", "--from-literal=secret=beta")
        alpha_cms = _kubectl(alpha_kc, "get", "configmaps", "-o", "name").stdout.split()
        beta_cms = _kubectl(beta_kc, "get", "configmaps", "-o", "name").stdout.split()
        assert "configmap/only-alpha" in alpha_cms
        assert "configmap/only-alpha" not in beta_cms
        assert "configmap/only-beta" in beta_cms
        assert "configmap/only-beta" not in alpha_cms
        assert backend.shared.count(ALPHA) > 0
        assert backend.shared.count(BETA) > 0

        # etcd's auth, not only the prefix flag, keeps them apart: beta's apiserver with its own etcd
        # credentials, pointed at alpha's prefix, gets no alpha object (etcd: permission denied)
        port = pick_free_port()
        log = tmp_path / "intruder.log"
        intruder = _intruder(beta, prefix=naming.shared_etcd_prefix(ALPHA), port=port, log=log,
                             binary=backend.binaries_for(beta.version)[cp.APISERVER_COMPONENT])
        pki_dir = backend.tenant_dir(BETA) / "pki"
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and intruder.poll() is None:
            up = _https_get(port, "/livez/ping", pki_dir)
            if up is not None and up[0] == 200:
                answer = _https_get(port, "/api/v1/namespaces/default/configmaps/only-alpha", pki_dir)
                break
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert "permission denied" in text, text[-3000:]
        if answer is not None:  # it serves: the read failed, and alpha's data is not in the answer
            status, body = answer
            assert status != 200, body
            assert "alpha" not in body.replace("only-alpha", ""), body
        os.killpg(intruder.pid, signal.SIGKILL)
        intruder.wait(timeout=30)
        intruder = None
        _kubectl(beta_kc, "get", "configmap", "only-beta")  # beta's real apiserver still serves it

        # a restarted operator adopts the shared etcd; a dead one is reported and restarted with its data
        (pid,) = _etcd_pids(backend)
        again = LocalBackend(state_dir=state, binary_settings=binary_settings, shared_etcd=True)
        assert again.exited(BETA) == []
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while again.exited(BETA) != [cp.ETCD_COMPONENT]:
            assert time.monotonic() < deadline, again.exited(BETA)
            time.sleep(0.2)
        assert not again.healthy(beta)
        again.apply(beta, pki_files=beta_files, cm_kubeconfig=certs.kubeconfig_for(
            cp.CONTROLLER_MANAGER, server=beta.internal_endpoint, files=beta_files, cluster_name=BETA))
        assert _etcd_pids(again) != [pid]
        assert len(_etcd_pids(again)) == 1
        deadline = time.monotonic() + 60
        while _kubectl(beta_kc, "get", "configmap", "only-beta", check=False).returncode != 0:
            assert time.monotonic() < deadline, "beta's data not served after the shared etcd restarted"
            time.sleep(0.5)

        # deleting alpha deletes its keys, its user and its role, and nothing of beta's
        backend.destroy(ALPHA)
        assert backend.shared.count(ALPHA) == 0
        assert not backend.tenant_dir(ALPHA).exists()
        assert backend.shared.count(BETA) > 0
        assert _kubectl(beta_kc, "get", "configmap", "only-beta", "-o",
                        "jsonpath={.data.secret}").stdout == "beta"
        users = backend.shared.users()
        assert naming.shared_etcd_user(ALPHA) not in users
        assert naming.shared_etcd_user(BETA) in users
    finally:
        if intruder is not None:
            os.killpg(intruder.pid, signal.SIGKILL)
        for key in (ALPHA, BETA, shared_etcd.DIR):
            backend.destroy(key)
    assert processes_in(state) == []
