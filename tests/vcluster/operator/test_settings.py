"""OperatorSettings.from_env: bad numbers in the environment are one-line errors naming the variable."""

from __future__ import annotations

import pytest

from vcluster.errors import VClusterError
from vcluster.operator.settings import OperatorSettings
from vcluster.settings import SettingsError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("VC_OPERATOR_START_TIMEOUT", "soon", id="timeout-not-number"),
        pytest.param("VC_OPERATOR_HEALTH_INTERVAL", "20s", id="interval-with-unit"),
        pytest.param("VC_OPERATOR_HEALTH_PORT", "http", id="port-not-int"),
        pytest.param("VC_OPERATOR_HEALTH_PORT", "70000", id="port-range"),
    ],
)
def test_bad_numbers_are_clear_errors(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(VClusterError, match=name):
        OperatorSettings.from_env()


def test_numbers_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_OPERATOR_START_TIMEOUT", "12.5")
    monkeypatch.setenv("VC_OPERATOR_HEALTH_PORT", "0")
    monkeypatch.delenv("VC_OPERATOR_HEALTH_INTERVAL", raising=False)
    settings = OperatorSettings.from_env()
    assert (settings.start_timeout, settings.health_port, settings.health_interval) == (12.5, 0, 5.0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, (15.0, 10.0, 2.0), id="defaults"),
        pytest.param({"VC_OPERATOR_LEASE_DURATION": "3"}, (3.0, 2.0, 0.5), id="short-lease-derives-the-rest"),
        pytest.param({"VC_OPERATOR_LEASE_DURATION": "6", "VC_OPERATOR_LEASE_RENEW_DEADLINE": "4",
                      "VC_OPERATOR_LEASE_RETRY_PERIOD": "1"}, (6.0, 4.0, 1.0), id="explicit"),
    ],
)
def test_lease_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                        expected: tuple[float, float, float]) -> None:
    for name in ("VC_OPERATOR_LEASE_DURATION", "VC_OPERATOR_LEASE_RENEW_DEADLINE", "VC_OPERATOR_LEASE_RETRY_PERIOD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = OperatorSettings.from_env()
    assert (s.lease.duration, s.lease.renew_deadline, s.lease.retry_period) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"VC_OPERATOR_LEASE_DURATION": "5", "VC_OPERATOR_LEASE_RENEW_DEADLINE": "5"},
                     "RENEW_DEADLINE=5 must be less than the lease duration 5", id="deadline-not-below-duration"),
        pytest.param({"VC_OPERATOR_LEASE_RENEW_DEADLINE": "2", "VC_OPERATOR_LEASE_RETRY_PERIOD": "3"},
                     "RETRY_PERIOD=3 must be less than the renew deadline 2", id="retry-not-below-deadline"),
        pytest.param({"VC_OPERATOR_LEASE_DURATION": "0"}, "VC_OPERATOR_LEASE_DURATION must be positive",
                     id="zero-duration"),
    ],
)
def test_bad_lease_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(VClusterError, match=message):
        OperatorSettings.from_env()


def test_lease_config_names_the_operator_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    from vcluster import naming
    from vcluster.operator.__main__ import lease_config

    monkeypatch.setenv("VC_OPERATOR_IDENTITY", "op-a")
    cfg = lease_config(OperatorSettings.from_env())
    assert (cfg.namespace, cfg.name, cfg.identity) == (naming.SYSTEM_NAMESPACE, naming.OPERATOR_LEASE_NAME, "op-a")


def test_peering_flag_is_accepted_but_obsolete(capsys: pytest.CaptureFixture[str]) -> None:
    from vcluster.operator.__main__ import _parse

    base = OperatorSettings()
    assert _parse(["--peering"], base) == _parse([], base)
    assert "--peering is obsolete" in capsys.readouterr().err


def test_health_loop_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_OPERATOR_HEALTH_FAILURE_THRESHOLD", "3")
    monkeypatch.setenv("VC_OPERATOR_HEALTH_PROBE_TIMEOUT", "1.5")
    settings = OperatorSettings.from_env()
    assert (settings.health_failure_threshold, settings.health_probe_timeout) == (3, 1.5)
    monkeypatch.setenv("VC_OPERATOR_HEALTH_FAILURE_THRESHOLD", "0")
    with pytest.raises(SettingsError, match="VC_OPERATOR_HEALTH_FAILURE_THRESHOLD must be >= 1"):
        OperatorSettings.from_env()


def test_control_plane_placement_is_read_into_pod_spec_fields() -> None:
    from vcluster.operator.settings import ControlPlanePlacement

    env = {"VC_OPERATOR_CONTROL_PLANE_NODE_SELECTOR": "pool=control-planes, zone=a",
           "VC_OPERATOR_CONTROL_PLANE_TOLERATIONS": "dedicated=cp:NoSchedule,example.com/real-node:NoExecute,any"}
    placement = ControlPlanePlacement.from_env(env)
    assert placement.pod_spec() == {
        "nodeSelector": {"pool": "control-planes", "zone": "a"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "cp", "effect": "NoSchedule"},
            {"key": "example.com/real-node", "operator": "Exists", "effect": "NoExecute"},
            {"key": "any", "operator": "Exists"},
        ],
    }
    assert ControlPlanePlacement.from_env({}).pod_spec() == {}
    assert OperatorSettings.from_env(env).placement == placement


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("VC_OPERATOR_CONTROL_PLANE_NODE_SELECTOR", "pool", "not key=value", id="selector-no-value"),
        pytest.param("VC_OPERATOR_CONTROL_PLANE_TOLERATIONS", "=x:NoSchedule", "has no key", id="toleration-no-key"),
        pytest.param("VC_OPERATOR_CONTROL_PLANE_TOLERATIONS", "k:Sometimes", "effect must be", id="bad-effect"),
    ],
)
def test_bad_placement_is_a_clear_error(name: str, value: str, message: str) -> None:
    from vcluster.operator.settings import ControlPlanePlacement

    with pytest.raises(SettingsError, match=f"{name}.*{message}"):
        ControlPlanePlacement.from_env({name: value})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, "local", id="outside-a-pod"),
        pytest.param({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, "pods", id="in-a-pod"),
        pytest.param({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "VC_OPERATOR_DEFAULT_BACKEND": "local"}, "local",
                     id="in-a-pod-told-local"),
        pytest.param({"VC_OPERATOR_DEFAULT_BACKEND": "pods"}, "pods", id="told-pods"),
    ],
)
def test_default_backend_is_pods_in_a_cluster(env: dict[str, str], expected: str) -> None:
    assert OperatorSettings.from_env(env).default_backend == expected


def test_bad_default_backend_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="VC_OPERATOR_DEFAULT_BACKEND"):
        OperatorSettings.from_env({"VC_OPERATOR_DEFAULT_BACKEND": "vm"})


@pytest.mark.parametrize(
    ("wanted", "current", "default", "expected"),
    [
        pytest.param("local", "pods", "pods", "local", id="named-wins"),
        pytest.param(None, "local", "pods", "local", id="kept-once-chosen"),
        pytest.param(None, None, "pods", "pods", id="new-gets-default"),
    ],
)
def test_a_tenant_without_a_backend_gets_the_default_once(wanted: str | None, current: str | None, default: str,
                                                         expected: str) -> None:
    from vcluster.operator.reconcile import resolve_backend

    assert resolve_backend(wanted, current, default) == expected


def test_image_repository_and_etcd_image() -> None:
    default = OperatorSettings.from_env({})
    assert (default.image_repository, default.etcd_image) == ("registry.k8s.io", "")
    told = OperatorSettings.from_env({"VC_OPERATOR_IMAGE_REPOSITORY": "localhost:5000/k8s/",
                                      "VC_OPERATOR_ETCD_IMAGE": "localhost/virtualcluster/etcd:v3.6.16"})
    assert (told.image_repository, told.etcd_image) == ("localhost:5000/k8s", "localhost/virtualcluster/etcd:v3.6.16")


@pytest.mark.parametrize("value", ["registry.k8s.io/kube-apiserver:v1.36.3", "reg istry", "r.example/k8s@sha256:0"])
def test_bad_image_repository_is_a_clear_error(value: str) -> None:
    with pytest.raises(SettingsError, match=r"VC_OPERATOR_IMAGE_REPOSITORY.*not an image repository"):
        OperatorSettings.from_env({"VC_OPERATOR_IMAGE_REPOSITORY": value})


def test_certificate_lifetimes_are_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    monkeypatch.setenv("VC_OPERATOR_CERT_VALIDITY", "120s")
    monkeypatch.setenv("VC_OPERATOR_CERT_RENEW_BEFORE", "1m")
    lifetimes = OperatorSettings.from_env().certificates
    assert lifetimes.validity == dt.timedelta(seconds=120)
    assert lifetimes.renew_before == dt.timedelta(seconds=60)
    monkeypatch.delenv("VC_OPERATOR_CERT_RENEW_BEFORE")
    assert OperatorSettings.from_env().certificates.renew_before == dt.timedelta(seconds=40)  # last third
    monkeypatch.delenv("VC_OPERATOR_CERT_VALIDITY")
    default = OperatorSettings.from_env().certificates
    assert default.validity == dt.timedelta(days=365)
    assert default.ca_validity == dt.timedelta(days=3650)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param({"VC_OPERATOR_CERT_VALIDITY": "soon"}, "VC_OPERATOR_CERT_VALIDITY", id="not-duration"),
        pytest.param({"VC_OPERATOR_CERT_VALIDITY": "10s"}, "VC_OPERATOR_CERT_VALIDITY", id="too-short"),
        pytest.param({"VC_OPERATOR_CERT_VALIDITY": "-5m"}, "VC_OPERATOR_CERT_VALIDITY", id="negative"),
        pytest.param({"VC_OPERATOR_CERT_VALIDITY": "2m", "VC_OPERATOR_CERT_RENEW_BEFORE": "2m"}, "shorter",
                     id="window-not-shorter"),
        pytest.param({"VC_OPERATOR_CA_VALIDITY": "1d", "VC_OPERATOR_CERT_VALIDITY": "2d"}, "CA validity",
                     id="ca-shorter-than-leaf"),
    ],
)
def test_bad_certificate_lifetimes_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(VClusterError, match=match):
        OperatorSettings.from_env()


def test_the_shared_etcd_is_off_unless_asked_for() -> None:
    assert OperatorSettings.from_env({}).shared_etcd is False
    assert OperatorSettings.from_env({"VC_OPERATOR_SHARED_ETCD": "true"}).shared_etcd is True
    with pytest.raises(VClusterError, match="VC_OPERATOR_SHARED_ETCD"):
        OperatorSettings.from_env({"VC_OPERATOR_SHARED_ETCD": "maybe"})


def test_bootstrap_seed_is_on_by_default_and_can_be_turned_off() -> None:
    assert OperatorSettings().bootstrap_seed is True
    assert OperatorSettings.from_env({}).bootstrap_seed is True
    assert OperatorSettings.from_env({"VC_OPERATOR_BOOTSTRAP_SEED": "false"}).bootstrap_seed is False
    with pytest.raises(VClusterError, match="VC_OPERATOR_BOOTSTRAP_SEED"):
        OperatorSettings.from_env({"VC_OPERATOR_BOOTSTRAP_SEED": "perhaps"})
