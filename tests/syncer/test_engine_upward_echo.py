"""Upward keys for super pod events: queued when node, status or incarnation changed, not for echoes.

The super watch echoes every downward write of ours (same node, same status);
such an event has nothing to bring up.  Pure: ``routing.enqueue_super`` only queues
keys, so the test drives it with slim super pods and reads the queue.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer import routing
from syncer.engine import Syncer
from syncer.queue import UP
from syncer.resources import BY_KIND
from tests.syncer.engine_helpers import KEY, drain, offline_syncer
from vcluster import naming

POD = BY_KIND["Pod"]


def p_pod(*, uid: str = "v1", node: str | None = None, phase: str | None = None, fp: str = "f1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-x", "namespace": "p-ns",
            "labels": {naming.LABEL_CLUSTER_KEY: KEY},
            "annotations": {naming.ANN_OBJECT_NAME: "web", naming.ANN_TENANT_NAMESPACE: "shop",
                            naming.ANN_OBJECT_UID: uid},
        },
        "fp": fp, "nodeName": node, "status": {"phase": phase} if phase else {},
    }


# (event, super pod, upward key expected); applied in order to one tenant pod.
STEPS: list[tuple[str | None, dict[str, Any], bool]] = [
    ("ADDED", p_pod(), False),                                # our create echoed: no node, no status
    (None, p_pod(), False),
    ("ADDED", p_pod(phase="Pending"), True),
    ("MODIFIED", p_pod(phase="Pending", fp="f2"), False),     # our own update echoed: same node, same status
    ("MODIFIED", p_pod(node="n1"), True),                     # scheduled
    ("MODIFIED", p_pod(node="n1", fp="f3"), False),
    ("MODIFIED", p_pod(node="n1", phase="Running"), True),    # status changed
    ("MODIFIED", p_pod(node="n1", phase="Running"), False),
    (None, p_pod(node="n1", phase="Running"), True),          # start-up / relist: always
    ("MODIFIED", p_pod(uid="v2", node="n1", phase="Running"), True),  # another incarnation
    ("DELETED", p_pod(uid="v2", node="n1", phase="Running"), True),
    ("ADDED", p_pod(uid="v2", node="n1", phase="Running"), True),     # memo dropped with the deletion
]


def _syncer() -> Syncer:
    return offline_syncer()[0]


def _drain_up(syncer: Syncer) -> list[tuple[str, str]]:
    return [(key.namespace, key.name) for key in drain(syncer) if key.direction == UP]


def test_upward_keys_skip_echoes_only() -> None:
    syncer = _syncer()
    for i, (event, p_slim, want_up) in enumerate(STEPS):
        routing.enqueue_super(syncer.shared, POD, p_slim, event=event)
        assert _drain_up(syncer) == ([("shop", "web")] if want_up else []), f"step {i}: {event}"


@pytest.mark.parametrize("kind", ["Service", "PersistentVolumeClaim"], ids=str)
def test_other_kinds_always_queue_upward(kind: str) -> None:
    syncer = _syncer()
    p_slim = p_pod()  # no node, no status: still queued for kinds other than Pod
    for _ in range(2):
        routing.enqueue_super(syncer.shared, BY_KIND[kind], p_slim, event="MODIFIED")
        assert _drain_up(syncer) == [("shop", "web")]


@pytest.mark.parametrize("v_status", [{}, {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}],
                         ids=["new", "running"])
def test_pod_without_node_or_status_has_nothing_to_bring_up(v_status: dict[str, Any]) -> None:
    # The engine skips such upward keys; this holds only while pod.upward says so.
    v_pod = {"metadata": {"name": "web", "namespace": "shop", "uid": "v1"}, "spec": {}, "status": v_status}
    assert POD.upward is not None
    assert POD.upward(v_pod, p_pod()) == []
