"""The patrol's memo: a pair found equal is not translated again until one of its sides is touched.

Why: the full patrol decoded and translated every tenant object and decoded every super copy each time
(0.68 CPU s per 10,000 pods on the test bed, benchmarks round 9; the target is 0.5 s).  Since round 10
a pair whose cached bytes are the same objects as at the last patrol, under an equal translation
context, is taken as equal again without being looked at.  A memo that is too coarse would hide drift
— the one thing the patrol is for — so these tests change one side of one pair *between* patrols,
the way a watch event does (the informer replaces that object's bytes only), and require the patrol
to find it: a memo keyed by name alone, or one that ignored the super side or the context, fails them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from syncer import patrol
from syncer.queue import DOWN, UP
from syncer.resources import REGISTRY
from syncer.resources.base import Kind, Obj, TranslateContext
from tests.syncer.engine_world import World, configmap, make_world, namespace, pod
from vcluster import naming
from vcluster.kube import resources

CM = resources.CONFIGMAPS


def counting(kinds: tuple[Kind, ...], calls: list[str]) -> tuple[Kind, ...]:
    """The kinds with a ``to_super`` that records each call's kind."""
    def wrap(kind: Kind) -> Callable[[Obj, TranslateContext], Obj]:
        def to_super(v_obj: Obj, ctx: TranslateContext) -> Obj:
            calls.append(kind.kind)
            return kind.to_super(v_obj, ctx)
        return to_super
    return tuple(dataclasses.replace(k, to_super=wrap(k)) for k in kinds)


async def world(calls: list[str]) -> World:
    w = make_world(kinds=counting(REGISTRY, calls))
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for i in range(3):
        w.tenant.put(CM, configmap(f"cm{i}", a="1"))
        w.tenant.put(resources.PODS, pod(f"p{i}"))
    await w.start()
    await w.settle()
    return w


def touch_super(w: World, kind: str, name: str) -> None:
    """What the super watch does when the object changed: its cached bytes replaced, nothing else."""
    w.syncer.super_informers[kind].apply("MODIFIED", w.super_obj(kind, "shop", name) or {})


async def test_a_second_patrol_over_untouched_caches_translates_nothing() -> None:
    calls: list[str] = []
    w = await world(calls)
    calls.clear()
    assert w.syncer.patrol() == {}
    assert sorted(calls) == ["ConfigMap"] * 3 + ["Namespace"] + ["Pod"] * 3, "the first patrol compares every pair"
    calls.clear()
    assert w.syncer.patrol() == {}
    assert calls == []


async def test_a_super_copy_changed_after_a_clean_patrol_is_found() -> None:
    calls: list[str] = []
    w = await world(calls)
    assert w.syncer.patrol() == {}
    w.super_.patch(CM, "cm1", {"data": {"a": "by hand"}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)
    touch_super(w, "ConfigMap", "cm1")
    calls.clear()
    assert w.syncer.patrol() == {"changed": 1}
    assert [(k.kind, k.direction, k.name) for k in w.take()] == [("ConfigMap", DOWN, "cm1")]
    assert calls == ["ConfigMap"], "only the touched pair is translated again"
    assert w.syncer.patrol() == {"changed": 1}, "a difference is found again until it is repaired"
    w.take()


async def test_a_tenant_object_changed_after_a_clean_patrol_is_found() -> None:
    w = await world([])
    assert w.syncer.patrol() == {}
    w.tenant.patch(CM, "cm2", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    w.rt.informers["ConfigMap"].apply("MODIFIED", w.tenant_obj("ConfigMap", "shop", "cm2") or {})
    w.take()
    assert w.syncer.patrol() == {"changed": 1}


async def test_a_super_status_changed_after_a_clean_patrol_is_brought_up() -> None:
    w = await world([])
    assert w.syncer.patrol() == {}
    w.super_.schedule("p0", w.p_ns("shop"), "node-1")
    touch_super(w, "Pod", "p0")
    w.take()
    assert w.syncer.patrol() == {"upward": 1}
    assert [(k.kind, k.direction, k.name) for k in w.take()] == [("Pod", UP, "p0")]


async def test_a_changed_translation_context_compares_every_pair_again() -> None:
    w = await world([])
    assert w.syncer.patrol() == {}
    w.rt.ctx = dataclasses.replace(w.rt.ctx, tenant_name="renamed")  # every super copy's annotations differ
    assert w.syncer.patrol() == {"changed": 7}  # 3 ConfigMaps, 3 Pods, the namespace


async def test_a_super_copy_gone_after_a_clean_patrol_is_missing() -> None:
    w = await world([])
    assert w.syncer.patrol() == {}
    p_cm = w.super_obj("ConfigMap", "shop", "cm0")
    w.syncer.super_informers["ConfigMap"].apply("DELETED", p_cm or {})
    w.take()
    assert w.syncer.patrol() == {"missing": 1}


class CountingJson:
    """``syncer.patrol``'s ``orjson`` with its decodes counted."""

    def __init__(self) -> None:
        self.decoded = 0

    def loads(self, raw: bytes) -> Any:
        self.decoded += 1
        return orjson.loads(raw)


async def test_patrols_over_untouched_caches_decode_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    w = await world([])
    json = CountingJson()
    monkeypatch.setattr(patrol, "orjson", json)
    assert w.syncer.patrol() == {}
    assert json.decoded > 0, "the first patrol reads every object"
    for _ in range(2):  # the memo the second patrol leaves serves the third as well
        json.decoded = 0
        assert w.syncer.patrol() == {}
        assert json.decoded == 0


async def test_a_super_copy_that_no_longer_stands_for_the_tenant_object_is_missing() -> None:
    """A touched super object is grouped again from its new bytes: the one it replaced stood for the tenant
    object, the new one (its cluster-key label edited by hand) stands for nothing."""
    w = await world([])
    assert w.syncer.patrol() == {}
    labels = {naming.LABEL_CLUSTER_KEY: None}
    w.super_.patch(CM, "cm1", {"metadata": {"labels": labels}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)
    touch_super(w, "ConfigMap", "cm1")
    w.take()
    assert w.syncer.patrol() == {"missing": 1}


async def test_every_patrol_stamps_the_tenant_s_last_full_sync() -> None:
    w = await world([])
    w.rt.last_full_sync = None
    w.syncer.patrol()
    first = w.rt.last_full_sync
    assert first is not None
    w.rt.last_full_sync = None
    w.syncer.patrol()  # a patrol the memo makes cheap is still a full one
    assert w.rt.last_full_sync is not None


async def test_a_tenant_not_synced_yet_does_not_stop_the_patrol_of_the_others() -> None:
    """A tenant whose informers have not listed yet is skipped; the tenants after it are still compared."""
    w = await world([])
    tenants = w.syncer.shared.tenants
    starting = SimpleNamespace(synced=asyncio.Event())  # a runtime whose first lists are still running
    others = dict(tenants)
    tenants.clear()
    tenants["starting-0000"] = starting  # type: ignore[assignment]
    tenants.update(others)
    w.super_.patch(CM, "cm1", {"data": {"a": "by hand"}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)
    touch_super(w, "ConfigMap", "cm1")
    assert w.syncer.patrol() == {"changed": 1}
