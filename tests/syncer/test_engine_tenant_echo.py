"""Downward keys for tenant pod events: queued when the pod changed, not for echoes of our upward writes.

Binding a tenant pod and patching its status (the upward sync) comes back
through the tenant watch as MODIFIED events; neither changes what the
downward reconcile reads, so no downward key is queued for them.  Pure: the
tenant handler only queues keys, so the test feeds it tenant pods and reads
the queue.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer import routing
from syncer.engine import Syncer
from syncer.queue import DOWN
from syncer.resources import BY_KIND
from tests.syncer.engine_helpers import drain, offline_syncer


def v_pod(**changes: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "shop", "uid": "v1", "resourceVersion": "10",
                     "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"},
    }
    for path, value in changes.items():
        target = pod
        *parents, leaf = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return pod


SCHEDULED = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}

# (event, tenant pod, downward key expected); applied in order to one tenant pod.
STEPS: list[tuple[str, dict[str, Any], bool]] = [
    ("ADDED", v_pod(), True),
    ("MODIFIED", v_pod(metadata__resourceVersion="11", spec__nodeName="n1"), False),     # our binding
    ("MODIFIED", v_pod(metadata__resourceVersion="12", spec__nodeName="n1",
                       status=SCHEDULED), True),                                        # now scheduled
    ("MODIFIED", v_pod(metadata__resourceVersion="13", spec__nodeName="n1",
                       status={**SCHEDULED, "phase": "Running"}), False),               # our status patch
    ("MODIFIED", v_pod(metadata__resourceVersion="14", spec__nodeName="n1", status=SCHEDULED,
                       metadata__labels={"app": "web", "v": "2"}), True),               # a tenant edit
    ("MODIFIED", v_pod(metadata__resourceVersion="15", spec__nodeName="n1", status=SCHEDULED,
                       metadata__labels={"app": "web", "v": "2"},
                       spec__containers=[{"name": "c", "image": "busybox:2"}]), True),  # new image
    ("MODIFIED", v_pod(metadata__resourceVersion="16", spec__nodeName="n1", status=SCHEDULED,
                       metadata__labels={"app": "web", "v": "2"}, metadata__deletionTimestamp="t",
                       spec__containers=[{"name": "c", "image": "busybox:2"}]), True),  # being deleted
    ("DELETED", v_pod(metadata__resourceVersion="17"), True),
    ("MODIFIED", v_pod(metadata__resourceVersion="18"), True),                          # memo dropped
    ("ADDED", v_pod(metadata__resourceVersion="18"), True),                             # ADDED: always
]


def _drain_down(syncer: Syncer) -> list[tuple[str, str, str]]:
    return [(key.kind, key.namespace, key.name) for key in drain(syncer) if key.direction == DOWN]


def test_downward_keys_skip_upward_echoes_only() -> None:
    syncer, rt = offline_syncer()
    handle = routing.tenant_handler(syncer.shared, rt, BY_KIND["Pod"])
    for i, (event, pod, want_down) in enumerate(STEPS):
        handle(event, copy.deepcopy(pod))
        assert _drain_down(syncer) == ([("Pod", "shop", "web")] if want_down else []), f"step {i}: {event}"


@pytest.mark.parametrize("kind", ["ConfigMap", "Service"], ids=str)
def test_other_kinds_always_queue_downward(kind: str) -> None:
    syncer, rt = offline_syncer()
    handle = routing.tenant_handler(syncer.shared, rt, BY_KIND[kind])
    obj = {"metadata": {"name": "web", "namespace": "shop", "uid": "v1", "resourceVersion": "1"}}
    for _ in range(2):
        handle("MODIFIED", copy.deepcopy(obj))
        assert ("ConfigMap" if kind == "ConfigMap" else "Service", "shop", "web") in _drain_down(syncer)
