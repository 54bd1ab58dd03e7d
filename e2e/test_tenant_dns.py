"""Tenant DNS on real nodes: a tenant's pods find their own tenant's Services by name, never another's.

Why this module exists: DNS is how workloads find their dependencies, and the
answer must be a *super* address (the super copy's ClusterIP, the super pod's
IP) that is the asking tenant's.  The operator provides one CoreDNS per tenant
(``vcluster.controlplane.dns``) and the syncer makes its super Service the
nameserver of ClusterFirst pods; this module shows it from inside real
containers: two tenants with the same namespace and Service names, a client
pod in each that resolves and connects by every name form, NXDOMAIN for the
other tenant's names and the super cluster's own, headless and StatefulSet
pod names, SRV for named ports, and a Service created after the client started.

Costs: its own super cluster with one real node (the ``super_cluster``
override below, the pattern of ``e2e/test_real_nodes.py``), two tenants,
eight busybox pods.  Freshness is measured by ``bench/bench_tenant_dns.py``,
not asserted here.
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.conftest import SuperCluster, super_cluster_of
from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import poll, running_syncer
from vcluster import binaries, imagebuild, images, naming
from vcluster.settings import BinarySettings
from vcluster.testbed import realnodes

pytestmark = pytest.mark.e2e

BUSYBOX = images.BUSYBOX_IMAGE
TIMEOUT = 120.0
NS = "shop"
NAME_FORMS = ("web", f"web.{NS}", f"web.{NS}.svc", f"web.{NS}.svc.{{domain}}")
PLACEMENT = {"nodeSelector": {naming.LABEL_REAL_NODE: "true"}, "tolerations": [realnodes.toleration()]}
#: Tenant ``b`` chooses its own cluster domain (``spec.dns.clusterDomain``); ``a`` keeps the default.
DOMAIN = {"a": "cluster.local", "b": "corp.example"}
#: Tenant ``a`` may have ExternalName Services (``spec.isolation.exposure.externalName``).
EXPOSURE = {"a": {"externalName": True}, "b": {}}
EXTERNAL_NAME = "db.example.invalid"


@pytest.fixture(scope="session")
def super_cluster(  # overrides the session fixture of conftest: this module needs a real node
    binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path],
) -> Iterator[SuperCluster]:
    yield from super_cluster_of(binary_settings, tmp_path_factory, component_logs, name="dnssuper", nodes=1,
                                real_nodes=1)


def _pod(name: str, script: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": BUSYBOX, "command": ["sh", "-c", script]}],
                     "terminationGracePeriodSeconds": 1}}


def _service(name: str, selector: dict[str, str], *, port: int, target: int, port_name: str,
             headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector,
                            "ports": [{"name": port_name, "port": port, "targetPort": target}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def _objects(label: str) -> list[dict[str, Any]]:
    """The same names in every tenant; what the web server answers tells the tenants apart."""
    server = f"while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-{label}\\n' | nc -l -p 8080; done"
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
        "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "main", "image": BUSYBOX,
                                                       "command": ["sh", "-c", "exec sleep 3600"]}],
                                       "terminationGracePeriodSeconds": 1}}},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        _pod("web-0", server, {"app": "web"}),
        _service("web", {"app": "web"}, port=80, target=8080, port_name="http"),
        _service(f"only-{label}", {"app": "web"}, port=80, target=8080, port_name="http"),
        _service("db", {"app": "db"}, port=5432, target=5432, port_name="pg", headless=True),
        statefulset,
        _pod("client", "exec sleep 3600"),
        # an alias (CNAME) to a name outside the cluster: allowed in tenant a only (.invalid: reserved,
        # nothing ever resolves it, and no question about it leaves the machine)
        *([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias", "namespace": NS},
            "spec": {"type": "ExternalName", "externalName": EXTERNAL_NAME}},
           # and one to the tenant's own web Service, by its full name in the tenant's domain
           {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias-web", "namespace": NS},
            "spec": {"type": "ExternalName", "externalName": f"web.{NS}.svc.{DOMAIN[label]}"}}]
          if EXPOSURE[label] else []),
    ]


class World:
    """Two tenants ``a`` and ``b`` with the same objects, and how to run a command in their client pod."""

    def __init__(self, super_cluster: SuperCluster, tenants: dict[str, TenantHandle]) -> None:
        self.super_cluster = super_cluster
        self.tenants = tenants

    def sh(self, label: str, script: str, *, check: bool = False) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` in tenant ``label``'s client pod (through the super cluster's kubelet API)."""
        ns = naming.super_namespace(self.tenants[label].cluster_key, NS)
        return self.super_cluster.kubectl("exec", "-n", ns, "client", "--", "sh", "-c", script, check=check,
                                          timeout=60)

    def super_service_ip(self, label: str, name: str) -> str:
        ns = naming.super_namespace(self.tenants[label].cluster_key, NS)
        svc = json.loads(self.super_cluster.kubectl("get", "service", "-n", ns, name, "-o", "json").stdout)
        return str(svc["spec"]["clusterIP"])

    def super_pod_ip(self, label: str, name: str) -> str:
        ns = naming.super_namespace(self.tenants[label].cluster_key, NS)
        pod = json.loads(self.super_cluster.kubectl("get", "pod", "-n", ns, name, "-o", "json").stdout)
        return str(pod["status"]["podIP"])


@pytest.fixture(scope="module")
def world(super_cluster: SuperCluster, vc_operator: Any,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory, component_logs: dict[str, Path]) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:5]
    tenants = {label: create_tenant(super_cluster, f"dns-{label}-{suffix}",
                                    isolation={**PLACEMENT, "exposure": EXPOSURE[label]},
                                    dns={"clusterDomain": DOMAIN[label]})
               for label in ("a", "b")}
    for tenant in tenants.values():
        assert (tenant.status.get("dns") or {}).get("clusterIP"), f"no status.dns on {tenant.name}: {tenant.status}"
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer", log_key="syncer"):
        for label, tenant in tenants.items():
            tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_objects(label)))
        w = World(super_cluster, tenants)
        for tenant in tenants.values():
            for pod in ("web-0", "db-0", "client"):
                _wait_ready(super_cluster, naming.super_namespace(tenant.cluster_key, NS), pod)
        for label in tenants:
            # the tenant DNS' super Service is a few seconds old for the last tenant made: kube-proxy
            # programs it asynchronously, so the first answer is awaited here, not in the tests
            poll(f"tenant {label}'s DNS answers", functools.partial(_answers, w, label, "web"), timeout=TIMEOUT)
        yield w


def _wait_ready(super_cluster: SuperCluster, ns: str, pod: str) -> None:
    def ready() -> bool:
        return super_cluster.kubectl("wait", "--for=condition=Ready", "-n", ns, f"pod/{pod}", "--timeout=5s",
                                     check=False).returncode == 0

    poll(f"super pod {ns}/{pod} Ready", ready, timeout=TIMEOUT)


def _answers(world: World, label: str, name: str) -> bool:
    return bool(_resolves_to(world.sh(label, f"nslookup {name}").stdout))


def _text(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def _resolves_to(out: str) -> list[str]:
    """The addresses busybox ``nslookup`` printed for the name (not the server's own)."""
    answer = out.split("Name:", 1)[1] if "Name:" in out else ""
    return [line.split()[-1] for line in answer.splitlines() if line.strip().startswith("Address")]


def test_tenant_pods_use_their_tenant_dns(world: World) -> None:
    for label, tenant in world.tenants.items():
        conf = world.sh(label, "cat /etc/resolv.conf", check=True).stdout
        assert f"nameserver {tenant.status['dns']['clusterIP']}" in conf
        d = DOMAIN[label]
        assert f"search {NS}.svc.{d} svc.{d} {d}" in conf


@pytest.mark.parametrize("name", NAME_FORMS)
def test_every_name_form_resolves_and_connects_to_the_own_tenants_service(world: World, name: str) -> None:
    """Connect by name through the C library's resolver (search path, ndots) as applications do; the answer
    names the tenant.  busybox ``nslookup`` skips the search path for dotted names, so the address itself
    is compared for the short name (search path) and the full name (asked as is)."""
    for label in world.tenants:
        asked = name.format(domain=DOMAIN[label])
        got = world.sh(label, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {asked} 80")
        assert f"hello-from-{label}" in got.stdout, _text(got)
        if asked == "web" or asked.endswith(f".svc.{DOMAIN[label]}"):
            want = world.super_service_ip(label, "web")
            assert _resolves_to(world.sh(label, f"nslookup {asked}").stdout) == [want], asked


def test_other_tenants_and_super_names_are_nxdomain(world: World) -> None:
    b_key = world.tenants["b"].cluster_key
    own = world.sh("a", "nslookup only-a")
    assert _resolves_to(own.stdout) == [world.super_service_ip("a", "only-a")], own.stdout
    for short in ("only-b", f"only-b.{NS}", f"only-b.{NS}.svc"):
        got = world.sh("a", f"nc -w 3 {short} 80 </dev/null")
        assert "bad address" in _text(got), (short, _text(got))
    for name in ("only-b", f"only-b.{NS}.svc.cluster.local",
                 f"web.{naming.super_namespace(b_key, NS)}.svc.cluster.local",
                 "kube-dns.kube-system.svc.cluster.local", f"{naming.TENANT_DNS_SERVICE}.{b_key}.svc.cluster.local"):
        out = world.sh("a", f"nslookup {name}")
        assert "NXDOMAIN" in out.stdout + out.stderr, (name, out.stdout, out.stderr)
        assert not _resolves_to(out.stdout), (name, out.stdout)


def test_headless_service_and_statefulset_pod_names(world: World) -> None:
    for label in world.tenants:
        pod_ip = world.super_pod_ip(label, "db-0")
        d = DOMAIN[label]
        for name in ("db", f"db.{NS}.svc.{d}", f"db-0.db.{NS}.svc.{d}"):
            out = world.sh(label, f"nslookup {name}")
            assert _resolves_to(out.stdout) == [pod_ip], (label, name, out.stdout)


def test_srv_records_for_named_ports_name_the_tenant_names(world: World) -> None:
    out = world.sh("a", f"nslookup -type=SRV _http._tcp.web.{NS}.svc.cluster.local")
    assert f"web.{NS}.svc.cluster.local" in out.stdout, out.stdout
    assert " 80 " in out.stdout, out.stdout
    assert naming.SEPARATOR not in out.stdout.split("Non-authoritative answer:")[-1], out.stdout
    pg = world.sh("a", f"nslookup -type=SRV _pg._tcp.db.{NS}.svc.cluster.local")
    assert f"db-0.db.{NS}.svc.cluster.local" in pg.stdout, pg.stdout
    assert " 5432 " in pg.stdout, pg.stdout


def test_kubernetes_default_is_the_tenants_own_apiserver(world: World) -> None:
    """The name answers the super Service in front of the tenant's apiserver process, which listens on
    443 as a cluster's ``kubernetes`` Service does: ``https://kubernetes.default.svc`` without a port
    reaches the tenant's own apiserver (the pod's tenant token is taken; the super cluster's would not)."""
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    for label, tenant in world.tenants.items():
        svc = json.loads(world.super_cluster.kubectl(
            "get", "service", "-n", naming.root_namespace(tenant.cluster_key), naming.TENANT_APISERVER_SERVICE,
            "-o", "json").stdout)
        out = world.sh(label, f"nslookup kubernetes.default.svc.{DOMAIN[label]}")
        assert _resolves_to(out.stdout) == [svc["spec"]["clusterIP"]], out.stdout
        api = world.sh(label, "wget -q -O - --no-check-certificate "
                              f"--header \"Authorization: Bearer $(cat {token})\" https://kubernetes.default.svc/api")
        assert api.returncode == 0, _text(api)
        assert '"APIVersions"' in api.stdout, _text(api)


def test_a_tenant_with_its_own_domain_never_reaches_the_super_clusters_names(world: World) -> None:
    """Tenant b's zone is ``corp.example``: the super cluster's own zone (``cluster.local``), which
    the super resolver would answer, is sealed in b's DNS, so is its own names' default-domain form."""
    a_key = world.tenants["a"].cluster_key
    for name in ("kube-dns.kube-system.svc.cluster.local", "kubernetes.default.svc.cluster.local",
                 f"web.{naming.super_namespace(a_key, NS)}.svc.cluster.local", f"web.{NS}.svc.cluster.local"):
        out = world.sh("b", f"nslookup {name}")
        assert "NXDOMAIN" in _text(out), (name, _text(out))
        assert not _resolves_to(out.stdout), (name, out.stdout)


def test_reverse_lookups_never_name_a_super_namespace(world: World) -> None:
    """The super cluster's resolver answers PTR for every super Service (``web.<key>--shop.svc...``):
    asked there, one tenant would learn another's cluster key, namespaces and Service names."""
    for label, other in (("a", "b"), ("b", "a")):
        for ip in (world.super_service_ip(other, "web"), world.super_service_ip(label, "web"),
                   world.super_pod_ip(other, "web-0")):
            out = world.sh(label, f"nslookup {ip}")
            assert "NXDOMAIN" in _text(out), (label, ip, _text(out))
            assert naming.SEPARATOR not in out.stdout, (label, ip, out.stdout)


def test_external_name_is_a_cname_where_the_policy_allows_it(world: World) -> None:
    out = world.sh("a", f"nslookup -type=CNAME alias.{NS}.svc.cluster.local")
    assert f"canonical name = {EXTERNAL_NAME}" in out.stdout, _text(out)
    assert naming.SEPARATOR not in out.stdout, out.stdout  # asked and answered by the tenant's names
    assert "NXDOMAIN" in _text(world.sh("b", f"nslookup -type=CNAME alias.{NS}.svc.{DOMAIN['b']}"))


def test_an_alias_to_the_tenants_own_service_connects_to_it(world: World) -> None:
    got = world.sh("a", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 alias-web 80")
    assert "hello-from-a" in got.stdout, _text(got)
    out = world.sh("a", f"nslookup -type=CNAME alias-web.{NS}.svc.cluster.local")
    assert f"canonical name = web.{NS}.svc.cluster.local" in out.stdout, _text(out)  # the tenant's name


def test_a_service_created_after_the_client_resolves_and_a_deleted_one_stops(world: World) -> None:
    tenant = world.tenants["a"]
    late = _service("late", {"app": "web"}, port=80, target=8080, port_name="http")
    tenant.kubectl("apply", "-f", "-", input=json.dumps(late))
    poll("late resolves in tenant a", lambda: bool(_resolves_to(world.sh("a", "nslookup late").stdout)),
         timeout=TIMEOUT)
    assert _resolves_to(world.sh("a", "nslookup late").stdout) == [world.super_service_ip("a", "late")]
    assert "NXDOMAIN" in _text(world.sh("b", "nslookup late"))
    tenant.kubectl("delete", "service", "-n", NS, "late", "--wait=true")
    poll("late stops resolving", lambda: "NXDOMAIN" in _text(world.sh("a", "nslookup late")), timeout=TIMEOUT)


def test_default_network_policy_lets_the_tenant_dns_through(world: World) -> None:
    """The default NetworkPolicy (``spec.isolation.networkPolicy``, on) names the DNS server as
    kube-proxy forwards to it (``status.dns.endpoint``, on the host): the Service's ClusterIP is DNATed
    before any policy applies, so a rule on the Service or on kube-system alone would drop every
    query on a CNI that enforces policies.  The test bed's bridge CNI enforces none, so this checks
    the policy the real apiserver stores next to queries that work."""
    for label, tenant in world.tenants.items():
        host, port = str(tenant.status["dns"]["endpoint"]).rsplit(":", 1)
        ns = naming.super_namespace(tenant.cluster_key, NS)
        netpol = json.loads(world.super_cluster.kubectl("get", "networkpolicy", naming.POLICY_NETWORK_POLICY_NAME,
                                                        "-n", ns, "-o", "json").stdout)
        assert "Egress" in netpol["spec"]["policyTypes"]
        rules = [r for r in netpol["spec"]["egress"] if {"ipBlock": {"cidr": f"{host}/32"}} in r.get("to", [])]
        ports = [p for r in rules for p in r.get("ports", [])]
        assert {"protocol": "UDP", "port": int(port)} in ports, netpol["spec"]["egress"]
        assert {"protocol": "TCP", "port": int(port)} in ports, netpol["spec"]["egress"]
        out = _text(world.sh(label, "nslookup web"))
        assert _resolves_to(out) == [world.super_service_ip(label, "web")], out


OWN_ZONE, OWN_RECORD = "corp.internal", "127.0.0.42"  # an answer only: nothing connects to it
OWN_COREFILE = f""".:1053 {{
    hosts {{
        {OWN_RECORD} db.{OWN_ZONE}
    }}
}}
"""


@pytest.fixture(scope="module")
def coredns_image(super_cluster: SuperCluster, binary_settings: BinarySettings,
                  tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CoreDNS image of ``scripts/images`` (only that one), imported into the real node: a tenant's own DNS."""
    spec = images.component_image("coredns", binaries.binary_path("coredns", binary_settings),
                                  version=imagebuild.component_version("coredns", binary_settings))
    archive = images.write_archive([images.build(spec)], tmp_path_factory.mktemp("own-dns") / "coredns.tar")
    sockets = imagebuild.node_sockets(super_cluster.state_dir)
    assert sockets, "no real node"
    for socket in sockets:
        images.import_into(archive, address=socket)
    return spec.name


def _own_dns_objects(image: str) -> list[dict[str, Any]]:
    """What a tenant writes to run its own DNS: a stock CoreDNS in its namespace ``infra``, and its Service."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "own-dns", "namespace": "infra"},
         "data": {"Corefile": OWN_COREFILE}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "own-dns", "namespace": "infra", "labels": {"app": "own-dns"}},
         "spec": {"containers": [{"name": "coredns", "image": image, "args": ["-conf", "/etc/coredns/Corefile"],
                                  "volumeMounts": [{"name": "conf", "mountPath": "/etc/coredns"}]}],
                  "volumes": [{"name": "conf", "configMap": {"name": "own-dns"}}],
                  "terminationGracePeriodSeconds": 1}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "own-dns", "namespace": "infra"},
         "spec": {"selector": {"app": "own-dns"},
                  "ports": [{"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"}]}},
    ]


def test_a_tenant_that_runs_its_own_dns_keeps_it(world: World, coredns_image: str) -> None:
    """Issue #11 item 5: a tenant installs its own DNS and points its pods at it with ``dnsPolicy: None``
    and its Service's (tenant) cluster IP, as it would in any cluster.  That address routes nowhere in the
    super cluster: the syncer gives the super pod the super copy's address, and the pod's lookups are
    answered by the tenant's own server, not by the DNS the operator provides."""
    tenant = world.tenants["a"]
    tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_own_dns_objects(coredns_image)))
    infra = naming.super_namespace(tenant.cluster_key, "infra")
    _wait_ready(world.super_cluster, infra, "own-dns")
    v_ip = tenant.kubectl("get", "service", "-n", "infra", "own-dns", "-o", "jsonpath={.spec.clusterIP}").stdout
    poll("own-dns' super copy", lambda: world.super_cluster.kubectl(
        "get", "service", "-n", infra, "own-dns", check=False).returncode == 0, timeout=TIMEOUT)
    p_ip = json.loads(world.super_cluster.kubectl("get", "service", "-n", infra, "own-dns", "-o", "json").stdout
                      )["spec"]["clusterIP"]
    assert v_ip
    assert v_ip != p_ip
    client = _pod("own-client", "exec sleep 3600")
    client["spec"].update(dnsPolicy="None", dnsConfig={"nameservers": [v_ip], "searches": [OWN_ZONE]})
    tenant.kubectl("apply", "-f", "-", input=json.dumps(client))
    shop = naming.super_namespace(tenant.cluster_key, NS)
    _wait_ready(world.super_cluster, shop, "own-client")
    p_pod = json.loads(world.super_cluster.kubectl("get", "pod", "-n", shop, "own-client", "-o", "json").stdout)
    assert p_pod["spec"]["dnsConfig"]["nameservers"] == [p_ip], p_pod["spec"]["dnsConfig"]

    def ask(name: str) -> subprocess.CompletedProcess[str]:
        return world.super_cluster.kubectl("exec", "-n", shop, "own-client", "--", "nslookup", "-type=A", name,
                                           check=False, timeout=60)

    # kube-proxy programs the new Service asynchronously: the first answer is awaited
    poll("the tenant's own DNS answers", lambda: bool(_resolves_to(ask(f"db.{OWN_ZONE}").stdout)), timeout=TIMEOUT)
    assert _resolves_to(ask(f"db.{OWN_ZONE}").stdout) == [OWN_RECORD]
    assert _resolves_to(ask("db").stdout) == [OWN_RECORD], "its own search path"
    # the operator's DNS would answer this one; the tenant's own has no such record (its hosts plugin: SERVFAIL)
    out = ask(f"web.{NS}.svc.cluster.local")
    assert not _resolves_to(out.stdout), _text(out)
