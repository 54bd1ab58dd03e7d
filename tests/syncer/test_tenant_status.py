"""The syncer's Synced condition: what it says, that it never clobbers the operator's, broken kubeconfigs told."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest

from syncer.tenant_status import (
    KUBECONFIG_UNREADABLE,
    NOT_SERVED,
    SYNCED,
    SYNCING,
    TENANT_UNREACHABLE,
    SyncState,
    TenantStatusWriter,
    status_patch,
    synced_condition,
)
from syncer.tenants import CrdTenantSource, TenantDown, TenantUp, kubeconfig_problem
from tenant_crd.models import SYNCED_CONDITION
from tests.syncer.fakeapi import FakeServer
from vcluster import naming
from vcluster.kube import ApiClient, resources

NOW = "2026-02-01T00:00:00Z"
READY = {"type": "Ready", "status": "True", "reason": "Ready", "message": "serving",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: t, user: {token: abc}}]
contexts: [{name: t, context: {cluster: t, user: t}}]
current-context: t
"""


def tenant(name: str = "acme", *, conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    key = f"{name}-abc123"
    return {"apiVersion": naming.API_VERSION, "kind": "Tenant",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 2},
            "status": {"phase": "Ready", "conditions": conditions if conditions is not None else [READY],
                       "clusterKey": key, "observedGeneration": 2,
                       "kubeconfigSecret": {"namespace": key, "name": "admin-kubeconfig"}, **status}}


@pytest.mark.parametrize(("state", "want"), [
    (SyncState(listed=True, pending=3), ("True", SYNCED, "3 objects pending")),
    (SyncState(listed=False), ("False", SYNCING, "listing the tenant's objects")),
    (SyncState(listed=True, reachable=False), ("False", TENANT_UNREACHABLE, None)),
    (SyncState(listed=True, problem=(KUBECONFIG_UNREADABLE, "gone")), ("False", KUBECONFIG_UNREADABLE, "gone")),
], ids=["synced", "listing", "unreachable", "problem-wins"])
def test_synced_condition(state: SyncState, want: tuple[str, str, str | None]) -> None:
    status, reason, message = synced_condition(state)
    assert (status, reason) == want[:2]
    if want[2] is not None:
        assert message == want[2]


def test_patch_keeps_the_operators_conditions_and_writes_over_what_was_read() -> None:
    obj = tenant()
    obj["metadata"]["resourceVersion"] = "41"
    patch, event = status_patch(obj, SyncState(listed=True, pending=0, last_full_sync=NOW), now=NOW)
    assert patch is not None
    assert patch["metadata"] == {"resourceVersion": "41"}
    conditions = patch["status"]["conditions"]
    assert conditions[0] == READY
    assert conditions[1]["type"] == SYNCED_CONDITION
    assert conditions[1]["observedGeneration"] == 2
    assert patch["status"]["sync"] == {"reachable": True, "pending": 0, "lastFullSync": NOW}
    assert event is False  # a first True is quiet


def test_nothing_changed_is_no_write_and_the_transition_time_stays() -> None:
    state = SyncState(listed=True, pending=1, last_full_sync=NOW)
    first, _ = status_patch(tenant(), state, now=NOW)
    assert first is not None
    written = tenant(conditions=first["status"]["conditions"], sync=first["status"]["sync"])
    assert status_patch(written, state, now="2026-03-01T00:00:00Z") == (None, False)
    busier, event = status_patch(written, SyncState(listed=True, pending=7, last_full_sync=NOW),
                                 now="2026-03-01T00:00:00Z")
    assert busier is not None
    synced = busier["status"]["conditions"][1]
    assert synced["lastTransitionTime"] == NOW  # still True: no transition
    assert event is False  # the count moved, the state did not
    down, event = status_patch(written, SyncState(listed=True, reachable=False), now="2026-03-01T00:00:00Z")
    assert down is not None
    assert down["status"]["conditions"][1]["lastTransitionTime"] == "2026-03-01T00:00:00Z"
    assert down["status"]["sync"]["reachable"] is False
    assert event is True


def _super(*objs: tuple[Any, dict[str, Any]]) -> FakeServer:
    server = FakeServer("super")
    server.put(resources.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    for resource, obj in objs:
        server.put(resource, obj)
    return server


def _conditions(server: FakeServer, name: str) -> dict[str, dict[str, Any]]:
    obj = server.get(resources.TENANTS, name)
    assert obj is not None
    return {c["type"]: c for c in obj["status"]["conditions"]}


def _events(server: FakeServer) -> list[tuple[str, str, str]]:
    return [(e["involvedObject"]["name"], e["type"], e["reason"]) for e in server.all(resources.EVENTS)]


async def test_writer_adds_its_condition_then_only_changes_with_an_event_each() -> None:
    server = _super((resources.TENANTS, tenant()))
    writer = TenantStatusWriter(cast(ApiClient, server.api()))
    assert await writer.report("acme", SyncState(listed=True, last_full_sync=NOW))
    assert not await writer.report("acme", SyncState(listed=True, last_full_sync=NOW))  # unchanged: no write
    assert await writer.report("acme", SyncState(listed=True, reachable=False, last_full_sync=NOW))
    assert await writer.report("acme", SyncState(listed=True, last_full_sync=NOW))
    got = _conditions(server, "acme")
    assert got["Ready"] == READY
    assert (got[SYNCED_CONDITION]["status"], got[SYNCED_CONDITION]["reason"]) == ("True", SYNCED)
    assert _events(server) == [("acme", "Warning", TENANT_UNREACHABLE), ("acme", "Normal", SYNCED)]
    assert not await writer.report("gone", SyncState(listed=True))  # no such Tenant: nothing, no error


async def test_writer_reads_again_when_the_operator_wrote_meanwhile() -> None:
    server = _super((resources.TENANTS, tenant()))
    api = server.api()
    real_get = api.get_or_none
    calls = 0

    async def get_then_operator_writes(resource: Any, name: str, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        got = await real_get(resource, name, **kw)
        assert got is not None
        if calls == 1:  # the operator's health loop flips Ready between our read and our write
            server.set_status(resources.TENANTS, name, None, {
                **got["status"], "conditions": [{**READY, "status": "False", "reason": "ApiserverUnreachable"}]})
        return got

    api.get_or_none = get_then_operator_writes  # type: ignore[method-assign]
    assert await TenantStatusWriter(cast(ApiClient, api)).report("acme", SyncState(listed=True))
    got = _conditions(server, "acme")
    assert (got["Ready"]["status"], got["Ready"]["reason"]) == ("False", "ApiserverUnreachable")  # not clobbered
    assert got[SYNCED_CONDITION]["status"] == "True"
    assert calls == 2


def _secret(key: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "admin-kubeconfig", "namespace": key},
            "data": data}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("data", "why"), [
    ({}, "has no 'kubeconfig' key"),
    ({"kubeconfig": "%%% not base64 %%%"}, "not a readable value"),
    ({"kubeconfig": _b64("garbage: [")}, "not a usable kubeconfig"),
    ({"kubeconfig": _b64("just a string")}, "not a usable kubeconfig"),
], ids=["no-key", "not-base64", "bad-yaml", "not-a-kubeconfig"])
def test_kubeconfig_problem(data: dict[str, str], why: str) -> None:
    text, problem = kubeconfig_problem(_secret("k", data), "k/admin-kubeconfig")
    assert text is None
    assert why in problem


def test_kubeconfig_fine() -> None:
    assert kubeconfig_problem(_secret("k", {"kubeconfig": _b64(KUBECONFIG)}), "k/x") == (KUBECONFIG, "")


async def test_source_tells_a_broken_kubeconfig_on_the_tenant_and_serves_the_others() -> None:
    broken, fine = tenant("broken"), tenant("fine")
    server = _super((resources.TENANTS, broken), (resources.TENANTS, fine),
                    (resources.SECRETS, _secret("fine-abc123", {"kubeconfig": _b64(KUBECONFIG)})),
                    (resources.SECRETS, _secret("broken-abc123", {"kubeconfig": _b64("garbage: [")})))
    source = CrdTenantSource(cast(ApiClient, server.api()), retry_after=3600)
    assert await source._evaluate("ADDED", server.get(resources.TENANTS, "broken") or {}) is None
    change = await source._evaluate("ADDED", server.get(resources.TENANTS, "fine") or {})
    assert isinstance(change, TenantUp)
    assert change.info.kubeconfig == KUBECONFIG
    synced = _conditions(server, "broken")[SYNCED_CONDITION]
    assert (synced["status"], synced["reason"]) == ("False", KUBECONFIG_UNREADABLE)
    assert "not a usable kubeconfig" in synced["message"]
    assert _conditions(server, "broken")["Ready"] == READY
    assert _events(server) == [("broken", "Warning", KUBECONFIG_UNREADABLE)]
    # The Secret deleted under a served tenant: told the same way, and the tenant is dropped.
    server.delete(resources.SECRETS, "admin-kubeconfig", namespace="fine-abc123", options={})
    bumped = server.get(resources.TENANTS, "fine") or {}
    bumped["metadata"]["generation"] = 3
    down = await source._evaluate("MODIFIED", bumped)
    assert isinstance(down, TenantDown)
    assert down.reason == "kubeconfig unreadable"
    assert _conditions(server, "fine")[SYNCED_CONDITION]["reason"] == KUBECONFIG_UNREADABLE
    await source._evaluate("MODIFIED", server.get(resources.TENANTS, "broken") or {})  # still broken: no new Event
    assert [e for e in _events(server) if e[0] == "broken"] == [("broken", "Warning", KUBECONFIG_UNREADABLE)]
    for handle in source._retries.values():
        handle.cancel()


async def test_source_says_why_a_served_tenant_is_dropped() -> None:
    server = _super((resources.TENANTS, tenant()),
                    (resources.SECRETS, _secret("acme-abc123", {"kubeconfig": _b64(KUBECONFIG)})))
    source = CrdTenantSource(cast(ApiClient, server.api()))
    assert isinstance(await source._evaluate("ADDED", server.get(resources.TENANTS, "acme") or {}), TenantUp)
    degraded = tenant(conditions=[{**READY, "status": "False", "reason": "ApiserverUnreachable"}])
    server.set_status(resources.TENANTS, "acme", None, degraded["status"])
    await source._evaluate("MODIFIED", server.get(resources.TENANTS, "acme") or {})
    synced = _conditions(server, "acme")[SYNCED_CONDITION]
    assert (synced["status"], synced["reason"]) == ("False", NOT_SERVED)
    assert "ApiserverUnreachable" in synced["message"]




def _edit(server: FakeServer, secret: dict[str, Any]) -> None:
    server.replace(resources.SECRETS, secret, namespace=None, subresource=None)


async def _next(changes: Any) -> Any:
    return await asyncio.wait_for(anext(changes), timeout=5)


async def test_source_reads_a_served_tenants_secret_again() -> None:
    """A Secret edited under a served tenant changes nothing on the Tenant: only reading it again
    tells.  Corrupted → told (``KubeconfigUnreadable``) and dropped; restored → served again; naming
    another server → served with it (the engine replaces the tenant's clients)."""
    server = _super((resources.TENANTS, tenant()),
                    (resources.SECRETS, _secret("acme-abc123", {"kubeconfig": _b64(KUBECONFIG)})))
    source = CrdTenantSource(cast(ApiClient, server.api()), secret_recheck=0.05, retry_after=0.05)
    changes = cast(AsyncGenerator[Any, None], source.changes())
    try:
        up = await _next(changes)
        assert isinstance(up, TenantUp)
        assert up.info.kubeconfig == KUBECONFIG
        # unchanged Secret, read again and again: nothing to say
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(anext_task := asyncio.ensure_future(anext(changes))), 0.3)
        _edit(server, _secret("acme-abc123", {"kubeconfig": _b64("clusters: [oops")}))
        down = await asyncio.wait_for(anext_task, timeout=5)
        assert isinstance(down, TenantDown)
        assert (down.key, down.reason) == ("acme-abc123", "kubeconfig unreadable")
        synced = _conditions(server, "acme")[SYNCED_CONDITION]
        assert (synced["status"], synced["reason"]) == ("False", KUBECONFIG_UNREADABLE)
        assert _events(server) == [("acme", "Warning", KUBECONFIG_UNREADABLE)]
        _edit(server, _secret("acme-abc123", {"kubeconfig": _b64(KUBECONFIG)}))
        again = await _next(changes)
        assert isinstance(again, TenantUp)
        assert again.info.kubeconfig == KUBECONFIG
        elsewhere = KUBECONFIG.replace("127.0.0.1:6443", "127.0.0.1:7443")
        _edit(server, _secret("acme-abc123", {"kubeconfig": _b64(elsewhere)}))
        moved = await _next(changes)
        assert isinstance(moved, TenantUp)
        assert moved.info.kubeconfig == elsewhere
    finally:
        await changes.aclose()


async def test_source_reads_secrets_again_only_when_asked() -> None:
    server = _super((resources.TENANTS, tenant()),
                    (resources.SECRETS, _secret("acme-abc123", {"kubeconfig": _b64(KUBECONFIG)})))
    source = CrdTenantSource(cast(ApiClient, server.api()), secret_recheck=0, retry_after=3600)
    changes = cast(AsyncGenerator[Any, None], source.changes())
    try:
        assert isinstance(await _next(changes), TenantUp)
        _edit(server, _secret("acme-abc123", {"kubeconfig": _b64("clusters: [oops")}))
        pending = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)
        assert not pending.done()  # 0: no reads of served tenants' Secrets
        assert source.recheck_served() == 1
        down = await asyncio.wait_for(pending, timeout=5)
        assert isinstance(down, TenantDown)
    finally:
        await changes.aclose()
