"""Extra kinds in the engine's queueing: events copied up by group + kind, unlisted kinds' copies deleted.

Pure: ``routing.enqueue_super`` and ``routing.on_super_event`` only queue keys, so the tests drive them with slim
super objects and super Events and read the queue (the deletions themselves run on the real test bed,
``e2e/test_syncer_kinds.py``).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from syncer import routing
from syncer.engine import EVENT, Syncer, TenantRuntime
from syncer.queue import DOWN, UP
from syncer.resources import REGISTRY
from syncer.resources import event as event_mod
from syncer.resources import extra as extra_mod
from syncer.resources.base import Kind
from syncer.tenants import TenantInfo
from tenant_crd.models import SyncSpec
from tests.syncer.engine_helpers import KEY, drain, offline_syncer
from vcluster import naming
from vcluster.kube import Resource

OTHER = naming.cluster_key("globex", "u2")
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
WIDGET = extra_mod.extra_kind(WIDGETS)
TEMPLATE = extra_mod.extra_kind(Resource("", "v1", "podtemplates", "PodTemplate"))


@pytest.mark.parametrize(("involved", "extra", "want"), [
    ({"apiVersion": "v1", "kind": "Pod"}, (), "Pod"),
    ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}, (WIDGET,), "Ingress"),
    ({"apiVersion": "example.com/v1", "kind": "Widget"}, (WIDGET,), WIDGET.kind),
    ({"apiVersion": "example.com/v2", "kind": "Widget"}, (WIDGET,), WIDGET.kind),
    ({"apiVersion": "example.com/v1", "kind": "Widget"}, (), None),
    ({"apiVersion": "other.example.com/v1", "kind": "Widget"}, (WIDGET,), None),
    ({"apiVersion": "example.com/v1", "kind": "Gadget"}, (WIDGET,), None),
    ({"apiVersion": "v1", "kind": "PodTemplate"}, (WIDGET, TEMPLATE), TEMPLATE.kind),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet"}, (WIDGET,), None),
    ({}, (WIDGET,), None),
], ids=["registry-pod", "registry-ingress", "extra", "extra-other-version", "extra-not-started",
        "other-group", "other-kind", "core-extra", "not-synced", "empty"])
def test_event_kind(involved: dict[str, Any], extra: tuple[Kind, ...], want: str | None) -> None:
    assert event_mod.event_kind(involved, extra) == want


@pytest.mark.parametrize(("entries", "want"), [
    (("widgets.example.com",), True),
    (("gadgets.example.com", "widgets.example.com"), True),
    (("widgets.example.org",), False),
    (("widgets",), False),
    (("gadgets.example.com",), False),
    ((), False),
], ids=["listed", "among-others", "other-group", "core-spelling", "other-plural", "none"])
def test_is_listed(entries: tuple[str, ...], want: bool) -> None:
    assert extra_mod.is_listed(WIDGETS, entries) is want
    assert extra_mod.entry_of(WIDGETS) == "widgets.example.com"


def _syncer(*, extra_kinds: tuple[str, ...], started: bool) -> tuple[Syncer, TenantRuntime]:
    info = TenantInfo(key=KEY, name="acme", uid="u1", kubeconfig="", sync=SyncSpec(extra_kinds=extra_kinds))
    syncer, rt = offline_syncer(info=info, kinds=REGISTRY)
    syncer.shared.by_kind[WIDGET.kind] = WIDGET
    syncer.shared.extra_kinds.add(WIDGET.kind)
    if started:
        rt.informers[WIDGET.kind] = cast(Any, object())
        rt.kinds = (*REGISTRY, WIDGET)
    return syncer, rt


def _keys(syncer: Syncer) -> list[tuple[str, str, str, str]]:
    return [(key.kind, key.direction, key.namespace, key.name) for key in drain(syncer)]


def p_widget(*, key: str = KEY) -> dict[str, Any]:
    return {"metadata": {"name": "w1", "namespace": naming.super_namespace(key, "shop"),
                         "labels": naming.owner_labels(key, "acme"),
                         "annotations": {naming.ANN_OBJECT_NAME: "w1", naming.ANN_TENANT_NAMESPACE: "shop",
                                         naming.ANN_OBJECT_UID: "v1"}},
            "fp": "f1"}


# (extraKinds of the tenant, kind started for it, super event, copy of which tenant, keys expected)
ENQUEUE = [
    (("widgets.example.com",), True, "ADDED", KEY, [(WIDGET.kind, DOWN, "shop", "w1")]),
    (("widgets.example.com",), False, "ADDED", KEY, []),        # listed, not started yet: left alone
    ((), False, "ADDED", KEY, [(WIDGET.kind, DOWN, "shop", "w1")]),  # no longer listed: its copy goes
    (("gadgets.example.com",), False, None, KEY, [(WIDGET.kind, DOWN, "shop", "w1")]),
    ((), False, "DELETED", KEY, []),                            # gone already
    ((), False, "ADDED", OTHER, []),                            # another tenant's copy (not served here)
]


@pytest.mark.parametrize(("extra_kinds", "started", "event", "owner", "want"), ENQUEUE,
                         ids=["synced", "listed-not-started", "unlisted", "unlisted-resync", "unlisted-deleted",
                              "other-tenant"])
def test_super_copies_of_unlisted_extra_kinds_are_queued_for_deletion(
        extra_kinds: tuple[str, ...], started: bool, event: str | None, owner: str,
        want: list[tuple[str, str, str, str]]) -> None:
    syncer, _rt = _syncer(extra_kinds=extra_kinds, started=started)
    routing.enqueue_super(syncer.shared, WIDGET, p_widget(key=owner), event=event)
    assert _keys(syncer) == want


def p_event(kind: str, api_version: str) -> dict[str, Any]:
    p_ns = naming.super_namespace(KEY, "shop")
    return {"metadata": {"name": "w1.17a", "namespace": p_ns},
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": "w1", "namespace": p_ns},
            "reason": "Provisioned", "message": "done"}


@pytest.mark.parametrize(("started", "kind", "api_version", "want_up"), [
    (True, "Widget", "example.com/v1", True),
    (False, "Widget", "example.com/v1", False),
    (True, "Widget", "example.org/v1", False),
    (True, "Pod", "v1", True),
    (True, "Deployment", "apps/v1", False),
], ids=["extra-started", "extra-not-started", "same-kind-other-group", "registry", "never"])
def test_super_events_of_started_extra_kinds_go_up(started: bool, kind: str, api_version: str,
                                                   want_up: bool) -> None:
    syncer, rt = _syncer(extra_kinds=("widgets.example.com",), started=started)
    routing.on_super_event(syncer.shared, "ADDED", p_event(kind, api_version))
    assert _keys(syncer) == ([(EVENT, UP, "shop", "w1.17a")] if want_up else [])
    assert (("shop", "w1.17a") in rt.pending_events) is want_up

