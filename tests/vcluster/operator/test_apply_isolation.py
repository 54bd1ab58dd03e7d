"""The operator's policy objects end up exactly as the policy in force says, whoever created them.

A super namespace the syncer made got its quota from the syncer's create; a server-side apply by the
operator would keep every key the new quota no longer names.  Against the fake apiserver of the
syncer's tests (it answers get/create/replace/list like kube-apiserver)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from tenant_crd.models import IsolationSpec
from tests.syncer.fakeapi import FakeServer
from vcluster import naming, policy
from vcluster.controlplane.local import LocalBackend
from vcluster.kube import ApiClient, resources
from vcluster.operator.reconcile import Reconciler
from vcluster.settings import BinarySettings

KEY = naming.cluster_key("acme", "u1")
P_NS = naming.super_namespace(KEY, "shop")


async def test_a_quota_the_syncer_created_is_replaced_not_merged(tmp_path: Path) -> None:
    server = FakeServer("super")
    server.put(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": P_NS, "labels": {
        naming.LABEL_CLUSTER_KEY: KEY, naming.LABEL_NAMESPACE_ROLE: naming.ROLE_WORKLOAD}}})
    # what the syncer's namespace hook created under the operator's default quota
    for obj in policy.policy_objects(IsolationSpec(resource_quota={"pods": "100", "requests.cpu": "16"}),
                                     super_namespace=P_NS, cluster_key=KEY, tenant_name="acme"):
        server.put(resources.BY_KIND[obj["kind"]], obj)
    reconciler = Reconciler(api=cast(ApiClient, server.api()),
                            local=LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings()))
    assert await reconciler.apply_isolation(KEY, "acme", IsolationSpec(resource_quota={"pods": "3"})) == 1
    quota = server.get(resources.RESOURCEQUOTAS, naming.POLICY_QUOTA_NAME, P_NS)
    assert quota is not None
    assert quota["spec"]["hard"] == {"pods": "3"}
    writes = len(server.writes)
    assert await reconciler.apply_isolation(KEY, "acme", IsolationSpec(resource_quota={"pods": "3"})) == 1
    assert [w for w in server.writes[writes:] if w[1] != "namespaces"] == []  # equal already: not written
