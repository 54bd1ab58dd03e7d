"""The ``default`` namespace's ServiceAccount, made by the operator on a Tenant's way to Ready.

Why: a Tenant is Ready once its users can run pods in ``default``, which the apiserver refuses until that
namespace's ``default`` ServiceAccount exists.  The operator makes it instead of waiting for the
controller-manager to (issue 16); these tests state the three answers it meets, against the fake
apiserver of the syncer's tests (a namespaced create in a missing namespace is NotFound there too).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.syncer.fakeapi import FakeServer
from vcluster.kube import ApiClient, resources
from vcluster.operator.reconcile import ensure_default_account


def _api(server: FakeServer) -> ApiClient:
    return cast(ApiClient, server.api())


async def test_the_account_is_made_once_the_default_namespace_exists() -> None:
    server = FakeServer("tenant")
    tries: list[str] = []

    def namespace_appears_on_the_third_try(verb: str, resource: Any, ns: str | None, name: str) -> None:
        tries.append(verb)
        if len(tries) == 3:
            server.put(resources.NAMESPACES, {"metadata": {"name": "default"}})

    server.admission.append(namespace_appears_on_the_third_try)
    await ensure_default_account(_api(server), within=5, poll=0.001)
    account = server.get(resources.SERVICEACCOUNTS, "default", "default")
    assert account is not None
    assert account["metadata"]["name"] == "default"
    assert tries == ["create"] * 3
    assert [w[:4] for w in server.writes] == [("create", "serviceaccounts", "default", "default")]


async def test_an_account_made_already_is_left_as_it_is() -> None:
    server = FakeServer("tenant")
    server.put(resources.NAMESPACES, {"metadata": {"name": "default"}})
    made = server.put(resources.SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "default",
                                                               "labels": {"by": "controller-manager"}}})
    await ensure_default_account(_api(server), within=5, poll=0.001)
    assert server.get(resources.SERVICEACCOUNTS, "default", "default") == made
    assert server.writes == []


async def test_no_default_namespace_is_a_timeout() -> None:
    server = FakeServer("tenant")
    with pytest.raises(TimeoutError, match="the namespace default did not appear"):
        await ensure_default_account(_api(server), within=0.02, poll=0.001)
    assert server.get(resources.SERVICEACCOUNTS, "default", "default") is None
