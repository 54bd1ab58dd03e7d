"""The pods backend's rendering: objects, mounts, selectors, replicas and exposure."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tenant_crd import TenantSpec
from vcluster import naming
from vcluster.controlplane import builder, pods
from vcluster.controlplane import spec as cp

KEY = "acme-1a2b3c"


def _render(tenant: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    spec = builder.build(tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict(tenant),
                         cluster_version=None, layout=pods.layout(KEY))
    objs = pods.render(spec, namespace=KEY, cm_kubeconfig="kc")
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_objects_and_wiring() -> None:
    objs = _render({"controlPlane": {"backend": "pods", "replicas": 3, "expose": {"type": "NodePort"}}})
    assert set(objs) == {("Service", "etcd"), ("StatefulSet", "etcd"), ("Service", "apiserver"),
                         ("Deployment", "apiserver"), ("Secret", cp.CM_KUBECONFIG_SECRET),
                         ("Deployment", "controller-manager")}
    for obj in objs.values():
        meta = obj["metadata"]
        assert meta["namespace"] == KEY
        assert meta["labels"][naming.LABEL_CLUSTER_KEY] == KEY
    api = objs[("Deployment", "apiserver")]["spec"]
    assert api["replicas"] == 3
    template = api["template"]
    assert set(api["selector"]["matchLabels"].items()) <= set(template["metadata"]["labels"].items())
    container = template["spec"]["containers"][0]
    assert container["command"][0] == "kube-apiserver"
    assert any(a == f"--secure-port={pods.APISERVER_PORT}" for a in container["command"])
    assert template["spec"]["volumes"][0]["secret"]["secretName"] == cp.PKI_SECRET
    assert objs[("Service", "apiserver")]["spec"]["type"] == "NodePort"
    assert objs[("Service", "etcd")]["spec"]["clusterIP"] == "None"


STORAGE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default-size", {}, {"resources": {"requests": {"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"]}),
    ("explicit-class", {"size": "5Gi", "storageClassName": "fast-ssd"},
     {"resources": {"requests": {"storage": "5Gi"}}, "accessModes": ["ReadWriteOnce"],
      "storageClassName": "fast-ssd"}),
    ("no-class-is-cluster-default", {"size": "256Mi"},
     {"resources": {"requests": {"storage": "256Mi"}}, "accessModes": ["ReadWriteOnce"]}),
]


@pytest.mark.parametrize(("storage", "claim_spec"), [(s, c) for _, s, c in STORAGE], ids=[i for i, _, _ in STORAGE])
def test_etcd_data_is_a_claim_from_the_template(storage: dict[str, Any], claim_spec: dict[str, Any]) -> None:
    sts = _render({"controlPlane": {"backend": "pods", "storage": storage}})[("StatefulSet", "etcd")]
    spec = sts["spec"]
    (template,) = spec["volumeClaimTemplates"]
    assert template["metadata"]["name"] == pods.DATA_VOLUME
    assert template["spec"] == claim_spec  # no storageClassName key: the super cluster's default class
    # the claim's labels are the (immutable) selector's, so they can never drift from the stored template
    assert template["metadata"]["labels"] == spec["selector"]["matchLabels"]
    pod = spec["template"]["spec"]
    assert all("emptyDir" not in v for v in pod["volumes"])
    assert {"name": pods.DATA_VOLUME, "mountPath": pods.ETCD_DATA} in pod["containers"][0]["volumeMounts"]
    assert f"--data-dir={pods.ETCD_DATA}" in pod["containers"][0]["command"]
    # deleting the StatefulSet (or the Tenant) deletes its claims
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    # what the reconciler reads back from an existing StatefulSet is what it rendered
    assert pods.storage_of(sts) == cp.EtcdStorage(size=claim_spec["resources"]["requests"]["storage"],
                                                  storage_class=claim_spec.get("storageClassName"))


def test_statefulset_without_claim_template_keeps_its_empty_dir() -> None:
    plane = builder.build(tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict({}),
                          cluster_version=None, layout=pods.layout(KEY))
    legacy = dataclasses.replace(plane, etcd_storage=None)
    sts = next(o for o in pods.render(legacy, namespace=KEY, cm_kubeconfig="kc") if o["kind"] == "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": pods.DATA_VOLUME, "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]
    assert pods.storage_of(sts) is None


GIB = cp.EtcdStorage(size="1Gi")
CHANGES: list[tuple[str, cp.EtcdStorage | None, cp.EtcdStorage | None, str | None]] = [
    ("same", GIB, GIB, None),
    ("same-quantity-other-spelling", cp.EtcdStorage(size="1024Mi"), GIB, None),
    ("bigger", cp.EtcdStorage(size="2Gi"), GIB, "asks for size 2Gi"),
    ("class-set", cp.EtcdStorage(size="1Gi", storage_class="fast"), GIB, "(cluster default)"),
    ("class-changed", cp.EtcdStorage(size="1Gi", storage_class="b"),
     cp.EtcdStorage(size="1Gi", storage_class="a"), "storageClassName a"),
    ("legacy-empty-dir", GIB, None, "has an emptyDir"),
]


@pytest.mark.parametrize(("wanted", "current", "needle"), [(w, c, n) for _, w, c, n in CHANGES],
                         ids=[i for i, _, _, _ in CHANGES])
def test_storage_change_is_named(wanted: cp.EtcdStorage | None, current: cp.EtcdStorage | None,
                                 needle: str | None) -> None:
    got = pods.storage_change(wanted, current)
    if needle is None:
        assert got is None
    else:
        assert got is not None
        assert needle in got
        assert "immutable" in got


def test_placement_goes_into_every_control_plane_pod() -> None:
    """The operator's VC_OPERATOR_CONTROL_PLANE_* settings put etcd, apiserver and controller-manager
    (and the tenant DNS) on the nodes the admin keeps for them."""
    from vcluster.controlplane import dns

    placement = {"nodeSelector": {"pool": "cp"}, "tolerations": [{"key": "cp", "operator": "Exists"}]}
    spec = builder.build(tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict({}),
                         cluster_version=None, layout=pods.layout(KEY))
    objs = pods.render(spec, namespace=KEY, cm_kubeconfig="kc", placement=placement)
    templates = [o["spec"]["template"]["spec"] for o in objs if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(templates) == 3
    for tmpl in templates:
        assert tmpl["nodeSelector"] == {"pool": "cp"}
        assert tmpl["tolerations"] == [{"key": "cp", "operator": "Exists"}]
    (deployment,) = [o for o in dns.pod_objects(KEY, "acme", image="dns", corefile_text=".:53 {}",
                                                  placement=placement) if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cp"}
    # none given: the scheduler's choice, as before
    plain = pods.render(spec, namespace=KEY, cm_kubeconfig="kc")
    assert all("nodeSelector" not in o["spec"]["template"]["spec"] for o in plain if "template" in o.get("spec", {}))


def test_components_can_read_their_secrets_and_the_apiserver_advertises_its_pod_ip() -> None:
    """Found on a real node: the images run as 65534, so root-owned 0400 Secret files were unreadable
    (etcd, controller-manager: permission denied), and kube-apiserver found no default route to derive
    the address it advertises from ('Unable to find suitable network address')."""
    objs = _render({"controlPlane": {"backend": "pods"}})
    for kind, name in (("StatefulSet", "etcd"), ("Deployment", "apiserver"), ("Deployment", "controller-manager")):
        pod = objs[(kind, name)]["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsUser"] == security["fsGroup"] == pods.COMPONENT_UID
        assert security["runAsNonRoot"] is True
        for volume in pod["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["defaultMode"] & 0o040, f"{name}: {volume} not readable by the fsGroup"
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (apiserver,) = objs[("Deployment", "apiserver")]["spec"]["template"]["spec"]["containers"]
    assert "--advertise-address=$(POD_IP)" in apiserver["command"]
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in apiserver["env"]


def test_upgrades_roll_the_apiserver_one_pod_at_a_time_and_replace_the_controller_manager() -> None:
    """A new apiserver pod is Ready before an old one goes (never fewer than asked for), an old one keeps
    serving while its endpoint leaves the Service; two controller-managers never run at once (no
    leader election), so the old one goes first."""
    objs = _render({"controlPlane": {"backend": "pods", "replicas": 2}})
    api = objs[("Deployment", "apiserver")]["spec"]
    assert api["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    command = api["template"]["spec"]["containers"][0]["command"]
    assert f"--shutdown-delay-duration={pods.APISERVER_SHUTDOWN_DELAY}s" in command
    assert api["template"]["spec"]["terminationGracePeriodSeconds"] > pods.APISERVER_SHUTDOWN_DELAY
    cm = objs[("Deployment", "controller-manager")]["spec"]
    assert cm["strategy"] == {"type": "Recreate"}
    assert "--leader-elect=false" in cm["template"]["spec"]["containers"][0]["command"]
    # a tenant's own shutdown delay (extraArgs) is kept, not doubled
    own = _render({"controlPlane": {"backend": "pods",
                                    "extraArgs": {"apiserver": {"shutdown-delay-duration": "20s"}}}})
    command = own[("Deployment", "apiserver")]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert [a for a in command if a.startswith("--shutdown-delay-duration")] == ["--shutdown-delay-duration=20s"]


class _Statuses:
    def __init__(self, etcd_ready: int, apiserver_available: int) -> None:
        self.objs = {pods.ETCD_SERVICE: {"status": {"readyReplicas": etcd_ready}},
                     pods.APISERVER_SERVICE: {"status": {"availableReplicas": apiserver_available}}}

    async def get_or_none(self, resource: Any, name: str, *, namespace: str | None = None) -> Any:
        assert namespace == KEY
        return self.objs.get(name)


@pytest.mark.parametrize(("etcd", "apiserver", "serving"), [(1, 1, True), (1, 2, True), (0, 1, False), (1, 0, False)])
async def test_serving_while_rolling(etcd: int, apiserver: int, serving: bool) -> None:
    api = _Statuses(etcd, apiserver)
    assert await pods.PodsBackend().serving(api, namespace=KEY) is serving  # type: ignore[arg-type]


class _Workloads:
    def __init__(self, apiserver: dict[str, Any]) -> None:
        self.objs = {pods.ETCD_SERVICE: {"status": {"readyReplicas": 1}}, pods.APISERVER_SERVICE: apiserver,
                     pods.CM_NAME: {"metadata": {"generation": 1},
                                    "status": {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 1}}}

    async def get_or_none(self, resource: Any, name: str, *, namespace: str | None = None) -> Any:
        return self.objs.get(name)


@pytest.mark.parametrize(("apiserver", "waiting"), [
    ({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "availableReplicas": 1,
                                                "updatedReplicas": 1}}, []),
    # a new template just applied: the Deployment controller has not looked yet, the old status is stale
    ({"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "availableReplicas": 1,
                                                "updatedReplicas": 1}}, ["apiserver"]),
    ({"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "availableReplicas": 1,
                                                "updatedReplicas": 0}}, ["apiserver"]),
], ids=["rolled", "stale-status", "rolling"])
async def test_progress_waits_for_the_rollout_of_a_new_template(apiserver: dict[str, Any],
                                                                waiting: list[str]) -> None:
    spec = builder.build(tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict({}),
                         cluster_version=None, layout=pods.layout(KEY))
    got = await pods.PodsBackend().progress(_Workloads(apiserver), spec, namespace=KEY)  # type: ignore[arg-type]
    assert got == waiting


def test_a_renewed_certificate_rolls_exactly_the_components_that_read_it() -> None:
    spec = builder.build(tenant_name="acme", cluster_key=KEY, tenant=TenantSpec.from_dict({}),
                         cluster_version=None, layout=pods.layout(KEY))
    files = {name: name.encode() for c in (cp.CA, cp.ETCD_CA, cp.APISERVER, cp.ETCD_SERVER, cp.ADMIN,
                                           cp.APISERVER_ETCD_CLIENT, cp.APISERVER_KUBELET_CLIENT)
             for name in (cp.crt(c), cp.key(c))}

    def hashes(pki: dict[str, bytes], kubeconfig: str = "kc") -> dict[str, str]:
        objs = pods.render(spec, namespace=KEY, cm_kubeconfig=kubeconfig, pki_files=pki)
        return {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][naming.ANN_INPUTS_HASH]
                for o in objs if o["kind"] in ("Deployment", "StatefulSet")}

    before = hashes(files)
    assert hashes({**files, "admin.crt": b"new"}) == before  # no component reads the admin certificate
    served = hashes({**files, "apiserver.crt": b"new"})
    assert [n for n in before if served[n] != before[n]] == ["apiserver"]
    etcd = hashes({**files, "etcd-server.key": b"new"})
    assert [n for n in before if etcd[n] != before[n]] == ["etcd"]
    assert [n for n, h in hashes(files, "kc2").items() if h != before[n]] == ["controller-manager"]
    ca = hashes({**files, "ca.crt": b"new"})
    assert {n for n in before if ca[n] != before[n]} == {"apiserver", "controller-manager"}


def test_the_apiserver_service_answers_on_443_as_well() -> None:
    """``https://kubernetes.default.svc`` without a port (curl, some tools) uses 443; the tenant DNS
    answers that name with this Service, so it listens there too, and on 6443 (the env variables)."""
    objs = _render({"controlPlane": {"backend": "pods"}})
    svc = objs[("Service", pods.APISERVER_SERVICE)]
    assert {(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        (pods.APISERVER_PORT, pods.APISERVER_PORT), (443, pods.APISERVER_PORT)}


def test_go_runtime_settings_reach_the_container_environment() -> None:
    objs = _render({"controlPlane": {"backend": "pods", "extraArgs": {
        "apiserver": {"gomaxprocs": "1"}, "etcd": {"gogc": "400"}}}})
    (apiserver,) = objs[("Deployment", "apiserver")]["spec"]["template"]["spec"]["containers"]
    assert {"name": "GOMAXPROCS", "value": "1"} in apiserver["env"]
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in apiserver["env"]
    assert not any("gomaxprocs" in arg for arg in apiserver["command"])
    (etcd,) = objs[("StatefulSet", "etcd")]["spec"]["template"]["spec"]["containers"]
    assert etcd["env"] == [{"name": "GOGC", "value": "400"}, {"name": "GOMAXPROCS", "value": "1"}]
