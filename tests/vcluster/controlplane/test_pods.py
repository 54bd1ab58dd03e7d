"""The pods backend's rendering: objects, mounts, selectors, replicas and exposure."""

from __future__ import annotations

from tenant_crd import TenantSpec
from vcluster import naming
from vcluster.controlplane import builder, pods
from vcluster.controlplane import spec as cp

KEY = "acme-1a2b3c"


def _render(tenant: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
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
