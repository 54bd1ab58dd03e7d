"""The patrol's diff at its edges: deletions in progress on either side, refusals, foreign objects.

Why: the patrol repairs drift by queueing keys, and a wrong verdict is not
harmless: calling a terminating tenant object "missing" would re-create its
super copy, calling a super object that is already going away an "orphan"
would delete it twice (and count false drift), and reading another
tenant's or an unowned object as ours would let one tenant's patrol act on
it.  Every combination of presence and ``deletionTimestamp`` on the two
sides has a case with the verdict it must give.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from syncer.informer import Informer
from syncer.patrol import _group_raw, diff_kind, tenant_of
from syncer.queue import DOWN, UP
from syncer.resources import BY_KIND
from syncer.resources.base import MetadataRules, TranslateContext
from syncer.shared import Shared
from vcluster import naming

KEY = naming.cluster_key("acme", "u")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u")
CM = BY_KIND["ConfigMap"]
REF = ("shop", "cfg")
GONE = "2024-01-01T00:00:00Z"


def v_cm(*, uid: str = "v-uid", deleting: bool = False, data: str = "1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "cfg", "namespace": "shop", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = GONE
    return {"metadata": meta, "data": {"k": data}}


def p_cm(v: dict[str, Any], *, deleting: bool = False) -> dict[str, Any]:
    p = CM.slim_super(CM.to_super(v, CTX))
    if deleting:
        p["metadata"]["deletionTimestamp"] = GONE
    return p


# (id, tenant object or None, super object or None, expected verdicts)
CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[tuple[str, str]]]] = [
    ("in-sync", v_cm(), p_cm(v_cm()), []),
    ("tenant-only", v_cm(), None, [(DOWN, "missing")]),
    ("tenant-only-terminating", v_cm(deleting=True), None, []),
    ("super-only", None, p_cm(v_cm()), [(DOWN, "orphan")]),
    ("super-only-terminating", None, p_cm(v_cm(), deleting=True), []),
    ("tenant-terminating-super-live", v_cm(deleting=True), p_cm(v_cm()), [(DOWN, "terminating")]),
    ("both-terminating", v_cm(deleting=True), p_cm(v_cm(), deleting=True), []),
    ("tenant-terminating-super-changed", v_cm(deleting=True), p_cm(v_cm(data="old")), [(DOWN, "terminating")]),
    ("super-terminating-tenant-live", v_cm(), p_cm(v_cm(), deleting=True), []),
    ("changed", v_cm(data="new"), p_cm(v_cm(data="old")), [(DOWN, "changed")]),
    ("stale-incarnation", v_cm(uid="new"), p_cm(v_cm(uid="old")), [(DOWN, "stale")]),
    ("stale-beats-terminating", v_cm(uid="new", deleting=True), p_cm(v_cm(uid="old")), [(DOWN, "stale")]),
    ("stale-and-changed-is-stale-only", v_cm(uid="new", data="new"), p_cm(v_cm(uid="old")), [(DOWN, "stale")]),
]


@pytest.mark.parametrize(("v", "p", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdicts(v: dict[str, Any] | None, p: dict[str, Any] | None, expected: list[tuple[str, str]]) -> None:
    tenant = {REF: v} if v is not None else {}
    supers = {REF: p} if p is not None else {}
    assert diff_kind(CM, tenant, supers, CTX) == [(REF, d, reason) for d, reason in expected]


def test_a_super_copy_without_our_uid_annotation_is_stale() -> None:
    p = p_cm(v_cm())
    del p["metadata"]["annotations"][naming.ANN_OBJECT_UID]
    assert diff_kind(CM, {REF: v_cm()}, {REF: p}, CTX) == [(REF, DOWN, "stale")]
    p["metadata"] = {}
    assert diff_kind(CM, {REF: v_cm()}, {REF: p}, CTX) == [(REF, DOWN, "stale")]


def test_objects_without_metadata_do_not_break_the_diff() -> None:
    p = {"fp": "x"}
    assert diff_kind(CM, {}, {REF: p}, CTX) == [(REF, DOWN, "orphan")]
    assert diff_kind(CM, {REF: {"data": {}}}, {}, CTX) == [(REF, DOWN, "missing")]


@pytest.mark.parametrize(
    ("refused", "expected"),
    [
        pytest.param(set(), [(REF, DOWN, "missing")], id="not-refused"),
        pytest.param({"v-uid"}, [], id="refused"),
        pytest.param({"other-uid"}, [(REF, DOWN, "missing")], id="another-refused"),
    ],
)
def test_refused_objects_are_not_missing(refused: set[str], expected: list[Any]) -> None:
    assert diff_kind(CM, {REF: v_cm()}, {}, CTX, refused=refused) == expected


def test_a_refused_object_whose_copy_exists_is_still_compared() -> None:
    assert diff_kind(CM, {REF: v_cm(data="new")}, {REF: p_cm(v_cm())}, CTX, refused={"v-uid"}) == [
        (REF, DOWN, "changed")]


def test_changed_and_upward_together() -> None:
    rules = MetadataRules(transparent=("example.com/",))
    ctx = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u", metadata=rules)
    v = v_cm(data="new")
    full = CM.to_super(v_cm(), ctx)
    full["metadata"]["labels"]["example.com/zone"] = "a"  # set in the super cluster
    p = CM.slim_super(full)
    assert diff_kind(CM, {REF: v}, {REF: p}, ctx) == [(REF, DOWN, "changed"), (REF, UP, "upward")]
    v_same = v_cm()
    v_same["metadata"]["labels"] = {"example.com/zone": "a"}
    assert diff_kind(CM, {REF: v_same}, {REF: p}, ctx) == []


def test_a_terminating_tenant_object_is_not_compared_upward() -> None:
    pod = BY_KIND["Pod"]
    v = {"metadata": {"name": "p", "namespace": "shop", "uid": "pu", "deletionTimestamp": GONE},
         "spec": {"containers": [{"name": "c"}]}}
    p = pod.to_super(v, CTX)
    p["spec"]["nodeName"] = "n1"
    p["status"] = {"phase": "Running"}
    slim = pod.slim_super(p)
    slim["metadata"]["deletionTimestamp"] = GONE
    assert diff_kind(pod, {("shop", "p"): v}, {("shop", "p"): slim}, CTX) == []


# ---- grouping super objects by tenant ----------------------------------------------------


def _super(*, ns: str | None = "x", key: str | None = KEY, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {naming.LABEL_CLUSTER_KEY: key} if key else {}, "annotations": annotations}
    if ns is not None:
        meta["namespace"] = ns
    return {"metadata": meta}


NAME, TNS = naming.ANN_OBJECT_NAME, naming.ANN_TENANT_NAMESPACE


def group(items: list[dict[str, Any]]) -> dict[str, dict[tuple[str, str], bytes]]:
    """The patrol's grouping of one super informer's cached bytes (a fresh memo: every object decoded)."""
    raws = [((f"ns{i}", f"o{i}"), orjson.dumps(p)) for i, p in enumerate(items)]
    shared = cast(Shared, SimpleNamespace(patrol_refs={}))
    return _group_raw(shared, "ConfigMap", cast(Informer, SimpleNamespace(raw_items=lambda: raws)))


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(_super(**{NAME: "a", TNS: "shop"}), (KEY, ("shop", "a")), id="namespaced"),
        pytest.param(_super(ns=None, **{NAME: "a", TNS: "shop"}), (KEY, ("", "a")), id="cluster-scoped"),
        pytest.param(_super(ns="", **{NAME: "a"}), (KEY, ("", "a")), id="empty-namespace"),
        pytest.param(_super(**{NAME: "a"}), (KEY, ("", "a")), id="no-tenant-namespace-annotation"),
        pytest.param(_super(key=None, **{NAME: "a", TNS: "shop"}), None, id="no-cluster-key"),
        pytest.param(_super(**{TNS: "shop"}), None, id="no-object-name"),
        pytest.param(_super(**{NAME: "", TNS: "shop"}), None, id="empty-object-name"),
        pytest.param(_super(**{NAME: "vc-token-x", TNS: "shop", naming.ANN_TOKEN_FOR_SERVICE_ACCOUNT: "x"}), None,
                     id="token-secret"),
        pytest.param({}, None, id="no-metadata"),
    ],
)
def test_tenant_of(p: dict[str, Any], expected: tuple[str, tuple[str, str]] | None) -> None:
    assert tenant_of(p) == expected
    grouped = group([p])
    assert grouped == ({} if expected is None else {expected[0]: {expected[1]: orjson.dumps(p)}})


def test_grouping_keeps_tenants_apart() -> None:
    other = naming.cluster_key("other", "o")
    grouped = group([_super(**{NAME: "a", TNS: "shop"}), _super(key=other, **{NAME: "a", TNS: "shop"}),
                     _super(**{NAME: "b", TNS: "shop"})])
    assert sorted(grouped) == sorted([KEY, other])
    assert sorted(grouped[KEY]) == [("shop", "a"), ("shop", "b")]
    assert list(grouped[other]) == [("shop", "a")]


def test_every_object_gets_its_verdict_whatever_came_before() -> None:
    tenant: dict[tuple[str, str], dict[str, Any]] = {}
    supers: dict[tuple[str, str], dict[str, Any]] = {}
    expected = []
    # each case of CASES once more, all in one diff, in the order of the table (skips and verdicts mixed)
    for i, (_id, v, p, verdicts) in enumerate(CASES * 2):
        ref = ("shop", f"o{i}")
        if v is not None:
            tenant[ref] = v
        if p is not None:
            supers[ref] = p
        expected += [(ref, d, reason) for d, reason in verdicts]
    assert sorted(diff_kind(CM, tenant, supers, CTX)) == sorted(expected)


def test_grouping_skips_foreign_objects_without_stopping() -> None:
    items = [_super(key=None, **{NAME: "x"}), _super(**{TNS: "shop"}), _super(**{NAME: "a", TNS: "shop"})]
    assert {k: list(v) for k, v in group(items).items()} == {KEY: [("shop", "a")]}
