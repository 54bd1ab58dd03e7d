"""Settings groups read from the environment, with clear errors for bad values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from vcluster.settings import LogSettings
from virtual_node.settings import ProxySettings, SettingsError, VirtualNodeSettings


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VC_KUBELET_PROXY_ADDRESS", "VC_KUBELET_PROXY_PORT", "VC_VNODE_GC_GRACE_PERIOD",
                 "VC_PROXY_PORT", "VC_KUBELET_SCHEME", "KUBERNETES_SERVICE_HOST", "VC_SUPER_KUBECONFIG",
                 "KUBECONFIG", "VC_PROXY_METRICS_PORT", "VC_LOG_LEVEL", "VC_LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    assert VirtualNodeSettings.from_env() == VirtualNodeSettings()
    assert ProxySettings.from_env() == ProxySettings()


def test_values_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_KUBELET_PROXY_ADDRESS", "proxy.example")
    monkeypatch.setenv("VC_KUBELET_PROXY_PORT", "4443")
    monkeypatch.setenv("VC_VNODE_GC_GRACE_PERIOD", "2.5")
    monkeypatch.setenv("VC_PROXY_SERVING_NAMES", "a.example, 10.0.0.1")
    monkeypatch.setenv("VC_SUPER_KUBECONFIG", "/tmp/kc")
    monkeypatch.setenv("VC_PROXY_METRICS_PORT", "-1")
    monkeypatch.setenv("VC_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("VC_LOG_JSON", "true")
    vn = VirtualNodeSettings.from_env()
    assert (vn.proxy_address, vn.proxy_port, vn.gc_grace_period) == ("proxy.example", 4443, 2.5)
    proxy = ProxySettings.from_env()
    assert proxy.serving_names == ("a.example", "10.0.0.1")
    assert proxy.super_kubeconfig == Path("/tmp/kc")
    assert proxy.metrics_port == -1
    assert proxy.logs == LogSettings(level="DEBUG", json=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("VC_KUBELET_PROXY_PORT", "http", id="port-not-int"),
        pytest.param("VC_KUBELET_PROXY_PORT", "70000", id="port-range"),
        pytest.param("VC_VNODE_HEARTBEAT_PERIOD", "0", id="period-zero"),
        pytest.param("VC_VNODE_GC_GRACE_PERIOD", "soon", id="grace-not-number"),
    ],
)
def test_bad_values_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        VirtualNodeSettings.from_env()


def test_bad_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_KUBELET_SCHEME", "ftp")
    with pytest.raises(SettingsError, match="VC_KUBELET_SCHEME"):
        ProxySettings.from_env()


def test_in_pod_the_proxy_reads_its_service_account_token_again_as_it_rotates(tmp_path: Path) -> None:
    from vcluster.kube.credentials import TokenFileSource
    from virtual_node.settings import super_client_config

    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "token").write_text("t1")
    settings = ProxySettings(in_cluster_server="https://10.96.0.1:443")
    config = super_client_config(settings, account_dir=tmp_path)
    assert (config.server, config.ca_pem, config.token) == ("https://10.96.0.1:443", b"CA", None)
    assert isinstance(config.credentials, TokenFileSource)
    assert config.credentials.path == tmp_path / "token"
    with pytest.raises(SettingsError, match="cannot read the pod's service account"):
        super_client_config(settings, account_dir=tmp_path / "nowhere")


def test_serving_certificate_lifetime_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_PROXY_CERT_VALIDITY", "180s")
    monkeypatch.setenv("VC_PROXY_CERT_CHECK_PERIOD", "5")
    proxy = ProxySettings.from_env()
    assert proxy.cert_validity == dt.timedelta(seconds=180)
    assert proxy.cert_renew_before == dt.timedelta(seconds=60)  # the last third by default
    assert proxy.cert_check_period == 5.0
    monkeypatch.setenv("VC_PROXY_CERT_RENEW_BEFORE", "3m")
    with pytest.raises(SettingsError, match="VC_PROXY_CERT_RENEW_BEFORE"):
        ProxySettings.from_env()
    monkeypatch.setenv("VC_PROXY_CERT_VALIDITY", "10s")
    with pytest.raises(SettingsError, match="VC_PROXY_CERT_VALIDITY"):
        ProxySettings.from_env()
