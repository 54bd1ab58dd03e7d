"""The isolation checks as the syncer's kinds apply them: Services, Endpoints (with their context hook), Pods.

Why: the pure checks of :mod:`vcluster.policy` only protect the super cluster
if the kinds call them, on create *and* on update (``recheck``), and if the
Endpoints check is fed the tenant's pod IPs from the super pods (never from
the tenant pods' status, which the tenant can write itself).
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import BY_KIND
from syncer.resources import endpoints as ep_mod
from syncer.resources import pod as pod_mod
from syncer.resources import service as svc_mod
from syncer.resources.base import TranslateContext
from tests.syncer.test_kind_hooks import FakeIO
from vcluster import naming
from vcluster.policy import PodPolicy

KEY = naming.cluster_key("acme", "uid-1")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1")
P_NS = naming.super_namespace(KEY, "shop")


def obj(kind: str, name: str = "x", ns: str = "shop", **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": ns, "uid": f"{name}-uid"}, **fields}


@pytest.mark.parametrize("kind", ["Service", "Endpoints"])
def test_refusing_kinds_check_on_update_too(kind: str) -> None:
    assert BY_KIND[kind].check is not None
    assert BY_KIND[kind].recheck is True


def test_pods_are_not_rechecked_on_update() -> None:
    # a pod update carries only images and metadata; a tightened policy must not delete running pods
    assert BY_KIND["Pod"].recheck is False


SERVICE_CASES = [
    pytest.param({"type": "NodePort"}, PodPolicy(), ["exposure.nodePort"], id="nodeport"),
    pytest.param({"type": "NodePort"}, PodPolicy(node_port=True), [], id="nodeport-allowed"),
    pytest.param({"externalIPs": ["192.0.2.1"]}, PodPolicy(), ["exposure.externalIPs"], id="external-ips"),
]


@pytest.mark.parametrize(("spec", "pol", "fields"), SERVICE_CASES)
def test_service_check(spec: dict[str, Any], pol: PodPolicy, fields: list[str]) -> None:
    reasons = svc_mod.check(obj("Service", spec=spec), TranslateContext(key=KEY, tenant_name="acme",
                                                                         tenant_uid="u", policy=pol))
    assert len(reasons) == len(fields)
    for reason, f in zip(reasons, fields, strict=True):
        assert f in reason


@pytest.mark.parametrize(("allowed", "kept"), [(False, False), (True, True)])
def test_external_ips_go_down_only_when_allowed(allowed: bool, kept: bool) -> None:
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u", policy=PodPolicy(external_ips=allowed))
    p_svc = svc_mod.to_super(obj("Service", spec={"externalIPs": ["192.0.2.1"], "ports": [{"port": 80}]}), ctx)
    assert ("externalIPs" in p_svc["spec"]) is kept


def _io() -> FakeIO:
    io = FakeIO(ctx=CTX)
    for name, status in (("web", {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
                                  "hostIP": "192.168.0.2"}),
                         ("hostnet", {"podIP": "192.168.0.3", "hostIP": "192.168.0.3"})):
        # the tenant pod claims another IP: only the super pod's counts
        io.tenant[("Pod", "shop", name)] = obj("Pod", name, status={"podIP": "10.96.0.1"})
        io.super_[("Pod", P_NS, name)] = {"metadata": {"name": name, "namespace": P_NS}, "status": status}
    io.tenant[("Pod", "other", "elsewhere")] = obj("Pod", "elsewhere", "other")
    io.super_[("Pod", naming.super_namespace(KEY, "other"), "elsewhere")] = {"status": {"podIP": "10.244.9.9"}}
    io.tenant[("Service", "shop", "db")] = obj("Service", "db")
    io.super_[("Service", P_NS, "db")] = {"clusterIP": "10.96.7.7"}
    io.tenant[("Service", "shop", "headless")] = obj("Service", "headless")
    io.super_[("Service", P_NS, "headless")] = {"clusterIP": "None"}
    return io


def test_endpoints_context_reads_super_pods_of_the_namespace() -> None:
    ctx = ep_mod.context(_io(), obj("Endpoints", "db"), True)
    assert ctx.own_pod_ips == frozenset({"10.244.0.5", "fd00::5"})
    assert ctx.reserved_ips == frozenset({"192.168.0.2", "192.168.0.3", "10.96.7.7"})
    assert ep_mod.context(_io(), None, False) is CTX


ENDPOINT_CASES = [
    pytest.param("10.244.0.5", True, id="own-pod"),
    pytest.param("fd00::5", True, id="own-pod-second-ip"),
    pytest.param("10.96.0.1", False, id="ip-the-tenant-wrote-into-its-pod-status"),
    pytest.param("192.168.0.3", False, id="host-network-pod-is-a-node"),
    pytest.param("10.96.7.7", False, id="own-service-cluster-ip"),
    pytest.param("10.244.9.9", False, id="pod-of-another-namespace"),
]


@pytest.mark.parametrize(("ip", "allowed"), ENDPOINT_CASES)
def test_endpoints_check_with_context(ip: str, allowed: bool) -> None:
    v_ep = obj("Endpoints", "db", subsets=[{"notReadyAddresses": [{"ip": "10.244.0.5"}],
                                            "addresses": [{"ip": ip}], "ports": [{"port": 80}]}])
    reasons = ep_mod.check(v_ep, ep_mod.context(_io(), v_ep, True))
    assert (reasons == []) is allowed
    if not allowed:
        assert reasons[0].startswith(f"subsets[0].addresses[0].ip {ip} ")


def test_pod_affinity_is_confined_on_the_way_down() -> None:
    term = {"labelSelector": {}, "topologyKey": "kubernetes.io/hostname", "namespaceSelector": {}}
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    v_pod = obj("Pod", "p", spec={"containers": [{"name": "c", "image": "i"}], "affinity": affinity})
    p_pod = pod_mod.to_super(v_pod, CTX)
    (p_term,) = p_pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert p_term["namespaceSelector"]["matchLabels"][naming.LABEL_CLUSTER_KEY] == KEY
    assert term["namespaceSelector"] == {}  # the tenant object is untouched
