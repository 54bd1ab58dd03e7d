"""URL building of resource descriptors."""

import pytest

from vcluster.kube import resources as r


@pytest.mark.parametrize(
    ("resource", "kwargs", "expected"),
    [
        pytest.param(r.PODS, {}, "/api/v1/pods", id="core-all-namespaces"),
        pytest.param(r.PODS, {"namespace": "a"}, "/api/v1/namespaces/a/pods", id="core-namespaced"),
        pytest.param(r.PODS, {"namespace": "a", "name": "p"}, "/api/v1/namespaces/a/pods/p", id="core-object"),
        pytest.param(
            r.PODS, {"namespace": "a", "name": "p", "subresource": "binding"},
            "/api/v1/namespaces/a/pods/p/binding", id="subresource",
        ),
        pytest.param(r.NAMESPACES, {"namespace": "ignored", "name": "x"}, "/api/v1/namespaces/x", id="cluster-scoped"),
        pytest.param(
            r.DEPLOYMENTS, {"namespace": "n", "name": "d"}, "/apis/apps/v1/namespaces/n/deployments/d", id="group",
        ),
        pytest.param(
            r.TENANTS, {"name": "t", "subresource": "status"},
            "/apis/tenancy.virtualcluster.dev/v1alpha1/tenants/t/status", id="our-crd-status",
        ),
        pytest.param(r.PODS, {"namespace": "a/b", "name": "c d"}, "/api/v1/namespaces/a%2Fb/pods/c%20d", id="quoted"),
    ],
)
def test_path(resource: r.Resource, kwargs: dict[str, str], expected: str) -> None:
    assert resource.path(**kwargs) == expected


def test_api_version() -> None:
    assert r.PODS.api_version == "v1"
    assert r.LEASES.api_version == "coordination.k8s.io/v1"


def test_registry_is_keyed_by_kind() -> None:
    assert all(kind == res.kind for kind, res in r.BY_KIND.items())
    assert r.BY_KIND["Tenant"] is r.TENANTS
