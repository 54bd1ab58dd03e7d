"""Tenant NetworkPolicies: every form of peer, in both directions, stays inside the tenant.

Why: NetworkPolicies are additive, so one careless translation would open a
tenant's pods to every other tenant.  Each peer form a tenant may write
(pod selector, namespace selector, both, empty or null selectors, match
expressions, ipBlock) has a case here that states what the super policy must
select; the cases fail if a namespace selector stops being confined to the
tenant's cluster key or its keys stop being translated.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.resources import networkpolicy as np_mod
from syncer.resources.base import TranslateContext
from vcluster import naming

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1")
TENANT_WIDE = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}}}
CONFINED = {naming.LABEL_CLUSTER_KEY: KEY}
APP = {"matchLabels": {"app": "web"}}


def v_policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow", "namespace": "shop", "uid": "np-uid"},
            "spec": {"podSelector": {}, **spec}}


# (id, tenant peer, super peer)
PEERS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("pod-selector-only", {"podSelector": APP}, {"podSelector": APP}),
    ("empty-namespace-selector", {"namespaceSelector": {}}, TENANT_WIDE),
    ("null-namespace-selector", {"namespaceSelector": None}, TENANT_WIDE),
    ("namespace-name-label", {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}},
     {"namespaceSelector": {"matchLabels": {naming.LABEL_TENANT_NAMESPACE: "db", **CONFINED}}}),
    ("namespace-own-label", {"namespaceSelector": {"matchLabels": {"team": "red"}}},
     {"namespaceSelector": {"matchLabels": {naming.tenant_label_key("team"): "red", **CONFINED}}}),
    ("namespace-and-pod-selector", {"namespaceSelector": {"matchLabels": {"team": "red"}}, "podSelector": APP},
     {"namespaceSelector": {"matchLabels": {naming.tenant_label_key("team"): "red", **CONFINED}},
      "podSelector": APP}),
    ("empty-namespace-and-pod-selector", {"namespaceSelector": {}, "podSelector": APP},
     {**TENANT_WIDE, "podSelector": APP}),
    ("cluster-key-label-cannot-be-forged", {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: "other"}}},
     {"namespaceSelector": {"matchLabels": {naming.tenant_label_key(naming.LABEL_CLUSTER_KEY): "other",
                                            **CONFINED}}}),
    ("match-expressions", {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]},
        {"key": "tier", "operator": "Exists"}]}},
     {"namespaceSelector": {"matchLabels": CONFINED, "matchExpressions": [
         {"key": naming.LABEL_TENANT_NAMESPACE, "operator": "In", "values": ["a", "b"]},
         {"key": naming.tenant_label_key("tier"), "operator": "Exists"}]}}),
    ("match-expressions-not-in", {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["a"]}]}},
     {"namespaceSelector": {"matchLabels": CONFINED, "matchExpressions": [
         {"key": naming.LABEL_TENANT_NAMESPACE, "operator": "NotIn", "values": ["a"]}]}}),
]


@pytest.mark.parametrize(("v_peer", "p_peer"), [c[1:] for c in PEERS], ids=[c[0] for c in PEERS])
def test_ingress_peer(v_peer: dict[str, Any], p_peer: dict[str, Any]) -> None:
    v = v_policy(ingress=[{"from": [v_peer], "ports": [{"port": 80}]}])
    before = copy.deepcopy(v)
    p = np_mod.to_super(v, CTX)
    assert p["spec"]["ingress"] == [{"from": [p_peer], "ports": [{"port": 80}]}]
    assert v == before


@pytest.mark.parametrize(("v_peer", "p_peer"), [c[1:] for c in PEERS], ids=[c[0] for c in PEERS])
def test_egress_peer(v_peer: dict[str, Any], p_peer: dict[str, Any]) -> None:
    v = v_policy(egress=[{"to": [v_peer]}], policyTypes=["Egress"])
    before = copy.deepcopy(v)
    p = np_mod.to_super(v, CTX)
    assert p["spec"]["egress"] == [{"to": [p_peer]}]
    assert p["spec"]["policyTypes"] == ["Egress"]
    assert v == before


@pytest.mark.parametrize(
    ("rule", "want"),
    [
        pytest.param({}, {"from": [TENANT_WIDE]}, id="from-anywhere"),
        pytest.param({"from": None, "ports": [{"port": 80}]}, {"from": [TENANT_WIDE], "ports": [{"port": 80}]},
                     id="null-peers"),
        pytest.param({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"podSelector": APP}]},
                     {"from": [{"podSelector": APP}]}, id="ip-block-dropped-others-kept"),
        pytest.param({"from": [{"podSelector": APP}, {"namespaceSelector": {}}]},
                     {"from": [{"podSelector": APP}, TENANT_WIDE]}, id="two-peers"),
    ],
)
def test_ingress_rule_shapes(rule: dict[str, Any], want: dict[str, Any]) -> None:
    assert np_mod.to_super(v_policy(ingress=[rule]), CTX)["spec"]["ingress"] == [want]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        pytest.param({}, {"podSelector": {}}, id="no-rules-deny-nothing-added"),
        pytest.param({"ingress": None}, {"podSelector": {}, "ingress": []}, id="null-ingress-denies-all"),
        pytest.param({"ingress": []}, {"podSelector": {}, "ingress": []}, id="empty-ingress-denies-all"),
        pytest.param({"egress": None}, {"podSelector": {}, "egress": []}, id="null-egress-denies-all"),
        pytest.param({"egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]},
                     {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]},
                     id="egress-to-anywhere-kept"),
        pytest.param({"egress": [{"to": []}]}, {"podSelector": {}, "egress": [{"to": []}]},
                     id="egress-empty-peers-kept"),
    ],
)
def test_rule_lists(spec: dict[str, Any], want: dict[str, Any]) -> None:
    assert np_mod.to_super(v_policy(**spec), CTX)["spec"] == want


def test_super_policy_is_the_tenants_own_object() -> None:
    p = np_mod.to_super(v_policy(podSelector=APP), CTX)
    assert p["apiVersion"] == "networking.k8s.io/v1"
    assert p["kind"] == "NetworkPolicy"
    assert p["metadata"]["name"] == "allow"
    assert p["metadata"]["namespace"] == naming.super_namespace(KEY, "shop")
    assert p["metadata"]["labels"][naming.LABEL_CLUSTER_KEY] == KEY
    assert p["metadata"]["annotations"][naming.ANN_OBJECT_UID] == "np-uid"
    assert p["spec"]["podSelector"] == APP


def test_a_policy_without_spec_gets_an_empty_one() -> None:
    v = v_policy()
    del v["spec"]
    assert np_mod.to_super(v, CTX)["spec"] == {}


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        pytest.param({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, ["ingress[0]"], id="first"),
        pytest.param({"ingress": [{}, {"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
                     ["ingress[1]"], id="second-rule"),
        pytest.param({"ingress": [{"from": [{"ipBlock": {"cidr": "a"}}, {"ipBlock": {"cidr": "b"}}]}]},
                     ["ingress[0]", "ingress[0]"], id="each-peer"),
        pytest.param({"ingress": [{"from": None}]}, [], id="null-peers"),
        pytest.param({"ingress": None}, [], id="null-rules"),
        pytest.param({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, [], id="egress-allowed"),
    ],
)
def test_check_refuses_ingress_ip_blocks(spec: dict[str, Any], where: list[str]) -> None:
    reasons = np_mod.check(v_policy(**spec), CTX)
    assert [r.split(":")[0] for r in reasons] == where
    assert all("ipBlock" in r for r in reasons)


def test_check_without_spec() -> None:
    v = v_policy()
    del v["spec"]
    assert np_mod.check(v, CTX) == []


def test_synced_part_is_metadata_and_spec() -> None:
    v = v_policy(ingress=[{}])
    v["metadata"]["labels"] = {"a": "b"}
    assert np_mod.synced(v) == {"labels": {"a": "b"}, "annotations": {}, "spec": v["spec"]}
    del v["spec"]
    assert np_mod.synced(v)["spec"] == {}


def test_the_super_policy_shares_nothing_with_the_tenant_object() -> None:
    v = v_policy(podSelector={"matchLabels": {"app": "web"}},
                 egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}])
    before = copy.deepcopy(v)
    p = np_mod.to_super(v, CTX)
    p["spec"]["podSelector"]["matchLabels"]["app"] = "changed"
    p["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["app"] = "changed"
    p["spec"]["egress"][0]["ports"][0]["port"] = 1
    assert v == before
