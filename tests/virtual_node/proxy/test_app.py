"""The proxy's pure HTTP helpers: what is forwarded to a kubelet, and how its answer is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from virtual_node.proxy import app
from virtual_node.proxy.resolver import Target

TARGET = Target(
    host="10.0.0.5", port=10250, path="/exec/key--default/web/app", node="n1", super_namespace="key--default"
)


def _request(headers: dict[str, str], path: str = "/exec/default/web/app?command=ls&output=1") -> Any:
    return make_mocked_request("POST", path, headers=CIMultiDict(headers))


def test_upgrade_head_keeps_stream_headers_and_drops_credentials() -> None:
    req = _request({
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io",
        "Authorization": "Bearer secret", "Impersonate-User": "admin", "Host": "proxy:10550", "Content-Length": "7",
    })
    head = app._request_head(req, TARGET).decode()
    lines = head.split("\r\n")
    assert lines[0] == "POST /exec/key--default/web/app?command=ls&output=1 HTTP/1.1"
    assert "Host: 10.0.0.5:10250" in lines
    assert "Upgrade: SPDY/3.1" in lines
    assert "Connection: Upgrade" in lines
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io" in lines
    assert "Content-Length: 0" in lines
    assert not any(line.lower().startswith(("authorization", "impersonate", "host: proxy")) for line in lines)
    assert head.endswith("\r\n\r\n")


def test_plain_forward_headers_drop_hop_by_hop() -> None:
    req = _request({"Accept": "*/*", "Connection": "keep-alive", "Authorization": "x", "Transfer-Encoding": "chunked"})
    assert dict(app._forward_headers(req)) == {"Accept": "*/*"}


@pytest.mark.parametrize(
    ("raw", "status", "header"),
    [
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade",
                     101, ("Upgrade", "SPDY/3.1"), id="switching"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12", 400, ("Content-Length", "12"), id="refused"),
    ],
)
def test_parse_head(raw: bytes, status: int, header: tuple[str, str]) -> None:
    got_status, _, headers = app._parse_head(raw)
    assert got_status == status
    assert headers[header[0]] == header[1]


def test_parse_head_rejects_garbage() -> None:
    with pytest.raises(OSError, match="bad status line"):
        app._parse_head(b"SSH-2.0-OpenSSH")


def test_ipv6_target_is_bracketed() -> None:
    target = Target(host="fd00::1", port=10250, path="/", node="n", super_namespace="s")
    assert app._hostport(target) == "[fd00::1]:10250"


def test_query_is_forwarded_as_the_client_encoded_it() -> None:
    """``kubectl exec -- sh -c 'echo $((6*7))'`` sends the command percent-encoded; a decoded query
    would put a space into the request line, and the kubelet answers 400 Bad Request."""
    path = "/exec/default/web/app?command=sh&command=-c&command=echo%20%24%28%286%2A7%29%29&stdout=1"
    head = app._request_head(_request({}, path), TARGET).decode()
    method, target, version = head.split("\r\n")[0].split(" ")  # exactly three parts: no space leaked in
    assert (method, version) == ("POST", "HTTP/1.1")
    forwarded_path, _, query = target.partition("?")
    assert forwarded_path == TARGET.path
    assert parse_qs(query) == {"command": ["sh", "-c", "echo $((6*7))"], "stdout": ["1"]}
    url = app._url(_request({}, "/containerLogs/default/web/app?sinceTime=2026-11-30T08%3A00%3A00%2B01%3A00"),
                   app.KubeletTLS(), TARGET)
    # a '+' the client encoded stays a '+' (decoded and re-sent raw it would turn into a space)
    assert parse_qs(urlsplit(str(url)).query) == {"sinceTime": ["2026-11-30T08:00:00+01:00"]}


def test_remotes_track_each_kubelet_and_the_super_apiserver_apart() -> None:
    from prometheus_client import CollectorRegistry

    from vcluster.backoff import RemoteMetrics
    from virtual_node.proxy.app import Remotes

    registry = CollectorRegistry()
    remotes = Remotes(RemoteMetrics.of(registry))
    for _ in range(5):
        remotes("kubelet/node-a").failed("connection refused")
    remotes("kubelet/node-b").succeeded()
    remotes("super").succeeded()

    def up(target: str) -> float | None:
        return registry.get_sample_value("vc_remote_up", {"component": "kubelet-proxy", "target": target})

    assert (up("kubelet/node-a"), up("kubelet/node-b"), up("super")) == (0.0, 1.0, 1.0)
    assert remotes("kubelet/node-a") is remotes("kubelet/node-a")
    assert remotes("kubelet/node-a").event == "kubelet_proxy.kubelet"
    assert remotes("super").event == "kubelet_proxy.super"
    remotes("kubelet/node-a").succeeded()
    assert up("kubelet/node-a") == 1.0
    assert registry.get_sample_value("vc_remote_failures_total",
                                     {"component": "kubelet-proxy", "target": "kubelet/node-a"}) == 5.0


def test_kubelet_token_goes_to_the_kubelet_instead_of_the_clients_credentials(tmp_path: Path) -> None:
    """In a pod the proxy proves itself to real kubelets with its service-account token."""
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1\n")
    tls = app.KubeletTLS(token=app.BearerToken(token_file))
    req = _request({"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "Authorization": "Bearer tenant-secret"})
    lines = app._request_head(req, TARGET, tls.authorization()).decode().split("\r\n")
    assert [line for line in lines if line.lower().startswith("authorization")] == ["Authorization: Bearer sa-token-1"]
    plain = app._forward_headers(_request({"Authorization": "Bearer tenant-secret"}), tls.authorization())
    assert plain.getall("Authorization") == ["Bearer sa-token-1"]


def test_kubelet_token_is_read_again_when_the_file_is_rotated(tmp_path: Path) -> None:
    """The kubelet rewrites a projected token before it expires (a new file renamed over the old one)."""
    token_file = tmp_path / "token"
    token_file.write_text("old")
    token = app.BearerToken(token_file)
    assert token.value() == "old"
    fresh = tmp_path / "token.new"
    fresh.write_text("new")
    fresh.replace(token_file)
    assert token.value() == "new"


def test_empty_or_missing_kubelet_token_is_an_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    with pytest.raises(FileNotFoundError):
        app.BearerToken(token_file).value()
    token_file.write_text("  \n")
    with pytest.raises(OSError, match="empty"):
        app.BearerToken(token_file).value()


def test_settings_read_the_kubelet_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from virtual_node.settings import ProxySettings

    monkeypatch.setenv("VC_KUBELET_TOKEN_FILE", str(tmp_path / "t"))
    (tmp_path / "t").write_text("x")
    settings = ProxySettings.from_env()
    assert settings.kubelet_token_file == tmp_path / "t"
    assert app.kubelet_tls(settings).authorization() == "Bearer x"
    monkeypatch.delenv("VC_KUBELET_TOKEN_FILE")
    assert app.kubelet_tls(ProxySettings.from_env()).authorization() is None
