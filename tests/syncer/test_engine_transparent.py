"""Upward keys for transparent metadata (Tenant spec.sync.transparentMetadataPrefixes).

A super object whose keys under a transparent prefix change must queue an upward key, for pods
and for kinds with no other upward sync, and only then (not for echoes of our own writes).  Pure:
``routing.enqueue_super`` only queues keys, so the test drives it with slim super objects.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer import routing
from syncer.engine import Syncer
from syncer.queue import UP
from syncer.resources import BY_KIND
from syncer.resources.base import MetadataRules
from tests.syncer.engine_helpers import KEY, drain, offline_syncer
from vcluster import naming

HOOK = "hook.example/injected"


def p_slim(annotations: dict[str, str] | None = None, fp: str = "f1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web", "namespace": "p-ns", "labels": {naming.LABEL_CLUSTER_KEY: KEY},
            "annotations": {naming.ANN_OBJECT_NAME: "web", naming.ANN_TENANT_NAMESPACE: "shop",
                            naming.ANN_OBJECT_UID: "v1", **(annotations or {})},
        },
        "fp": fp, "nodeName": None, "status": {},
    }


def _syncer(rules: MetadataRules) -> Syncer:
    return offline_syncer(metadata=rules)[0]


def _ups(syncer: Syncer) -> int:
    return sum(key.direction == UP for key in drain(syncer))


# (super annotations, upward key expected) in order, for one object
STEPS: list[tuple[dict[str, str], bool]] = [
    ({}, True),                          # first sight: the tenant may carry stale keys
    ({}, False),                         # echo
    ({HOOK: "a"}, True),                 # a webhook added it
    ({HOOK: "a", "other": "x"}, False),  # not under a transparent prefix
    ({HOOK: "b"}, True),                 # changed
    ({}, True),                          # removed
]


@pytest.mark.parametrize("kind", ["Pod", "ConfigMap"], ids=str.lower)
def test_transparent_changes_queue_upward_keys(kind: str) -> None:
    syncer = _syncer(MetadataRules(transparent=("hook.example/",)))
    for i, (ann, want) in enumerate(STEPS):
        routing.enqueue_super(syncer.shared, BY_KIND[kind], p_slim(ann, fp=f"f{i}"), event="MODIFIED")
        assert _ups(syncer) == int(want), f"step {i}: {ann}"


def test_without_transparent_prefixes_kinds_without_upward_queue_nothing() -> None:
    syncer = _syncer(MetadataRules(opaque=("hook.example/",)))
    routing.enqueue_super(syncer.shared, BY_KIND["ConfigMap"], p_slim({HOOK: "a"}), event="MODIFIED")
    routing.enqueue_super(syncer.shared, BY_KIND["Pod"], p_slim({HOOK: "a"}), event="MODIFIED")
    assert _ups(syncer) == 0
