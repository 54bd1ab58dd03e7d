"""The builder: flags, certificates and versions from a Tenant (+ ClusterVersion), per layout."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_crd import ClusterVersionSpec, SpecError, TenantSpec
from vcluster import naming
from vcluster.controlplane import builder, pods
from vcluster.controlplane import spec as cp

KEY = "acme-1a2b3c"


def _layout() -> cp.Layout:
    return pods.layout(KEY)


def _build(tenant: dict[str, Any] | None = None, cv: dict[str, Any] | None = None) -> cp.ControlPlaneSpec:
    return builder.build(
        tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict(tenant or {}),
        cluster_version=ClusterVersionSpec.from_dict(cv) if cv else None, layout=_layout(),
    )


def _flags(comp: cp.Component) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in comp.args)


def test_default_control_plane_wiring() -> None:
    spec = _build()
    api, cm, etcd = _flags(spec.apiserver), _flags(spec.controller_manager), _flags(spec.etcd)
    assert spec.version == "v1.36.3"
    assert api["etcd-servers"] == etcd["advertise-client-urls"]
    assert api["client-ca-file"] == f"{pods.PKI_MOUNT}/ca.crt"
    assert api["kubelet-certificate-authority"] == f"{pods.PKI_MOUNT}/kubelet-ca.crt"
    assert cm["secure-port"] == "0"
    assert cm["cluster-signing-key-file"] == f"{pods.PKI_MOUNT}/ca.key"
    assert api["service-account-key-file"].endswith("sa.pub")
    assert etcd["client-cert-auth"] == "true"
    assert spec.apiserver.image == "registry.k8s.io/kube-apiserver:v1.36.3"
    assert spec.endpoint == f"https://apiserver.{KEY}.svc:6443"


def test_certificates_follow_the_contract() -> None:
    certs = {c.name: c for c in _build({"controlPlane": {"expose": {"host": "10.1.2.3"}}}).certs}
    kubelet = certs[cp.APISERVER_KUBELET_CLIENT]
    assert (kubelet.ca, kubelet.common_name, kubelet.organizations) == (
        cp.KUBELET_CA, KEY, (naming.KUBELET_CLIENT_GROUP,))
    assert certs[cp.ADMIN].organizations == ("system:masters",)
    assert "10.1.2.3" in certs[cp.APISERVER].ips
    assert f"apiserver.{KEY}.svc" in certs[cp.APISERVER].dns_names
    assert certs[cp.ETCD_SERVER].ca == cp.ETCD_CA
    assert certs[cp.ETCD_SERVER].client_auth  # etcd's JSON gateway (the bootstrap seed) needs it
    assert not certs[cp.APISERVER].client_auth


VERSIONS = [
    ("default", {}, None, "v1.36.3"),
    ("tenant-version", {"controlPlane": {"version": "v1.35.1"}}, None, "v1.35.1"),
    ("cluster-version", {"controlPlane": {"clusterVersionRef": "cv"}},
     {"version": "v1.34.0", "images": {"apiserver": "mirror/api:x"}}, "v1.34.0"),
]


@pytest.mark.parametrize(("tenant", "cv", "version"), [v[1:] for v in VERSIONS], ids=[v[0] for v in VERSIONS])
def test_version_resolution(tenant: dict[str, Any], cv: dict[str, Any] | None, version: str) -> None:
    spec = _build(tenant, cv)
    assert spec.version == version
    assert spec.controller_manager.image.endswith(f":{version}")


def test_cluster_version_image_and_args_then_tenant_args_win() -> None:
    spec = _build(
        {"controlPlane": {"clusterVersionRef": "cv", "extraArgs": {"apiserver": {"v": "4"}}}},
        {"version": "v1.36.3", "images": {"apiserver": "mirror/api:x"},
         "apiserver": {"extraArgs": {"v": "2", "audit-log-maxage": "3"}}},
    )
    flags = _flags(spec.apiserver)
    assert spec.apiserver.image == "mirror/api:x"
    assert flags["v"] == "4"
    assert flags["audit-log-maxage"] == "3"


@pytest.mark.parametrize(
    ("tenant", "cv"),
    [
        ({"controlPlane": {"extraArgs": {"apiserver": {"etcd-servers": "http://evil"}}}}, None),
        ({"controlPlane": {"extraArgs": {"controllerManager": {"kubeconfig": "/x"}}}}, None),
        ({}, {"version": "v1.36.3", "apiserver": {"extraArgs": {"client-ca-file": "/x"}}}),
        ({"controlPlane": {"extraArgs": {"etcd": {"listen-client-urls": "http://0.0.0.0:2379"}}}}, None),
        ({"controlPlane": {"extraArgs": {"etcd": {"client-cert-auth": "false"}}}}, None),
        ({"controlPlane": {"extraArgs": {"etcd": {"listen-metrics-urls": "http://0.0.0.0:2381"}}}}, None),
    ],
    ids=["tenant-apiserver", "tenant-cm", "cluster-version", "etcd-listen", "etcd-client-auth", "etcd-metrics"],
)
def test_protected_flags_are_refused(tenant: dict[str, Any], cv: dict[str, Any] | None) -> None:
    with pytest.raises(SpecError, match="cannot be overridden"):
        _build(tenant, cv)


CONTROLLERS = [
    # A syncer outage must not make the tenant taint (and then evict from) its virtual nodes.
    ("default-without-node-lifecycle", {}, None, builder.TENANT_CONTROLLERS),
    ("cluster-version-overrides", {}, {"version": "v1.36.3", "controllerManager": {"extraArgs": {"controllers": "*"}}},
     "*"),
    ("tenant-overrides", {"controlPlane": {"extraArgs": {"controllerManager": {"controllers": "*,-ttl-controller"}}}},
     None, "*,-ttl-controller"),
]


@pytest.mark.parametrize(("tenant", "cv", "controllers"), [c[1:] for c in CONTROLLERS], ids=[c[0] for c in CONTROLLERS])
def test_tenant_controllers(tenant: dict[str, Any], cv: dict[str, Any] | None, controllers: str) -> None:
    cm = _flags(_build(tenant, cv).controller_manager)
    assert cm["controllers"] == controllers


def test_build_is_deterministic() -> None:
    assert _build({"owners": {"users": ["a"]}}) == _build({"owners": {"users": ["a"]}})


def test_the_operators_image_repository_names_the_images_a_cluster_version_does_not() -> None:
    """``VC_OPERATOR_IMAGE_REPOSITORY`` / ``VC_OPERATOR_ETCD_IMAGE`` (a mirror, the test bed's local images)."""
    tenant = TenantSpec.from_dict({"controlPlane": {"version": "v1.36.3"}})

    def build(cv: dict[str, Any] | None = None, **kw: Any) -> cp.ControlPlaneSpec:
        return builder.build(tenant_name="acme", cluster_key=KEY, tenant=tenant, layout=_layout(),
                             cluster_version=ClusterVersionSpec.from_dict(cv) if cv else None, **kw)

    spec = build(registry="mirror.example:5000/k8s/")
    assert spec.apiserver.image == "mirror.example:5000/k8s/kube-apiserver:v1.36.3"
    assert spec.controller_manager.image == "mirror.example:5000/k8s/kube-controller-manager:v1.36.3"
    assert spec.etcd.image == f"mirror.example:5000/k8s/etcd:{builder.DEFAULT_ETCD_TAG}"
    assert build(registry="localhost/vc", etcd_image="localhost/vc/etcd:v3.6.16").etcd.image == \
        "localhost/vc/etcd:v3.6.16"
    # a ClusterVersion's images win over the operator's defaults
    named = build({"version": "v1.36.3", "images": {"apiserver": "r.example/api:1", "etcd": "r.example/etcd:2"}},
                  registry="localhost/vc", etcd_image="localhost/vc/etcd:v3.6.16")
    assert (named.apiserver.image, named.etcd.image) == ("r.example/api:1", "r.example/etcd:2")
    assert named.controller_manager.image == "localhost/vc/kube-controller-manager:v1.36.3"
    assert build().etcd.image == builder.DEFAULT_ETCD_IMAGE


def test_default_controllers_keep_what_a_tenant_user_expects() -> None:
    off = {c[1:] for c in builder.TENANT_CONTROLLERS.split(",") if c.startswith("-")}
    assert builder.TENANT_CONTROLLERS.split(",")[0] == "*"
    assert "node-lifecycle-controller" in off
    for needed in ("namespace-controller", "serviceaccount-controller", "serviceaccount-token-controller",
                   "garbage-collector-controller", "deployment-controller", "replicaset-controller",
                   "statefulset-controller", "daemonset-controller", "job-controller", "cronjob-controller",
                   "ttl-after-finished-controller", "endpoints-controller", "endpointslice-controller",
                   "resourcequota-controller", "persistentvolume-binder-controller", "disruption-controller"):
        assert needed not in off


def test_small_tenant_flags_are_the_default_and_can_be_overridden() -> None:
    api, cm = _flags(_build().apiserver), _flags(_build().controller_manager)
    assert {k: api[k] for k in builder.TENANT_APISERVER_LEAN} == builder.TENANT_APISERVER_LEAN
    assert api["watch-cache"] == "true"
    assert (cm["kube-api-qps"], cm["kube-api-burst"]) == ("100", "300")
    back = _build({"controlPlane": {"extraArgs": {
        "apiserver": {"watch-cache": "true", "endpoint-reconciler-type": "lease"},
        "controllerManager": {"kube-api-burst": "30"}}}})
    assert _flags(back.apiserver)["watch-cache"] == "true"
    assert _flags(back.apiserver)["endpoint-reconciler-type"] == "lease"
    assert _flags(back.controller_manager)["kube-api-burst"] == "30"


def test_only_pods_keep_a_watch_cache_by_default() -> None:
    api = _flags(_build().apiserver)
    off = dict(entry.split("#") for entry in api["watch-cache-sizes"].split(","))
    assert set(off.values()) == {"0"}
    assert "pods" not in off
    # the kinds a tenant's controllers and the syncer watch besides pods keep no cache
    for kind in ("configmaps", "secrets", "services", "endpoints", "nodes", "namespaces", "serviceaccounts",
                 "replicasets.apps", "deployments.apps", "endpointslices.discovery.k8s.io",
                 "leases.coordination.k8s.io",
                 "apiservices.apiregistration.k8s.io", "customresourcedefinitions.apiextensions.k8s.io"):
        assert kind in off
    assert len(off) == len(builder.UNCACHED_RESOURCES) == 56
    every = _flags(_build({"controlPlane": {"extraArgs": {"apiserver": {"watch-cache-sizes": ""}}}}).apiserver)
    assert (every["watch-cache"], every["watch-cache-sizes"]) == ("true", "")
    none = _flags(_build({"controlPlane": {"extraArgs": {"apiserver": {"watch-cache": "false"}}}}).apiserver)
    assert none["watch-cache"] == "false"


def test_etcd_extra_args_reach_only_etcd() -> None:
    spec = _build({"controlPlane": {"extraArgs": {"etcd": {"heartbeat-interval": "250", "log-level": "info"}}}})
    etcd = _flags(spec.etcd)
    assert (etcd["heartbeat-interval"], etcd["log-level"]) == ("250", "info")
    assert etcd["client-cert-auth"] == "true"
    assert "heartbeat-interval" not in _flags(spec.apiserver)
    assert "heartbeat-interval" not in _flags(spec.controller_manager)


def test_go_runtime_keys_become_the_components_environment_not_flags() -> None:
    spec = _build({"controlPlane": {"extraArgs": {
        "apiserver": {"gomaxprocs": "1", "gogc": "400", "v": "2"},
        "etcd": {"gogc": "off"},
    }}})
    defaults = {builder.GO_RUNTIME_KEYS[k]: v for k, v in builder.TENANT_GO_RUNTIME.items()}
    assert dict(spec.apiserver.env) == {"GOMAXPROCS": "1", "GOGC": "400"}
    assert dict(spec.etcd.env) == {**defaults, "GOGC": "off"}
    assert dict(spec.controller_manager.env) == defaults
    api = _flags(spec.apiserver)
    assert api["v"] == "2"
    assert "gomaxprocs" not in api
    assert "gogc" not in api
    assert "gogc" not in _flags(spec.etcd)


def test_every_tenant_component_runs_with_one_p_by_default() -> None:
    """Round 8 (issue 16): GOMAXPROCS=1 saved ~0.3 % of a core per idle tenant; a tenant may take it back."""
    spec = _build()
    for comp in spec.components:
        assert dict(comp.env) == {"GOMAXPROCS": "1"}, comp.name
    big = _build({"controlPlane": {"extraArgs": {"apiserver": {"gomaxprocs": "4"}}}})
    assert dict(big.apiserver.env) == {"GOMAXPROCS": "4"}
    assert dict(big.etcd.env) == {"GOMAXPROCS": "1"}


def test_a_cluster_version_go_runtime_setting_is_overridden_by_the_tenant() -> None:
    cv = {"version": "v1.36.3", "apiserver": {"extraArgs": {"gomaxprocs": "2", "gogc": "200"}}}
    assert dict(_build({}, cv).apiserver.env) == {"GOMAXPROCS": "2", "GOGC": "200"}
    spec = _build({"controlPlane": {"extraArgs": {"apiserver": {"gomaxprocs": "3"}}}}, cv)
    assert dict(spec.apiserver.env) == {"GOMAXPROCS": "3", "GOGC": "200"}


@pytest.mark.parametrize(("where", "key", "value"), [
    ("apiserver", "gomaxprocs", "0"), ("apiserver", "gomaxprocs", "off"), ("etcd", "gogc", "-1"),
    ("controllerManager", "gogc", "1e3"), ("etcd", "gomaxprocs", ""),
])
def test_a_bad_go_runtime_value_is_a_spec_error_naming_it(where: str, key: str, value: str) -> None:
    with pytest.raises(SpecError, match=rf"extraArgs\.{where}\.{key}"):
        _build({"controlPlane": {"extraArgs": {where: {key: value}}}})


def test_tenant_apiserver_runs_without_its_identity_lease_where_the_version_allows() -> None:
    """Round 10 (issue 16): no identity Lease PUT every 10 s (an idle tenant etcd's only steady write)."""
    api = _flags(_build().apiserver)
    assert api["feature-gates"] == "APIServerIdentity=false,UnknownVersionInteroperabilityProxy=false"
    assert _flags(_build({"controlPlane": {"version": "v1.35.1"}}).apiserver)["feature-gates"] == api["feature-gates"]
    # versions where the gates may be locked or missing get none (the apiserver would not start)
    for version in ("v1.37.0", "v1.27.4"):
        assert "feature-gates" not in _flags(_build({"controlPlane": {"version": version}}).apiserver), version
    # a tenant's own feature gates replace the value as a whole
    own = _build({"controlPlane": {"extraArgs": {"apiserver": {"feature-gates": "APIServerIdentity=true"}}}})
    assert _flags(own.apiserver)["feature-gates"] == "APIServerIdentity=true"
    assert "feature-gates" not in _flags(_build().controller_manager)


def test_tenant_etcd_elects_itself_sooner_and_a_tenant_may_set_it_back() -> None:
    """Round 10 (issue 16): a single member's first election waits 1-5 ticks instead of 1-10."""
    etcd = _flags(_build().etcd)
    assert etcd["election-timeout"] == "500"
    assert "heartbeat-interval" not in etcd  # etcd's 100 ms: 5 ticks per election timeout, its minimum
    back = _build({"controlPlane": {"extraArgs": {"etcd": {"heartbeat-interval": "200", "election-timeout": "1000"}}}})
    assert (_flags(back.etcd)["heartbeat-interval"], _flags(back.etcd)["election-timeout"]) == ("200", "1000")
