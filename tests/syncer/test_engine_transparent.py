"""Upward keys for transparent metadata (Tenant spec.sync.transparentMetadataPrefixes).

A super object whose keys under a transparent prefix change must queue an upward key, for pods
and for kinds with no other upward sync, and only then (not for echoes of our own writes).  Pure:
``_enqueue_super`` only queues keys, so the test drives it with slim super objects.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from syncer.engine import Syncer, TenantRuntime
from syncer.queue import UP
from syncer.resources import BY_KIND
from syncer.resources.base import MetadataRules, TranslateContext
from syncer.settings import SyncerSettings
from syncer.tenants import StaticTenantSource, TenantInfo
from vcluster import naming
from vcluster.kube import ApiClient

KEY = naming.cluster_key("acme", "u1")
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
    syncer = Syncer(cast(ApiClient, object()), StaticTenantSource(), settings=SyncerSettings())
    rt = TenantRuntime(info=TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig=""), api=cast(ApiClient, object()),
                       ctx=TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u1", metadata=rules))
    rt.synced.set()
    syncer.tenants[KEY] = rt
    return syncer


def _ups(syncer: Syncer) -> int:
    count = 0
    while (item := syncer.queue.get_nowait()) is not None:
        syncer.queue.done(item[0])
        syncer.queue.forget(item[0])
        count += item[0].direction == UP
    return count


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
        syncer._enqueue_super(BY_KIND[kind], p_slim(ann, fp=f"f{i}"), event="MODIFIED")
        assert _ups(syncer) == int(want), f"step {i}: {ann}"


def test_without_transparent_prefixes_kinds_without_upward_queue_nothing() -> None:
    syncer = _syncer(MetadataRules(opaque=("hook.example/",)))
    syncer._enqueue_super(BY_KIND["ConfigMap"], p_slim({HOOK: "a"}), event="MODIFIED")
    syncer._enqueue_super(BY_KIND["Pod"], p_slim({HOOK: "a"}), event="MODIFIED")
    assert _ups(syncer) == 0
