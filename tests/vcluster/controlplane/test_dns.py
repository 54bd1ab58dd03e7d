"""Tenant DNS rendering: the Corefile confines a tenant to its own namespaces, the objects are least privilege."""

from __future__ import annotations

import re

import pytest

from tenant_crd.models import TenantStatus
from vcluster import naming
from vcluster.controlplane import dns

KEY = "shop-a1b2c3"


def _corefile(**extra: object) -> str:
    args: dict[str, object] = {
        "key": KEY, "port": 5353, "bind": "10.245.0.1", "ready": "10.245.0.1:8181", "kubeconfig": "/s/kc",
        "apiserver_ip": "10.245.0.1",
    }
    args.update(extra)
    return dns.corefile(**args)  # type: ignore[arg-type]


def _rewrites(text: str) -> list[tuple[str, str, str, str]]:
    """(question regex, question replacement, answer regex, answer replacement) of each rewrite block."""
    out = []
    for block in re.findall(r"rewrite stop \{\n(.*?)\n    \}", text, flags=re.S):
        lines = [line.split() for line in block.splitlines()]
        name = next(parts for parts in lines if parts[:2] == ["name", "regex"])
        answer = next(parts for parts in lines if parts[:2] == ["answer", "name"])
        value = next(parts for parts in lines if parts[:2] == ["answer", "value"])
        assert answer[2:] == value[2:]  # SRV targets and CNAMEs are mapped back like the names
        out.append((name[2], name[3], answer[2], answer[3]))
    return out


def _apply(rules: list[tuple[str, str, str, str]], qname: str) -> tuple[str, tuple[str, str] | None]:
    """What CoreDNS' rewrite does with a question: the first matching rule (``stop``) rewrites it."""
    for q_re, q_to, a_re, a_to in rules:
        m = re.search(q_re, qname)
        if m:
            out = q_to
            for i, group in enumerate([m.group(0), *m.groups()]):
                out = out.replace("{" + str(i) + "}", group)
            return out, (a_re, a_to)
    return qname, None


def _revert(answer_rule: tuple[str, str], name: str) -> str:
    a_re, a_to = answer_rule
    m = re.search(a_re, name)
    assert m, (a_re, name)
    out = a_to
    for i, group in enumerate([m.group(0), *m.groups()]):
        out = out.replace("{" + str(i) + "}", group)
    return out


@pytest.mark.parametrize(("question", "super_name"), [
    ("web.shop.svc.cluster.local.", f"web.{KEY}--shop.svc.cluster.local."),
    ("db-0.db.shop.svc.cluster.local.", f"db-0.db.{KEY}--shop.svc.cluster.local."),
    ("_http._tcp.web.shop.svc.cluster.local.", f"_http._tcp.web.{KEY}--shop.svc.cluster.local."),
    # a tenant naming a super namespace only reaches a namespace of its own that cannot exist
    ("web.other-9f9f9f--shop.svc.cluster.local.", f"web.{KEY}--other-9f9f9f--shop.svc.cluster.local."),
], ids=["service", "statefulset-pod", "srv", "foreign-super-namespace"])
def test_questions_go_to_the_tenants_super_namespace_and_answers_come_back(question: str, super_name: str) -> None:
    rules = _rewrites(_corefile())
    rewritten, answer = _apply(rules, question)
    assert rewritten == super_name
    assert answer is not None
    assert _revert(answer, super_name) == question


def test_shortened_super_namespaces_get_their_own_rule_before_the_general_one() -> None:
    long_ns = "a-very-long-namespace-name-that-does-not-fit-in-sixty-three"
    short = naming.super_namespace(KEY, long_ns)
    assert short != f"{KEY}--{long_ns}"
    mapping = dns.shortened(KEY, [long_ns, "shop"])
    assert mapping == {long_ns: short}
    rules = _rewrites(_corefile(long_namespaces=mapping))
    question = f"_http._tcp.web.{long_ns}.svc.cluster.local."
    rewritten, answer = _apply(rules, question)
    assert rewritten == f"_http._tcp.web.{short}.svc.cluster.local."
    assert answer is not None
    assert _revert(answer, rewritten) == question
    # ordinary namespaces still take the general rule
    assert _apply(rules, "web.shop.svc.cluster.local.")[0] == f"web.{KEY}--shop.svc.cluster.local."


def test_only_the_tenants_workload_namespaces_are_visible() -> None:
    text = _corefile()
    assert (f"namespace_labels {naming.LABEL_CLUSTER_KEY}={KEY},"
            f"{naming.LABEL_NAMESPACE_ROLE}={naming.ROLE_WORKLOAD}") in text
    assert "kubeconfig /s/kc" in text
    assert "pods " not in text  # no pod-IP records (pods insecure would answer any address)
    assert "fallthrough\n    }\n    kubernetes" in text  # only the hosts entry falls through


def test_kubernetes_default_answers_the_tenant_apiserver() -> None:
    text = _corefile(apiserver_ip="10.245.0.7")
    assert f"10.245.0.7 kubernetes.{KEY}--default.svc.cluster.local" in text
    assert "hosts" not in _corefile(apiserver_ip=None)


def test_outside_names_go_only_to_the_given_upstream() -> None:
    assert "forward" not in _corefile()
    text = _corefile(upstream=("10.96.0.10",))
    forward = re.search(r"forward \. (\S+) \{\n\s+except (.*)\n\s+\}", text)
    assert forward, text
    assert forward.group(1) == "10.96.0.10"
    # the super resolver names any super IP (another tenant's namespace and Service) and every
    # super Service: neither reverse lookups nor the super domain are ever asked there
    assert set(forward.group(2).split()) == {"cluster.local", "in-addr.arpa", "ip6.arpa"}


def _sealed(text: str) -> set[str]:
    m = re.search(r"template ANY ANY (.*) \{\n\s+rcode NXDOMAIN\n\s+\}", text)
    return set(m.group(1).split()) if m else set()


def test_reverse_lookups_are_answered_nxdomain_by_the_tenant_dns_itself() -> None:
    assert _sealed(_corefile()) == {"in-addr.arpa", "ip6.arpa"}
    assert _sealed(_corefile(upstream=("10.96.0.10",))) == {"in-addr.arpa", "ip6.arpa"}


@pytest.mark.parametrize(("domain", "super_domain", "sealed_super"), [
    ("corp.example", "cluster.local", True),     # apart: the super domain is sealed
    ("cluster.local", "cluster.local", False),   # the same zone: the kubernetes plugin answers it
    ("a.cluster.local", "cluster.local", False),  # the tenant's zone inside: sealing would catch its own names
    ("local", "cluster.local", False),            # the super zone inside the tenant's: the plugin answers it
], ids=["apart", "same", "tenant-inside-super", "super-inside-tenant"])
def test_the_super_domain_is_sealed_when_that_cannot_catch_the_tenants_own_names(
        domain: str, super_domain: str, sealed_super: bool) -> None:
    text = _corefile(domain=domain, super_domain=super_domain, upstream=("10.96.0.10",))
    assert (super_domain in _sealed(text)) is sealed_super
    assert f"kubernetes {domain} {{" in text
    # whatever the zones, the super domain never goes upstream
    assert re.search(rf"except {re.escape(super_domain)} ", text)


def test_a_tenant_cluster_domain_is_the_zone_of_the_rewrites_and_of_kubernetes_default() -> None:
    text = _corefile(domain="corp.example")
    rules = _rewrites(text)
    question = "web.shop.svc.corp.example."
    rewritten, answer = _apply(rules, question)
    assert rewritten == f"web.{KEY}--shop.svc.corp.example."
    assert answer is not None
    assert _revert(answer, rewritten) == question
    # the default domain's names are not the tenant's: not rewritten into its namespaces
    assert _apply(rules, "web.shop.svc.cluster.local.")[0] == "web.shop.svc.cluster.local."
    assert f"kubernetes.{KEY}--default.svc.corp.example" in text


def test_bind_is_omitted_in_a_pod_and_the_in_cluster_identity_is_used() -> None:
    text = _corefile(bind=None, kubeconfig=None, port=dns.POD_PORT, ready=f":{dns.POD_READY_PORT}")
    assert text.startswith(f".:{dns.POD_PORT} {{\n")
    assert "bind" not in text
    assert "kubeconfig" not in text


def test_rbac_is_read_only_list_watch_of_what_the_kubernetes_plugin_reads() -> None:
    role = dns.cluster_role()
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"list", "watch"}
    resources = {(g, res) for rule in role["rules"] for g in rule["apiGroups"] for res in rule["resources"]}
    assert resources == {("", "services"), ("", "namespaces"), ("discovery.k8s.io", "endpointslices")}
    account, binding = dns.identity_objects(KEY, "shop")
    assert account["metadata"] == {**account["metadata"], "namespace": KEY,
                                   "name": naming.TENANT_DNS_SERVICE_ACCOUNT}
    assert binding["metadata"]["name"] == naming.tenant_dns_binding_name(KEY)
    assert binding["roleRef"]["name"] == naming.TENANT_DNS_CLUSTER_ROLE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": naming.TENANT_DNS_SERVICE_ACCOUNT,
                                    "namespace": KEY}]


def test_service_port_53_and_its_endpoint_slice_point_at_the_local_server() -> None:
    svc = dns.service(KEY, "shop", target_port=40053, selector=False)
    assert svc["metadata"]["namespace"] == naming.root_namespace(KEY)
    assert "selector" not in svc["spec"]
    assert {(p["protocol"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        ("UDP", 53, 40053), ("TCP", 53, 40053)}
    eps = dns.endpoint_slice(KEY, "shop", address="10.245.0.1", port=40053)
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == naming.TENANT_DNS_SERVICE
    assert eps["endpoints"][0]["addresses"] == ["10.245.0.1"]
    assert {p["name"] for p in eps["ports"]} == {p["name"] for p in svc["spec"]["ports"]}
    pods_svc = dns.service(KEY, "shop", target_port=dns.POD_PORT, selector=True)
    config, deployment = dns.pod_objects(KEY, "shop", image="img", corefile_text="x")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pods_svc["spec"]["selector"].items() <= template_labels.items()
    assert config["data"][dns.COREFILE_KEY] == "x"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == naming.TENANT_DNS_SERVICE_ACCOUNT


def test_super_kubeconfig_reads_the_token_file() -> None:
    config = dns.super_kubeconfig(server="https://10.245.0.1:6443", ca_pem=b"CA", token_file="/t/token")
    assert config["users"][0]["user"] == {"tokenFile": "/t/token"}
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


def test_status_carries_the_dns_cluster_ip() -> None:
    status = TenantStatus.from_dict({"dns": {"clusterIP": "10.96.3.4", "endpoint": "10.245.0.1:40053"}})
    assert status.dns_cluster_ip == "10.96.3.4"
    assert status.to_dict()["dns"] == {"clusterIP": "10.96.3.4"}
    assert TenantStatus.from_dict({}).dns_cluster_ip is None
