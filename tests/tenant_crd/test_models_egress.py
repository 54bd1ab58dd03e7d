"""``spec.isolation.allowedEgressTo``: the admin's egress allow-list is read strictly (issue 12 item 5).

An entry that NetworkPolicy would refuse (an ``except`` outside its ``cidr``) or that says two things at
once must be ``InvalidSpec`` naming the field, before the operator writes a policy the apiserver rejects.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd.models import EgressPeer, SpecError, TenantSpec


def _peers(*raw: dict[str, Any]) -> tuple[EgressPeer, ...]:
    return TenantSpec.from_dict({"isolation": {"allowedEgressTo": list(raw)}}).isolation.allowed_egress_to


def test_an_ip_block_is_normalised() -> None:
    (peer,) = _peers({"ipBlock": {"cidr": "192.0.2.7/24", "except": ["192.0.2.9/28"]}, "ports": [{"port": 443}]})
    assert (peer.cidr, peer.except_, peer.ports) == ("192.0.2.0/24", ("192.0.2.0/28",), (("TCP", 443),))
    assert (peer.namespace_labels, peer.pod_labels) == ({}, {})


def test_super_pods_are_read_with_their_labels() -> None:
    (peer,) = _peers({"namespaceSelector": {"matchLabels": {"team": "db"}},
                      "podSelector": {"matchLabels": {"app": "pg"}}, "ports": [{"port": 5432, "protocol": "UDP"}]})
    assert (peer.cidr, peer.except_) == (None, ())
    assert peer.namespace_labels == {"team": "db"}
    assert peer.pod_labels == {"app": "pg"}
    assert peer.ports == (("UDP", 5432),)


def test_an_ipv6_block_with_an_except_inside_it() -> None:
    (peer,) = _peers({"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:1::/32"]}})
    assert (peer.cidr, peer.except_) == ("fd00::/8", ("fd00:1::/32",))


def test_none_is_empty() -> None:
    assert _peers() == ()
    assert TenantSpec.from_dict({}).isolation.allowed_egress_to == ()


@pytest.mark.parametrize(("peer", "needle"), [
    ({"ipBlock": {"cidr": "10.0.0.0/8"}, "ports": "443"}, "allowedEgressTo[0].ports: must be a list"),
    ({}, "allowedEgressTo[0]: give either ipBlock"),
    ({"ipBlock": {"cidr": "0.0.0.0/0"}, "namespaceSelector": {}}, "allowedEgressTo[0]: give either ipBlock"),
    ({"podSelector": {"matchLabels": {"a": "b"}}}, "allowedEgressTo[0]: give either ipBlock"),
    ({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}, "allowedEgressTo[0].podSelector: only with"),
    ({"ipBlock": {}}, "allowedEgressTo[0].ipBlock.cidr: required"),
    ({"ipBlock": {"cidr": "10.0.0.0/33"}}, "ipBlock.cidr: '10.0.0.0/33' is not a network"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}},
     "ipBlock.except[0]: 192.168.0.0/16 is not a part"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}, "ipBlock.except[0]: 10.0.0.0/8 is not a part"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/8"]}}, "ipBlock.except[0]: fd00::/8 is not a part"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["x"]}}, "ipBlock.except[0]: 'x' is not a network"),
    ({"ipBlock": {"cidr": "10.0.0.0/8"}, "ports": [{"port": 70000}]}, "allowedEgressTo[0].ports[0].port"),
    ({"namespaceSelector": {"matchLabels": {"a": 1}}}, "allowedEgressTo[0].namespaceSelector.matchLabels.a"),
])
def test_bad_egress_entries_name_the_field(peer: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        TenantSpec.from_dict({"isolation": {"allowedEgressTo": [peer]}})
