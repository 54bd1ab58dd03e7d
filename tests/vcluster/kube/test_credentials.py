"""Unit tests of credentials that change: exec plugins (real processes: scripts the tests write), token
files, expiring id-tokens, and the client asking for fresh ones before expiry and after a 401.

The apiserver here is a small aiohttp server on 127.0.0.1 that accepts only the tokens a test says
(or only client certificates of its CA): enough to see what the client sends.
"""

from __future__ import annotations

import base64
import json
import ssl
import stat
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.clock import ManualClock
from vcluster import kubeconfig as kc
from vcluster import pki
from vcluster.kube import ApiClient, ApiError, ClientConfig, Unauthorized, resources
from vcluster.kube.credentials import (
    CredentialError,
    ExecSource,
    ExpiringTokenSource,
    TokenFileSource,
    source_for,
)

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"


def stamp(when: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plugin(tmp_path: Path, body: str, name: str = "plugin") -> Path:
    """An executable Python script; ``body`` runs with ``runs`` = how many times it ran before (counted in a file)."""
    path = tmp_path / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, pathlib\n"
        f"counter = pathlib.Path({str(tmp_path / (name + '.runs'))!r})\n"
        "runs = int(counter.read_text()) if counter.exists() else 0\n"
        "counter.write_text(str(runs + 1))\n"
        f"pathlib.Path({str(tmp_path / (name + '.info'))!r}).write_text(os.environ.get('KUBERNETES_EXEC_INFO', ''))\n"
        + body
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def token_plugin(tmp_path: Path, *, expires: float | None = None, api_version: str = V1) -> Path:
    status = "{'token': 'tok-%d' % runs" + (f", 'expirationTimestamp': {stamp(expires)!r}" if expires else "") + "}"
    return plugin(tmp_path, f"print(json.dumps({{'apiVersion': {api_version!r}, 'kind': 'ExecCredential', "
                            f"'status': {status}}}))\n")


def runs(path: Path) -> int:
    counter = path.with_name(path.name + ".runs")
    return int(counter.read_text()) if counter.exists() else 0


def exec_kubeconfig(tmp_path: Path, exec_spec: dict[str, Any], *, server: str = "http://127.0.0.1:1",
                    cluster_extra: dict[str, Any] | None = None) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **(cluster_extra or {})}}],
        "users": [{"name": "u", "user": {"exec": exec_spec}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    return kc.write_kubeconfig(tmp_path / "kubeconfig", config)


def exec_source(tmp_path: Path, command: Path | str, clock: ManualClock | None = None, **spec: Any) -> ExecSource:
    info = kc.load_kubeconfig(exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "Never",
                                                         "command": str(command), **spec}))
    assert info.exec is not None
    source = source_for(info, clock=clock or ManualClock(1_800_000_000.0))
    assert isinstance(source, ExecSource)
    return source


# ---- parsing ---------------------------------------------------------------------------------------


def test_exec_is_parsed_with_everything_client_go_reads(tmp_path: Path) -> None:
    path = exec_kubeconfig(tmp_path, {
        "apiVersion": V1, "command": "bin/get-token", "args": ["--cluster", "x"], "interactiveMode": "Never",
        "env": [{"name": "A", "value": "1"}], "provideClusterInfo": True, "installHint": "brew install it",
    }, cluster_extra={"extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"k": "v"}}]})
    info = kc.load_kubeconfig(path)
    assert info.exec == kc.ExecConfig(
        command="bin/get-token", api_version=V1, args=("--cluster", "x"), env=(("A", "1"),),
        interactive_mode="Never", provide_cluster_info=True, install_hint="brew install it",
        cluster_config={"k": "v"}, base_dir=tmp_path.resolve(),
    )
    assert info.token is None
    source = source_for(info)
    assert isinstance(source, ExecSource)
    assert source.command() == str(tmp_path.resolve() / "bin/get-token")  # relative to the kubeconfig


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"apiVersion": V1, "command": "x"}, "interactiveMode must be set"),
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, "not one virtualcluster speaks"),
        ({"apiVersion": V1BETA1}, "has no command"),
        ({"apiVersion": V1BETA1, "command": "x", "interactiveMode": "Sometimes"}, "is not one of"),
        ({"apiVersion": V1BETA1, "command": "x", "args": "--flag"}, "args must be a list"),
        ({"apiVersion": V1BETA1, "command": "x", "env": [{"name": "A"}]}, "needs a name and a value"),
    ],
    ids=["v1-without-interactive-mode", "v1alpha1", "no-command", "bad-mode", "args-not-list", "env-without-value"],
)
def test_bad_exec_is_a_clear_error(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(kc.KubeconfigError, match=message):
        kc.load_kubeconfig(exec_kubeconfig(tmp_path, spec))


def test_v1beta1_defaults_to_if_available(tmp_path: Path) -> None:
    info = kc.load_kubeconfig(exec_kubeconfig(tmp_path, {"apiVersion": V1BETA1, "command": "x"}))
    assert info.exec is not None
    assert info.exec.interactive_mode == "IfAvailable"


def test_exec_from_kubeconfig_text_is_refused(tmp_path: Path) -> None:
    """Kubeconfig text comes from Secrets: a Secret must never make a component run a command."""
    text = exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "Never", "command": "id"}).read_text()
    with pytest.raises(kc.KubeconfigError, match="only from kubeconfig files"):
        kc.load_kubeconfig(text)
    with pytest.raises(kc.KubeconfigError, match="only from kubeconfig files"):
        ClientConfig.from_kubeconfig(text)


def test_exec_with_a_token_too_is_refused(tmp_path: Path) -> None:
    path = exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "Never", "command": "x"})
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"]["token"] = "t"
    kc.write_kubeconfig(path, config)
    with pytest.raises(kc.KubeconfigError, match="both exec and token"):
        kc.load_kubeconfig(path)


def _jwt(claims: dict[str, Any]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{part}.sig"


def _oidc(token: str | None, name: str = "oidc") -> dict[str, Any]:
    config = {"client-id": "k", "idp-issuer-url": "https://idp.invalid"}
    if token is not None:
        config["id-token"] = token
    return {
        "current-context": "c", "clusters": [{"name": "k", "cluster": {"server": "https://s"}}],
        "users": [{"name": "u", "user": {"auth-provider": {"name": name, "config": config}}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }


async def test_oidc_id_token_is_used_until_it_expires() -> None:
    token = _jwt({"sub": "me", "exp": 1_800_000_100})
    info = kc.parse_kubeconfig(_oidc(token))
    assert info.token == token
    clock = ManualClock(1_800_000_000)
    source = source_for(info, clock=clock)
    assert isinstance(source, ExpiringTokenSource)
    assert (await source.get()).token == token
    clock.now = 1_800_000_100
    with pytest.raises(CredentialError, match="oidc id-token of kubeconfig user 'u' expired"):
        await source.get()


def test_oidc_without_expiry_is_a_fixed_token() -> None:
    info = kc.parse_kubeconfig(_oidc("opaque-token"))
    assert info.token == "opaque-token"
    assert source_for(info) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [(_oidc(None), "has no id-token"), (_oidc("t", name="gcp"), "'gcp' is not supported")],
    ids=["oidc-without-id-token", "gcp"],
)
def test_unusable_auth_provider_is_a_clear_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(kc.KubeconfigError, match=message):
        kc.parse_kubeconfig(config)


# ---- exec plugins ----------------------------------------------------------------------------------


async def test_exec_token_is_cached_until_shortly_before_expiry(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    script = token_plugin(tmp_path, expires=clock.now + 60)
    source = exec_source(tmp_path, script, clock)
    first = await source.get()
    assert first.token == "tok-0"
    assert first.expires_at == clock.now + 60
    clock.now += 45
    assert (await source.get()).token == "tok-0"
    assert runs(script) == 1
    clock.now += 6  # 9 s left: within the margin before expiry
    assert (await source.get()).token == "tok-1"
    assert runs(script) == 2


async def test_exec_token_without_expiry_is_kept_until_refused(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    script = token_plugin(tmp_path)
    source = exec_source(tmp_path, script, clock)
    first = await source.get()
    clock.now += 10**6
    assert await source.get() is first
    source.invalidate(first)
    assert (await source.get()).token == "tok-1"
    source.invalidate(first)  # an older credential refused: the current one stays
    assert (await source.get()).token == "tok-1"
    assert runs(script) == 2


async def test_exec_gets_env_args_and_cluster_info(tmp_path: Path) -> None:
    script = plugin(tmp_path, "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                              "'kind': 'ExecCredential', 'status': {'token': os.environ['A'] + ':' + sys.argv[1]}}))\n")
    ca = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
    path = exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "IfAvailable", "command": str(script),
                                      "args": ["arg1"], "env": [{"name": "A", "value": "from-env"}],
                                      "provideClusterInfo": True},
                           server="https://h:6443",
                           cluster_extra={"certificate-authority-data": base64.b64encode(ca).decode(),
                                          "extensions": [{"name": "client.authentication.k8s.io/exec",
                                                          "extension": {"audience": "x"}}]})
    source = source_for(kc.load_kubeconfig(path))
    assert source is not None
    assert (await source.get()).token == "from-env:arg1"
    info = json.loads((tmp_path / "plugin.info").read_text())
    assert info == {
        "apiVersion": V1, "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": "https://h:6443",
                                                   "certificate-authority-data": base64.b64encode(ca).decode(),
                                                   "config": {"audience": "x"}}},
    }


async def test_exec_without_provide_cluster_info_sends_no_cluster(tmp_path: Path) -> None:
    source = exec_source(tmp_path, token_plugin(tmp_path))
    await source.get()
    assert json.loads((tmp_path / "plugin.info").read_text())["spec"] == {"interactive": False}


def _printing(out: str, *, stderr: str = "", code: int = 0) -> str:
    return f"sys.stdout.write({out!r}); sys.stderr.write({stderr!r}); sys.exit({code})\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_printing("", stderr="error: you must be logged in to the server (run 'login')", code=2),
         r"failed \(exit status 2\): error: you must be logged in to the server \(run 'login'\)"),
        (_printing("", code=1), "it printed nothing on stderr"),
        (_printing("Welcome! Your token is 1234\n"), "printed 'Welcome! Your token is 1234', not an ExecCredential"),
        (_printing(""), "printed 'nothing', not an ExecCredential"),
        (_printing('{"kind": "Pod"}'), "not an ExecCredential"),
        (_printing(json.dumps({"kind": "ExecCredential", "apiVersion": V1BETA1, "status": {"token": "t"}})),
         "answered with apiVersion 'client.authentication.k8s.io/v1beta1'"),
        (_printing(json.dumps({"kind": "ExecCredential", "apiVersion": V1})), "without a status"),
        (_printing(json.dumps({"kind": "ExecCredential", "apiVersion": V1, "status": {}})),
         "neither a token nor a client certificate"),
        (_printing(json.dumps({"kind": "ExecCredential", "apiVersion": V1,
                               "status": {"clientCertificateData": "c"}})), "without the other"),
        (_printing(json.dumps({"kind": "ExecCredential", "apiVersion": V1,
                               "status": {"token": "t", "expirationTimestamp": "tomorrow"}})),
         "not an RFC 3339 time"),
    ],
    ids=["fails-with-stderr", "fails-silently", "prints-text", "prints-nothing", "wrong-kind", "wrong-version",
         "no-status", "empty-status", "cert-without-key", "bad-expiry"],
)
async def test_misbehaving_plugin_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    source = exec_source(tmp_path, plugin(tmp_path, body))
    with pytest.raises(CredentialError, match=message) as err:
        await source.get()
    assert f"exec credential plugin {str(tmp_path / 'plugin')!r} of kubeconfig user 'u'" in str(err.value)
    assert isinstance(err.value, kc.KubeconfigError)


async def test_missing_plugin_names_the_install_hint(tmp_path: Path) -> None:
    source = exec_source(tmp_path, "vc-no-such-plugin", installHint="Install it: apt-get install vc-auth")
    with pytest.raises(CredentialError, match=r"'vc-no-such-plugin' .* was not found: Install it: apt-get install"):
        await source.get()
    source = exec_source(tmp_path, "vc-no-such-plugin")
    with pytest.raises(CredentialError, match="was not found: install it, or put it on PATH"):
        await source.get()


async def test_plugin_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "not-exec"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(CredentialError, match="cannot be run"):
        await exec_source(tmp_path, script).get()


async def test_interactive_only_plugin_is_refused_without_running(tmp_path: Path) -> None:
    script = token_plugin(tmp_path)
    with pytest.raises(CredentialError, match="needs a terminal"):
        await exec_source(tmp_path, script, interactiveMode="Always").get()
    assert runs(script) == 0


async def test_hung_plugin_is_killed(tmp_path: Path) -> None:
    source = exec_source(tmp_path, plugin(tmp_path, "import time; time.sleep(600)\n"))
    source.timeout = 0.5
    with pytest.raises(CredentialError, match=r"did not finish within 0\.5 s"):
        await source.get()


# ---- token files -------------------------------------------------------------------------------------


async def test_token_file_is_reread_every_period_and_after_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    clock = ManualClock(1_800_000_000.0)
    source = TokenFileSource(path, token="one", clock=clock)
    assert (await source.get()).token == "one"
    path.write_text("two\n")
    clock.now += 30
    assert (await source.get()).token == "one"
    clock.now += 31
    assert (await source.get()).token == "two"
    path.write_text("three")
    refused = await source.get()
    source.invalidate(refused)
    assert (await source.get()).token == "three"


async def test_token_file_that_vanishes_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one")
    clock = ManualClock(1_800_000_000.0)
    source = TokenFileSource(path, clock=clock)
    assert (await source.get()).token == "one"
    path.unlink()
    clock.now += 61
    assert (await source.get()).token == "one"
    with pytest.raises(CredentialError, match="cannot be read"):
        await TokenFileSource(path).get()
    path.write_text("")
    with pytest.raises(CredentialError, match="is empty"):
        await TokenFileSource(path).get()


def test_kubeconfig_token_file_becomes_a_source(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("abc\n")
    config = kc.render_kubeconfig(server="https://s", ca_pem=None, token="x")
    del config["users"][0]["user"]["token"]
    config["users"][0]["user"]["tokenFile"] = "tok"
    info = kc.load_kubeconfig(kc.write_kubeconfig(tmp_path / "kc", config))
    assert (info.token, info.token_file) == ("abc", tmp_path.resolve() / "tok")
    cfg = ClientConfig.from_kubeconfig(tmp_path / "kc")
    assert isinstance(cfg.credentials, TokenFileSource)
    assert cfg.token is None


def test_in_cluster_config_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "token").write_text("sa-token\n")
    cfg = ClientConfig.in_cluster("https://10.0.0.1:443", account_dir=tmp_path)
    assert cfg.ca_pem == b"CA"
    assert isinstance(cfg.credentials, TokenFileSource)
    assert cfg.credentials.path == tmp_path / "token"
    with pytest.raises(kc.KubeconfigError, match="cannot read the pod's service account"):
        ClientConfig.in_cluster("https://10.0.0.1:443", account_dir=tmp_path / "missing")


# ---- the client ----------------------------------------------------------------------------------------


class Apiserver:
    """Accepts the bearer tokens in ``accepted``; records what each request carried."""

    def __init__(self, *, by_cert: bool = False) -> None:
        self.accepted: Callable[[str], bool] = lambda _t: True
        self.seen: list[str] = []
        self.by_cert = by_cert

    async def handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if self.by_cert:  # the TLS layer verified the client certificate; Kubernetes reads CN as the user
            assert request.transport is not None
            peer = request.transport.get_extra_info("peercert") or {}
            token = "cert:" + "".join(v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName")
            auth = "Bearer " + token
        self.seen.append(token)
        if not auth.startswith("Bearer ") or not self.accepted(token):
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized",
                                      "message": "Unauthorized"}, status=401)
        if request.query.get("watch"):
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(json.dumps({"type": "ADDED", "object": {"metadata": {"name": "a"}}}).encode() + b"\n")
            return resp  # type: ignore[return-value]
        return web.json_response({"kind": "NamespaceList", "items": [], "metadata": {"resourceVersion": "1"}})


@asynccontextmanager
async def serve(server: Apiserver, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_client_sends_the_plugin_token_and_runs_it_again_after_a_401(tmp_path: Path) -> None:
    server = Apiserver()
    script = token_plugin(tmp_path)
    async with serve(server) as url:
        path = exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "Never", "command": str(script)},
                               server=url)
        async with ApiClient.from_kubeconfig(path) as api:
            await api.list(resources.NAMESPACES)
            await api.list(resources.NAMESPACES)
            assert server.seen == ["tok-0", "tok-0"]
            server.accepted = lambda t: t != "tok-0"  # revoked: the next request is refused once
            await api.list(resources.NAMESPACES)
            assert server.seen[2:] == ["tok-0", "tok-1"]
            server.accepted = lambda t: t != "tok-1"
            events = [e async for e in api.watch(resources.NAMESPACES, timeout_seconds=1)]
            assert [e.object["metadata"]["name"] for e in events] == ["a"]
            assert server.seen[4:] == ["tok-1", "tok-2"]
    assert runs(script) == 3


async def test_client_fails_clearly_when_fresh_credentials_are_refused_too(tmp_path: Path) -> None:
    server = Apiserver()
    server.accepted = lambda _t: False
    script = token_plugin(tmp_path)
    async with serve(server) as url:
        path = exec_kubeconfig(tmp_path, {"apiVersion": V1, "interactiveMode": "Never", "command": str(script)},
                               server=url)
        async with ApiClient.from_kubeconfig(path) as api:
            with pytest.raises(Unauthorized, match="were refused, also after getting fresh ones"):
                await api.list(resources.NAMESPACES)
            with pytest.raises(Unauthorized, match="also after getting fresh ones"):
                _ = [e async for e in api.watch(resources.NAMESPACES, timeout_seconds=1)]
    assert server.seen == ["tok-0", "tok-1", "tok-1", "tok-2"]  # one refresh per request, then the error


async def test_fixed_token_gets_no_retry_on_401(tmp_path: Path) -> None:
    server = Apiserver()
    server.accepted = lambda _t: False
    async with serve(server) as url, ApiClient(ClientConfig(server=url, token="fixed")) as api:
        with pytest.raises(Unauthorized) as err:
            await api.list(resources.NAMESPACES)
    assert server.seen == ["fixed"]
    assert "fresh ones" not in str(err.value)


def client_cert_required(ca: pki.CertKeyPair) -> ssl.SSLContext:
    """A loopback apiserver's TLS: served by ``ca``, and no TLS connection at all without a client
    certificate ``ca`` signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca.cert_pem.decode())
    pki.load_cert_chain(ctx, pki.issue_server_cert(ca, common_name="apiserver", ips=["127.0.0.1"]))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def test_client_certificate_from_a_plugin_authenticates(tmp_path: Path) -> None:
    ca = pki.generate_ca(common_name="test-ca")
    client = pki.issue_client_cert(ca, common_name="plugin-user")
    ctx = client_cert_required(ca)
    status = {"clientCertificateData": client.cert_pem.decode(), "clientKeyData": client.key_pem.decode()}
    script = plugin(tmp_path, f"print(json.dumps({{'apiVersion': {V1BETA1!r}, 'kind': 'ExecCredential', "
                              f"'status': {status!r}}}))\n")
    server = Apiserver(by_cert=True)
    async with serve(server, ctx) as url:
        path = exec_kubeconfig(tmp_path, {"apiVersion": V1BETA1, "command": str(script)}, server=url,
                               cluster_extra={"certificate-authority-data": base64.b64encode(ca.cert_pem).decode()})
        async with ApiClient.from_kubeconfig(path) as api:
            await api.list(resources.NAMESPACES)
        assert server.seen == ["cert:plugin-user"]
        async with ApiClient(ClientConfig(server=url, ca_pem=ca.cert_pem, retries=1)) as api:
            with pytest.raises(ApiError, match="ConnectionError"):  # without it the server refuses the handshake
                await api.list(resources.NAMESPACES)
        assert server.seen == ["cert:plugin-user"]


async def test_a_new_client_certificate_gets_a_new_pool_and_the_old_one_is_closed_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vcluster.kube import client as client_module

    ca = pki.generate_ca(common_name="test-ca")
    certs = [pki.issue_client_cert(ca, common_name=cn) for cn in ("first", "second")]
    ctx = client_cert_required(ca)
    statuses = [{"clientCertificateData": c.cert_pem.decode(), "clientKeyData": c.key_pem.decode()} for c in certs]
    script = plugin(tmp_path, f"statuses = {statuses!r}\n"
                              f"print(json.dumps({{'apiVersion': {V1BETA1!r}, 'kind': 'ExecCredential', "
                              "'status': statuses[min(runs, 1)]}))\n")
    server = Apiserver(by_cert=True)
    async with serve(server, ctx) as url:
        path = exec_kubeconfig(tmp_path, {"apiVersion": V1BETA1, "command": str(script)}, server=url,
                               cluster_extra={"certificate-authority-data": base64.b64encode(ca.cert_pem).decode()})
        async with ApiClient.from_kubeconfig(path) as api:
            await api.list(resources.NAMESPACES)
            old = api._session
            assert api.config.credentials is not None
            api.config.credentials.invalidate(None)  # as after a 401: the plugin runs again, a new certificate
            await api.list(resources.NAMESPACES)
            assert server.seen == ["cert:first", "cert:second"]
            assert api._session is not old
            assert [s for _, s in api._retired] == [old]
            assert old is not None
            assert not old.closed  # requests and watches still on it may finish
            monkeypatch.setattr(client_module, "RETIRED_SESSION_SECONDS", -1.0)
            await api.list(resources.NAMESPACES)
            assert old.closed
            assert api._retired == []
            assert server.seen[-1] == "cert:second"
