"""Kopf's login handler: fixed kubeconfig credentials as they are, changing ones fetched and refreshed."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from vcluster import kubeconfig as kc
from vcluster.operator.handlers import kopf_login


async def test_fixed_token_is_handed_on_without_expiration() -> None:
    info = kc.parse_kubeconfig(kc.render_kubeconfig(server="https://s:6443", ca_pem=b"CA", token="fixed"))
    conn = await kopf_login(info)()
    assert (conn.server, conn.token, conn.ca_data, conn.expiration) == ("https://s:6443", "fixed", "CA", None)


async def test_exec_plugin_credentials_expire_and_are_fetched_anew_when_kopf_asks_again(tmp_path: Path) -> None:
    script = tmp_path / "plugin"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, datetime as dt\n"
        f"c = pathlib.Path({str(tmp_path / 'runs')!r}); n = int(c.read_text()) if c.exists() else 0\n"
        "c.write_text(str(n + 1))\n"
        "exp = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        " 'status': {'token': f'tok-{n}', 'expirationTimestamp': exp}}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config = kc.render_kubeconfig(server="https://s:6443", ca_pem=None, token="x")
    config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
                                           "interactiveMode": "Never"}}
    info = kc.load_kubeconfig(kc.write_kubeconfig(tmp_path / "kubeconfig", config))
    login = kopf_login(info)
    first = await login()
    assert first.token == "tok-0"
    assert first.expiration is not None
    second = await login()  # Kopf logs in again only when refused or expired: a fresh credential
    assert second.token == "tok-1"
