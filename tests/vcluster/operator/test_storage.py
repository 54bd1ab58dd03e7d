"""The pods backend's etcd storage in the reconciler: kept when immutable, told by condition and Event."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tenant_crd import TenantSpec
from tenant_crd.models import SYNCED_CONDITION
from vcluster.controlplane import builder, pods
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import LocalBackend
from vcluster.kube import Conflict
from vcluster.kube import resources as r
from vcluster.operator.reconcile import STORAGE_CONDITION, STORAGE_NEEDS_MIGRATION, Reconciler
from vcluster.settings import BinarySettings

KEY = "acme-1a2b3c"


class FakeApi:
    """Records status patches and Events; serves one optional etcd StatefulSet."""

    def __init__(self, statefulset: dict[str, Any] | None = None, tenant: dict[str, Any] | None = None) -> None:
        self.statefulset = statefulset
        #: The Tenant as the apiserver has it (``_report`` reads it first and writes over its resourceVersion).
        self.tenant = tenant
        self.patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        #: Called before each status patch is taken; may change :attr:`tenant` (another writer, meanwhile).
        self.meanwhile: list[Any] = []

    async def get_or_none(self, resource: r.Resource, name: str, *, namespace: str | None = None) -> Any:
        if resource == r.TENANTS:
            return copy.deepcopy(self.tenant)
        assert (resource, name, namespace) == (r.STATEFULSETS, pods.ETCD_SERVICE, KEY)
        return self.statefulset

    async def patch(self, resource: r.Resource, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        if self.meanwhile:
            self.meanwhile.pop(0)(self)
        assert self.tenant is not None
        if body["metadata"]["resourceVersion"] != self.tenant["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        self.patches.append(body)
        return body

    async def create(self, resource: r.Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.events.append(body)
        return body


def _reconciler(api: FakeApi, tmp_path: Path) -> Reconciler:
    return Reconciler(api=api,  # type: ignore[arg-type]
                      local=LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings()))


def _plane(storage: dict[str, Any]) -> cp.ControlPlaneSpec:
    spec = TenantSpec.from_dict({"controlPlane": {"backend": "pods", "storage": storage}})
    return builder.build(tenant_name="acme", cluster_key=KEY, tenant=spec, cluster_version=None,
                         layout=pods.layout(KEY))


def _statefulset(storage: dict[str, Any]) -> dict[str, Any]:
    plane = _plane(storage)
    return next(o for o in pods.render(plane, namespace=KEY, cm_kubeconfig="kc") if o["kind"] == "StatefulSet")


CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, cp.EtcdStorage | None, tuple[bool, str]]] = [
    ("new", {"size": "2Gi"}, None, cp.EtcdStorage(size="2Gi"), (True, "Applied")),
    ("unchanged", {"size": "1Gi"}, {"size": "1024Mi"}, cp.EtcdStorage(size="1024Mi"), (True, "Applied")),
    ("size-changed", {"size": "2Gi"}, {"size": "1Gi"}, cp.EtcdStorage(size="1Gi"),
     (False, STORAGE_NEEDS_MIGRATION)),
    ("class-changed", {"storageClassName": "fast"}, {}, cp.EtcdStorage(size="1Gi"),
     (False, STORAGE_NEEDS_MIGRATION)),
]


@pytest.mark.parametrize(("wanted", "existing", "kept", "verdict"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_existing_storage_is_kept_and_a_change_reported(
    tmp_path: Path, wanted: dict[str, Any], existing: dict[str, Any] | None, kept: cp.EtcdStorage | None,
    verdict: tuple[bool, str],
) -> None:
    ok, reason = verdict
    api = FakeApi(_statefulset(existing) if existing is not None else None)
    plane, (type_, status, why, message) = await _reconciler(api, tmp_path)._pods_storage(_plane(wanted), KEY)
    assert plane.etcd_storage == kept
    assert (type_, status, why) == (STORAGE_CONDITION, ok, reason)
    assert ("immutable" in message) is not ok


def _body(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "acme", "uid": "u", "generation": 3, "resourceVersion": "7"},
            "status": {"phase": "Provisioning", "conditions": conditions}}


READY = {"type": "Ready", "status": "False", "reason": "WaitingForApiserver", "message": "m",
         "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"}
APPLIED = (STORAGE_CONDITION, True, "Applied", "ok")
NOT_APPLIED = (STORAGE_CONDITION, False, STORAGE_NEEDS_MIGRATION, "needs a migration")
OLD_APPLIED = {"type": STORAGE_CONDITION, "status": "True", "reason": "Applied", "message": "ok",
               "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"}

REPORTS: list[tuple[str, list[dict[str, Any]], list[tuple[str, bool, str, str]] | None, list[str], list[str]]] = [
    ("first-true-is-quiet", [READY], [APPLIED], [], ["Ready", STORAGE_CONDITION]),
    ("false-is-an-event", [READY, OLD_APPLIED], [NOT_APPLIED], [STORAGE_NEEDS_MIGRATION],
     ["Ready", STORAGE_CONDITION]),
    ("back-to-true-is-an-event", [READY, {**OLD_APPLIED, "status": "False", "reason": STORAGE_NEEDS_MIGRATION}],
     [APPLIED], ["Applied"], ["Ready", STORAGE_CONDITION]),
    ("unchanged-is-quiet", [READY, OLD_APPLIED], [APPLIED], [], ["Ready", STORAGE_CONDITION]),
    ("new-message-alone-is-quiet", [READY, OLD_APPLIED], [(STORAGE_CONDITION, True, "Applied", "still ok")], [],
     ["Ready", STORAGE_CONDITION]),
    ("none-keeps-others", [READY, OLD_APPLIED], None, [], ["Ready", STORAGE_CONDITION]),
    ("empty-drops-others", [READY, OLD_APPLIED], [], [], ["Ready"]),
]


@pytest.mark.parametrize(("old", "conditions", "event_reasons", "types"), [c[1:] for c in REPORTS],
                         ids=[c[0] for c in REPORTS])
async def test_report_writes_every_condition_and_events_on_change(
    tmp_path: Path, old: list[dict[str, Any]], conditions: list[tuple[str, bool, str, str]] | None,
    event_reasons: list[str], types: list[str],
) -> None:
    api = FakeApi(tenant=_body(old))
    await _reconciler(api, tmp_path)._report(_body(old), phase="Provisioning", ready=False,
                                             reason="WaitingForApiserver", message="m", conditions=conditions)
    (patch,) = api.patches
    assert patch["metadata"] == {"resourceVersion": "7"}  # written only over what was read
    written = patch["status"]["conditions"]
    assert [c["type"] for c in written] == types
    assert [e["reason"] for e in api.events] == event_reasons
    assert all(e["type"] == ("Warning" if e["reason"] == STORAGE_NEEDS_MIGRATION else "Normal") for e in api.events)
    storage = next((c for c in written if c["type"] == STORAGE_CONDITION), None)
    if storage is not None and conditions:
        # rewritten conditions follow the generation; an unchanged status keeps its transition time
        assert storage["observedGeneration"] == 3
        if storage["status"] == OLD_APPLIED["status"] and old[-1] is OLD_APPLIED:
            assert storage["lastTransitionTime"] == OLD_APPLIED["lastTransitionTime"]


SYNCED = {"type": SYNCED_CONDITION, "status": "True", "reason": "Synced", "message": "0 objects pending",
          "lastTransitionTime": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("conditions", [None, [], [APPLIED]], ids=["none", "empty", "storage"])
async def test_report_keeps_the_syncers_condition(tmp_path: Path,
                                                  conditions: list[tuple[str, bool, str, str]] | None) -> None:
    api = FakeApi(tenant=_body([READY, SYNCED, OLD_APPLIED]))
    await _reconciler(api, tmp_path)._report(_body([READY]), phase="Degraded", ready=False,
                                             reason="ApiserverUnreachable", message="m", conditions=conditions)
    (patch,) = api.patches
    written = patch["status"]["conditions"]
    assert next(c for c in written if c["type"] == SYNCED_CONDITION) == SYNCED
    assert [c["type"] for c in written][:2] == ["Ready", SYNCED_CONDITION]


async def test_report_written_meanwhile_is_read_again_not_clobbered(tmp_path: Path) -> None:
    """The syncer writes its condition between the operator's read and its write: 409, read again."""
    api = FakeApi(tenant=_body([READY]))

    def syncer_writes(fake: FakeApi) -> None:
        assert fake.tenant is not None
        fake.tenant["status"]["conditions"].append(SYNCED)
        fake.tenant["metadata"]["resourceVersion"] = "8"

    api.meanwhile.append(syncer_writes)
    await _reconciler(api, tmp_path)._report(_body([READY]), phase="Degraded", ready=False,
                                             reason="ApiserverUnreachable", message="gone")
    (patch,) = api.patches
    assert patch["metadata"] == {"resourceVersion": "8"}
    assert [c["type"] for c in patch["status"]["conditions"]] == ["Ready", SYNCED_CONDITION]
    assert [e["reason"] for e in api.events] == ["ApiserverUnreachable"]  # one Event, not one per attempt


async def test_one_recovery_reported_twice_is_one_event(tmp_path: Path) -> None:
    """The health loop writes Ready ("serving again") and the repair's reconcile then writes Ready
    ("serving"): one transition, one Event (e2e/test_faults saw two); the newer message is kept."""
    ready = {**READY, "status": "True", "reason": "Ready", "message": "control plane is serving again"}
    api = FakeApi(tenant=_body([ready]))
    await _reconciler(api, tmp_path)._report(_body([ready]), phase="Ready", ready=True, reason="Ready",
                                             message="control plane is serving")
    (patch,) = api.patches
    assert patch["status"]["conditions"][0]["message"] == "control plane is serving"
    assert patch["status"]["conditions"][0]["lastTransitionTime"] == READY["lastTransitionTime"]
    assert api.events == []
