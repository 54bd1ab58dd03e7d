"""The pod hot path hands ``apply_pod_policy`` only the fields it sets; the result must be the same.

Why: ``to_super`` gives :func:`vcluster.policy.apply_pod_policy` a small dict of
``pod.POLICY_FIELDS`` instead of the whole spec (it deep-copies its input,
which cost ~0.1 ms per pod).  These cases fail if the policy function starts
setting a field outside that list, or if the shortcut changes any result.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import pod as pod_mod
from syncer.resources.base import TranslateContext
from vcluster import naming
from vcluster.policy import PodPolicy, apply_pod_policy

KEY = naming.cluster_key("acme", "uid-1")
TOL = {"key": "dedicated", "operator": "Equal", "value": "tenants", "effect": "NoSchedule"}


def v_pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def ctx(policy: PodPolicy) -> TranslateContext:
    return TranslateContext(key=KEY, tenant_name="acme", tenant_uid="uid-1", policy=policy,
                            apiserver_host="10.0.0.9", apiserver_port="6443")


POLICIES = [
    pytest.param(PodPolicy(), id="empty-policy"),
    pytest.param(PodPolicy(node_selector={"pool": "tenants"}), id="node-selector"),
    pytest.param(PodPolicy(tolerations=(TOL,)), id="toleration"),
    pytest.param(PodPolicy(runtime_class_name="gvisor"), id="runtime-class"),
    pytest.param(PodPolicy(node_selector={"pool": "tenants", "zone": "a"}, tolerations=(TOL,),
                           runtime_class_name="gvisor"), id="everything"),
]
SPECS = [
    pytest.param({}, id="bare-spec"),
    pytest.param({"nodeSelector": {"pool": "mine", "disk": "ssd"}}, id="own-node-selector"),
    pytest.param({"tolerations": [TOL, {"key": "x", "operator": "Exists"}]}, id="own-tolerations"),
    pytest.param({"runtimeClassName": "runc", "priority": 0}, id="own-runtime-class"),
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("policy", POLICIES)
def test_policy_on_the_fields_equals_policy_on_the_whole_spec(policy: PodPolicy, spec: dict[str, Any]) -> None:
    without = pod_mod.to_super(v_pod(**spec), ctx(PodPolicy()))["spec"]
    assert pod_mod.to_super(v_pod(**spec), ctx(policy))["spec"] == apply_pod_policy(without, policy)


def test_translation_leaves_the_tenant_spec_alone_with_a_policy() -> None:
    v = v_pod(nodeSelector={"pool": "mine"}, tolerations=[TOL])
    p_spec = pod_mod.to_super(v, ctx(PodPolicy(node_selector={"pool": "tenants"}, tolerations=(
        {"key": "t", "operator": "Exists"},))))["spec"]
    p_spec["nodeSelector"]["extra"] = "x"
    p_spec["tolerations"][0]["value"] = "changed"
    assert v["spec"]["nodeSelector"] == {"pool": "mine"}
    assert v["spec"]["tolerations"] == [TOL]
