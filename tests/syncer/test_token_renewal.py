"""Pod tokens are short-lived and renewed in place (issue 12 item 6): when a token Secret is due, and
what renewing writes (a new TokenRequest into the same Secret, with its new issue/expiry times)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from syncer.resources import tokens
from syncer.resources.base import Obj
from syncer.settings import SyncerSettings
from tests.syncer.test_kind_hooks import KEY, P_NS, FakeIO, v_pod
from vcluster import naming
from vcluster.settings import SettingsError

T0 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def secret(issued: str | None, expires: str | None, sa: str = "builder") -> Obj:
    return tokens.token_secret(key=KEY, tenant_name="acme", namespace="shop", service_account=sa,
                               token="old", ca_pem=b"CA", issued=issued or "", expires=expires or "")


@pytest.mark.parametrize(("issued", "expires", "now", "due"), [
    ("2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z", T0 + dt.timedelta(minutes=29), False),
    ("2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z", T0 + dt.timedelta(minutes=30), True),
    ("2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z", T0 + dt.timedelta(hours=2), True),
    (None, None, T0, True),  # a Secret from before renewal (a one-year token): renewed to a short one
    ("2026-11-30T10:00:00Z", "garbage", T0, True),
    ("2026-11-30T10:00:00Z", "2026-11-30T09:00:00Z", T0, True),
], ids=["young", "half-life", "expired", "no-times", "bad-time", "expires-before-issued"])
def test_renewal_due(issued: str | None, expires: str | None, now: dt.datetime, due: bool) -> None:
    assert tokens.renewal_due(secret(issued, expires), now=now, refresh_at=0.5) is due


async def test_a_new_token_is_made_with_its_times_and_renewed_in_place() -> None:
    io = FakeIO()
    await tokens.ensure_token(io, "shop", "builder")
    made = io.super_[("Secret", P_NS, naming.token_secret_name("builder"))]
    ann = made["metadata"]["annotations"]
    assert ann[naming.ANN_TOKEN_ISSUED]
    # the fake TokenRequest answers no expiry: treated as due (never kept for ever)
    assert tokens.renewal_due(made, now=T0, refresh_at=0.5)
    young = secret("2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z")
    old = secret("2026-11-30T09:00:00Z", "2026-11-30T10:00:00Z", sa="default")
    renewed = await tokens.renew_due(io, [young, old], now=T0 + dt.timedelta(minutes=40), refresh_at=0.75)
    assert renewed == 1
    assert io.api.calls[-1] == ("token", "shop/default", "")
    assert io.super_writes.calls[-1] == ("patch", "Secret", f"{P_NS}/{naming.token_secret_name('default')}")
    (patch,) = io.super_writes.patches
    assert base64.b64decode(patch["data"][tokens.TOKEN_KEY]) == b"token-of-default"
    assert set(patch["metadata"]["annotations"]) == {naming.ANN_TOKEN_ISSUED, naming.ANN_TOKEN_EXPIRES}


async def test_a_token_of_a_deleted_account_is_not_renewed() -> None:
    io = FakeIO()
    gone = secret(None, None, sa="ghost")
    assert await tokens.renew_due(io, [gone], now=T0, refresh_at=0.5) == 0
    assert io.super_writes.calls == []


def test_token_settings() -> None:
    s = SyncerSettings.from_env({})
    assert s.token_expiration == 3600
    assert s.token_refresh_at == 0.5
    assert SyncerSettings.from_env({"VC_SYNCER_TOKEN_REFRESH_AT": "0.01"}).token_refresh_at == 0.01
    with pytest.raises(SettingsError, match="VC_SYNCER_TOKEN_REFRESH_AT"):
        SyncerSettings.from_env({"VC_SYNCER_TOKEN_REFRESH_AT": "1"})
    with pytest.raises(SettingsError, match="VC_SYNCER_TOKEN_EXPIRATION"):
        SyncerSettings.from_env({"VC_SYNCER_TOKEN_EXPIRATION": "60"})
    assert v_pod()  # the pod of the hooks' tests mounts a token: what makes the Secret at all
