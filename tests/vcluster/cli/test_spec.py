"""create's options and files become the Tenant the user meant, or a one-line usage error."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster import naming
from vcluster.cli.errors import UsageError
from vcluster.cli.spec import parse_quota, tenant_from_options, tenant_from_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("cpu=2", {"cpu": "2"}, id="one"),
        pytest.param("cpu=2,memory=4Gi", {"cpu": "2", "memory": "4Gi"}, id="two"),
        pytest.param(" cpu = 500m , pods=10 ,", {"cpu": "500m", "pods": "10"}, id="spaces-trailing-comma"),
        pytest.param("requests.storage=1Ti", {"requests.storage": "1Ti"}, id="dotted-resource"),
        pytest.param("nvidia.com/gpu=1", {"nvidia.com/gpu": "1"}, id="extended-resource"),
    ],
)
def test_parse_quota(text: str, expected: dict[str, str]) -> None:
    assert parse_quota(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "--quota is empty", id="empty"),
        pytest.param("cpu", "expected RESOURCE=QUANTITY", id="no-equals"),
        pytest.param("=2", "expected RESOURCE=QUANTITY", id="no-key"),
        pytest.param("cpu=", "expected RESOURCE=QUANTITY", id="no-value"),
        pytest.param("cpu=two", "not a quantity", id="word"),
        pytest.param("cpu=2,cpu=3", "twice", id="duplicate"),
        pytest.param("c p u=2", "not a resource name", id="space-in-key"),
    ],
)
def test_parse_quota_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_quota(text)


@pytest.mark.parametrize(
    ("options", "spec"),
    [
        pytest.param({}, {}, id="defaults-left-to-the-crd"),
        pytest.param({"kube_version": "v1.36.3", "backend": "pods"},
                     {"controlPlane": {"version": "v1.36.3", "backend": "pods"}}, id="control-plane"),
        pytest.param({"cluster_version": "standard"}, {"controlPlane": {"clusterVersionRef": "standard"}},
                     id="cluster-version"),
        pytest.param({"owners": ["alice", "bob", "alice"], "owner_groups": ["devs"]},
                     {"owners": {"users": ["alice", "bob"], "groups": ["devs"]}}, id="owners-deduplicated"),
        pytest.param({"pod_security": "restricted", "quota": "cpu=2,memory=4Gi"},
                     {"isolation": {"podSecurity": "restricted",
                                    "resourceQuota": {"hard": {"cpu": "2", "memory": "4Gi"}}}}, id="isolation"),
    ],
)
def test_tenant_from_options(options: dict[str, Any], spec: dict[str, Any]) -> None:
    obj = tenant_from_options(name="team-a", **options)
    assert obj == {"apiVersion": naming.API_VERSION, "kind": "Tenant", "metadata": {"name": "team-a"}, "spec": spec}


def test_version_and_cluster_version_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="either --version or --cluster-version"):
        tenant_from_options(name="a", kube_version="v1.36.3", cluster_version="x")


def test_empty_owner_is_refused() -> None:
    with pytest.raises(UsageError, match="--owner must not be empty"):
        tenant_from_options(name="a", owners=[" "])


GOOD = f"""
apiVersion: {naming.API_VERSION}
kind: Tenant
metadata:
  name: from-file
spec:
  isolation:
    podSecurity: restricted
status:
  phase: Ready
"""


def test_tenant_from_text_drops_status_and_keeps_spec() -> None:
    obj = tenant_from_text(GOOD, source="t.yaml")
    assert obj["metadata"]["name"] == "from-file"
    assert obj["spec"] == {"isolation": {"podSecurity": "restricted"}}
    assert "status" not in obj


def test_name_from_command_line_fills_a_nameless_file() -> None:
    text = f"apiVersion: {naming.API_VERSION}\nkind: Tenant\nspec: {{}}\n"
    assert tenant_from_text(text, source="t.yaml", name="given")["metadata"]["name"] == "given"


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        pytest.param("a: [", None, "not valid YAML", id="bad-yaml"),
        pytest.param("", None, "found 0 documents", id="empty"),
        pytest.param(GOOD + "---\n" + GOOD, None, "found 2 documents", id="two-docs"),
        pytest.param("- 1\n", None, "expected a Tenant object", id="a-list"),
        pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", None, "expected apiVersion",
                     id="wrong-kind"),
        pytest.param(GOOD, "other", "names tenant 'from-file' but the command line says 'other'",
                     id="name-mismatch"),
        pytest.param(f"apiVersion: {naming.API_VERSION}\nkind: Tenant\n", None, "no metadata.name",
                     id="no-name"),
        pytest.param(GOOD.replace("from-file", "From_File"), None, "not a DNS label", id="bad-name"),
        pytest.param(GOOD.replace("restricted", "lax"), None, "podSecurity", id="bad-enum"),
        pytest.param(GOOD.replace("podSecurity: restricted", "resourceQuota: {hard: {cpu: lots}}"), None,
                     "not a quantity", id="bad-quota"),
    ],
)
def test_tenant_from_text_errors(text: str, name: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        tenant_from_text(text, source="t.yaml", name=name)
