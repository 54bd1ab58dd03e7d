"""The downward reconcile's less travelled branches, stated against fake apiservers.

Why: ``syncer/downward.py`` decides what the syncer writes to the super cluster; the three-way branch is
stated in ``test_engine_reconcile.py``, and this module states the rest, each of which a regression could
break silently: super copies already terminating are not deleted twice; the grace of a terminating tenant
object reaches only its own super copy; tenant objects the syncer made (leftovers) go uid-guarded; an
extra kind the tenant no longer lists loses only its own copies; a tenant's service-account token Secret is
made (with the tenant's TokenRequest and CA) and removed through the kinds' I/O; the echo memo that keeps
the syncer from reconciling its own writes again; the refusal Events and the log lines operators read.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncer import extra_kinds, routing
from syncer.queue import DOWN, SyncKey
from syncer.resources import BY_KIND, simple
from syncer.resources import extra as extra_mod
from syncer.resources.base import Leftover, MetadataRules, Obj, RetryLater, TranslateContext
from syncer.resources.tokens import COUNT_KIND, token_secret
from tests.syncer.engine_world import KEY, OTHER_KEY, World, configmap, make_world, namespace, pod, service
from tests.syncer.test_engine_reconcile import cm_writes, started, super_cm
from vcluster import clock, naming
from vcluster.kube import AlreadyExists, ApiError, Conflict, Forbidden, Invalid, NotFound, Resource, resources

CM = resources.CONFIGMAPS
HOLD = "example.com/hold"  # a finalizer: a delete only marks the object terminating


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """``vcluster.clock`` reads the first of these times (a test appends a later one to move it)."""
    times = [dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)]
    monkeypatch.setattr(clock, "now", lambda: times[-1])
    return times


def _gated(*, recheck: bool) -> Any:
    """ConfigMap with a policy: a key ``forbidden`` is refused (on create, and on update with ``recheck``)."""
    def check(v_obj: Obj, _ctx: TranslateContext) -> list[str]:
        return ["key 'forbidden' is not allowed"] if "forbidden" in (v_obj.get("data") or {}) else []
    return dataclasses.replace(simple.CONFIGMAP, check=check, recheck=recheck)


def _hold(w: World, resource: Resource, name: str, p_ns: str | None) -> None:
    w.super_.patch(resource, name, {"metadata": {"finalizers": [HOLD]}}, namespace=p_ns, patch_type="merge",
                   subresource=None)


def _tenant_hold(w: World, name: str, ns: str = "shop") -> None:
    w.tenant.patch(CM, name, {"metadata": {"finalizers": [HOLD]}}, namespace=ns, patch_type="merge",
                   subresource=None)


def _deletes(w: World, plural: str = "configmaps") -> int:
    return sum(1 for verb, p, *_ in w.super_.writes if verb == "delete" and p == plural)


# ---- a super copy that is terminating already is not deleted again ---------------------------------------------
async def test_a_gone_tenant_objects_terminating_copy_is_deleted_once() -> None:
    w = await started((CM, configmap("cm", a="1")))
    _hold(w, CM, "cm", w.p_ns("shop"))
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert p_cm is not None
    assert p_cm["metadata"]["deletionTimestamp"], "terminating, held by its finalizer"
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert _deletes(w) == 1, "the terminating copy was reconciled again and not deleted twice"


async def test_a_terminating_stale_incarnation_is_waited_for_not_deleted_again() -> None:
    w = await started()
    old = w.super_.put(CM, {**super_cm(w, a="1"), "metadata": {**super_cm(w)["metadata"], "finalizers": [HOLD]}})
    w.super_.delete(CM, "cm", namespace=w.p_ns("shop"), options={})
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    w.take()
    mark = len(w.super_.writes)
    with pytest.raises(RetryLater, match="stale super copy of ConfigMap shop/cm"):
        await w.down("ConfigMap", "shop", "cm")
    assert cm_writes(w, mark) == []
    assert (w.super_obj("ConfigMap", "shop", "cm") or {})["metadata"]["uid"] == old["metadata"]["uid"]


async def test_a_terminating_tenant_object_deletes_its_terminating_copy_once() -> None:
    w = await started((CM, configmap("cm", a="1")))
    _hold(w, CM, "cm", w.p_ns("shop"))
    _tenant_hold(w, "cm")
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    assert (w.tenant_obj("ConfigMap", "shop", "cm") or {})["metadata"]["deletionTimestamp"]
    assert (w.super_obj("ConfigMap", "shop", "cm") or {})["metadata"]["deletionTimestamp"]
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert _deletes(w) == 1


async def test_a_terminating_tenant_object_spares_a_super_copy_of_another_incarnation() -> None:
    """Its deletion is for its own copy; the other incarnation's copy goes when the tenant object is gone."""
    w = await started()
    w.tenant.put(CM, {**configmap("cm", a="1"), "metadata": {"name": "cm", "namespace": "shop",
                                                               "finalizers": [HOLD]}})
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    theirs = w.super_.put(CM, super_cm(w, object_uid="old-uid", a="1"))
    await w.sync()
    w.take()
    await w.down("ConfigMap", "shop", "cm")
    assert w.super_obj("ConfigMap", "shop", "cm") == theirs
    w.tenant.finish_deletions()
    await w.settle()
    assert w.super_obj("ConfigMap", "shop", "cm") is None


# ---- the recheck gate: an allowed object changed into a refused one ---------------------------------------
async def test_an_object_changed_into_a_refused_one_loses_its_copy_and_is_told_once() -> None:
    kinds = (BY_KIND["Namespace"], _gated(recheck=True))
    w = await started((CM, configmap("cm", a="1")), kinds=kinds)
    _hold(w, CM, "cm", w.p_ns("shop"))
    w.tenant.patch(CM, "cm", {"data": {"forbidden": "1"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    assert ("ConfigMap", "shop", "cm") not in w.rt.written, "the echo memo of the old copy is dropped"
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert _deletes(w) == 1, "its copy is deleted, once (held by a finalizer, it stays terminating)"
    (event,) = w.events("shop")
    assert event["reason"] == "PolicyViolation"
    assert "key 'forbidden' is not allowed" in event["message"]
    assert event["involvedObject"]["uid"] == (w.tenant_obj("ConfigMap", "shop", "cm") or {})["metadata"]["uid"]
    assert w.syncer.metrics.refused.labels("ConfigMap")._value.get() == 1


async def test_a_refusal_after_the_object_was_allowed_again_is_told_again() -> None:
    kinds = (BY_KIND["Namespace"], _gated(recheck=True))
    w = await started((CM, configmap("cm", forbidden="1")), kinds=kinds)
    assert len(w.events("shop")) == 1
    for data in ({"forbidden": None, "a": "1"}, {"forbidden": "2"}):
        w.tenant.patch(CM, "cm", {"data": data}, namespace="shop", patch_type="merge", subresource=None)
        await w.settle()
    assert w.super_obj("ConfigMap", "shop", "cm") is None
    assert len(w.events("shop")) == 2, "allowed in between: the new refusal is a new Event"


async def test_without_recheck_an_update_is_not_gated() -> None:
    w = await started((CM, configmap("cm", a="1")), kinds=(BY_KIND["Namespace"], _gated(recheck=False)))
    w.tenant.patch(CM, "cm", {"data": {"forbidden": "1"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    assert (w.super_obj("ConfigMap", "shop", "cm") or {}).get("data") == {"a": "1", "forbidden": "1"}
    assert w.events("shop") == []


# ---- refusals: Events, metrics, logs --------------------------------------------------------------------------
async def test_each_refused_object_gets_its_own_event_with_the_time_and_a_log_line(
        fixed_clock: list[dt.datetime]) -> None:
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for name in ("p1", "p2"):
        w.tenant.put(resources.PODS, pod(name, hostNetwork=True))
    with capture_logs() as logs:
        await w.start()
        await w.settle()
    events = sorted(w.events("shop"), key=lambda e: e["involvedObject"]["name"])
    assert [e["involvedObject"]["name"] for e in events] == ["p1", "p2"]
    assert {(e["firstTimestamp"], e["lastTimestamp"]) for e in events} == {("2030-01-02T03:04:05Z",) * 2}
    refused = [entry for entry in logs if entry["event"] == "sync.refused"]
    assert [(e["log_level"], e["tenant"], e["kind"], e["key"]) for e in refused] == [
        ("info", KEY, "Pod", "shop/p1"), ("info", KEY, "Pod", "shop/p2")]
    assert all(any("hostNetwork" in r for r in e["reasons"]) for e in refused)


async def test_a_super_refusal_event_names_the_object_and_is_updated_with_the_latest_message(
        fixed_clock: list[dt.datetime]) -> None:
    w = await started()
    messages = iter(["ConfigMap is invalid: data: Too long", "ConfigMap is invalid: data: Still too long"])

    def refuse(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise Invalid(422, "Invalid", next(messages))

    w.super_.admission.append(refuse)
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    w.take()
    with pytest.raises(RetryLater, match=r"^ConfigMap is invalid: data: Too long$"):
        await w.down("ConfigMap", "shop", "cm")
    fixed_clock.append(dt.datetime(2030, 1, 2, 3, 9, 0, tzinfo=dt.UTC))
    with pytest.raises(RetryLater):
        await w.down("ConfigMap", "shop", "cm")
    (event,) = w.events("shop")
    v_uid = (w.tenant_obj("ConfigMap", "shop", "cm") or {})["metadata"]["uid"]
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "namespace": "shop",
                                       "uid": v_uid}
    assert "Still too long" in event["message"]
    assert (event["firstTimestamp"], event["lastTimestamp"]) == ("2030-01-02T03:04:05Z", "2030-01-02T03:09:00Z")
    assert w.syncer.metrics.refused.labels("ConfigMap")._value.get() == 1, "counted once, when first told"


async def test_a_super_refusal_whose_event_vanished_meanwhile_is_still_retried() -> None:
    """The Event exists when creating it and is gone when updating it (someone deleted it): no new error."""
    w = await started()

    def refuse(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise Invalid(422, "Invalid", "ConfigMap is invalid")

    def taken(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == resources.EVENTS:
            raise AlreadyExists(409, "AlreadyExists", f'events "{name}" already exists')

    w.super_.admission.append(refuse)
    w.tenant.admission.append(taken)
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    with pytest.raises(RetryLater, match=r"^ConfigMap is invalid$"):
        await w.down("ConfigMap", "shop", "cm")
    assert w.events("shop") == []


async def test_a_transient_forbidden_is_retried_with_its_message_and_no_event() -> None:
    w = await started()

    def not_yet(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise Forbidden(403, "Forbidden", "error looking up service account shop/default")

    w.super_.admission.append(not_yet)
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    with pytest.raises(RetryLater, match=r"^error looking up service account shop/default$"):
        await w.down("ConfigMap", "shop", "cm")
    assert w.events("shop") == [], "transient: retried silently"


async def test_a_name_taken_by_another_tenant_is_logged_where_it_is() -> None:
    """Seen in the super cache (the reconcile) or only by the create (AlreadyExists): both say where."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    w.super_.put(CM, super_cm(w, key=OTHER_KEY, a="theirs"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    with capture_logs() as cached:
        await w.down("ConfigMap", "shop", "cm")
    assert [e for e in cached if e["event"] == "sync.name_taken"] == [
        {"event": "sync.name_taken", "log_level": "warning", "tenant": KEY, "kind": "ConfigMap",
         "namespace": w.p_ns("shop"), "name": "cm"}]
    w.syncer.super_informers["ConfigMap"].replace([])  # a fresh start: the super cache has not seen it
    with capture_logs() as created:
        await w.down("ConfigMap", "shop", "cm")
    assert [e for e in created if e["event"] == "sync.name_taken"] == [
        {"event": "sync.name_taken", "log_level": "warning", "kind": "ConfigMap", "namespace": w.p_ns("shop"),
         "name": "cm"}]


# ---- AlreadyExists ----------------------------------------------------------------------------------------------
async def test_already_exists_messages_say_what_happened() -> None:
    w = await started()
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync(super_=False)
    w.take()
    w.super_.put(CM, super_cm(w, object_uid="old-uid", a="1"))
    with pytest.raises(RetryLater, match=r"^stale super copy removed$"):
        await w.down("ConfigMap", "shop", "cm")

    def taken_then_gone(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            raise AlreadyExists(409, "AlreadyExists", f'configmaps "{name}" already exists')

    w.super_.admission.append(taken_then_gone)
    with pytest.raises(RetryLater, match=r"^object vanished after AlreadyExists$"):
        await w.down("ConfigMap", "shop", "cm")


async def test_an_adopted_copy_keeps_its_super_owned_metadata() -> None:
    rules = MetadataRules.from_prefixes(opaque=("cost.example.com/",))
    w = await started(metadata=rules)
    w.tenant.put(CM, {**configmap("cm", a="1"), "metadata": {
        "name": "cm", "namespace": "shop", "labels": {"cost.example.com/center": "tenant-says"}}})
    await w.sync(super_=False)
    w.take()
    v_uid = (w.tenant_obj("ConfigMap", "shop", "cm") or {})["metadata"]["uid"]
    ours = super_cm(w, object_uid=v_uid, a="old")
    ours["metadata"]["labels"]["cost.example.com/center"] = "super-says"
    w.super_.put(CM, ours)
    await w.down("ConfigMap", "shop", "cm")
    p_cm = w.super_obj("ConfigMap", "shop", "cm")
    assert p_cm is not None
    assert p_cm["data"] == {"a": "1"}, "adopted and updated"
    assert p_cm["metadata"]["labels"]["cost.example.com/center"] == "super-says"


# ---- the super namespace a create needs ------------------------------------------------------------------------
async def test_a_namespace_made_meanwhile_by_another_worker_is_fine() -> None:
    """The object's create finds no namespace; making it finds it made meanwhile; the object is created."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    w.take()
    first = [True]

    def namespace_appears(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM and first.pop() if first else False:
            w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
            raise NotFound(404, "NotFound", f'namespaces "{ns}" not found')

    w.super_.admission.append(namespace_appears)
    await w.down("ConfigMap", "shop", "cm")
    assert w.super_obj("ConfigMap", "shop", "cm") is not None
    assert w.super_api.decoded == [], "neither create asked for a decoded answer"


async def test_a_namespace_the_super_cache_still_shows_is_not_made_again() -> None:
    """The cache shows the super namespace, the create says it is gone: retried once the cache catches up."""
    w = await started()
    w.super_.delete(resources.NAMESPACES, w.p_ns("shop"), namespace=None, options={})
    w.super_.finish_deletions()
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync(super_=False)
    mark = len(w.super_.writes)
    with pytest.raises(NotFound):
        await w.down("ConfigMap", "shop", "cm")
    assert w.super_.writes[mark:] == []


async def test_without_a_namespace_kind_a_missing_super_namespace_is_an_error() -> None:
    w = make_world(kinds=(simple.CONFIGMAP,))
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    w.take()
    with pytest.raises(NotFound):
        await w.down("ConfigMap", "shop", "cm")
    assert w.super_.writes == []


# ---- nothing is made in a super namespace before the tenant's policy objects ----------------------------------
POLICY = {"isolation": {"limitRange": {"defaultRequests": {"cpu": "100m"}}, "resourceQuota": {"hard": {"pods": "9"}},
                        "networkPolicy": False}}
POLICY_WRITES = [("create", "limitranges"), ("create", "resourcequotas")]


def _made(w: World, mark: int) -> list[tuple[str, str]]:
    return [(verb, plural) for verb, plural, *_ in w.super_.writes[mark:]]


async def _shop_with_configmaps(*names: str) -> World:
    """A started world with policy, tenant namespace ``shop`` and a ConfigMap per name, its keys taken."""
    w = make_world(spec=POLICY)
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    for i, name in enumerate(names):
        w.tenant.put(CM, configmap(name, a=str(i + 1)))
    await w.start()
    w.take()
    return w


def _creates_in_flight(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Super creates yield to the other workers while in flight, as a real request does."""
    real_create = w.super_api.create

    async def create_in_flight(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(w.super_api, "create", create_in_flight)


@pytest.mark.parametrize("cached", [True, False], ids=["cache-shows-it", "cache-behind"])
async def test_a_namespace_another_worker_made_gets_its_policy_before_the_first_object_in_it(cached: bool) -> None:
    """The namespace's worker made it and has not made its policy yet: a ConfigMap's create makes the policy
    first (a pod made in that gap would never get the LimitRange's default requests: CI, session 11)."""
    w = await _shop_with_configmaps("cm")
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    if cached:
        await w.sync(tenant=False)
    mark = len(w.super_.writes)
    await w.down("ConfigMap", "shop", "cm")
    assert _made(w, mark) == [*POLICY_WRITES, ("create", "configmaps")]
    assert w.rt.namespaces_ready == {w.p_ns("shop")}


async def test_a_policy_made_meanwhile_is_fine_and_asked_for_once() -> None:
    """The namespace's worker made the policy meanwhile: the create's attempts find it made (AlreadyExists),
    and the next create in that namespace asks for no policy object at all."""
    w = await _shop_with_configmaps("cm", "cm2")
    await w.down("Namespace", "", "shop")
    w.rt.namespaces_ready.clear()  # as after a restart: made by another incarnation
    asked: list[str] = []
    w.super_.admission.append(lambda verb, resource, ns, name: asked.append(resource.plural))
    await w.down("ConfigMap", "shop", "cm")
    await w.down("ConfigMap", "shop", "cm2")
    assert asked == ["limitranges", "resourcequotas", "configmaps", "configmaps"]
    assert w.super_obj("ConfigMap", "shop", "cm2") is not None


async def test_a_namespace_the_syncer_makes_is_made_with_its_policy_and_then_trusted() -> None:
    w = await _shop_with_configmaps("cm")
    await w.down("ConfigMap", "shop", "cm")  # no super namespace yet: made first, with its policy
    assert _made(w, 0) == [("create", "namespaces"), *POLICY_WRITES, ("create", "configmaps")]


async def test_the_namespace_workers_own_namespace_costs_its_objects_nothing() -> None:
    w = await _shop_with_configmaps("cm")
    await w.down("Namespace", "", "shop")
    assert _made(w, 0) == [("create", "namespaces"), *POLICY_WRITES]
    asked: list[str] = []
    w.super_.admission.append(lambda verb, resource, ns, name: asked.append(resource.plural))
    await w.down("ConfigMap", "shop", "cm")
    assert asked == ["configmaps"]


async def test_a_namespace_made_again_is_not_vouched_for_by_its_predecessor() -> None:
    """A namespace of a name seen ready before is not ready while the syncer makes it again."""
    w = await _shop_with_configmaps()
    w.rt.namespaces_ready.add(w.p_ns("shop"))  # an earlier super namespace of that name
    seen: list[bool] = []

    def at_policy_create(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if resource == resources.LIMITRANGES:
            seen.append(w.p_ns("shop") in w.rt.namespaces_ready)

    w.super_.admission.append(at_policy_create)
    await w.down("Namespace", "", "shop")
    assert seen == [False], "while its policy was being made, the new namespace was not taken as ready"
    assert w.rt.namespaces_ready == {w.p_ns("shop")}


async def test_a_namespace_whose_policy_fails_gets_nothing_else() -> None:
    w = await _shop_with_configmaps("cm")
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})

    def refuse_quota(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if resource == resources.RESOURCEQUOTAS:
            raise ApiError(500, "InternalError", "etcd is away")

    w.super_.admission.append(refuse_quota)
    with pytest.raises(ApiError, match="etcd is away"):
        await w.down("ConfigMap", "shop", "cm")
    assert w.super_obj("ConfigMap", "shop", "cm") is None
    assert w.rt.namespaces_ready == set()


async def test_creates_at_once_in_a_namespace_not_seen_ready_ask_for_its_policy_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Many workers' first creates in one super namespace after a restart: one of them makes (asks for) the
    policy, the others wait for it instead of asking again (the drain after a restart sent ~12 AlreadyExists
    per policy object per namespace)."""
    names = [f"cm{i}" for i in range(4)]
    w = await _shop_with_configmaps(*names)
    await w.down("Namespace", "", "shop")
    w.rt.namespaces_ready.clear()  # as after a restart: made by another incarnation
    _creates_in_flight(w, monkeypatch)
    asked: list[str] = []
    w.super_.admission.append(lambda verb, resource, ns, name: asked.append(resource.plural))
    await asyncio.gather(*(w.down("ConfigMap", "shop", name) for name in names))
    assert sorted(asked) == sorted(["limitranges", "resourcequotas", *["configmaps"] * len(names)])
    assert all(w.super_obj("ConfigMap", "shop", name) is not None for name in names)
    assert w.rt.namespaces_ready == {w.p_ns("shop")}
    assert w.rt.namespaces_making == {}, "a namespace made ready keeps no lock"


async def test_a_worker_waiting_for_a_failed_policy_tries_it_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker making the policy failed: a worker that waited for it makes it (not takes it as made)."""
    w = await _shop_with_configmaps("cm", "cm2")
    w.super_.put(resources.NAMESPACES, {"metadata": {"name": w.p_ns("shop")}})
    _creates_in_flight(w, monkeypatch)
    refused: list[str] = []

    def refuse_quota_once(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if resource == resources.RESOURCEQUOTAS and not refused:
            refused.append(name)
            raise ApiError(500, "InternalError", "etcd is away")

    w.super_.admission.append(refuse_quota_once)
    first, second = await asyncio.gather(w.down("ConfigMap", "shop", "cm"), w.down("ConfigMap", "shop", "cm2"),
                                         return_exceptions=True)
    assert isinstance(first, ApiError)
    assert second is None
    assert w.super_obj("ConfigMap", "shop", "cm") is None
    assert w.super_obj("ConfigMap", "shop", "cm2") is not None
    assert w.super_.get(resources.RESOURCEQUOTAS, refused[0], w.p_ns("shop")) is not None
    assert w.rt.namespaces_ready == {w.p_ns("shop")}
    assert w.rt.namespaces_making == {}


# ---- the echo memo: our own writes come back on the super watch ----------------------------------------------
def _echo_keys(w: World, kind: str, p_ns: str | None, p_name: str, event: str) -> list[SyncKey]:
    p_slim = w.syncer.shared.p_slim(w.syncer.shared.by_kind[kind], p_ns, p_name)
    assert p_slim is not None
    routing.enqueue_super(w.syncer.shared, w.syncer.shared.by_kind[kind], p_slim, event=event)
    return [k for k in w.take() if k.direction == DOWN]


async def test_the_echo_of_a_create_or_update_is_not_reconciled_again() -> None:
    w = await started((CM, configmap("cm", a="1")))
    await w.sync()
    assert _echo_keys(w, "Namespace", None, w.p_ns("shop"), "ADDED") == []
    assert _echo_keys(w, "ConfigMap", w.p_ns("shop"), "cm", "ADDED") == []
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    await w.sync()
    assert _echo_keys(w, "ConfigMap", w.p_ns("shop"), "cm", "MODIFIED") == []
    # someone else's change of the copy is not an echo
    w.super_.patch(CM, "cm", {"data": {"a": "hand"}}, namespace=w.p_ns("shop"), patch_type="merge",
                   subresource=None)
    await w.sync()
    assert [k.name for k in _echo_keys(w, "ConfigMap", w.p_ns("shop"), "cm", "MODIFIED")] == ["cm"]


async def test_the_echo_of_a_first_create_is_not_reconciled_again() -> None:
    """Right after the creates (cluster-scoped and namespaced), before any other reconcile of the keys."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.start()
    w.take()
    await w.down("Namespace", "", "shop")
    await w.down("ConfigMap", "shop", "cm")
    await w.sync(tenant=False)
    w.take()
    assert _echo_keys(w, "Namespace", None, w.p_ns("shop"), "ADDED") == []
    assert _echo_keys(w, "ConfigMap", w.p_ns("shop"), "cm", "ADDED") == []


async def test_a_gone_tenant_object_leaves_no_echo_memo() -> None:
    w = await started((CM, configmap("cm", a="1")))
    assert ("ConfigMap", "shop", "cm") in w.rt.written
    w.rt.upward_seen[("ConfigMap", "shop", "cm")] = "seen"
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.sync()
    await w.down("ConfigMap", "shop", "cm")
    assert ("ConfigMap", "shop", "cm") not in w.rt.written
    assert ("ConfigMap", "shop", "cm") not in w.rt.upward_seen


@pytest.mark.parametrize("error", [
    Conflict(409, "Conflict", "the object has been modified"),
    ApiError(500, "InternalError", "etcd is down"),
    Invalid(422, "Invalid", "ConfigMap is invalid"),
    AlreadyExists(409, "AlreadyExists", "configmaps \"cm\" already exists"),
], ids=["conflict", "server-error", "invalid", "already-exists"])
async def test_a_failed_create_leaves_no_memo_even_when_the_object_was_forgotten_meanwhile(error: Exception) -> None:
    """The write's own error reaches the worker (not a KeyError from the memo), and no memo stays."""
    w = await started()
    w.tenant.put(CM, configmap("cm", a="1"))
    await w.sync()
    w.take()
    ref = ("ConfigMap", "shop", "cm")
    forget = [True, False]

    def fail(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == CM:
            assert ref in w.rt.written, "the memo is recorded before the write"
            if forget.pop(0):
                w.rt.forget(*ref)  # the tenant object was deleted while the write was on its way
            raise error

    w.super_.admission.append(fail)
    for _ in range(2):
        with pytest.raises((type(error), RetryLater)):
            await w.down("ConfigMap", "shop", "cm")
        assert ref not in w.rt.written


async def test_a_failed_update_forgotten_meanwhile_raises_its_own_error() -> None:
    w = await started((CM, configmap("cm", a="1")))
    w.tenant.patch(CM, "cm", {"data": {"a": "2"}}, namespace="shop", patch_type="merge", subresource=None)
    await w.sync()

    def fail(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "update" and resource == CM:
            w.rt.forget("ConfigMap", "shop", "cm")
            raise Conflict(409, "Conflict", "the object has been modified")

    w.super_.admission.append(fail)
    with pytest.raises(Conflict):
        await w.down("ConfigMap", "shop", "cm")


# ---- leftovers: tenant objects the syncer made for a tenant object ---------------------------------------------
PVS = resources.PVS


def _made_by_us(v_pv: Obj) -> bool:
    return (v_pv["metadata"].get("labels") or {}).get("made-by") == "syncer"


def _leftover_kind() -> Any:
    """ConfigMap whose copy stands for three tenant volumes: one never made, one someone else's, one ours."""
    def leftovers(p_slim: Obj) -> list[Leftover]:
        name = p_slim["metadata"]["name"]
        return [Leftover(PVS, f"{name}-never", _made_by_us), Leftover(PVS, f"{name}-theirs", _made_by_us),
                Leftover(PVS, f"{name}-ours", _made_by_us)]
    return dataclasses.replace(simple.CONFIGMAP, tenant_leftovers=leftovers)


def _pv(name: str, *, ours: bool) -> Obj:
    return {"metadata": {"name": name, "labels": {"made-by": "syncer" if ours else "admin"}}, "spec": {}}


@pytest.mark.parametrize("terminating", [False, True], ids=["gone", "terminating"])
async def test_leftovers_of_a_tenant_object_go_with_it_only_if_made_by_the_syncer(terminating: bool) -> None:
    w = await started((CM, configmap("cm", a="1")), kinds=(BY_KIND["Namespace"], _leftover_kind()))
    w.tenant.put(PVS, _pv("cm-theirs", ours=False))
    w.tenant.put(PVS, _pv("cm-ours", ours=True))
    if terminating:
        _tenant_hold(w, "cm")
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    assert w.tenant.get(PVS, "cm-ours") is None
    assert w.tenant.get(PVS, "cm-theirs") is not None
    assert w.ops("PersistentVolume", "up", "delete") == 1
    assert w.super_obj("ConfigMap", "shop", "cm") is None


@pytest.mark.parametrize("meanwhile", ["replaced", "deleted"])
async def test_a_leftover_replaced_or_deleted_meanwhile_is_left_alone(meanwhile: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Between reading the leftover and deleting it, it was replaced (another incarnation) or deleted."""
    w = await started((CM, configmap("cm", a="1")), kinds=(BY_KIND["Namespace"], _leftover_kind()))
    w.tenant.put(PVS, _pv("cm-ours", ours=True))
    read = w.tenant_api.get_or_none

    async def racing_read(resource: Resource, name: str, *, namespace: str | None = None) -> Obj | None:
        got = await read(resource, name, namespace=namespace)
        if resource == PVS and got is not None:
            w.tenant.delete(PVS, name, namespace=None, options={})
            if meanwhile == "replaced":
                w.tenant.put(PVS, _pv(name, ours=True))
        return got

    monkeypatch.setattr(w.tenant_api, "get_or_none", racing_read)
    w.tenant.delete(CM, "cm", namespace="shop", options={})
    await w.settle()
    assert w.errors == []
    assert (w.tenant.get(PVS, "cm-ours") is not None) is (meanwhile == "replaced")
    assert w.ops("PersistentVolume", "up", "delete") == 0


# ---- extra kinds the tenant no longer lists ---------------------------------------------------------------------
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
WIDGET = extra_mod.extra_kind(WIDGETS)


def _widget(w: World, *, key: str = KEY, finalizers: list[str] | None = None) -> Obj:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": w.p_ns("shop"), "labels": naming.owner_labels(key, "acme"),
                         "finalizers": finalizers or [],
                         "annotations": {naming.ANN_OBJECT_NAME: "w1", naming.ANN_TENANT_NAMESPACE: "shop",
                                         naming.ANN_OBJECT_UID: "v1", naming.ANN_CLUSTER_KEY: key}},
            "spec": {"size": 1}}


async def _unlisted_world() -> World:
    w = await started()
    shared = w.syncer.shared
    shared.by_kind[WIDGET.kind] = WIDGET
    shared.extra_kinds.add(WIDGET.kind)
    shared.super_informers[WIDGET.kind] = extra_kinds.super_informer(shared, WIDGET, f"super/{WIDGET.kind}")
    return w


async def _reconcile_unlisted(w: World) -> None:
    await w.sync()
    w.take()
    await w.syncer.reconcile(SyncKey(KEY, WIDGET.kind, DOWN, "shop", "w1"))


async def test_the_copy_of_an_extra_kind_no_longer_listed_is_deleted_once() -> None:
    w = await _unlisted_world()
    w.super_.put(WIDGETS, _widget(w, finalizers=[HOLD]))
    w.rt.written[(WIDGET.kind, "shop", "w1")] = ("v1", "fp")
    await _reconcile_unlisted(w)
    p_widget = w.super_.get(WIDGETS, "w1", w.p_ns("shop"))
    assert p_widget is not None
    assert p_widget["metadata"]["deletionTimestamp"]
    assert (WIDGET.kind, "shop", "w1") not in w.rt.written
    await _reconcile_unlisted(w)
    assert _deletes(w, "widgets") == 1, "terminating: not deleted again"


async def test_the_copy_of_an_unlisted_extra_kind_without_an_echo_memo_is_deleted() -> None:
    w = await _unlisted_world()
    w.super_.put(WIDGETS, _widget(w))
    await _reconcile_unlisted(w)
    assert w.super_.get(WIDGETS, "w1", w.p_ns("shop")) is None


async def test_an_unlisted_extra_kinds_copy_made_for_another_tenant_is_left_alone() -> None:
    w = await _unlisted_world()
    theirs = w.super_.put(WIDGETS, _widget(w, key=OTHER_KEY))
    await _reconcile_unlisted(w)
    assert w.super_.get(WIDGETS, "w1", w.p_ns("shop")) == theirs
    await w.syncer.reconcile(SyncKey(KEY, WIDGET.kind, DOWN, "shop", "nothing-here"))
    assert _deletes(w, "widgets") == 0


# ---- service-account tokens: the kinds' I/O through TenantIO ------------------------------------------------------
def _token_pod(name: str = "p", sa: str = "robot") -> Obj:
    """A pod with the token volume the tenant's ServiceAccount admission adds."""
    volume = {"name": "kube-api-access-x", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}
    return pod(name, serviceAccountName=sa, automountServiceAccountToken=True, volumes=[volume])


def _sa(name: str, ns: str = "shop") -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}


async def test_a_pod_reconciled_before_its_namespace_gets_namespace_token_and_pod() -> None:
    """The token Secret's create finds no super namespace: it makes it (as the pod's own create would)."""
    w = make_world()
    w.tenant.put(resources.NAMESPACES, namespace("shop"))
    w.tenant.put(resources.SERVICEACCOUNTS, _sa("robot"))
    w.tenant.put(resources.PODS, _token_pod())
    await w.start()
    w.take()
    await w.down("Pod", "shop", "p")
    assert [(v, p) for v, p, *_ in w.super_.writes] == [("create", "namespaces"), ("create", "secrets"),
                                                        ("create", "pods")]
    secret = w.super_.get(resources.SECRETS, naming.token_secret_name("robot"), w.p_ns("shop"))
    assert secret is not None
    assert base64.b64decode(secret["data"]["token"]).decode().startswith("tenant-token-shop-robot-")
    assert base64.b64decode(secret["data"]["ca.crt"]) == w.tenant_api.config.ca_pem
    assert w.tenant.token_requests == [("shop", "robot", {"expirationSeconds": w.syncer.settings.token_expiration})]
    assert w.ops(COUNT_KIND, "down", "create") == 1


async def test_a_token_secret_goes_with_its_service_account() -> None:
    w = await started((resources.SERVICEACCOUNTS, _sa("robot")), (resources.PODS, _token_pod()))
    name = naming.token_secret_name("robot")
    assert w.super_.get(resources.SECRETS, name, w.p_ns("shop")) is not None
    w.tenant.delete(resources.PODS, "p", namespace="shop", options={})
    w.tenant.delete(resources.SERVICEACCOUNTS, "robot", namespace="shop", options={})
    await w.settle()
    assert w.super_.get(resources.SECRETS, name, w.p_ns("shop")) is None


async def test_a_tenant_secret_key_never_touches_a_token_secret_of_that_name() -> None:
    """Token Secrets are the ServiceAccount's, not the Secret kind's: a Secret key of the same name is not."""
    w = await started()
    name = naming.token_secret_name("robot")
    token = w.super_.put(resources.SECRETS, token_secret(key=KEY, tenant_name="acme", namespace="shop",
                                                         service_account="robot", token="t", ca_pem=b"ca"))
    await w.sync()
    await w.down("Secret", "shop", name)
    assert w.super_.get(resources.SECRETS, name, w.p_ns("shop")) == token


# ---- a lost tenant pod is deleted, uid-guarded ----------------------------------------------------------------
async def test_a_lost_pod_is_deleted_counted_and_a_replacement_spared(monkeypatch: pytest.MonkeyPatch) -> None:
    w = await started((resources.PODS, pod("p")), (resources.PODS, pod("q")))
    for name in ("p", "q"):
        w.super_.schedule(name, w.p_ns("shop"), "node-1")
    await w.settle()
    for name in ("p", "q"):
        w.super_.delete(resources.PODS, name, namespace=w.p_ns("shop"), options={"gracePeriodSeconds": 0})
    await w.sync()
    w.take()
    # q is replaced by a new incarnation the tenant cache has not seen yet
    w.tenant.delete(resources.PODS, "q", namespace="shop", options={"gracePeriodSeconds": 0})
    w.tenant.put(resources.PODS, pod("q"))
    await w.down("Pod", "shop", "p")
    await w.down("Pod", "shop", "q")
    assert w.tenant_obj("Pod", "shop", "p") is None
    assert w.tenant_obj("Pod", "shop", "q") is not None, "the new incarnation is not the lost pod"
    assert w.ops("Pod", "up", "delete") == 1
    # and a lost pod deleted by someone else meanwhile is no error
    w.tenant.put(resources.PODS, {**pod("r", nodeName="node-1")})
    w.tenant.set_status(resources.PODS, "r", "shop", {"conditions": [{"type": "PodScheduled", "status": "True"}]})
    await w.sync()
    w.take()
    w.tenant.delete(resources.PODS, "r", namespace="shop", options={"gracePeriodSeconds": 0})
    await w.down("Pod", "shop", "r")
    assert w.ops("Pod", "up", "delete") == 1


# ---- what the create and the update ask of the translation ---------------------------------------------------
async def test_a_created_pod_gets_its_namespaces_service_links_and_an_update_keeps_them() -> None:
    w = await started((resources.SERVICES, service("web")))
    w.tenant.put(resources.PODS, pod("p"))
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    env = {e["name"] for e in p_pod["spec"]["containers"][0].get("env") or []}
    assert "WEB_SERVICE_HOST" in env
    w.tenant.patch(resources.PODS, "p", {"spec": {"containers": [{"name": "app", "image": "busybox:2"}]}},
                   namespace="shop", patch_type="strategic", subresource=None)
    await w.settle()
    p_pod = w.super_obj("Pod", "shop", "p")
    assert p_pod is not None
    assert [c["image"] for c in p_pod["spec"]["containers"]] == ["busybox:2"]
    assert "WEB_SERVICE_HOST" in {e["name"] for e in p_pod["spec"]["containers"][0].get("env") or []}
    assert w.errors == []
    assert w.super_api.decoded == [], "the pod's patch asked for no decoded answer"
    mark = len(w.super_.writes)
    w.syncer.enqueue_all(w.rt)
    await w.settle()
    assert w.super_.writes[mark:] == [], "a resync finds the pod (links and all) in line"


async def test_a_token_secret_the_super_cluster_refuses_for_now_is_retried_with_the_reason() -> None:
    w = await started((resources.SERVICEACCOUNTS, _sa("robot")))

    def not_yet(verb: str, resource: Resource, ns: str | None, name: str) -> None:
        if verb == "create" and resource == resources.SECRETS:
            raise Forbidden(403, "Forbidden", "error looking up service account shop/default")

    w.super_.admission.append(not_yet)
    w.tenant.put(resources.PODS, _token_pod())
    await w.sync()
    with pytest.raises(RetryLater, match=r"^error looking up service account shop/default$"):
        await w.down("Pod", "shop", "p")
    assert w.super_obj("Pod", "shop", "p") is None


async def test_endpoints_to_an_own_pod_stay_synced_when_they_change() -> None:
    """The update's policy check sees the tenant's own pod IPs as the create's did."""
    ext = {"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}
    w = await started((resources.SERVICES, ext), (resources.PODS, pod("p")))
    w.super_.set_status(resources.PODS, "p", w.p_ns("shop"), {"phase": "Running", "podIP": "10.1.2.3"})
    await w.settle()
    ep = {"metadata": {"name": "ext", "namespace": "shop"},
          "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}
    w.tenant.put(resources.ENDPOINTS, ep)
    await w.settle()
    assert w.super_obj("Endpoints", "shop", "ext") is not None
    w.tenant.patch(resources.ENDPOINTS, "ext", {"subsets": [{"addresses": [{"ip": "10.1.2.3"}],
                                                            "ports": [{"port": 8080}]}]},
                   namespace="shop", patch_type="merge", subresource=None)
    await w.settle()
    p_ep = w.super_obj("Endpoints", "shop", "ext")
    assert p_ep is not None
    assert p_ep["subsets"][0]["ports"] == [{"port": 8080}]
    assert w.events("shop") == []


async def test_a_refused_network_policy_event_names_its_api_group() -> None:
    netpol = {"metadata": {"name": "np", "namespace": "shop"},
              "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}
    w = await started((resources.NETWORKPOLICIES, netpol))
    (event,) = w.events("shop")
    assert (event["involvedObject"]["apiVersion"], event["involvedObject"]["kind"]) == (
        "networking.k8s.io/v1", "NetworkPolicy")


async def test_endpoints_of_a_selector_service_are_not_synced() -> None:
    ep = {"metadata": {"name": "web", "namespace": "shop"},
          "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}
    w = await started((resources.SERVICES, service("web")), (resources.ENDPOINTS, ep))
    assert w.super_obj("Endpoints", "shop", "web") is None
    assert w.errors == []

