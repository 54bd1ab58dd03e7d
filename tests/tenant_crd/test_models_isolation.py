"""The Tenant isolation fields that widen what tenant pods may do, and the DNS address in the status.

Why: ``spec.isolation.exposure`` (NodePorts, LoadBalancers, external IPs and names, host-port ranges),
``allowedTolerations`` and ``allowedEndpointCIDRs`` each open a door of the super cluster to a tenant; a
field that is misread (a wrong key, a default of "allowed", a range edge off by one, a network not
normalised) opens it without the admin asking.  ``status.dns.clusterIP`` is the nameserver every tenant
pod gets.  Each case states the spec and what is read, or the exact error naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd import TenantSpec
from tenant_crd.models import ExposureSpec, SpecError, TenantStatus, Toleration


def isolation(**fields: Any) -> Any:
    return TenantSpec.from_dict({"isolation": fields}).isolation


def test_nothing_is_exposed_unless_the_admin_says_so() -> None:
    got = isolation()
    assert got.exposure == ExposureSpec(node_port=False, load_balancer=False, external_ips=False,
                                        external_name=False, host_ports=())
    assert got.allowed_tolerations == ()
    assert got.allowed_endpoint_cidrs == ()


@pytest.mark.parametrize("field", ["nodePort", "loadBalancer", "externalIPs", "externalName"])
def test_each_exposure_switch_opens_only_its_own_door(field: str) -> None:
    got = isolation(exposure={field: True}).exposure
    opened = {"nodePort": got.node_port, "loadBalancer": got.load_balancer, "externalIPs": got.external_ips,
              "externalName": got.external_name}
    assert opened == {k: k == field for k in opened}


@pytest.mark.parametrize(("ranges", "want"), [
    ([{"min": 1, "max": 65535}], ((1, 65535),)),
    ([{"min": 8080, "max": 8080}], ((8080, 8080),)),
    ([{"min": 30000, "max": 30010}, {"min": 80, "max": 81}], ((30000, 30010), (80, 81))),
], ids=["whole-range", "one-port", "two-ranges"])
def test_host_port_ranges_are_read_inclusive(ranges: list[dict[str, Any]], want: tuple[tuple[int, int], ...]) -> None:
    assert isolation(exposure={"hostPorts": ranges}).exposure.host_ports == want


# (id, isolation fields, the exact error)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("host-ports-not-list", {"exposure": {"hostPorts": {"min": 1}}},
     "spec.isolation.exposure.hostPorts: must be a list"),
    ("host-port-min-missing", {"exposure": {"hostPorts": [{"max": 80}]}},
     "spec.isolation.exposure.hostPorts[0].min: must be between 1 and 65535; got 0"),
    ("host-port-max-missing", {"exposure": {"hostPorts": [{"min": 80}]}},
     "spec.isolation.exposure.hostPorts[0].max: must be between 1 and 65535; got 0"),
    ("host-port-zero", {"exposure": {"hostPorts": [{"min": 0, "max": 80}]}},
     "spec.isolation.exposure.hostPorts[0].min: must be between 1 and 65535; got 0"),
    ("host-port-above-range", {"exposure": {"hostPorts": [{"min": 80, "max": 65536}]}},
     "spec.isolation.exposure.hostPorts[0].max: must be between 1 and 65535; got 65536"),
    ("host-port-min-above-range", {"exposure": {"hostPorts": [{"min": 65536, "max": 65536}]}},
     "spec.isolation.exposure.hostPorts[0].min: must be between 1 and 65535; got 65536"),
    ("host-port-reversed", {"exposure": {"hostPorts": [{"min": 81, "max": 80}]}},
     "spec.isolation.exposure.hostPorts[0]: min 81 is above max 80"),
    ("host-port-second-bad", {"exposure": {"hostPorts": [{"min": 1, "max": 2}, {"min": True, "max": 2}]}},
     "spec.isolation.exposure.hostPorts[1].min: must be an integer, got True"),
    ("exposure-not-bool", {"exposure": {"nodePort": "yes"}},
     "spec.isolation.exposure.nodePort: must be true or false, got 'yes'"),
    ("load-balancer-not-bool", {"exposure": {"loadBalancer": 1}},
     "spec.isolation.exposure.loadBalancer: must be true or false, got 1"),
    ("allowed-tolerations-not-list", {"allowedTolerations": {"key": "a"}},
     "spec.isolation.allowedTolerations: must be a list"),
    ("allowed-toleration-bad", {"allowedTolerations": [{"key": "a", "operator": "Exists"}, {"operator": "Equal"}]},
     "spec.isolation.allowedTolerations[1]: a toleration without key must use operator Exists"),
    ("cidr-not-network", {"allowedEndpointCIDRs": ["10.0.0.0/8", "not-a-net"]},
     "spec.isolation.allowedEndpointCIDRs[1]: 'not-a-net' is not a network in CIDR notation"),
]


@pytest.mark.parametrize(("fields", "error"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_malformed_isolation_field_is_refused_naming_it(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError) as info:
        isolation(**fields)
    assert str(info.value) == error


def test_allowed_tolerations_are_read_as_tolerations() -> None:
    got = isolation(allowedTolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    assert got.allowed_tolerations == (Toleration(key="gpu", operator="Exists", effect="NoSchedule"),)


@pytest.mark.parametrize(("cidrs", "want"), [
    (["10.1.2.3/8"], ("10.0.0.0/8",)),
    (["192.168.0.0/24", "fd00::1/64"], ("192.168.0.0/24", "fd00::/64")),
    (["10.0.0.7"], ("10.0.0.7/32",)),
], ids=["host-bits-cleared", "v4-and-v6", "single-address"])
def test_endpoint_networks_are_normalised(cidrs: list[str], want: tuple[str, ...]) -> None:
    assert isolation(allowedEndpointCIDRs=cidrs).allowed_endpoint_cidrs == want


def test_an_enum_error_lists_the_allowed_values() -> None:
    with pytest.raises(SpecError) as info:
        isolation(podSecurity="none")
    assert str(info.value) == "spec.isolation.podSecurity: must be one of privileged, baseline, restricted; got 'none'"


# ---- status.dns ---------------------------------------------------------------------------------------------
def test_the_dns_address_round_trips_through_the_status() -> None:
    status = TenantStatus(phase="Running", dns_cluster_ip="10.96.0.10")
    assert status.to_dict()["dns"] == {"clusterIP": "10.96.0.10"}
    assert TenantStatus.from_dict(status.to_dict()).dns_cluster_ip == "10.96.0.10"


@pytest.mark.parametrize("dns", [None, {}, {"clusterIP": ""}, "10.96.0.10", ["10.96.0.10"]],
                         ids=["absent", "empty", "empty-ip", "not-an-object", "list"])
def test_a_status_without_a_usable_dns_address_has_none(dns: Any) -> None:
    data: dict[str, Any] = {"phase": "Running"}
    if dns is not None:
        data["dns"] = dns
    assert TenantStatus.from_dict(data).dns_cluster_ip is None
    assert "dns" not in TenantStatus.from_dict(data).to_dict()
