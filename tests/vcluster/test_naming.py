"""Property tests of the naming scheme: injective across tenants, reversible, always valid names."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vcluster import naming

_ALNUM = string.ascii_lowercase + string.digits


def _label(max_size: int) -> st.SearchStrategy[str]:
    """DNS labels, biased towards dashes and lengths near the limits (the adversarial cases)."""
    inner = st.text(alphabet=_ALNUM + "-" * 8, min_size=0, max_size=max(max_size - 2, 0))
    return st.builds(
        lambda a, mid, b: (a + mid + b)[:max_size].rstrip("-") or a,
        st.sampled_from(_ALNUM), inner, st.sampled_from(_ALNUM),
    ).filter(naming.is_dns_label)


tenant_names = _label(naming.MAX_TENANT_NAME).filter(lambda n: naming.SEPARATOR not in n)
namespaces = _label(naming.MAX_NAME)
uids = st.uuids().map(str)


@given(tenant_names, uids, namespaces)
@settings(max_examples=400)
def test_super_namespace_is_a_dns_label_and_maps_back(tenant: str, uid: str, ns: str) -> None:
    key = naming.cluster_key(tenant, uid)
    name = naming.super_namespace(key, ns)
    assert naming.is_dns_label(name)
    assert len(name) <= naming.MAX_NAME
    assert naming.is_super_namespace_of(name, key)
    ref = naming.parse_super_namespace(name, {naming.ANN_TENANT_NAMESPACE: ns})
    assert ref.cluster_key == key
    assert ref.tenant_namespace == ns


@given(st.tuples(tenant_names, uids, namespaces), st.tuples(tenant_names, uids, namespaces))
@settings(max_examples=600)
def test_two_tenants_never_collide(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    (t1, u1, ns1), (t2, u2, ns2) = a, b
    k1, k2 = naming.cluster_key(t1, u1), naming.cluster_key(t2, u2)
    assume((k1, ns1) != (k2, ns2))
    assert naming.super_namespace(k1, ns1) != naming.super_namespace(k2, ns2)


@given(tenant_names, uids, st.lists(namespaces, min_size=2, max_size=6, unique=True))
def test_one_tenant_namespaces_never_collide(tenant: str, uid: str, nss: list[str]) -> None:
    key = naming.cluster_key(tenant, uid)
    assert len({naming.super_namespace(key, ns) for ns in nss}) == len(nss)


@given(tenant_names, uids, namespaces)
def test_a_forged_annotation_is_not_trusted(tenant: str, uid: str, ns: str) -> None:
    key = naming.cluster_key(tenant, uid)
    name = naming.super_namespace(key, ns)
    forged = naming.parse_super_namespace(name, {naming.ANN_TENANT_NAMESPACE: ns + "x"})
    assert forged.tenant_namespace in (None, ns)


@pytest.mark.parametrize(
    ("tenant", "ns_a", "ns_b"),
    [
        pytest.param("a", "b-123456-x", "x", id="dash-in-namespace-vs-longer-tenant"),
        pytest.param("t" * 32, "n" * 63, "n" * 62 + "m", id="both-shortened-same-prefix"),
        pytest.param("a-b", "c", "b-c", id="dashes-shift"),
    ],
)
def test_adversarial_pairs(tenant: str, ns_a: str, ns_b: str) -> None:
    uid = "0000"
    key = naming.cluster_key(tenant, uid)
    assert naming.super_namespace(key, ns_a) != naming.super_namespace(key, ns_b)


def test_shortened_name_never_equals_a_plain_one() -> None:
    key = naming.cluster_key("t" * 32, "u")
    long_ns = "n" * 63
    short = naming.super_namespace(key, long_ns)
    assert short.startswith(f"{key}---")
    assert naming.parse_super_namespace(short).tenant_namespace is None


@given(st.text(alphabet=_ALNUM + "-.", min_size=1, max_size=300))
def test_token_secret_names_fit(sa: str) -> None:
    name = naming.token_secret_name(sa)
    assert len(name) <= naming.MAX_SUBDOMAIN


@pytest.mark.parametrize(
    "bad", [pytest.param("", id="empty"), pytest.param("a--b", id="separator"), pytest.param("A", id="upper"),
            pytest.param("x" * 33, id="too-long")],
)
def test_bad_tenant_names_are_refused(bad: str) -> None:
    with pytest.raises(naming.NamingError):
        naming.cluster_key(bad, "uid")


_label_name = st.from_regex(r"\A[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?\Z")
_label_prefix = st.one_of(st.just(""), st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,40}[a-z0-9])?\Z"))


@given(_label_prefix, _label_name, _label_prefix, _label_name)
@settings(max_examples=300)
def test_tenant_label_keys_are_valid_injective_and_recognisable(p1: str, n1: str, p2: str, n2: str) -> None:
    k1, k2 = f"{p1}/{n1}" if p1 else n1, f"{p2}/{n2}" if p2 else n2
    s1, s2 = naming.tenant_label_key(k1), naming.tenant_label_key(k2)
    prefix, _, name = s1.partition("/")
    assert name == n1
    assert len(prefix) <= naming.MAX_SUBDOMAIN
    assert naming.is_tenant_label_key(s1)
    assert (s1 == s2) == (k1 == k2)


@pytest.mark.parametrize(
    "key", ["team", "example.com/tier", naming.LABEL_CLUSTER_KEY, "pod-security.kubernetes.io/enforce"],
)
def test_plain_label_keys_are_not_tenant_label_keys(key: str) -> None:
    assert not naming.is_tenant_label_key(key)
