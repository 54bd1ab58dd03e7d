"""The kinds' I/O hooks, run against a fake :class:`~syncer.resources.base.KindIO`.

Why fakes: a hook's contract is which reads and writes it asks for (create a token Secret, delete a
tenant pod, create policy objects); the fake records them.  The real clusters see the same hooks in
``e2e/test_syncer.py`` (tokens, DNS, lost pods) and ``e2e/test_syncer_kinds.py`` (policy objects).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from syncer.resources import BY_KIND
from syncer.resources import endpoints as endpoints_mod
from syncer.resources import pod as pod_mod
from syncer.resources import tokens as tokens_mod
from syncer.resources.base import Obj, RetryLater, TranslateContext, super_namespace
from vcluster import naming
from vcluster.kube import ApiClient, NotFound, Resource

KEY = naming.cluster_key("acme", "u1")
P_NS = naming.super_namespace(KEY, "shop")
CTX = TranslateContext(key=KEY, tenant_name="acme", tenant_uid="u1")


class FakeApi:
    """Records writes; ``create`` of a TokenRequest answers a token (or NotFound for unknown accounts)."""

    def __init__(self, *, accounts: tuple[str, ...] = ("default", "builder")) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.patches: list[Obj] = []
        self.accounts = accounts
        self.config = type("Config", (), {"ca_pem": b"TENANT-CA"})()

    async def create(self, resource: Resource, body: Obj, *, namespace: str | None = None, name: str | None = None,
                     subresource: str | None = None, **_: Any) -> Obj:
        if subresource == "token":
            if name not in self.accounts:
                raise NotFound(404, "NotFound", "serviceaccounts not found")
            self.calls.append(("token", f"{namespace}/{name}", ""))
            return {"status": {"token": f"token-of-{name}"}}
        self.calls.append(("create", resource.kind, body["metadata"]["name"]))
        return {}

    async def patch(self, resource: Resource, name: str, body: Obj, *, namespace: str | None = None,
                    **_: Any) -> Obj:
        self.calls.append(("patch", resource.kind, f"{namespace}/{name}"))
        self.patches.append(body)
        return {}


@dataclass
class FakeIO:
    """A KindIO over plain dicts: tenant cache by (kind, ns, name), super cache by (kind, p_ns, name)."""

    tenant: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    super_: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    api: FakeApi = field(default_factory=FakeApi)
    super_writes: FakeApi = field(default_factory=FakeApi)
    writes: list[tuple[str, ...]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    scratch: dict[str, Any] = field(default_factory=dict)
    ctx: TranslateContext = field(default_factory=lambda: CTX)

    @property
    def tenant_api(self) -> ApiClient:
        return cast(ApiClient, self.api)

    @property
    def super_api(self) -> ApiClient:
        return cast(ApiClient, self.super_writes)

    @property
    def tenant_spec(self) -> Mapping[str, Any]:
        return self.spec

    @property
    def token_expiration(self) -> int:
        return 3600

    def tenant_get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.tenant.get((kind, namespace, name))

    def tenant_in(self, kind: str, namespace: str | None) -> list[Obj]:
        return [o for (k, ns, _n), o in self.tenant.items() if k == kind and namespace in (None, ns)]

    def super_get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.super_.get((kind, namespace or "", name))

    async def create_super(self, kind: str, body: Obj, *, tenant_namespace: str) -> None:
        self.writes.append(("create_super", kind, body["metadata"]["namespace"], body["metadata"]["name"]))
        self.super_[(kind, body["metadata"]["namespace"], body["metadata"]["name"])] = body

    async def delete_super(self, kind: str, p_slim: Obj) -> None:
        self.writes.append(("delete_super", kind, p_slim["metadata"]["namespace"], p_slim["metadata"]["name"]))

    async def delete_tenant(self, kind: str, v_obj: Obj, *, grace: int | None = None) -> None:
        self.writes.append(("delete_tenant", kind, v_obj["metadata"]["name"], str(grace)))

    def count(self, kind: str, direction: str, op: str) -> None:
        self.writes.append(("count", kind, direction, op))


def v_pod(*, sa: str = "builder", bound: bool = False, token: bool = True, links: bool = True) -> Obj:
    spec: Obj = {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}
    if token:
        spec["volumes"] = [{"name": "kube-api-access-x", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}]
    if bound:
        spec["nodeName"] = "n1"
    if not links:
        spec["enableServiceLinks"] = False
    status = {"conditions": [{"type": "PodScheduled", "status": "True"}]} if bound else {}
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"}, "spec": spec, "status": status}


# ---- pods: before create --------------------------------------------------------------------------
@pytest.mark.parametrize(("pod", "refused", "go_on", "writes"), [
    (v_pod(), False, True, []),
    (v_pod(), True, False, []),
    (v_pod(bound=True), False, False, [("delete_tenant", "Pod", "web", "0")]),
], ids=["fresh", "refused-before", "lost"])
async def test_pod_before_create(pod: Obj, refused: bool, go_on: bool, writes: list[tuple[str, ...]]) -> None:
    io = FakeIO(refused={"pod-uid"} if refused else set())
    assert await pod_mod.before_create(io, pod) is go_on
    assert io.writes == writes


# ---- pods: token Secret -------------------------------------------------------------------------------
async def test_pod_prepare_makes_the_token_secret_once() -> None:
    io = FakeIO()
    await pod_mod.prepare(io, v_pod())
    await pod_mod.prepare(io, v_pod())
    secret_name = naming.token_secret_name("builder")
    assert io.api.calls == [("token", "shop/builder", "")]
    assert io.writes == [("create_super", "Secret", P_NS, secret_name),
                         ("count", tokens_mod.COUNT_KIND, "down", "create")]
    secret = io.super_[("Secret", P_NS, secret_name)]
    assert base64.b64decode(secret["data"][tokens_mod.TOKEN_KEY]) == b"token-of-builder"
    assert base64.b64decode(secret["data"][tokens_mod.CA_KEY]) == b"TENANT-CA"
    assert base64.b64decode(secret["data"][tokens_mod.NAMESPACE_KEY]) == b"shop"
    assert tokens_mod.is_token_secret(secret)
    assert BY_KIND["Secret"].foreign_super is not None
    assert BY_KIND["Secret"].foreign_super(secret)


async def test_pod_prepare_reuses_a_token_secret_in_the_super_cache() -> None:
    io = FakeIO(super_={("Secret", P_NS, naming.token_secret_name("builder")): {"metadata": {}}})
    await pod_mod.prepare(io, v_pod())
    assert io.api.calls == []
    assert io.writes == []


async def test_pod_without_token_volume_needs_no_secret() -> None:
    io = FakeIO()
    await pod_mod.prepare(io, v_pod(token=False))
    assert io.api.calls == []
    assert io.writes == []


async def test_pod_of_an_unknown_service_account_retries() -> None:
    io = FakeIO()
    with pytest.raises(RetryLater, match="shop/ghost"):
        await pod_mod.prepare(io, v_pod(sa="ghost"))
    assert io.writes == []


# ---- service accounts: token clean-up ---------------------------------------------------------------
@pytest.mark.parametrize(("name", "deleted"), [("builder", True), ("default", False), ("nobody", False)],
                         ids=["with-token", "default-is-the-super-clusters", "no-token"])
async def test_service_account_gone_deletes_its_token_secret(name: str, deleted: bool) -> None:
    secret = {"metadata": {"namespace": P_NS, "name": naming.token_secret_name("builder")}}
    io = FakeIO(super_={("Secret", P_NS, naming.token_secret_name(n)): secret for n in ("builder", "default")})
    hook = BY_KIND["ServiceAccount"].on_gone
    assert hook is not None
    await hook(io, "shop", name)
    assert io.writes == ([("delete_super", "Secret", P_NS, naming.token_secret_name("builder"))] if deleted else [])


# ---- pods: translation context --------------------------------------------------------------------
def test_pod_context_points_at_the_tenant_dns_and_its_namespace_services() -> None:
    io = FakeIO()
    assert pod_mod.context(io, v_pod(), False) is io.ctx, "no DNS service yet: the tenant context itself"
    io.super_[("Service", super_namespace(KEY, "kube-system"), "kube-dns")] = {"clusterIP": "10.0.0.10"}
    io.tenant[("Service", "shop", "db")] = {"metadata": {"name": "db", "namespace": "shop"},
                                           "spec": {"ports": [{"port": 5432}]}}
    io.tenant[("Service", "other", "cache")] = {"metadata": {"name": "cache", "namespace": "other"}, "spec": {}}
    io.super_[("Service", P_NS, "db")] = {"clusterIP": "10.0.0.20"}
    updating = pod_mod.context(io, v_pod(), False)
    assert updating.dns_ip == "10.0.0.10"
    assert updating.service_links == ()
    assert pod_mod.context(io, v_pod(), False) is updating, "one context per DNS address"
    creating = pod_mod.context(io, v_pod(), True)
    assert creating.dns_ip == "10.0.0.10"
    assert creating.service_links == (("db", "10.0.0.20", ({"port": 5432},)),)
    assert pod_mod.context(io, v_pod(), True) is creating, "unchanged links: the same context"
    assert pod_mod.context(io, v_pod(links=False), True).service_links == ()


def test_pod_context_prefers_the_tenant_dns_the_operator_provides() -> None:
    """``status.dns.clusterIP`` (in the tenant context) wins over a tenant's own kube-dns copy."""
    io = FakeIO(ctx=dataclasses.replace(CTX, dns_ip="10.96.7.7"))
    io.super_[("Service", super_namespace(KEY, "kube-system"), "kube-dns")] = {"clusterIP": "10.0.0.10"}
    assert pod_mod.context(io, v_pod(), False).dns_ip == "10.96.7.7"


# ---- endpoints: only for selector-less services --------------------------------------------------
@pytest.mark.parametrize(("service", "synced"), [
    (None, True),
    ({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {}}, True),
    ({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"selector": {"app": "web"}}}, False),
], ids=["no-service", "selector-less", "with-selector"])
def test_endpoints_sync_filter(service: Obj | None, synced: bool) -> None:
    io = FakeIO(tenant={("Service", "shop", "ext"): service} if service is not None else {})
    assert endpoints_mod.sync_filter(io, {"metadata": {"name": "ext", "namespace": "shop"}}) is synced
    assert BY_KIND["Service"].also_queue == ("Endpoints",)


# ---- namespaces: isolation policy in a new super namespace -------------------------------------
@pytest.mark.parametrize(("spec", "kinds"), [
    ({}, []),
    ({"isolation": {}}, ["NetworkPolicy"]),
    ({"isolation": {"resourceQuota": {"hard": {"pods": "10"}}, "networkPolicy": False}}, ["ResourceQuota"]),
    ({"isolation": {"podSecurity": "nonsense"}}, []),
], ids=["no-spec", "default-network-policy", "quota-only", "bad-spec"])
async def test_namespace_after_create_applies_the_policy(spec: Obj, kinds: list[str]) -> None:
    io = FakeIO(spec=spec)
    hook = BY_KIND["Namespace"].after_create
    assert hook is not None
    await hook(io, {"metadata": {"name": P_NS}})
    assert [kind for _op, kind, _name in io.super_writes.calls] == kinds


def test_a_service_change_queues_its_endpoints_too() -> None:
    from syncer import routing
    from syncer.queue import DOWN
    from tests.syncer.engine_helpers import drain, offline_syncer

    syncer, rt = offline_syncer()
    routing.tenant_handler(syncer.shared, rt, BY_KIND["Service"])(
        "MODIFIED", {"metadata": {"name": "ext", "namespace": "shop", "uid": "s1"}})
    routing.tenant_handler(syncer.shared, rt, BY_KIND["ConfigMap"])(
        "MODIFIED", {"metadata": {"name": "cfg", "namespace": "shop", "uid": "c1"}})
    assert [(k.kind, k.direction, k.name) for k in drain(syncer)] == [
        ("Service", DOWN, "ext"), ("Endpoints", DOWN, "ext"), ("ConfigMap", DOWN, "cfg")]
