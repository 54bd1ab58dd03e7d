"""A tenant DNS server is only started where pods can reach it.

Why: on a loopback host (the test bed without real nodes) no pod reaches the server, so running one
per tenant only costs memory, CPU and start-up time (and made provisioning wait for it on a loaded
machine).  The reconciler must not touch the API or start a process for it there.
"""

from __future__ import annotations

from pathlib import Path

from vcluster.controlplane.local import LocalBackend
from vcluster.kube import ApiClient, ClientConfig
from vcluster.operator.reconcile import Reconciler
from vcluster.settings import BinarySettings


def _reconciler(tmp_path: Path, host: str) -> Reconciler:
    # an apiserver nobody listens on: any request would fail the test with a connection error
    return Reconciler(api=ApiClient(ClientConfig(server="https://127.0.0.1:1")),
                      local=LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings(), host=host))


async def test_no_tenant_dns_on_a_loopback_host(tmp_path: Path) -> None:
    reconciler = _reconciler(tmp_path, "127.0.0.1")
    assert reconciler.dns.enabled
    assert await reconciler.ensure_dns("t-abc123", "t", "local") is None
    assert await reconciler.local_dns_stale("t-abc123") is False
    assert not (tmp_path / "t-abc123").exists()


async def test_a_reachable_host_needs_its_tenant_dns(tmp_path: Path) -> None:
    reconciler = _reconciler(tmp_path, "10.245.0.1")
    assert await reconciler.local_dns_stale("t-abc123") is True  # nothing runs yet
