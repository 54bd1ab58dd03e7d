"""Credential lifetimes on the test bed: pod tokens the syncer hands out are short-lived and renewed.

Why: a super pod authenticates to its tenant apiserver with a token the
syncer asked the tenant's TokenRequest API for and keeps in a super Secret; a
token of a year that is never rotated outlives every leak.  Here the syncer
runs with the API's shortest validity (600 s) and renews at 1 % of it, so the
renewal is seen within seconds: the Secret's token changes, the new token is
valid (a TokenReview by the tenant apiserver) and expires 600 s after issue.
One tenant from the session operator, one syncer, kwok nodes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.operator_fixtures import TenantHandle, create_tenant, vc_operator  # noqa: F401  (fixture)
from e2e.syncer_fixtures import SyncerProcess, apply, kjson, running_syncer, wait_for
from syncer.resources.tokens import TOKEN_KEY
from vcluster import naming

pytestmark = pytest.mark.e2e

NS = "creds"
VALIDITY = 600


@pytest.fixture(scope="module")
def tenant(super_cluster: Any, vc_operator: Any) -> TenantHandle:  # noqa: F811
    return create_tenant(super_cluster, f"creds-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def syncer(super_cluster: Any, tenant: Any, tmp_path_factory: pytest.TempPathFactory,
           component_logs: dict[str, Path]) -> Iterator[SyncerProcess]:
    env = {"VC_SYNCER_TOKEN_EXPIRATION": str(VALIDITY), "VC_SYNCER_TOKEN_REFRESH_AT": "0.01",
           "VC_SYNCER_TOKEN_REFRESH_PERIOD": "1"}
    with running_syncer(super_cluster, tmp_path_factory, component_logs, log_dir="syncer-creds",
                        log_key="syncer", env=env) as proc:
        yield proc


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_pod_tokens_are_short_lived_and_renewed(super_cluster: Any, tenant: TenantHandle,
                                                syncer: SyncerProcess) -> None:
    apply(tenant, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": NS},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    p_ns = naming.super_namespace(tenant.cluster_key, NS)
    name = naming.token_secret_name("default")

    def token() -> str | None:
        got = kjson(super_cluster.kubectl, "get", "secret", name, "-n", p_ns)
        raw = ((got or {}).get("data") or {}).get(TOKEN_KEY)
        return base64.b64decode(raw).decode() if raw else None

    first = wait_for("token Secret", token, syncer=syncer)
    claims = _claims(first)
    assert claims["exp"] - claims["iat"] == VALIDITY  # not a year
    second = wait_for("renewed token", lambda: (t := token()) != first and t, syncer=syncer)
    renewed = _claims(second)
    assert renewed["exp"] - renewed["iat"] == VALIDITY
    assert renewed["iat"] >= claims["iat"]
    # the new token is one the tenant apiserver accepts, for the pod's service account
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": second}}
    answer = json.loads(tenant.kubectl("create", "-f", "-", "-o", "json", input=yaml.safe_dump(review)).stdout)
    assert answer["status"]["authenticated"] is True
    assert answer["status"]["user"]["username"] == f"system:serviceaccount:{NS}:default"
    # the super pod mounts the Secret (the kubelet keeps the file current), not a token of its own
    p_pod = wait_for("super pod", lambda: kjson(super_cluster.kubectl, "get", "pod", "app", "-n", p_ns),
                     syncer=syncer)
    sources = [s for v in p_pod["spec"].get("volumes") or [] for s in (v.get("projected") or {}).get("sources") or []]
    assert any((s.get("secret") or {}).get("name") == name for s in sources), p_pod["spec"].get("volumes")
