"""Pod upward actions right after scheduling: the binding sets PodScheduled, so no status write for it.

Pure: :func:`syncer.resources.pod.upward` from a tenant pod and a slim super pod.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import pod as pod_mod

SCHEDULED = {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": "2026-11-22T00:00:01Z"}
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "lastTransitionTime": "2026-11-22T00:00:01Z"}
READY = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T00:00:02Z"}
PENDING = {"phase": "Pending", "qosClass": "BestEffort"}


def v_pod(*, node: str | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "v1"}, "spec": spec,
            "status": status if status is not None else dict(PENDING)}


def p_slim(*, node: str | None, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "p-shop"}, "fp": "f", "nodeName": node, "status": status}


CASES = [
    pytest.param(v_pod(), p_slim(node="n1", status={**PENDING, "conditions": [SCHEDULED]}),
                 ["bind"], None, id="just-scheduled-bind-only"),
    pytest.param(v_pod(), p_slim(node="n1", status={**PENDING, "conditions": [SCHEDULED], "hostIP": "10.0.0.1"}),
                 ["bind", "status"], {"hostIP": "10.0.0.1"}, id="scheduled-and-more-patches-the-rest"),
    pytest.param(v_pod(), p_slim(node="n1", status={"phase": "Running", "qosClass": "BestEffort",
                                                     "conditions": [SCHEDULED, READY]}),
                 ["bind", "status"], {"phase": "Running", "conditions": [SCHEDULED, READY]}, id="already-running"),
    pytest.param(v_pod(node="n1", status={**PENDING, "conditions": [{**SCHEDULED, "lastTransitionTime": "x"}]}),
                 p_slim(node="n1", status={**PENDING, "conditions": [SCHEDULED]}),
                 ["status"], {"conditions": [SCHEDULED]}, id="bound-earlier-timestamps-converge"),
    pytest.param(v_pod(), p_slim(node=None, status={**PENDING, "conditions": [UNSCHEDULABLE]}),
                 ["status"], {"conditions": [UNSCHEDULABLE]}, id="unschedulable-no-bind"),
    pytest.param(v_pod(), p_slim(node=None, status=dict(PENDING)), [], None, id="created-nothing-to-do"),
]


@pytest.mark.parametrize(("v", "p", "ops", "status"), CASES)
def test_pod_upward_after_scheduling(v: dict[str, Any], p: dict[str, Any], ops: list[str],
                                     status: dict[str, Any] | None) -> None:
    actions = pod_mod.upward(v, p)
    assert [a.op for a in actions] == ops
    if status is not None:
        assert actions[-1].body["status"] == status
