"""The upstream binary builder: versions, cache layout, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vcluster import binaries
from vcluster.settings import BinarySettings


@pytest.mark.parametrize(
    ("kube", "staging"),
    [pytest.param("v1.36.3", "v0.36.3", id="plain"), pytest.param("1.33.10", "v0.33.10", id="no-v")],
)
def test_staging_version(kube: str, staging: str) -> None:
    assert binaries._staging_version(kube) == staging


@pytest.mark.parametrize("kube", ["v2.0.0", "v1.36", "latest"])
def test_staging_version_refuses_what_is_not_v1_n_m(kube: str) -> None:
    with pytest.raises(binaries.BuildError, match="unsupported Kubernetes version"):
        binaries._staging_version(kube)


def test_staging_version_keeps_a_pre_release() -> None:
    assert binaries._staging_version("v1.36.0-rc.1") == "v0.36.0-rc.1"


def test_version_ldflags_refuse_what_is_not_a_version() -> None:
    with pytest.raises(binaries.BuildError, match="unsupported Kubernetes version"):
        binaries._version_ldflags(BinarySettings(kube_version="latest"))


def test_version_is_stamped_into_both_version_packages() -> None:
    flags = binaries._version_ldflags(BinarySettings(kube_version="v1.36.3"))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.36.3" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
        assert f"-X {pkg}.gitMinor=36" in flags


def test_cache_is_keyed_by_version(tmp_path: Path) -> None:
    a = BinarySettings(kube_version="v1.36.3", cache_dir=tmp_path)
    b = BinarySettings(kube_version="v1.35.4", cache_dir=tmp_path)
    assert binaries.binary_path("kube-apiserver", a) != binaries.binary_path("kube-apiserver", b)
    assert binaries.binary_path("kube-apiserver", a).parent.name == "kubernetes-v1.36.3"


def test_missing_lists_what_is_not_built(tmp_path: Path) -> None:
    settings = BinarySettings(cache_dir=tmp_path)
    assert set(binaries.missing(settings)) == {
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kwok",
        "coredns", "pause", "local-path-provisioner", "kube-router",
    }
    assert "etcd" not in binaries.missing(BinarySettings(cache_dir=tmp_path, etcd_path=Path("/bin/true")))
    kwok = binaries.binary_path("kwok", settings)
    kwok.parent.mkdir(parents=True)
    kwok.write_text("")
    assert "kwok" not in binaries.missing(settings)
    assert "kwok-stages" in binaries.missing(settings)


def test_missing_go_is_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path), VC_CACHE_DIR=str(tmp_path / "cache"), VC_ETCD="/bin/true")
    proc = subprocess.run(
        [sys.executable, "-m", "vcluster.binaries", "build"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: Go toolchain not found on PATH: install Go >= 1.26 to build Kubernetes"
    ]


def test_node_components_live_with_the_kubernetes_binaries_and_coredns_apart(tmp_path: Path) -> None:
    settings = BinarySettings(cache_dir=tmp_path, kube_version="v1.36.3", coredns_version="v1.14.7")
    assert binaries.binary_path("kubelet", settings).parent == binaries.kube_dir(settings)
    assert binaries.binary_path("kube-proxy", settings).parent == binaries.kube_dir(settings)
    assert binaries.binary_path("coredns", settings) == tmp_path / "coredns-v1.14.7" / "coredns"
    assert binaries.binary_path("pause", settings) == tmp_path / "pause-v1.36.3" / "pause"


def test_unknown_component_is_refused() -> None:
    with pytest.raises(binaries.BuildError, match="unknown component"):
        binaries.binary_path("kubelet-ish", BinarySettings())


def test_local_path_provisioner_is_cached_by_version(tmp_path: Path) -> None:
    settings = BinarySettings(cache_dir=tmp_path, local_path_version="v0.0.30")
    path = binaries.binary_path("local-path-provisioner", settings)
    assert path == tmp_path / "local-path-provisioner-v0.0.30" / "local-path-provisioner"
    path.parent.mkdir()
    path.write_text("built")
    # a cached binary is not rebuilt (no Go toolchain needed)
    assert binaries.build_local_path(settings, progress=lambda _: None) == path.parent


def test_kube_router_is_cached_by_version_and_built_with_newer_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = BinarySettings(cache_dir=tmp_path, kube_router_version="v2.1.0")
    path = binaries.binary_path("kube-router", settings)
    assert path == tmp_path / "kube-router-v2.1.0" / "kube-router"
    seen: dict[str, object] = {}

    def build_one(_settings: BinarySettings, _progress: object, **kw: object) -> Path:
        seen.update(kw)
        return path.parent

    monkeypatch.setattr(binaries, "_build_one", build_one)
    assert binaries.build_kube_router(settings, progress=lambda _: None) == path.parent
    requires = seen["requires"]
    assert isinstance(requires, list)
    # kube-router itself at the pinned version, and every dependency floor beside it
    assert requires[0] == "github.com/cloudnativelabs/kube-router/v2 v2.1.0"
    assert set(binaries.KUBE_ROUTER_DEPENDENCY_FLOORS) <= set(requires)
    assert {r.split()[0] for r in binaries.KUBE_ROUTER_DEPENDENCY_FLOORS} >= {
        "golang.org/x/net", "google.golang.org/protobuf"}
    assert seen["package"] == "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
    assert "pkg/version.Version=v2.1.0" in str(seen["ldflags"])
