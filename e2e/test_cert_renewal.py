"""Certificate renewal on the test bed: the operator reissues a tenant's certificates before they expire.

Why: every certificate the operator issues (the tenant apiserver's serving
certificate, its client certificates towards etcd and the kubelet proxy, the
controller-manager's and the admin kubeconfig's) used to live a year and was
never renewed.  Here one operator runs with a lifetime of 180 s renewed 60 s
before expiry (``VC_OPERATOR_CERT_VALIDITY`` / ``_RENEW_BEFORE``), so the
first renewal comes about two minutes after the Tenant is created, without a
spec change: the ``CertificatesRenewed`` Event, a new serving certificate seen
over TLS, a new client certificate in the kubeconfig Secret and restarted
components.  Then the test waits until the *first* certificates have expired
(the old admin kubeconfig is refused), and shows that nothing still depends on
them: kubectl with the new kubeconfig works, the controller-manager still acts
(a Deployment gets its ReplicaSet and pods) and the syncer, which re-read the
kubeconfig Secret, still syncs a pod created after the renewal.  The next
renewal is due 60 s after that expiry; the checks fit in between (and tolerate
it).  One tenant of the local (embedded) backend, one syncer, kwok nodes.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.operator_fixtures import (
    OperatorProcess,
    TenantHandle,
    control_plane_processes,
    create_tenant,
    get_tenant,
    handle_from,
    running_operator,
)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from vcluster import naming, pki
from vcluster.controlplane import spec as cp

pytestmark = pytest.mark.e2e

VALIDITY = 180
RENEW_BEFORE = 60
NS = "renewal"


@pytest.fixture(scope="module")
def operator(super_cluster: Any, tmp_path_factory: pytest.TempPathFactory,
             component_logs: dict[str, Path]) -> Iterator[OperatorProcess]:
    root = tmp_path_factory.mktemp("operator-certs")
    component_logs["operator-certs"] = root / "operator.log"
    env = {"VC_OPERATOR_CERT_VALIDITY": f"{VALIDITY}s", "VC_OPERATOR_CERT_RENEW_BEFORE": f"{RENEW_BEFORE}s"}
    with running_operator(super_cluster, state_dir=root / "state", log_path=root / "operator.log",
                          health_interval=2.0, env=env) as op:
        yield op


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer-certs",
                        log_key="syncer") as proc:
        yield proc


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _serving_serial(endpoint: str) -> int:
    """The serial of the certificate the tenant apiserver serves right now (a TLS handshake)."""
    url = urlsplit(endpoint)
    pem = ssl.get_server_certificate((url.hostname or "", url.port or 443), timeout=5)
    return pki.serial_of(pem.encode())


def _client_cert(kubeconfig: str) -> bytes:
    doc = yaml.safe_load(kubeconfig)
    return base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])


def _secret_kubeconfig(super_cluster: Any, tenant: TenantHandle) -> str:
    ref = tenant.status["kubeconfigSecret"]
    secret = kjson(super_cluster.kubectl, "get", "secret", ref["name"], "-n", ref["namespace"])
    return base64.b64decode(secret["data"][naming.KUBECONFIG_SECRET_KEY]).decode()


def _renewal_events(super_cluster: Any, name: str) -> list[dict[str, Any]]:
    got = kjson(super_cluster.kubectl, "get", "events", "-n", "default",
                "--field-selector", f"involvedObject.name={name},reason=CertificatesRenewed")
    return list((got or {}).get("items") or [])


def _pod(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, **extra},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _super_pod(super_cluster: Any, tenant: TenantHandle, name: str) -> Any:
    return kjson(super_cluster.kubectl, "get", "pod", name, "-n", naming.super_namespace(tenant.cluster_key, NS))


def test_certificates_are_renewed_and_rolled_out(super_cluster: Any, operator: OperatorProcess,
                                                 syncer: SyncerProcess) -> None:
    tenant = create_tenant(super_cluster, f"certs-{uuid.uuid4().hex[:6]}", operator=operator)
    assert tenant.endpoint is not None
    assert tenant.kubeconfig_path is not None
    certificates = tenant.status["certificates"]
    first_renew = _when(certificates["renewAfter"])
    assert _when(certificates["notAfter"]) - first_renew == dt.timedelta(seconds=RENEW_BEFORE)
    old_kubeconfig = tenant.kubeconfig_path.read_text()
    old_admin = _client_cert(old_kubeconfig)
    old_expiry = pki.validity_of(old_admin)[1]
    assert old_expiry - pki.validity_of(old_admin)[0] == dt.timedelta(seconds=VALIDITY, minutes=5)  # 5 min backdated
    old_serving = _serving_serial(tenant.endpoint)
    old_pids = control_plane_processes(operator.state_dir, tenant.cluster_key)
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, _pod("before"))
    wait_for("pod synced before the renewal", lambda: _super_pod(super_cluster, tenant, "before"), syncer=syncer)
    assert _renewal_events(super_cluster, tenant.name) == []

    # 1. renewed without a spec change: the Event, a new serving certificate, a new kubeconfig Secret
    events = wait_for("CertificatesRenewed Event", lambda: _renewal_events(super_cluster, tenant.name),
                      timeout=VALIDITY, syncer=syncer)
    message = events[0]["message"]
    for name in (cp.APISERVER, cp.ADMIN, cp.CONTROLLER_MANAGER, cp.APISERVER_ETCD_CLIENT, cp.ETCD_SERVER):
        assert name in message, message
    assert dt.datetime.now(dt.UTC) >= first_renew  # not before it was due

    def rolled_out() -> dict[str, Any] | None:  # the new status.certificates is written after the rollout
        got = get_tenant(super_cluster, tenant.name)
        moved = got and _when(got["status"]["certificates"]["renewAfter"]) > first_renew
        return got if moved else None

    obj = wait_for("status.certificates of the renewed certificates", rolled_out, syncer=syncer)
    assert obj["metadata"]["generation"] == 1  # no spec change
    wait_for("a new serving certificate over TLS", lambda: _serving_serial(tenant.endpoint or "") != old_serving,
             syncer=syncer)
    new_admin = _client_cert(_secret_kubeconfig(super_cluster, tenant))
    assert pki.serial_of(new_admin) != pki.serial_of(old_admin)
    assert pki.validity_of(new_admin)[1] > old_expiry
    pids = control_plane_processes(operator.state_dir, tenant.cluster_key)
    for component in cp.COMPONENTS:  # each reads certificates at start only: restarted, one process each
        assert len(pids[component]) == 1, pids
        assert pids[component] != old_pids[component], (component, old_pids, pids)

    # 2. once the first certificates expired, nothing depends on them any more
    wait = (old_expiry - dt.datetime.now(dt.UTC)).total_seconds() + 2
    if wait > 0:
        time.sleep(wait)
    refused = tenant.kubectl("get", "ns", "default", check=False)
    assert refused.returncode != 0  # the old admin kubeconfig: its client certificate has expired
    renewed = handle_from(super_cluster, get_tenant(super_cluster, tenant.name) or {}, workdir=operator.workdir)
    wait_for("kubectl with the renewed kubeconfig",
             lambda: renewed.kubectl("get", "ns", NS, check=False).returncode == 0, syncer=syncer)
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}

    def applied(*objs: dict[str, Any]) -> bool:
        got = renewed.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs), check=False)
        return got.returncode == 0

    wait_for("apply after the renewal", lambda: applied(deploy, _pod("after")), syncer=syncer)

    def replica_pods() -> list[str]:  # the controller-manager made the ReplicaSet and its pod
        got = kjson(renewed.kubectl, "get", "pods", "-n", NS, "-l", "app=web")
        return [p["metadata"]["name"] for p in (got or {}).get("items") or []]

    names = wait_for("the Deployment's pod (controller-manager)", replica_pods, syncer=syncer)
    assert kjson(renewed.kubectl, "get", "replicasets", "-n", NS, "-l", "app=web")["items"]
    # 3. the syncer works with the renewed kubeconfig: both new pods reach the super cluster, and a
    #    status written up into the tenant (kwok runs the super pod) shows its tenant client works too
    for name in ("after", names[0]):
        wait_for(f"super pod {name}", functools.partial(_super_pod, super_cluster, tenant, name), syncer=syncer)

    def running_upstairs() -> bool:
        got = kjson(renewed.kubectl, "get", "pod", "after", "-n", NS)
        return ((got or {}).get("status") or {}).get("phase") == "Running"

    wait_for("status of pod 'after' synced up into the tenant", running_upstairs, syncer=syncer)
