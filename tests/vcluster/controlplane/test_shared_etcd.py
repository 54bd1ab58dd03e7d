"""The shared etcd's pure parts: each tenant's key range, the etcd's flags, which etcd a tenant keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenant_crd import TenantSpec
from vcluster import naming
from vcluster.controlplane import builder, shared_etcd
from vcluster.controlplane.local import SHARED_ETCD_FILES, LocalBackend
from vcluster.settings import BinarySettings


def test_a_tenant_range_covers_its_prefix_and_nothing_of_another_tenant() -> None:
    start, end = shared_etcd.prefix_range("acme-1a2b3c")
    assert (start, end) == (b"/acme-1a2b3c/", b"/acme-1a2b3c0")

    def inside(key: bytes) -> bool:
        return start <= key < end

    assert inside(b"/acme-1a2b3c/pods/default/web")
    assert inside(b"/acme-1a2b3c/health")
    # a cluster key that extends this one, and the bare prefix: outside
    assert not inside(b"/acme-1a2b3c0/pods/default/web")
    assert not inside(b"/acme-1a2b3cd/pods/default/web")
    assert not inside(b"/acme-1a2b3c")
    assert not inside(b"compact_rev_key")


@pytest.mark.parametrize(("prefix", "end"), [(b"/a/", b"/a0"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")])
def test_range_end_is_etcds_prefix_end(prefix: bytes, end: bytes) -> None:
    assert shared_etcd.range_end(prefix) == end


def test_the_shared_etcd_requires_client_certificates_and_compacts_itself(tmp_path: Path) -> None:
    args = dict(a[2:].split("=", 1) for a in shared_etcd.etcd_args(tmp_path, client_port=1, peer_port=2))
    assert args["client-cert-auth"] == "true"
    assert args["listen-client-urls"] == "https://127.0.0.1:1"
    assert args["auto-compaction-mode"] == "periodic"
    assert args["data-dir"] == str(tmp_path / "data")


def _backend(tmp_path: Path, *, shared: bool) -> LocalBackend:
    return LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings.from_env(), shared_etcd=shared)


def test_a_new_tenant_goes_to_the_shared_etcd_with_its_own_prefix_and_credentials(tmp_path: Path) -> None:
    backend = _backend(tmp_path, shared=True)
    key = "acme-1a2b3c"
    layout = backend.layout(key)
    plane = builder.build(tenant_name="acme", cluster_key=key, tenant=TenantSpec.from_dict({}), cluster_version=None,
                          layout=layout)
    flags = dict(a[2:].split("=", 1) for a in plane.apiserver.args)
    assert flags["etcd-prefix"] == naming.shared_etcd_prefix(key) == "/acme-1a2b3c"
    assert flags["etcd-servers"] == backend.shared.url
    pki_dir = backend.tenant_dir(key) / "pki"
    assert (flags["etcd-cafile"], flags["etcd-certfile"], flags["etcd-keyfile"]) == tuple(
        str(pki_dir / name) for name in SHARED_ETCD_FILES)
    # the tenant apiserver's compactor would write compact_rev_key, outside its prefix: etcd compacts instead
    assert flags["etcd-compaction-interval"] == "0"
    assert backend.etcd_mode(key) == "shared"


def test_which_etcd_a_tenant_uses_is_kept_whatever_the_setting_says_later(tmp_path: Path) -> None:
    own, shared = "own-aaaaaa", "shared-bbbbbb"
    _backend(tmp_path, shared=False).layout(own)
    _backend(tmp_path, shared=True).layout(shared)
    # the setting turned around: neither tenant moves away from its data
    flipped_on, flipped_off = _backend(tmp_path, shared=True), _backend(tmp_path, shared=False)
    assert flipped_on.etcd_mode(own) == "own"
    assert flags_of(flipped_on, own)["etcd-prefix"] == "/registry"
    assert flipped_off.etcd_mode(shared) == "shared"
    assert flags_of(flipped_off, shared)["etcd-prefix"] == "/shared-bbbbbb"


def test_a_tenant_folder_with_etcd_data_from_before_the_record_keeps_its_own_etcd(tmp_path: Path) -> None:
    key = "old-cccccc"
    (tmp_path / key / "etcd" / "member").mkdir(parents=True)
    backend = _backend(tmp_path, shared=True)
    assert backend.etcd_mode(key) == "own"
    assert flags_of(backend, key)["etcd-prefix"] == "/registry"


def flags_of(backend: LocalBackend, key: str) -> dict[str, str]:
    plane = builder.build(tenant_name=key.partition("-")[0], cluster_key=key, tenant=TenantSpec.from_dict({}),
                          cluster_version=None, layout=backend.layout(key))
    return dict(a[2:].split("=", 1) for a in plane.apiserver.args)
