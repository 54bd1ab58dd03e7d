"""The default NetworkPolicy of a tenant, enforced on a real node: packets between tenants are dropped.

Why this module exists: the operator writes a default NetworkPolicy into every
super namespace of a tenant (``vcluster.policy.network_policy_spec``; issue #12
item 5), and other modules check the object the apiserver stores.  A policy
object is only a wish until something enforces it.  Here the test bed runs
kube-router's network policy controller on its one real node
(``TestbedSettings.network_policy``), and real busybox pods of two tenants try
to reach each other, the super cluster's own pods and the super apiserver.
What the policy allows (the tenant's own pods by name and by IP, its DNS, its
own apiserver) must still work; everything else must not connect.

Every "cannot reach" below is awaited (kube-router programs a new pod's rules
on the pod's event, a moment after the pod is Ready), so without an enforcer
these tests fail by timing out on the first blocked path (run once with
``network_policy=False``: the three "do not reach" tests failed, the two
"reaches" tests passed).

The admin's allow-list (``spec.isolation.allowedIngressFrom``) is shown the
same way: a "monitoring" super pod that tenant a names gets in, nothing else.

Costs: its own super cluster with one real node and kube-router, two tenants,
seven busybox pods.
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.conftest import SuperCluster, super_cluster_of
from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import poll, running_syncer
from vcluster import images, naming
from vcluster.settings import BinarySettings
from vcluster.testbed import realnodes

pytestmark = pytest.mark.e2e

BUSYBOX = images.BUSYBOX_IMAGE
TIMEOUT = 120.0
NS = "shop"
PORT = 8080
PLACEMENT = {"nodeSelector": {naming.LABEL_REAL_NODE: "true"}, "tolerations": [realnodes.toleration()]}
#: A namespace of the super cluster that belongs to no tenant (the super cluster's own workloads).
SUPER_NS = "netpol-super"
#: Tenant ``a``'s admin allow-list (``spec.isolation.allowedIngressFrom``): the super pod ``monitor``
#: (a scraper, an ingress controller) may reach its pods on the web port; tenant ``b`` allows nobody.
ALLOWED_INGRESS = {
    "a": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": SUPER_NS}},
           "podSelector": {"matchLabels": {"app": "monitor"}}, "ports": [{"protocol": "TCP", "port": PORT}]}],
    "b": [],
}


@pytest.fixture(scope="session")
def super_cluster(  # overrides the session fixture of conftest: one real node, NetworkPolicy enforced
    binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path],
) -> Iterator[SuperCluster]:
    yield from super_cluster_of(binary_settings, tmp_path_factory, component_logs, name="npsuper", nodes=1,
                                real_nodes=1, network_policy=True)


def _server_script(label: str) -> str:
    return (f"while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-{label}\\n' | nc -l -p {PORT}; done")


def _pod(name: str, namespace: str, script: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": BUSYBOX, "command": ["sh", "-c", script]}],
                     "terminationGracePeriodSeconds": 1}}


def _tenant_objects(label: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        _pod("web", NS, _server_script(label), {"app": "web"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": PORT}]}},
        _pod("client", NS, "exec sleep 3600"),
    ]


def _super_pod(script: str, name: str) -> dict[str, Any]:
    pod = _pod(name, SUPER_NS, script, {"app": name})
    pod["spec"].update(PLACEMENT)
    return pod


class World:
    """Tenants ``a`` and ``b`` (a web server and a client each) and a super pod outside any tenant."""

    def __init__(self, super_cluster: SuperCluster, tenants: dict[str, TenantHandle]) -> None:
        self.super_cluster = super_cluster
        self.tenants = tenants

    def super_ns(self, label: str) -> str:
        return naming.super_namespace(self.tenants[label].cluster_key, NS)

    def exec(self, namespace: str, pod: str, script: str) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` in a super pod (through the real node's kubelet)."""
        return self.super_cluster.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", script, check=False,
                                          timeout=60)

    def sh(self, label: str, script: str) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` in tenant ``label``'s client pod."""
        return self.exec(self.super_ns(label), "client", script)

    def pod_ip(self, namespace: str, name: str) -> str:
        pod = json.loads(self.super_cluster.kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout)
        return str(pod["status"]["podIP"])

    def service_ip(self, namespace: str, name: str) -> str:
        svc = json.loads(self.super_cluster.kubectl("get", "service", "-n", namespace, name, "-o", "json").stdout)
        return str(svc["spec"]["clusterIP"])


def _get(world: World, namespace: str, pod: str, host: str, port: int) -> str:
    """What an HTTP GET from ``pod`` to ``host:port`` answered ('' when it did not connect in 3 s)."""
    out = world.exec(namespace, pod, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
    return out.stdout


def _wait_ready(super_cluster: SuperCluster, ns: str, pod: str) -> None:
    def ready() -> bool:
        return super_cluster.kubectl("wait", "--for=condition=Ready", "-n", ns, f"pod/{pod}", "--timeout=5s",
                                     check=False).returncode == 0

    poll(f"super pod {ns}/{pod} Ready", ready, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def world(super_cluster: SuperCluster, vc_operator: Any,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path]) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:5]
    tenants = {label: create_tenant(super_cluster, f"np-{label}-{suffix}",
                                    isolation={**PLACEMENT, "allowedIngressFrom": ALLOWED_INGRESS[label]})
               for label in ("a", "b")}
    super_cluster.kubectl("create", "namespace", SUPER_NS)
    own = yaml.safe_dump_all([_super_pod(_server_script("super"), "super-web"),
                              _super_pod("exec sleep 3600", "super-client"), _super_pod("exec sleep 3600", "monitor")])
    # pods are refused until the namespace's default ServiceAccount exists
    poll(f"super pods in {SUPER_NS} accepted", lambda: super_cluster.kubectl(
        "apply", "-f", "-", input=own, check=False).returncode == 0, timeout=TIMEOUT)
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer", log_key="syncer"):
        for label, tenant in tenants.items():
            tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_tenant_objects(label)))
        w = World(super_cluster, tenants)
        for label in tenants:
            for pod in ("web", "client"):
                _wait_ready(super_cluster, w.super_ns(label), pod)
        for pod in ("super-web", "super-client", "monitor"):
            _wait_ready(super_cluster, SUPER_NS, pod)
        yield w


def _blocked(world: World, namespace: str, pod: str, host: str, port: int, *, what: str) -> None:
    """Await that ``pod`` no longer connects to ``host:port`` (the enforcer programs a new pod's rules a
    moment after it is Ready), then check that it stays so."""
    poll(f"{what} blocked", lambda: _get(world, namespace, pod, host, port) == "", timeout=60.0)
    for _ in range(2):
        got = _get(world, namespace, pod, host, port)
        assert got == "", f"{what}: connected: {got!r}"


# ---- what the policy allows still works ------------------------------------------------------------------


def test_a_tenant_reaches_its_own_pods_by_service_name_and_by_pod_ip(world: World) -> None:
    for label in world.tenants:
        ns = world.super_ns(label)
        by_name = poll(f"tenant {label} reaches web by name",
                       functools.partial(_get, world, ns, "client", "web", 80), timeout=TIMEOUT)
        assert f"hello-from-{label}" in by_name
        assert f"hello-from-{label}" in _get(world, ns, "client", f"web.{NS}.svc.cluster.local", 80)
        assert f"hello-from-{label}" in _get(world, ns, "client", world.pod_ip(ns, "web"), PORT)
        assert f"hello-from-{label}" in _get(world, ns, "client", world.service_ip(ns, "web"), 80)


def test_a_tenant_reaches_its_own_apiserver_in_cluster(world: World) -> None:
    """In-cluster config (``KUBERNETES_SERVICE_HOST``/``PORT`` and the pod's token) reaches the tenant's
    own apiserver: the policy's ``ipBlock`` for the apiserver endpoint lets it through."""
    script = (  # as e2e/test_real_nodes.py's IN_CLUSTER (busybox wget, its answer to a file)
        "T=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); "
        "wget -q -O /tmp/api --no-check-certificate --header \"Authorization: Bearer $T\" "
        "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api; echo RC=$?; cat /tmp/api"
    )
    for label in world.tenants:
        out = world.sh(label, script)
        assert "RC=0" in out.stdout, out.stdout + out.stderr
        assert '"kind":"APIVersions"' in out.stdout.replace(" ", ""), out.stdout + out.stderr


# ---- what it denies does not connect ---------------------------------------------------------------------


def test_tenants_do_not_reach_each_other_by_pod_ip_or_service_ip(world: World) -> None:
    for src, dst in (("a", "b"), ("b", "a")):
        ns, other = world.super_ns(src), world.super_ns(dst)
        # the other tenant's server is up and answers its own client
        assert f"hello-from-{dst}" in _get(world, other, "client", world.pod_ip(other, "web"), PORT)
        _blocked(world, ns, "client", world.pod_ip(other, "web"), PORT, what=f"{src} -> {dst}'s pod IP")
        _blocked(world, ns, "client", world.service_ip(other, "web"), 80, what=f"{src} -> {dst}'s super ClusterIP")


def test_a_tenant_and_the_super_clusters_own_pods_do_not_reach_each_other(world: World) -> None:
    super_ip = world.pod_ip(SUPER_NS, "super-web")
    # the super pod serves (a pod outside any tenant has no policy: its own client reaches it)
    assert "hello-from-super" in _get(world, SUPER_NS, "super-client", super_ip, PORT)
    ns = world.super_ns("a")
    _blocked(world, ns, "client", super_ip, PORT, what="tenant a -> a super pod (egress)")
    _blocked(world, SUPER_NS, "super-client", world.pod_ip(ns, "web"), PORT, what="a super pod -> tenant a (ingress)")


def test_a_tenant_does_not_reach_the_super_apiserver_or_another_tenants_apiserver(world: World) -> None:
    """The apiservers listen on the host address, which the policy allows only at the tenant's own port."""
    ns = world.super_ns("a")
    for what, url in (("the super apiserver", world.super_cluster.server),
                      ("tenant b's apiserver", str(world.tenants["b"].endpoint))):
        parts = urlsplit(url)
        assert parts.hostname, url
        assert parts.port, url
        _blocked(world, ns, "client", parts.hostname, parts.port, what=f"tenant a -> {what}")


def test_the_admins_allow_list_lets_a_monitoring_pod_in_and_no_other(world: World) -> None:
    """Issue #12 item 5's admin allow-list: tenant a lets the super pod ``monitor`` in on the web port
    (``spec.isolation.allowedIngressFrom``); tenant b lets nobody in, and a's other ports stay closed."""
    a, b = world.super_ns("a"), world.super_ns("b")
    got = poll("monitor reaches tenant a's web", functools.partial(
        _get, world, SUPER_NS, "monitor", world.pod_ip(a, "web"), PORT), timeout=TIMEOUT)
    assert "hello-from-a" in got
    _blocked(world, SUPER_NS, "monitor", world.pod_ip(b, "web"), PORT, what="monitor -> tenant b (not allowed)")
    # the allow-list names pods, not a namespace: the other super pod there stays out
    _blocked(world, SUPER_NS, "super-client", world.pod_ip(a, "web"), PORT, what="super-client -> tenant a")


def test_the_admins_egress_list_lets_a_tenant_out_to_what_it_names_and_no_further(world: World) -> None:
    """``spec.isolation.allowedEgressTo``, changed on a running tenant: tenant a's admin lets its pods out to
    one address outside the tenant (the super pod ``super-web``'s IP stands in for "the outside": the test
    bed has no route off the machine), on the web port.  a gets there; b does not; a still reaches neither
    b nor the super apiserver; and taking the entry out closes it again."""
    a, b = world.super_ns("a"), world.super_ns("b")
    target = world.pod_ip(SUPER_NS, "super-web")
    name = world.tenants["a"].name

    def patch(egress: list[dict[str, Any]] | None) -> None:
        world.super_cluster.kubectl("patch", "tenant", name, "--type=merge", "-p",
                                    json.dumps({"spec": {"isolation": {"allowedEgressTo": egress}}}))

    patch([{"ipBlock": {"cidr": f"{target}/32"}, "ports": [{"port": PORT}]}])
    try:
        got = poll("tenant a reaches the allowed address", functools.partial(_get, world, a, "client", target, PORT),
                   timeout=TIMEOUT)
        assert "hello-from-super" in got
        _blocked(world, b, "client", target, PORT, what="tenant b -> the address a's admin allowed (not b's)")
        _blocked(world, a, "client", world.pod_ip(b, "web"), PORT, what="tenant a -> tenant b (not in the list)")
        parts = urlsplit(world.super_cluster.server)
        assert parts.hostname, world.super_cluster.server
        assert parts.port, world.super_cluster.server
        _blocked(world, a, "client", parts.hostname, parts.port, what="tenant a -> the super apiserver")
    finally:
        patch(None)
    _blocked(world, a, "client", target, PORT, what="tenant a -> the address, once taken out of the list")
