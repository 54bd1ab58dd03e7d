"""The default NetworkPolicy: tenant DNS let through, admin allow-lists for ingress controllers and
monitoring (issue 12 item 5).  The policy is data; these tests pin the rules it must contain."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd.models import IngressPeer, SpecError, TenantSpec
from vcluster import naming, policy

KEY = "acme-abc123"
OWN = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}}}


def egress_to(spec: dict[str, Any], cidr: str) -> list[dict[str, Any]]:
    return [r for r in spec["egress"] if {"ipBlock": {"cidr": cidr}} in r.get("to", [])]


def test_local_tenant_dns_endpoint_is_let_through() -> None:
    spec = policy.network_policy_spec(KEY, apiserver=("10.245.0.1", 6443), dns=("10.245.0.1", 30053))
    rules = egress_to(spec, "10.245.0.1/32")
    # the DNS port (UDP and TCP: truncated answers retry over TCP), and the apiserver's
    assert {"protocol": "UDP", "port": 30053} in rules[0]["ports"]
    assert {"protocol": "TCP", "port": 30053} in rules[0]["ports"]
    assert rules[1]["ports"] == [{"protocol": "TCP", "port": 6443}]
    # without it, only the apiserver port of that host is open: DNS to the endpoint would be dropped
    without = policy.network_policy_spec(KEY, apiserver=("10.245.0.1", 6443))
    assert [r["ports"] for r in egress_to(without, "10.245.0.1/32")] == [[{"protocol": "TCP", "port": 6443}]]


def test_a_dns_endpoint_that_is_no_ip_adds_nothing() -> None:
    assert policy.network_policy_spec(KEY, dns=("dns.example", 53)) == policy.network_policy_spec(KEY)


@pytest.mark.parametrize(("raw", "want"), [
    ("10.245.0.1:30053", ("10.245.0.1", 30053)), ("[fd00::1]:53", ("fd00::1", 53)),
    (None, None), ("", None), ("10.0.0.1", None), ("10.0.0.1:x", None),
])
def test_host_port(raw: str | None, want: tuple[str, int] | None) -> None:
    assert policy.host_port(raw) == want


def test_admin_peers_are_let_in_and_nothing_else() -> None:
    peers = (IngressPeer(namespace_labels={"kubernetes.io/metadata.name": "ingress-nginx"},
                         pod_labels={"app": "controller"}, ports=(("TCP", 8080),)),
             IngressPeer(namespace_labels={"team": "monitoring"}))
    spec = policy.network_policy_spec(KEY, allow_from=peers)
    assert spec["ingress"] == [
        {"from": [OWN]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                   "podSelector": {"matchLabels": {"app": "controller"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]},
    ]
    assert policy.network_policy_spec(KEY)["ingress"] == [{"from": [OWN]}]


def test_policy_objects_carry_the_allow_list_and_dns() -> None:
    isolation = TenantSpec.from_dict({"isolation": {"allowedIngressFrom": [
        {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}, "ports": [{"port": 9100}]}]}}).isolation
    (netpol,) = policy.policy_objects(isolation, super_namespace="n", cluster_key=KEY, tenant_name="acme",
                                      dns=("10.245.0.1", 30053))
    assert netpol["spec"]["ingress"][1] == {"from": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
                                            "ports": [{"protocol": "TCP", "port": 9100}]}
    assert egress_to(netpol["spec"], "10.245.0.1/32")


@pytest.mark.parametrize(("peer", "needle"), [
    ({"podSelector": {"matchLabels": {"a": "b"}}}, "allowedIngressFrom[0].namespaceSelector: required"),
    ({"namespaceSelector": {}, "ports": [{"port": 0}]}, "allowedIngressFrom[0].ports[0].port"),
    ({"namespaceSelector": {}, "ports": [{"port": 80, "protocol": "ICMP"}]}, "ports[0].protocol"),
    ({"namespaceSelector": {"matchLabels": {"a": 1}}}, "namespaceSelector.matchLabels.a"),
])
def test_bad_allow_list_entries_name_the_field(peer: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        TenantSpec.from_dict({"isolation": {"allowedIngressFrom": [peer]}})


def test_admin_egress_targets_are_let_out_and_nothing_else() -> None:
    """``allowedEgressTo``: the internet minus the cluster's networks on one port, and a super service's
    pods; the default rules stay first and unchanged."""
    isolation = TenantSpec.from_dict({"isolation": {"allowedEgressTo": [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "10.96.0.0/12"]}, "ports": [{"port": 443}]},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shared-db"}},
         "podSelector": {"matchLabels": {"app": "postgres"}}, "ports": [{"port": 5432}]},
    ]}}).isolation
    spec = policy.network_policy_spec(KEY, allow_to=isolation.allowed_egress_to)
    default = policy.network_policy_spec(KEY)["egress"]
    assert spec["egress"][:len(default)] == default
    assert spec["egress"][len(default):] == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "10.96.0.0/12"]}}],
         "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shared-db"}},
                 "podSelector": {"matchLabels": {"app": "postgres"}}}],
         "ports": [{"protocol": "TCP", "port": 5432}]},
    ]
    (netpol,) = policy.policy_objects(isolation, super_namespace="n", cluster_key=KEY, tenant_name="acme")
    assert netpol["spec"]["egress"] == spec["egress"]
    assert netpol["spec"]["ingress"] == [{"from": [OWN]}]  # egress entries open nothing inwards


def test_an_ip_block_without_except_has_none_in_the_policy() -> None:
    isolation = TenantSpec.from_dict({"isolation": {"allowedEgressTo": [{"ipBlock": {"cidr": "192.0.2.7/24"}}]}}
                                     ).isolation
    assert policy.network_policy_spec(KEY, allow_to=isolation.allowed_egress_to)["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}
