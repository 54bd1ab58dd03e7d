"""The quota in force: operator defaults (settings), what the operator writes to the Tenant status, and
what the syncer reads back from it (one path from the operator's settings to the syncer's gate)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from syncer.tenants import spec_in_force, tenant_quota
from tenant_crd.models import IsolationSpec, LimitRangeSpec, TenantSpec
from vcluster import policy, quota
from vcluster.operator.reconcile import policy_status
from vcluster.operator.settings import DEFAULT_CONTAINER_REQUESTS, DEFAULT_TENANT_QUOTA, OperatorSettings
from vcluster.settings import SettingsError


def test_settings_defaults_override_and_none() -> None:
    s = OperatorSettings.from_env({})
    assert dict(s.default_quota) == dict(DEFAULT_TENANT_QUOTA)
    assert dict(s.default_requests) == dict(DEFAULT_CONTAINER_REQUESTS)
    assert dict(s.default_limits) == {}
    s = OperatorSettings.from_env({"VC_OPERATOR_DEFAULT_QUOTA": "pods=3, requests.cpu=500m",
                                   "VC_OPERATOR_DEFAULT_REQUESTS": "none", "VC_OPERATOR_DEFAULT_LIMITS": "memory=1Gi"})
    assert dict(s.default_quota) == {"pods": "3", "requests.cpu": "500m"}
    assert dict(s.default_requests) == {}
    assert dict(s.default_limits) == {"memory": "1Gi"}
    assert dict(OperatorSettings.from_env({"VC_OPERATOR_DEFAULT_QUOTA": "none"}).default_quota) == {}


@pytest.mark.parametrize("raw", ["pods", "pods=lots"])
def test_settings_bad_quota_is_a_clear_error(raw: str) -> None:
    with pytest.raises(SettingsError, match="VC_OPERATOR_DEFAULT_QUOTA"):
        OperatorSettings.from_env({"VC_OPERATOR_DEFAULT_QUOTA": raw})


def test_with_defaults_only_where_the_tenant_names_none() -> None:
    dflt = policy.with_defaults(IsolationSpec(), quota={"pods": "9"}, requests={"cpu": "100m"})
    assert dflt.resource_quota == {"pods": "9"}
    assert dflt.limit_range == LimitRangeSpec(default_requests={"cpu": "100m"})
    own = IsolationSpec(resource_quota={"pods": "2"}, limit_range=LimitRangeSpec(defaults={"cpu": "1"}))
    assert policy.with_defaults(own, quota={"pods": "9"}, requests={"cpu": "100m"}) == own
    # an explicit empty quota opts out of the default
    opted = IsolationSpec(resource_quota={})
    assert policy.with_defaults(opted, quota={"pods": "9"}).resource_quota == {}
    assert policy.policy_objects(policy.with_defaults(opted, quota={"pods": "9"}), super_namespace="n",
                                 cluster_key="k", tenant_name="t")[0]["kind"] == "NetworkPolicy"


def test_status_written_by_the_operator_is_read_back_by_the_syncer() -> None:
    asked = TenantSpec.from_dict({"isolation": {"podSecurity": "baseline"}}).isolation
    in_force = policy.with_defaults(asked, quota={"pods": "4", "cpu": "2"}, requests={"cpu": "100m"})
    old = {"quota": {"hard": {"services": "1"}, "used": {"pods": "1"}}}
    status = policy_status(old, asked, in_force)
    assert status["quota"] == {"hard": {"cpu": "2", "pods": "4", "services": None}, "source": "OperatorDefault"}
    assert status["limitRange"] == {"defaults": {}, "defaultRequests": {"cpu": "100m"}, "source": "OperatorDefault"}
    # the syncer: the spec in force, and the quota it gates on
    merged: dict[str, Any] = {"quota": {"hard": {k: v for k, v in status["quota"]["hard"].items() if v}},
                              "limitRange": status["limitRange"]}
    spec, from_default = spec_in_force({"isolation": {"podSecurity": "baseline"}}, merged)
    assert from_default
    isolation = TenantSpec.from_dict(spec).isolation
    limits = tenant_quota(isolation, from_default=from_default)
    assert limits is not None
    assert limits.hard == {"requests.cpu": Decimal(2), "pods": Decimal(4)}
    assert limits.names == ("cpu", "pods")
    assert limits.limit_range == LimitRangeSpec(default_requests={"cpu": "100m"})
    assert limits.source == quota.SOURCE_DEFAULT


def test_a_tenant_quota_is_its_own_and_none_removes_the_status() -> None:
    asked = TenantSpec.from_dict({"isolation": {"resourceQuota": {"hard": {"pods": 2}}}}).isolation
    status = policy_status({}, asked, policy.with_defaults(asked, quota={"pods": "9"}))
    assert status["quota"] == {"hard": {"pods": "2"}, "source": "Tenant"}
    assert status["limitRange"] is None
    spec, from_default = spec_in_force({"isolation": {"resourceQuota": {"hard": {"pods": 2}}}},
                                       {"quota": {"hard": {"pods": "2"}}})
    assert not from_default
    limits = tenant_quota(TenantSpec.from_dict(spec).isolation)
    assert limits is not None
    assert limits.source == quota.SOURCE_TENANT
    none = TenantSpec.from_dict({"isolation": {"resourceQuota": {"hard": {}}}}).isolation
    assert policy_status({"quota": {"hard": {"pods": "2"}}}, none, none)["quota"] is None
    assert tenant_quota(none) is None
