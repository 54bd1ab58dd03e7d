"""Unit tests of vcluster.kubeconfig: what we render, we (and kubectl's rules) parse back."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from vcluster import kubeconfig as kc

CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"client_cert_pem": CERT, "client_key_pem": KEY},
            kc.KubeconfigInfo(server="https://127.0.0.1:6443", ca_pem=CA, client_cert_pem=CERT,
                              client_key_pem=KEY, context="admin@cluster"),
        ),
        (
            {"token": "abc.def", "namespace": "ns1", "cluster_name": "c", "user_name": "u"},
            kc.KubeconfigInfo(server="https://127.0.0.1:6443", ca_pem=CA, token="abc.def",
                              context="u@c", namespace="ns1"),
        ),
    ],
    ids=["client-cert", "token-with-namespace"],
)
def test_round_trip_via_file(tmp_path: Path, kwargs: dict[str, object], expected: kc.KubeconfigInfo) -> None:
    config = kc.render_kubeconfig(server="https://127.0.0.1:6443", ca_pem=CA, **kwargs)  # type: ignore[arg-type]
    path = kc.write_kubeconfig(tmp_path / "sub" / "kubeconfig", config)
    assert path.stat().st_mode & 0o777 == 0o600
    assert kc.load_kubeconfig(path) == expected
    assert kc.load_kubeconfig(str(path)) == expected
    assert kc.load_kubeconfig(path.read_text()) == expected


def test_file_references_resolve_relative_to_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(CA)
    (tmp_path / "pki" / "c.crt").write_bytes(CERT)
    (tmp_path / "c.key").write_bytes(KEY)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "cl", "cluster": {"server": "https://h:1", "certificate-authority": "pki/ca.crt"}}],
        "users": [{"name": "us", "user": {"client-certificate": "pki/c.crt",
                                          "client-key": str(tmp_path / "c.key")}}],
        "contexts": [{"name": "x", "context": {"cluster": "cl", "user": "us"}}],
    }
    path = kc.write_kubeconfig(tmp_path / "config", config)
    info = kc.load_kubeconfig(path)
    assert (info.server, info.ca_pem, info.client_cert_pem, info.client_key_pem) == ("https://h:1", CA, CERT, KEY)


def test_explicit_context_is_chosen() -> None:
    a = kc.render_kubeconfig(server="https://a:1", ca_pem=None, token="ta", cluster_name="a", user_name="a")
    b = kc.render_kubeconfig(server="https://b:1", ca_pem=None, token="tb", cluster_name="b", user_name="b")
    merged = dict(a)
    for key in ("clusters", "users", "contexts"):
        merged[key] = a[key] + b[key]
    assert kc.parse_kubeconfig(merged).server == "https://a:1"
    assert kc.parse_kubeconfig(merged, context="b@b").token == "tb"


def test_inline_data_wins_and_is_decoded() -> None:
    text = yaml.safe_dump({
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://s",
                                               "certificate-authority-data": base64.b64encode(CA).decode()}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    })
    info = kc.load_kubeconfig(text)
    assert info.ca_pem == CA


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n- 2\n", "not a YAML mapping"),
        ("current-context: x\ncontexts: []\n", "no context named 'x'"),
        ("contexts: []\n", "no current-context"),
        ("current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
         "clusters: [{name: k, cluster: {}}]\nusers: [{name: u, user: {}}]\n", "has no server"),
        ("current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
         "clusters: [{name: k, cluster: {server: s, certificate-authority-data: '!!'}}]\n", "not valid base64"),
        ("current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
         "clusters: [{name: k, cluster: {server: s, certificate-authority: /nonexistent/ca}}]\n",
         "cannot be read"),
    ],
    ids=["bad-yaml", "not-mapping", "missing-context", "no-current", "no-server", "bad-base64", "missing-file"],
)
def test_bad_kubeconfig_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(kc.KubeconfigError, match=message):
        kc.load_kubeconfig(text)


@pytest.mark.parametrize(
    "kwargs",
    [{"client_cert_pem": CERT}, {"client_key_pem": KEY}, {}],
    ids=["cert-without-key", "key-without-cert", "no-credentials"],
)
def test_render_refuses_incomplete_credentials(kwargs: dict[str, bytes]) -> None:
    with pytest.raises(kc.KubeconfigError):
        kc.render_kubeconfig(server="https://s", ca_pem=CA, **kwargs)  # type: ignore[arg-type]
