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

The kubelet-proxy path renews as well: the proxy (``python -m
virtual_node.proxy``) runs with the same 180 s / 60 s serving certificate
(``VC_PROXY_CERT_*``) and reloads it without a restart; the shared CA
``vc-system/kubelet-proxy-ca`` is put near its end by the test (the same key
with an expiry just inside the operator's default one-year CA window, as a CA
issued nine years ago would be), and the operator renews it with that key on
the tenant's renewal, rolling the new CA file to the tenant apiserver.  After
the first certificates of both sides have expired, ``kubectl logs`` through
the tenant (tenant apiserver → proxy → kwok) still works.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import os
import socket
import ssl
import sys
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
from vcluster import kubelet_ca, naming, pki
from vcluster.controlplane import spec as cp
from vcluster.process import ManagedProcess, pick_free_port, tcp_check
from vcluster.testbed.kwok import SIMULATED_LOG_LINE

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
def kubelet_proxy(super_cluster: Any, tmp_path_factory: pytest.TempPathFactory,
                  component_logs: dict[str, Path]) -> Iterator[int]:
    """The kubelet proxy with 180 s serving certificates renewed 60 s before expiry, checked every 2 s."""
    root = tmp_path_factory.mktemp("proxy-certs")
    port = pick_free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "VC_SUPER_KUBECONFIG": str(super_cluster.kubeconfig), "VC_PROXY_HOST": "127.0.0.1",
           "VC_PROXY_PORT": str(port), "VC_PROXY_METRICS_PORT": "-1", "VC_PROXY_SERVING_NAMES": "127.0.0.1",
           "VC_PROXY_CERT_VALIDITY": f"{VALIDITY}s", "VC_PROXY_CERT_RENEW_BEFORE": f"{RENEW_BEFORE}s",
           "VC_PROXY_CERT_CHECK_PERIOD": "2"}
    proc = ManagedProcess(name="kubelet-proxy", argv=[sys.executable, "-m", "virtual_node.proxy"],
                          log_path=root / "proxy.log", pid_path=root / "proxy.pid", env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    component_logs["kubelet-proxy-certs"] = root / "proxy.log"
    proc.start()
    try:
        proc.wait_ready(tcp_check("127.0.0.1", port), timeout=60, what="kubelet proxy")
        yield port
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, operator: OperatorProcess, kubelet_proxy: int,
           tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    env = {"VC_KUBELET_PROXY_ADDRESS": "127.0.0.1", "VC_KUBELET_PROXY_PORT": str(kubelet_proxy)}
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer-certs",
                        log_key="syncer", env=env) as proc:
        yield proc


def _shared_ca(super_cluster: Any) -> pki.CertKeyPair:
    secret = kjson(super_cluster.kubectl, "get", "secret", naming.KUBELET_PROXY_CA_SECRET,
                   "-n", naming.SYSTEM_NAMESPACE)
    return kubelet_ca._decode(secret)


def _proxy_certificate(port: int, ca: pki.CertKeyPair) -> bytes:
    """The serving certificate the kubelet proxy presents now, to a tenant's client certificate."""
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    pki.load_cert_chain(ctx, kubelet_ca.issue_tenant_client_cert(ca, "cert-renewal-probe"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _logs(tenant: TenantHandle, name: str) -> bool:
    """``kubectl logs`` through the tenant: its apiserver asks the kubelet proxy, which asks kwok."""
    got = tenant.kubectl("logs", name, "-n", NS, check=False)
    return got.returncode == 0 and SIMULATED_LOG_LINE in got.stdout


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
                                                 syncer: SyncerProcess, kubelet_proxy: int) -> None:
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
    wait_for("kubectl logs through the kubelet proxy", lambda: _logs(tenant, "before"), syncer=syncer)
    assert _renewal_events(super_cluster, tenant.name) == []
    # the shared kubelet-proxy CA near its end: the same key, an expiry inside the operator's CA window
    ca = _shared_ca(super_cluster)
    aging = pki.renew_ca(ca, validity=dt.timedelta(days=365, seconds=30))
    super_cluster.kubectl("replace", "-f", "-", input=yaml.safe_dump(kubelet_ca._body(aging)))
    old_proxy = _proxy_certificate(kubelet_proxy, ca)

    # 1. renewed without a spec change: the Event, a new serving certificate, a new kubeconfig Secret
    names = (cp.APISERVER, cp.ADMIN, cp.CONTROLLER_MANAGER, cp.APISERVER_ETCD_CLIENT, cp.ETCD_SERVER,
             cp.APISERVER_KUBELET_CLIENT, cp.KUBELET_CA)

    def renewed_all() -> set[str] | None:  # one Event, or two if the shared CA came due on a reconcile of its own
        told = {name for e in _renewal_events(super_cluster, tenant.name)
                for name in e["message"].removeprefix("renewed ").split(";")[0].split(", ")}
        return told if told >= set(names) else None

    wait_for("CertificatesRenewed Event(s)", renewed_all, timeout=VALIDITY, syncer=syncer)
    # the operator renewed the shared CA on that reconcile: same key and subject, a new lifetime
    renewed_ca = _shared_ca(super_cluster)
    assert renewed_ca.key_pem == ca.key_pem
    assert pki.serial_of(renewed_ca.cert_pem) != pki.serial_of(aging.cert_pem)
    assert pki.validity_of(renewed_ca.cert_pem)[1] > pki.validity_of(aging.cert_pem)[1]
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

    # the kubelet proxy serves a new certificate, without a restart (the same listening port)
    wait_for("a new kubelet-proxy serving certificate",
             lambda: pki.serial_of(_proxy_certificate(kubelet_proxy, renewed_ca)) != pki.serial_of(old_proxy),
             syncer=syncer)

    # 2. once the first certificates expired, nothing depends on them any more
    old_expiry = max(old_expiry, pki.validity_of(old_proxy)[1])  # the proxy's first one included
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
    # 4. the kubelet-proxy path across the renewals of both sides and of the shared CA: the tenant apiserver
    #    (renewed kubelet client certificate, renewed CA file) and the proxy (its renewed serving certificate)
    for name in ("before", "after"):
        wait_for(f"kubectl logs {name} through the kubelet proxy after the renewal",
                 functools.partial(_logs, renewed, name), syncer=syncer)
