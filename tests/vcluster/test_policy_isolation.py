"""Hard isolation, check by check: scheduling, exposure and hand-written endpoints.

Why: a tenant is cluster-admin of its own control plane, so every field it
writes is untrusted input to the shared super cluster.  Each hostile case
here is refused (or confined) by one check of :mod:`vcluster.policy` and
would pass unchanged without it; each allowed case shows the check is not
wider than the policy says.  Every refusal names the tenant's field and the
``Tenant`` policy field an admin would change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd import SpecError, TenantSpec
from vcluster import naming, policy

KEY = "demo-abc123"
DEDICATED = {"key": "dedicated", "operator": "Equal", "value": "demo", "effect": "NoSchedule"}


def _pol(**isolation: Any) -> policy.PodPolicy:
    return policy.pod_policy(TenantSpec.from_dict({"isolation": isolation}).isolation)


# ---- tolerations ----------------------------------------------------------------------------

TOLERATION_CASES = [
    # (tenant toleration, isolation spec, allowed?)
    pytest.param({"operator": "Exists"}, {}, False, id="tolerate-everything"),
    pytest.param({"operator": "Exists", "effect": "NoSchedule"}, {}, False, id="every-key-one-effect"),
    pytest.param({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}, {}, False,
                 id="control-plane-nodes"),
    pytest.param(DEDICATED, {}, False, id="dedicated-without-policy"),
    pytest.param(DEDICATED, {"tolerations": [DEDICATED]}, True, id="own-node-placement"),
    pytest.param(DEDICATED, {"allowedTolerations": [DEDICATED]}, True, id="admin-allowed-exact"),
    pytest.param({**DEDICATED, "value": "other"}, {"allowedTolerations": [DEDICATED]}, False,
                 id="other-value-of-an-allowed-key"),
    pytest.param({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
                 {"allowedTolerations": [DEDICATED]}, False, id="exists-wider-than-allowed-equal"),
    pytest.param({"key": "dedicated", "operator": "Equal", "value": "demo"},
                 {"allowedTolerations": [DEDICATED]}, False, id="every-effect-wider-than-one"),
    pytest.param({**DEDICATED, "effect": "NoExecute"}, {"allowedTolerations": [DEDICATED]}, False,
                 id="other-effect"),
    pytest.param(DEDICATED, {"allowedTolerations": [{"key": "dedicated", "operator": "Exists"}]}, True,
                 id="allowed-exists-covers-any-value-and-effect"),
    pytest.param({"key": "gpu", "operator": "Exists"}, {"allowedTolerations": [{"operator": "Exists"}]}, True,
                 id="admin-allows-everything"),
    pytest.param({"key": "gpu", "operator": "Exists"},
                 {"allowedTolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}, False,
                 id="allowed-one-effect-tenant-all"),
    pytest.param({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 300}, {}, True, id="default-toleration-seconds"),
    pytest.param({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}, {},
                 True, id="daemonset-unschedulable"),
    pytest.param({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}, {},
                 True, id="daemonset-disk-pressure"),
    pytest.param({"key": "node.kubernetes.io/not-readyx", "operator": "Exists"}, {}, False,
                 id="lookalike-condition-key"),
    pytest.param({"key": "evict", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                 {"allowedTolerations": [{"key": "evict", "operator": "Exists", "effect": "NoExecute",
                                          "tolerationSeconds": 60}]}, True, id="seconds-within-limit"),
    pytest.param({"key": "evict", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 61},
                 {"allowedTolerations": [{"key": "evict", "operator": "Exists", "effect": "NoExecute",
                                          "tolerationSeconds": 60}]}, False, id="seconds-above-limit"),
    pytest.param({"key": "evict", "operator": "Exists", "effect": "NoExecute"},
                 {"allowedTolerations": [{"key": "evict", "operator": "Exists", "effect": "NoExecute",
                                          "tolerationSeconds": 60}]}, False, id="forever-above-limit"),
    pytest.param({"key": "evict", "operator": "Exists", "effect": "NoSchedule"},
                 {"allowedTolerations": [{"key": "evict", "operator": "Exists",
                                          "tolerationSeconds": 60}]}, True, id="seconds-irrelevant-for-noschedule"),
    pytest.param({"key": "dedicated", "value": "demo", "effect": "NoSchedule"},
                 {"allowedTolerations": [DEDICATED]}, True, id="operator-defaults-to-equal"),
]


@pytest.mark.parametrize(("tol", "isolation", "allowed"), TOLERATION_CASES)
def test_tolerations_stay_within_the_tenants_share(tol: dict[str, Any], isolation: dict[str, Any],
                                                   allowed: bool) -> None:
    reasons = policy.check_tolerations({"tolerations": [tol]}, _pol(**isolation))
    assert (reasons == []) is allowed
    if not allowed:
        assert reasons[0].startswith("tolerations[0] ")
        assert "spec.isolation.allowedTolerations" in reasons[0]


def test_check_pod_refuses_a_wide_toleration_and_names_each() -> None:
    spec = {"containers": [{"name": "c", "image": "i"}],
            "tolerations": [DEDICATED, {"operator": "Exists"}, {"key": "x", "operator": "Exists"}]}
    reasons = policy.check_pod(spec, _pol(tolerations=[DEDICATED]))
    assert [r.split(" ")[0] for r in reasons] == ["tolerations[1]", "tolerations[2]"]


# ---- pod affinity ------------------------------------------------------------------------------

_SEL = {"matchLabels": {"app": "db"}}


def _term(**extra: Any) -> dict[str, Any]:
    return {"labelSelector": _SEL, "topologyKey": "kubernetes.io/hostname", **extra}


def _workload_selector(**labels: str) -> dict[str, Any]:
    return {"matchLabels": {**labels, naming.LABEL_CLUSTER_KEY: KEY,
                            naming.LABEL_NAMESPACE_ROLE: naming.ROLE_WORKLOAD}}


AFFINITY_CASES = [
    pytest.param(_term(), _term(), id="own-namespace-unchanged"),
    pytest.param(_term(namespaceSelector={}), _term(namespaceSelector=_workload_selector()),
                 id="all-namespaces-becomes-all-of-the-tenant"),
    pytest.param(_term(namespaces=["db", "web"]),
                 _term(namespaces=[naming.super_namespace(KEY, "db"), naming.super_namespace(KEY, "web")]),
                 id="namespaces-mapped"),
    pytest.param(_term(namespaceSelector={"matchLabels": {"team": "a"}}),
                 _term(namespaceSelector=_workload_selector(**{naming.tenant_label_key("team"): "a"})),
                 id="tenant-label-selector-kept-working"),
    pytest.param(_term(namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "db"}}),
                 _term(namespaceSelector=_workload_selector(**{naming.LABEL_TENANT_NAMESPACE: "db"})),
                 id="namespace-name-label"),
    pytest.param(_term(namespaceSelector={"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
                 _term(namespaceSelector={**_workload_selector(), "matchExpressions": [
                     {"key": naming.tenant_label_key("team"), "operator": "Exists"}]}),
                 id="expressions-mapped"),
    pytest.param(_term(namespaceSelector={"matchLabels": {naming.LABEL_CLUSTER_KEY: "other-999999"}}),
                 _term(namespaceSelector=_workload_selector(
                     **{naming.tenant_label_key(naming.LABEL_CLUSTER_KEY): "other-999999"})),
                 id="posing-as-another-tenant-key"),
    pytest.param(_term(namespaceSelector=None), _term(), id="null-selector-dropped"),
]


@pytest.mark.parametrize(("term", "want"), AFFINITY_CASES)
@pytest.mark.parametrize("section", ["podAffinity", "podAntiAffinity"])
def test_affinity_terms_are_confined_to_the_tenant(section: str, term: dict[str, Any], want: dict[str, Any]) -> None:
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    affinity = {section: {required: [term], preferred: [{"weight": 5, "podAffinityTerm": term}]},
                "nodeAffinity": {"x": 1}}
    out = policy.confine_affinity(affinity, KEY)
    assert out[section][required] == [want]
    assert out[section][preferred] == [{"weight": 5, "podAffinityTerm": want}]
    assert out["nodeAffinity"] == {"x": 1}  # ANDed with the node selector: can only narrow


def test_confine_affinity_copies() -> None:
    term = _term(namespaces=["db"])
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    policy.confine_affinity(affinity, KEY)
    assert term["namespaces"] == ["db"]


# ---- exposure -----------------------------------------------------------------------------------

SERVICE_CASES = [
    # (service spec, exposure, refused policy field or None)
    pytest.param({"type": "ClusterIP"}, {}, None, id="clusterip"),
    pytest.param({}, {}, None, id="default-type"),
    pytest.param({"type": "NodePort"}, {}, "exposure.nodePort", id="nodeport-refused"),
    pytest.param({"type": "NodePort"}, {"nodePort": True}, None, id="nodeport-allowed"),
    pytest.param({"type": "NodePort"}, {"loadBalancer": True}, None, id="nodeport-implied-by-lb"),
    pytest.param({"type": "LoadBalancer"}, {}, "exposure.loadBalancer", id="lb-refused"),
    pytest.param({"type": "LoadBalancer"}, {"nodePort": True}, "exposure.loadBalancer", id="lb-not-by-nodeport"),
    pytest.param({"type": "LoadBalancer"}, {"loadBalancer": True}, None, id="lb-allowed"),
    pytest.param({"type": "ExternalName", "externalName": "kubernetes.default.svc.cluster.local"}, {},
                 "exposure.externalName", id="externalname-refused"),
    pytest.param({"type": "ExternalName"}, {"externalName": True}, None, id="externalname-allowed"),
    pytest.param({"externalIPs": ["192.0.2.1"]}, {}, "exposure.externalIPs", id="externalips-refused"),
    pytest.param({"externalIPs": ["192.0.2.1"]}, {"externalIPs": True}, None, id="externalips-allowed"),
    pytest.param({"externalIPs": []}, {}, None, id="empty-externalips"),
]


@pytest.mark.parametrize(("spec", "exposure", "field"), SERVICE_CASES)
def test_service_exposure_needs_the_admin(spec: dict[str, Any], exposure: dict[str, Any], field: str | None) -> None:
    reasons = policy.check_service(spec, _pol(exposure=exposure))
    if field is None:
        assert reasons == []
    else:
        assert len(reasons) == 1
        assert reasons[0].startswith("spec.")
        assert f"Tenant spec.isolation.{field})" in reasons[0]


HOST_PORT_CASES = [
    pytest.param(8080, [], False, id="no-ranges"),
    pytest.param(8080, [{"min": 8000, "max": 8100}], True, id="inside"),
    pytest.param(8000, [{"min": 8000, "max": 8100}], True, id="lower-bound"),
    pytest.param(8100, [{"min": 8000, "max": 8100}], True, id="upper-bound"),
    pytest.param(7999, [{"min": 8000, "max": 8100}], False, id="below"),
    pytest.param(8101, [{"min": 8000, "max": 8100}], False, id="above"),
    pytest.param(9000, [{"min": 8000, "max": 8100}, {"min": 9000, "max": 9000}], True, id="second-range"),
]


@pytest.mark.parametrize(("port", "ranges", "allowed"), HOST_PORT_CASES)
def test_host_ports_only_in_allowed_ranges(port: int, ranges: list[dict[str, int]], allowed: bool) -> None:
    spec = {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": port}]}]}
    reasons = policy.check_pod(spec, _pol(exposure={"hostPorts": ranges}))
    assert (reasons == []) is allowed
    if not allowed:
        assert reasons == [f"containers[c]: hostPort {port} is not allowed (Tenant spec.isolation.exposure.hostPorts)"]


def test_host_port_ranges_must_be_ordered() -> None:
    with pytest.raises(SpecError, match=r"hostPorts\[0\]: min 9 is above max 8"):
        TenantSpec.from_dict({"isolation": {"exposure": {"hostPorts": [{"min": 9, "max": 8}]}}})


# ---- endpoints ----------------------------------------------------------------------------------

OWN = ("10.244.1.7", "fd00::7")
ENDPOINT_CASES = [
    # (ip, allowed CIDRs, reserved, allowed?, words in the reason)
    pytest.param("10.244.1.7", (), (), True, "", id="own-pod"),
    pytest.param("fd00::7", (), (), True, "", id="own-pod-v6"),
    pytest.param("10.244.1.8", (), (), False, "allowedEndpointCIDRs", id="another-pod"),
    pytest.param("10.96.0.1", (), (), False, "allowedEndpointCIDRs", id="super-apiserver-service"),
    pytest.param("192.0.2.10", ("192.0.2.0/24",), (), True, "", id="admin-network"),
    pytest.param("192.0.3.10", ("192.0.2.0/24",), (), False, "allowedEndpointCIDRs", id="outside-admin-network"),
    pytest.param("fd01::1", ("192.0.2.0/24",), (), False, "allowedEndpointCIDRs", id="other-family"),
    pytest.param("127.0.0.1", ("0.0.0.0/0",), (), False, "loopback", id="loopback"),
    pytest.param("::1", ("::/0",), (), False, "loopback", id="loopback-v6"),
    pytest.param("169.254.169.254", ("0.0.0.0/0",), (), False, "link-local", id="cloud-metadata"),
    pytest.param("fe80::1", ("::/0",), (), False, "link-local", id="link-local-v6"),
    pytest.param("0.0.0.0", ("0.0.0.0/0",), (), False, "unspecified", id="unspecified"),
    pytest.param("224.0.0.1", ("0.0.0.0/0",), (), False, "multicast", id="multicast"),
    pytest.param("192.168.1.5", ("0.0.0.0/0",), ("192.168.1.5",), False, "node or service", id="reserved-node"),
    pytest.param("10.244.1.7", (), ("10.244.1.7",), False, "node or service", id="reserved-beats-own"),
    pytest.param("not-an-ip", ("0.0.0.0/0",), (), False, "not an IP", id="garbage"),
]


@pytest.mark.parametrize(("ip", "cidrs", "reserved", "allowed", "words"), ENDPOINT_CASES)
def test_endpoint_addresses(ip: str, cidrs: tuple[str, ...], reserved: tuple[str, ...], allowed: bool,
                            words: str) -> None:
    reasons = policy.check_endpoint_addresses([("subsets[0].addresses[0].ip", ip)],
                                              _pol(allowedEndpointCIDRs=list(cidrs)), own_ips=OWN,
                                              reserved_ips=reserved)
    assert (reasons == []) is allowed
    if not allowed:
        assert reasons[0].startswith(f"subsets[0].addresses[0].ip {ip}") or "not an IP" in reasons[0]
        assert words in reasons[0]


def test_endpoint_cidrs_are_checked_and_normalised() -> None:
    assert _pol(allowedEndpointCIDRs=["192.0.2.7/24"]).allowed_endpoint_cidrs == ("192.0.2.0/24",)
    with pytest.raises(SpecError, match=r"allowedEndpointCIDRs\[0\]"):
        TenantSpec.from_dict({"isolation": {"allowedEndpointCIDRs": ["300.1.1.1/8"]}})


def test_pod_policy_reads_every_isolation_field() -> None:
    pol = _pol(allowedTolerations=[DEDICATED], allowedEndpointCIDRs=["192.0.2.0/24"],
               exposure={"nodePort": True, "loadBalancer": True, "externalIPs": True, "externalName": True,
                         "hostPorts": [{"min": 80, "max": 81}]})
    assert pol.allowed_tolerations == (DEDICATED,)
    assert (pol.node_port, pol.load_balancer, pol.external_ips, pol.external_name) == (True, True, True, True)
    assert pol.host_ports == ((80, 81),)
    assert pol.allowed_endpoint_cidrs == ("192.0.2.0/24",)
    default = _pol()
    assert (default.node_port, default.load_balancer, default.external_ips, default.external_name) == (
        False, False, False, False)


# ---- network policy ---------------------------------------------------------------------------------

APISERVER_CASES = [
    pytest.param(None, None, id="no-endpoint"),
    pytest.param(("127.0.0.1", 6443), {"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}],
                                       "ports": [{"protocol": "TCP", "port": 6443}]}, id="ipv4"),
    pytest.param(("fd00::5", 443), {"to": [{"ipBlock": {"cidr": "fd00::5/128"}}],
                                    "ports": [{"protocol": "TCP", "port": 443}]}, id="ipv6"),
    pytest.param(("apiserver.demo.svc", 443), None, id="name-in-root-namespace"),
]


@pytest.mark.parametrize(("apiserver", "rule"), APISERVER_CASES)
def test_default_network_policy_denies_other_tenants_both_ways(apiserver: tuple[str, int] | None,
                                                               rule: dict[str, Any] | None) -> None:
    spec = policy.network_policy_spec(KEY, apiserver=apiserver)
    own = {"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: KEY}}}
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]  # egress is limited too, not only ingress
    assert spec["ingress"] == [{"from": [own]}]
    assert spec["egress"][0] == {"to": [own]}
    assert spec["egress"][1]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert spec["egress"][2:] == ([rule] if rule else [])
    for egress_rule in spec["egress"]:
        assert egress_rule.get("to"), "every egress rule names its peers (no rule to anywhere)"


def test_policy_objects_pass_the_apiserver_on() -> None:
    iso = TenantSpec.from_dict({}).isolation
    (netpol,) = policy.policy_objects(iso, super_namespace="ns", cluster_key=KEY, tenant_name="t",
                                      apiserver=("10.1.2.3", 6443))
    assert netpol["spec"] == policy.network_policy_spec(KEY, apiserver=("10.1.2.3", 6443))
