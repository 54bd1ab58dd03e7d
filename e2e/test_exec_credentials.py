"""A super cluster reached through an exec credential plugin, as managed clusters' kubeconfigs do it.

Why: EKS, GKE and AKS kubeconfigs hold no credential; their user is an exec
plugin that prints a short-lived token.  Here the plugin is a script that
asks the test bed's super apiserver for a ServiceAccount token
(``kubectl create token``) and prints it as a client.authentication.k8s.io/v1
ExecCredential that claims to expire a few seconds later, so every
long-running component has to run it again while it works.  The operator,
``kubectl vc`` and the syncer all use that kubeconfig alone: the operator
makes the tenant Ready, ``kubectl vc create --wait`` and ``list`` see it, the
syncer serves it and syncs ConfigMaps into the super cluster — and each of
them ran the plugin, the syncer again after the claimed expiry.  Then every
token is revoked (the ServiceAccount is recreated): the syncer's next write
is refused (401), it runs the plugin again and the write goes through; the
operator's clients are refused too and recover the same way, and it deletes
the tenant (Kopf's finalizer patch, after the revocation).  The plugin logs
which process ran it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import operator_fixtures
from e2e.operator_fixtures import OperatorProcess, get_tenant, handle_from, running_operator
from e2e.syncer_fixtures import apply, kjson, running_syncer, wait_for
from vcluster import naming
from vcluster.kubeconfig import load_kubeconfig, render_kubeconfig, write_kubeconfig

pytestmark = pytest.mark.e2e

NS = "vc-exec-e2e"
ACCOUNT = "exec-user"
#: Seconds the plugin's ExecCredential claims to be valid (the token itself is valid for 10 minutes).
CLAIMED_VALIDITY = 6

PLUGIN = """#!{python}
# A credential plugin: a ServiceAccount token from the super cluster, claimed valid for a few seconds.
import datetime as dt, json, os, subprocess, sys
token = subprocess.run(["kubectl", "--kubeconfig={admin}", "create", "token", "{account}", "-n", "{ns}",
                        "--duration=10m"], capture_output=True, text=True, check=True).stdout.strip()
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
parent = open(f"/proc/{{os.getppid()}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
with open("{runs}", "a") as log:
    log.write(json.dumps({{"parent": parent, "server": info["spec"].get("cluster", {{}}).get("server"),
                          "token": token}}) + "\\n")
validity = int(open("{validity_file}").read()) if os.path.exists("{validity_file}") else {validity}
expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=validity)
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}))
"""


@dataclasses.dataclass(frozen=True)
class ExecUser:
    kubeconfig: Path
    runs: Path
    #: Seconds the plugin claims from now on (when written; else CLAIMED_VALIDITY).
    validity: Path

    def runs_by(self, needle: str) -> int:
        """How many times a process whose command line contains ``needle`` ran the plugin."""
        if not self.runs.exists():
            return 0
        return sum(needle in json.loads(line)["parent"] for line in self.runs.read_text().splitlines())

    def last_token(self, needle: str) -> str:
        """The token the last plugin run of a process whose command line contains ``needle`` printed."""
        runs = [json.loads(line) for line in self.runs.read_text().splitlines()]
        return str([r for r in runs if needle in r["parent"]][-1]["token"])

    def servers(self) -> set[str | None]:
        return {json.loads(line)["server"] for line in self.runs.read_text().splitlines()}


@pytest.fixture(scope="module")
def exec_user(super_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecUser]:
    """A kubeconfig whose only credential is the plugin (the account may do everything: it runs the operator)."""
    super_cluster.kubectl("create", "namespace", NS)
    super_cluster.kubectl("create", "serviceaccount", ACCOUNT, "-n", NS)
    super_cluster.kubectl("create", "clusterrolebinding", f"{NS}-admin", "--clusterrole=cluster-admin",
                          f"--serviceaccount={NS}:{ACCOUNT}")
    root = tmp_path_factory.mktemp("exec-user")
    runs = root / "runs.jsonl"
    plugin = root / "bin" / "token-plugin"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.format(python=sys.executable, admin=super_cluster.kubeconfig, account=ACCOUNT, ns=NS,
                                    runs=runs, validity=CLAIMED_VALIDITY, validity_file=root / "validity"))
    plugin.chmod(0o755)
    admin = load_kubeconfig(super_cluster.kubeconfig)
    config = render_kubeconfig(server=admin.server, ca_pem=admin.ca_pem, token="placeholder",
                               cluster_name="super", user_name="plugin")
    config["users"][0]["user"] = {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/token-plugin",  # relative to the file
        "interactiveMode": "Never", "provideClusterInfo": True,
    }}
    try:
        yield ExecUser(kubeconfig=write_kubeconfig(root / "kubeconfig", config), runs=runs,
                       validity=root / "validity")
    finally:
        super_cluster.kubectl("delete", "clusterrolebinding", f"{NS}-admin", "--ignore-not-found", check=False)
        super_cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def exec_operator(super_cluster: Any, exec_user: ExecUser, tmp_path_factory: pytest.TempPathFactory,
                  component_logs: dict[str, Path]) -> Iterator[OperatorProcess]:
    """The operator with only the plugin kubeconfig (it stands in for the session's operator meanwhile)."""
    root = tmp_path_factory.mktemp("exec-operator")
    component_logs["operator-exec"] = root / "operator.log"
    # kubectl of this handle (tenant clean-up) stays the admin's; the operator process gets the plugin kubeconfig
    handle = _PluginSuper(super_cluster, exec_user.kubeconfig)
    # one operator leads per super cluster: the session's (if running) stands aside meanwhile
    session = operator_fixtures._current
    paused = session if session is not None and session.alive() else None
    if paused is not None:
        paused.stop()
    try:
        with running_operator(handle, state_dir=root / "state", log_path=root / "operator.log") as op:
            yield op
    finally:
        if paused is not None:
            paused.start()


class _PluginSuper:
    """The session's super cluster with ``kubeconfig`` swapped for the plugin's; kubectl stays the admin's."""

    def __init__(self, super_cluster: Any, kubeconfig: Path) -> None:
        self._super = super_cluster
        self.kubeconfig = kubeconfig
        self.info = super_cluster.info
        self.server = super_cluster.server

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self._super.kubectl(*args, **kwargs)
        return result


def _refused(super_cluster: Any, token: str) -> bool:
    """Whether the super apiserver answers 401 to ``token`` (kubectl with that token and no other credential)."""
    info = load_kubeconfig(super_cluster.kubeconfig)
    ca = super_cluster.state_dir / "exec-e2e-ca.crt"
    ca.write_bytes(info.ca_pem or b"")
    proc = subprocess.run(["kubectl", f"--server={info.server}", f"--certificate-authority={ca}", f"--token={token}",
                           "--kubeconfig=/dev/null", "get", "--raw", "/api"],
                          capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode != 0 and "Unauthorized" in proc.stderr


def _vc(exec_user: ExecUser, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
    return subprocess.run([sys.executable, "-m", "vcluster", *args, f"--kubeconfig={exec_user.kubeconfig}"],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_operator_cli_and_syncer_work_through_an_exec_plugin(
    super_cluster: Any, exec_user: ExecUser, exec_operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path],
) -> None:
    name = f"exec-{uuid.uuid4().hex[:6]}"
    exec_operator.tenants.add(name)  # deleted with the operator fixture
    created = _vc(exec_user, "create", name, "--wait", "--timeout", "240")
    assert created.returncode == 0, f"{created.stderr}\noperator log:\n{exec_operator.log_tail()}"
    listed = _vc(exec_user, "list", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
    obj = get_tenant(super_cluster, name)
    assert obj is not None
    # the operator made it Ready with the plugin's tokens only (Kopf's login and our clients)
    assert exec_user.runs_by("vcluster.operator") >= 1
    assert exec_user.runs_by("vcluster create") >= 1
    assert exec_user.runs_by("vcluster list") >= 1
    # provideClusterInfo: the plugin was told which server
    assert exec_user.servers() == {load_kubeconfig(super_cluster.kubeconfig).server}

    handle = _PluginSuper(super_cluster, exec_user.kubeconfig)
    with running_syncer(handle, tmp_path_factory, component_logs, log_dir="syncer-exec",
                        log_key="syncer-exec") as syncer:
        tenant = handle_from(super_cluster, obj, workdir=tmp_path_factory.mktemp("exec-tenant"))
        key = tenant.cluster_key
        apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "namespace": "app"}})
        p_ns = naming.super_namespace(key, "app")
        wait_for("first ConfigMap synced", lambda: kjson(super_cluster.kubectl, "get", "configmap", "one",
                                                         "-n", p_ns), syncer=syncer)
        first_runs = exec_user.runs_by("-m syncer")
        assert first_runs >= 1
        time.sleep(CLAIMED_VALIDITY + 1)  # past the claimed expiry: the next write needs a fresh token
        apply(tenant, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "namespace": "app"}})
        wait_for("second ConfigMap synced", lambda: kjson(super_cluster.kubectl, "get", "configmap", "two",
                                                          "-n", p_ns), syncer=syncer)
        assert exec_user.runs_by("-m syncer") > first_runs, syncer.log_tail()
        assert "Unauthorized" not in syncer.log_path.read_text()

        # A revoked token: 401, the plugin runs again, the write goes through.  Credentials claimed valid for
        # an hour from now on, so what follows is the 401 path and not the expiry one.
        exec_user.validity.write_text("3600")
        time.sleep(CLAIMED_VALIDITY + 1)
        apply(tenant, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "three", "namespace": "app"}})
        wait_for("third ConfigMap synced", lambda: kjson(super_cluster.kubectl, "get", "configmap", "three",
                                                         "-n", p_ns), syncer=syncer)
        before = exec_user.runs_by("-m syncer")
        held = exec_user.last_token("-m syncer")
        # every token issued so far is bound to the account's uid: a new account of the same name revokes them
        super_cluster.kubectl("delete", "serviceaccount", ACCOUNT, "-n", NS)
        super_cluster.kubectl("create", "serviceaccount", ACCOUNT, "-n", NS)
        # kube-apiserver caches successful token authentications for a few seconds: wait until it refuses
        wait_for("the syncer's token refused", lambda: _refused(super_cluster, held))
        apply(tenant, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "four", "namespace": "app"}})
        wait_for("fourth ConfigMap synced", lambda: kjson(super_cluster.kubectl, "get", "configmap", "four",
                                                          "-n", p_ns), syncer=syncer)
        assert exec_user.runs_by("-m syncer") > before
        assert "kube.credentials.refused" in syncer.log_path.read_text()

    # the operator still works after the revocation: Kopf removes the finalizer, our clients ran the plugin again
    operator_runs = exec_user.runs_by("vcluster.operator")
    deleted = _vc(exec_user, "delete", name, "--wait", "--timeout", "120")
    assert deleted.returncode == 0, f"{deleted.stderr}\noperator log:\n{exec_operator.log_tail()}"
    assert get_tenant(super_cluster, name) is None
    assert exec_user.runs_by("vcluster.operator") > operator_runs
