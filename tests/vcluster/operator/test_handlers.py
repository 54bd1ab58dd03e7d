"""The operator's Kopf wiring: explicit registration, our finalizer, settings from the command line."""

from __future__ import annotations

from pathlib import Path

import kopf

from vcluster import naming
from vcluster.controlplane.local import LocalBackend
from vcluster.kube import ApiClient, ClientConfig
from vcluster.operator import handlers
from vcluster.operator.__main__ import _parse
from vcluster.operator.reconcile import Reconciler
from vcluster.operator.settings import OperatorSettings
from vcluster.settings import BinarySettings


def _ids(registry: kopf.OperatorRegistry) -> set[str]:
    out: set[str] = set()
    for reg in (registry._changing, registry._spawning):
        for handler in reg.get_all_handlers():
            out.add(str(handler.id))
    return out


def test_register_is_explicit_and_complete(tmp_path: Path) -> None:
    registry = kopf.OperatorRegistry()
    reconciler = Reconciler(
        api=ApiClient(ClientConfig(server="https://127.0.0.1:1")),
        local=LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings()),
    )
    handlers.register(registry, reconciler=reconciler, settings=OperatorSettings(), connection=None)
    assert {"reconcile-create", "reconcile-update", "reconcile-resume", "teardown",
            "cluster-version-create", "cluster-version-update"} <= _ids(registry)
    # health: one loop for every tenant (started and stopped with Kopf), no timer or daemon per Tenant
    assert list(registry._spawning.get_all_handlers()) == []
    activities = {str(h.id) for h in registry._activities.get_all_handlers()}
    assert {"tenant-health-start", "tenant-health-stop"} <= activities
    # nothing leaked into Kopf's default (global) registry
    assert _ids(kopf.get_default_registry()) == set()


def test_kopf_settings_use_our_finalizer_and_standalone() -> None:
    settings = handlers.kopf_settings(OperatorSettings())
    assert settings.persistence.finalizer == naming.FINALIZER
    assert settings.peering.standalone is True  # our Lease elects the one replica that runs Kopf


def test_command_line_overrides_environment(tmp_path: Path) -> None:
    base = OperatorSettings(state_dir=Path("/from-env"), health_interval=20.0)
    got = _parse(["--kubeconfig", str(tmp_path / "kc"), "--state-dir", str(tmp_path), "--no-install-crds",
                  "--health-interval", "3"], base)
    assert got.kubeconfig == tmp_path / "kc"
    assert got.state_dir == tmp_path
    assert got.install_crds is False
    assert got.health_interval == 3.0
    assert _parse([], base).state_dir == Path("/from-env")
