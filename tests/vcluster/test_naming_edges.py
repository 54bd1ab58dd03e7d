"""Naming at the 63-character edge: property tests whose inputs land on the shortened branch.

Why: a super namespace name past 63 characters is cut and ends in a hash,
and that branch is where injectivity is hardest to keep (two long namespaces
share their cut; a namespace may itself end in something hash-like or carry
``--``).  Plain text strategies almost never reach it (the existing ones did
not in 500 samples), so the strategies here pick the *total* length first,
around the limit, and build the namespace to fit; a guard test makes sure
they keep producing shortened names.  The other names built in
:mod:`vcluster.naming` (token Secrets, refusal Events) get their edges too.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st

from vcluster import naming

_ALNUM = string.ascii_lowercase + string.digits
_HEX = "0123456789abcdef"


@st.composite
def tenant_names(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=1, max_value=naming.MAX_TENANT_NAME))
    name = draw(st.text(alphabet=_ALNUM + "-", min_size=length, max_size=length))
    name = re.sub(r"-+", "-", name).strip("-")
    return name or draw(st.sampled_from(_ALNUM))


@st.composite
def label_of_length(draw: st.DrawFn, length: int) -> str:
    """A DNS label of exactly ``length`` characters, often with ``--`` runs and a hash-like tail."""
    length = max(1, min(length, naming.MAX_NAME))
    shape = draw(st.sampled_from(["random", "dashes", "hash-tail", "separator"]))
    if shape == "hash-tail" and length > 14:
        tail = "-" + draw(st.text(alphabet=_HEX, min_size=12, max_size=12))
        head = draw(st.text(alphabet=_ALNUM + "-", min_size=length - 14, max_size=length - 14))
        body = draw(st.sampled_from(_ALNUM)) + head + tail
    elif shape == "separator" and length > 4:
        body = draw(st.sampled_from(_ALNUM)) + "--" + draw(
            st.text(alphabet=_ALNUM + "-", min_size=length - 4, max_size=length - 4)) + draw(st.sampled_from(_ALNUM))
        body += "x" * (length - len(body))
    else:
        alphabet = _ALNUM + "-" * (10 if shape == "dashes" else 2)
        body = draw(st.text(alphabet=alphabet, min_size=length, max_size=length))
    body = draw(st.sampled_from(_ALNUM)) + body[1:length - 1] + draw(st.sampled_from(_ALNUM)) if length > 1 else (
        draw(st.sampled_from(_ALNUM)))
    assert naming.is_dns_label(body), body
    return body


@st.composite
def near_the_limit(draw: st.DrawFn, *, low: int = -4, high: int = 12) -> tuple[str, str, str]:
    """(tenant, uid, namespace) whose plain super name is ``63 + d`` long, ``low <= d <= high``."""
    tenant = draw(tenant_names())
    uid = draw(st.uuids().map(str))
    key = naming.cluster_key(tenant, uid)
    total = naming.MAX_NAME + draw(st.integers(min_value=low, max_value=high))
    ns_len = total - len(key) - len(naming.SEPARATOR)
    assume(1 <= ns_len <= naming.MAX_NAME)
    return tenant, uid, draw(label_of_length(ns_len))


def _shortened(key: str, ns: str) -> bool:
    return len(f"{key}{naming.SEPARATOR}{ns}") > naming.MAX_NAME


def test_the_strategy_reaches_both_branches() -> None:
    def shortened(t: tuple[str, str, str]) -> bool:
        return _shortened(naming.cluster_key(t[0], t[1]), t[2])

    assert shortened(find(near_the_limit(), shortened, settings=settings(max_examples=200, database=None)))
    assert not shortened(find(near_the_limit(), lambda t: not shortened(t),
                              settings=settings(max_examples=200, database=None)))


@given(near_the_limit())
@settings(max_examples=400)
def test_near_the_limit_names_are_valid_and_map_back(t: tuple[str, str, str]) -> None:
    tenant, uid, ns = t
    key = naming.cluster_key(tenant, uid)
    name = naming.super_namespace(key, ns)
    assert naming.is_dns_label(name)
    assert name.startswith(key + naming.SEPARATOR)
    assert naming.is_super_namespace_of(name, key)
    ref = naming.parse_super_namespace(name, {naming.ANN_TENANT_NAMESPACE: ns})
    assert (ref.cluster_key, ref.tenant_namespace) == (key, ns)
    bare = naming.parse_super_namespace(name)
    assert bare.cluster_key == key
    assert len(name) <= naming.MAX_NAME
    if _shortened(key, ns):
        # the cut of the namespace loses its trailing dashes, so the name may end a little short
        assert len(name) > naming.MAX_NAME - naming.NS_HASH_LEN
        assert name[-naming.NS_HASH_LEN - 1] == "-"
        assert bare.tenant_namespace is None
        assert name[len(key) + len(naming.SEPARATOR)] == "-"
        assert re.fullmatch(r"[0-9a-f]{12}", name[-naming.NS_HASH_LEN:])
    else:
        assert name == f"{key}{naming.SEPARATOR}{ns}"
        assert bare.tenant_namespace == ns


@given(near_the_limit(), near_the_limit())
@settings(max_examples=500)
def test_near_the_limit_two_tenants_never_collide(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    k1, k2 = naming.cluster_key(a[0], a[1]), naming.cluster_key(b[0], b[1])
    assume((k1, a[2]) != (k2, b[2]))
    assert naming.super_namespace(k1, a[2]) != naming.super_namespace(k2, b[2])


@given(near_the_limit(low=1), st.integers(min_value=0, max_value=62), st.sampled_from(_ALNUM))
@settings(max_examples=400)
def test_shortened_names_of_one_tenant_differing_in_one_character_differ(
    t: tuple[str, str, str], position: int, char: str
) -> None:
    tenant, uid, ns = t
    key = naming.cluster_key(tenant, uid)
    i = position % len(ns)
    other = ns[:i] + char + ns[i + 1:]
    assume(other != ns and naming.is_dns_label(other))
    assert naming.super_namespace(key, ns) != naming.super_namespace(key, other)


@given(near_the_limit(low=1), near_the_limit(low=1))
@settings(max_examples=200)
def test_a_forged_annotation_on_a_shortened_name_is_not_trusted(t: tuple[str, str, str],
                                                                 u: tuple[str, str, str]) -> None:
    key = naming.cluster_key(t[0], t[1])
    name = naming.super_namespace(key, t[2])
    assume(u[2] != t[2])
    assert naming.parse_super_namespace(name, {naming.ANN_TENANT_NAMESPACE: u[2]}).tenant_namespace is None


@pytest.mark.parametrize(("extra", "shortened"), [(-1, False), (0, False), (1, True), (2, True)],
                         ids=["62", "63", "64", "65"])
def test_the_boundary_is_exactly_63(extra: int, shortened: bool) -> None:
    key = naming.cluster_key("acme", "uid")
    ns = "n" * (naming.MAX_NAME + extra - len(key) - len(naming.SEPARATOR))
    name = naming.super_namespace(key, ns)
    assert (name != f"{key}{naming.SEPARATOR}{ns}") is shortened
    assert len(name) == min(naming.MAX_NAME, len(key) + 2 + len(ns))


def test_a_longest_key_leaves_room_for_the_hash() -> None:
    key = naming.cluster_key("t" * naming.MAX_TENANT_NAME, "uid")
    for ns in ("n" * 63, "n" * 30 + "-" + "m" * 32, "a-" * 31 + "b"):
        name = naming.super_namespace(key, ns)
        assert naming.is_dns_label(name)
        assert len(name) <= naming.MAX_NAME
        assert name[len(key) + 2] == "-"  # no namespace name starts with "-": never equal to a plain name


@pytest.mark.parametrize(
    ("key", "ns"),
    [
        pytest.param("a--b", "ns", id="key-with-separator"),
        pytest.param("Acme-123456", "ns", id="key-not-a-label"),
        pytest.param("acme-123456", "", id="empty-namespace"),
        pytest.param("acme-123456", "Shop", id="namespace-not-a-label"),
        pytest.param("acme-123456", "n" * 64, id="namespace-too-long"),
        pytest.param("", "ns", id="empty-key"),
    ],
)
def test_super_namespace_refuses_what_is_not_a_key_or_namespace(key: str, ns: str) -> None:
    with pytest.raises(naming.NamingError):
        naming.super_namespace(key, ns)


@pytest.mark.parametrize("name", ["acme-123456", "--shop", "acme-123456--", "", "acme-123456-shop"])
def test_parse_refuses_names_that_are_not_super_namespaces(name: str) -> None:
    with pytest.raises(naming.NamingError):
        naming.parse_super_namespace(name)


@pytest.mark.parametrize(
    ("name", "key", "mine"),
    [
        ("acme-123456--shop", "acme-123456", True),
        ("acme-123456---cut-0123456789ab", "acme-123456", True),
        ("acme-123456", "acme-123456", False),
        ("acme-1234567--shop", "acme-123456", False),
        ("acme-123456-x--shop", "acme-123456", False),
        ("xacme-123456--shop", "acme-123456", False),
    ],
    ids=["plain", "shortened", "root", "longer-key", "key-prefix", "key-suffix"],
)
def test_is_super_namespace_of(name: str, key: str, mine: bool) -> None:
    assert naming.is_super_namespace_of(name, key) is mine


# ---- tenant names and keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("a" * 32, True), ("a" * 33, False), ("a-b", True), ("a--b", False), ("-a", False),
     ("a-", False), ("a.b", False), ("A", False), ("1", True)],
    ids=["one", "32", "33", "dash", "separator", "leading-dash", "trailing-dash", "dot", "upper", "digit"],
)
def test_tenant_names(name: str, ok: bool) -> None:
    if ok:
        naming.validate_tenant_name(name)
        key = naming.cluster_key(name, "uid")
        assert re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{6}}", key)
    else:
        with pytest.raises(naming.NamingError, match=re.escape(repr(name))):
            naming.validate_tenant_name(name)


def test_cluster_key_depends_on_the_uid_and_needs_one() -> None:
    assert naming.cluster_key("acme", "u1") != naming.cluster_key("acme", "u2")
    assert naming.cluster_key("acme", "u1") == naming.cluster_key("acme", "u1")
    with pytest.raises(naming.NamingError):
        naming.cluster_key("acme", "")


def test_is_dns_label_limit() -> None:
    assert naming.is_dns_label("a" * 63)
    assert not naming.is_dns_label("a" * 64)


# ---- token Secrets and refusal Events -------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: A DNS-1123 subdomain as Kubernetes checks object names: dot-separated parts that start and end
#: alphanumeric (the 253-character limit is checked apart).
_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")


@st.composite
def long_names(draw: st.DrawFn, *, low: int = 200, high: int = 300) -> str:
    """Subdomain-like names near the 253-character limit, often with '-' or '.' where a cut may fall."""
    length = draw(st.integers(min_value=low, max_value=high))
    body = list(draw(st.text(alphabet=_ALNUM, min_size=length, max_size=length)))
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        i = draw(st.integers(min_value=1, max_value=length - 2))
        if body[i - 1] not in "-." and body[i + 1] not in "-.":
            body[i] = draw(st.sampled_from("-."))
    return "".join(body)


short_names = st.from_regex(rf"\A{_LABEL}(\.{_LABEL})*\Z").filter(lambda n: len(n) <= naming.MAX_SUBDOMAIN)
service_accounts = st.one_of(short_names, long_names())


@given(service_accounts, service_accounts)
@settings(max_examples=300)
def test_token_secret_names_are_valid_distinct_and_reserved(a: str, b: str) -> None:
    na, nb = naming.token_secret_name(a), naming.token_secret_name(b)
    assert len(na) <= naming.MAX_SUBDOMAIN
    assert _SUBDOMAIN.fullmatch(na), na
    assert naming.is_reserved_secret_name(na)
    assert (na == nb) == (a == b)


@given(long_names(low=246), st.sampled_from(_ALNUM))
@settings(max_examples=200)
def test_long_service_accounts_differing_at_the_end_get_different_secrets(sa: str, last: str) -> None:
    other = sa[:-1] + last
    assume(other != sa)
    name = naming.token_secret_name(sa)
    assert _SUBDOMAIN.fullmatch(name), name
    assert re.search(r"-[0-9a-f]{12}\Z", name), name
    assert name != naming.token_secret_name(other)
    # as much of the name as fits is kept (the cut only loses the separators at its end)
    kept = name[len(naming.TOKEN_SECRET_PREFIX):-13]
    assert sa.startswith(kept)
    assert len(name) == naming.MAX_SUBDOMAIN or sa[len(kept)] in "-."


@pytest.mark.parametrize(("extra", "hashed"), [(0, False), (1, True)], ids=["fits", "one-over"])
def test_token_secret_name_boundary(extra: int, hashed: bool) -> None:
    sa = "s" * (naming.MAX_SUBDOMAIN - len(naming.TOKEN_SECRET_PREFIX) + extra)
    name = naming.token_secret_name(sa)
    assert (name != naming.TOKEN_SECRET_PREFIX + sa) is hashed
    assert len(name) <= naming.MAX_SUBDOMAIN


def test_token_secret_name_needs_a_service_account() -> None:
    with pytest.raises(naming.NamingError):
        naming.token_secret_name("")


@pytest.mark.parametrize("name", ["vc-token-x", "vc-token-"])
def test_reserved_secret_names(name: str) -> None:
    assert naming.is_reserved_secret_name(name)
    assert not naming.is_reserved_secret_name("my-" + name)


@given(st.one_of(short_names, long_names(low=230)),
       st.uuids().map(str), st.sampled_from(["Forbidden", "Invalid", "PolicyRefused"]))
@settings(max_examples=200)
def test_refusal_event_names_are_valid_and_stable(name: str, uid: str, reason: str) -> None:
    event = naming.refusal_event_name(name, uid, reason)
    assert len(event) <= naming.MAX_SUBDOMAIN
    assert _SUBDOMAIN.fullmatch(event), event
    assert event == naming.refusal_event_name(name, uid, reason)
    assert event != naming.refusal_event_name(name, uid, reason + "x")
    assert event != naming.refusal_event_name(name, uid + "x", reason)
    assert name.startswith(event.rpartition(".vc-")[0])


def test_tenant_label_key_prefix_is_a_subdomain() -> None:
    for key in ("team", "example.com/tier", "a" * 253 + "/x"):
        prefix, _, name = naming.tenant_label_key(key).partition("/")
        assert _SUBDOMAIN.fullmatch(prefix), prefix
        assert len(prefix) <= naming.MAX_SUBDOMAIN
        assert name == key.rpartition("/")[2]


@pytest.mark.parametrize("key", [f"x.{naming.TENANT_LABEL_DOMAIN}", naming.TENANT_LABEL_DOMAIN, ""])
def test_a_key_without_a_prefix_is_not_a_tenant_label_key(key: str) -> None:
    assert not naming.is_tenant_label_key(key)


def test_naming_errors_name_the_offending_value() -> None:
    for call, value in ((lambda: naming.super_namespace("Bad", "ns"), "'Bad'"),
                        (lambda: naming.super_namespace("acme-123456", "Bad"), "'Bad'"),
                        (lambda: naming.parse_super_namespace("plain"), "'plain'")):
        with pytest.raises(naming.NamingError, match=re.escape(value)):
            call()
    with pytest.raises(naming.NamingError, match="uid"):
        naming.cluster_key("acme", "")
    with pytest.raises(naming.NamingError, match="service account"):
        naming.token_secret_name("")


def test_the_admin_kubeconfig_secret_name_is_the_documented_one() -> None:
    # docs/architecture.md, "Admin kubeconfig Secret": <key>/admin-kubeconfig, data key kubeconfig
    assert naming.kubeconfig_secret_name() == "admin-kubeconfig"
    assert naming.KUBECONFIG_SECRET_KEY == "kubeconfig"


def test_owner_labels() -> None:
    assert naming.owner_labels("k", "t") == {naming.LABEL_MANAGED_BY: naming.MANAGED_BY_SYNCER,
                                             naming.LABEL_CLUSTER_KEY: "k", naming.LABEL_TENANT: "t"}
    assert naming.owner_labels("k", "t", managed_by="x")[naming.LABEL_MANAGED_BY] == "x"
    assert naming.root_namespace("k") == "k"


@pytest.mark.parametrize("separator", ["-", "."])
def test_a_separator_wherever_a_long_name_is_cut_never_ends_the_cut(separator: str) -> None:
    for position in range(200, 260):
        name = "a" * position + separator + "b" * (300 - position)
        for made in (naming.token_secret_name(name), naming.refusal_event_name(name, "uid", "Invalid")):
            assert len(made) <= naming.MAX_SUBDOMAIN
            assert _SUBDOMAIN.fullmatch(made), (position, made)
