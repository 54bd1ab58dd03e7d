"""The downward branch calls a kind's hooks in a fixed order and nothing else kind-specific.

A made-up kind records its hooks; the super client is a fake that records creates and deletes, so
the test reads what the engine did for: a create, a refused create, a create a hook settled itself, a
tenant object that is gone, and a terminating one whose super copy is gone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from syncer import downward
from syncer.queue import DOWN, SyncKey
from syncer.resources import simple
from syncer.resources.base import KindIO, Obj, TranslateContext
from tests.syncer.engine_helpers import KEY, offline_syncer
from vcluster import naming
from vcluster.kube import ApiClient, Resource

GADGETS = Resource("example.com", "v1", "gadgets", "Gadget")


class FakeSuper:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def create(self, resource: Resource, body: Obj, **_: Any) -> Obj:
        self.calls.append(("create", body["metadata"]["name"]))
        return {}

    async def delete(self, resource: Resource, name: str, **_: Any) -> None:
        self.calls.append(("delete", name))


def recording_kind(log: list[str], *, settle: bool = False, refuse: bool = False) -> Any:
    async def before_create(_io: KindIO, v_obj: Obj) -> bool:
        log.append("before_create")
        return not settle

    def context(_view: Any, v_obj: Obj | None, creating: bool) -> TranslateContext:
        log.append(f"context(creating={creating})")
        return TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u1")

    def check(v_obj: Obj, _ctx: TranslateContext) -> list[str]:
        log.append("check")
        return ["no"] if refuse else []

    async def prepare(_io: KindIO, v_obj: Obj) -> None:
        log.append("prepare")

    async def after_create(_io: KindIO, p_obj: Obj) -> None:
        log.append(f"after_create({p_obj['metadata']['name']})")

    async def on_gone(_io: KindIO, ns: str, name: str) -> None:
        log.append(f"on_gone({ns}/{name})")

    async def on_super_gone(_io: KindIO, v_obj: Obj) -> None:
        log.append("on_super_gone")

    base = simple.CONFIGMAP
    return dataclasses.replace(base, kind="Gadget", resource=GADGETS, before_create=before_create,
                               context=context, check=check, prepare=prepare, after_create=after_create,
                               on_gone=on_gone, on_super_gone=on_super_gone)


def v_gadget(**meta: Any) -> Obj:
    return {"metadata": {"name": "g1", "namespace": "shop", "uid": "g-uid", **meta}, "data": {"a": "1"}}


async def _refuse(*_: Any, **__: Any) -> None:
    return None


@pytest.mark.parametrize(("settle", "refuse", "want_log", "want_calls"), [
    (False, False, ["before_create", "context(creating=True)", "check", "prepare", "after_create(g1)"],
     [("create", "g1")]),
    (False, True, ["before_create", "context(creating=True)", "check"], []),
    (True, False, ["before_create"], []),
], ids=["created", "refused", "settled-by-hook"])
async def test_create_runs_the_hooks_in_order(settle: bool, refuse: bool, want_log: list[str],
                                              want_calls: list[tuple[str, str]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    kind = recording_kind(log, settle=settle, refuse=refuse)
    syncer, rt = offline_syncer(kinds=(kind,))
    fake = FakeSuper()
    syncer.shared.super_api = cast(ApiClient, fake)
    monkeypatch.setattr(downward, "refuse", _refuse)  # the Event write is another test's
    await downward.create(syncer.shared, rt, kind, v_gadget(), naming.super_namespace(KEY, "shop"))
    assert log == want_log
    assert fake.calls == want_calls
    assert (("Gadget", "shop", "g1") in rt.written) is bool(want_calls), "the echo memo is kept for a write"


class FakeInformer:
    def __init__(self, items: dict[tuple[str, str], Obj]) -> None:
        self.items_ = items

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.items_.get((namespace, name))


@pytest.mark.parametrize(("v_obj", "p_obj", "want_log", "want_calls"), [
    (None, None, ["on_gone(shop/g1)"], []),
    (None, {"metadata": {"name": "g1", "namespace": "p", "uid": "s1", "labels": naming.owner_labels(KEY, "acme")}},
     ["on_gone(shop/g1)"], [("delete", "g1")]),
    (v_gadget(deletionTimestamp="t"), None, ["on_super_gone"], []),
], ids=["gone-both", "gone-tenant", "terminating-super-gone"])
async def test_gone_and_terminating_call_their_hooks(v_obj: Obj | None, p_obj: Obj | None, want_log: list[str],
                                                     want_calls: list[tuple[str, str]]) -> None:
    log: list[str] = []
    kind = recording_kind(log)
    syncer, rt = offline_syncer(kinds=(kind,))
    fake = FakeSuper()
    syncer.shared.super_api = cast(ApiClient, fake)
    rt.informers["Gadget"] = cast(Any, FakeInformer({("shop", "g1"): v_obj} if v_obj else {}))
    p_ns = naming.super_namespace(KEY, "shop")
    syncer.shared.super_informers["Gadget"] = cast(Any, FakeInformer({(p_ns, "g1"): p_obj} if p_obj else {}))
    await downward.down(syncer.shared, rt, kind, SyncKey(KEY, "Gadget", DOWN, "shop", "g1"))
    assert log == want_log
    assert fake.calls == want_calls
