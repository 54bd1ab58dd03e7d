"""Shared e2e fixtures: one real local super cluster per session, unique names, log tails on failure.

Why: every e2e test runs against real kube-apiservers.  Starting the super
cluster once per session keeps the suite lean; a failing test gets the tail
of each component's log attached to its report, since "pod never became
Running" is only diagnosable from the scheduler's or kwok's log.

If the upstream binaries cannot be built or found, every e2e test FAILS with
the reason (a skipped e2e suite would hide a broken toolchain).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vcluster import binaries, pki
from vcluster.errors import VClusterError
from vcluster.process import tail_file
from vcluster.settings import BinarySettings
from vcluster.testbed import COMPONENTS, LocalSuperCluster, TestbedInfo, TestbedSettings

#: name -> log file; the makereport hook attaches their tails to failing e2e tests.
LOG_FILES = pytest.StashKey[dict[str, Path]]()
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class SuperCluster:
    """What e2e tests get: how to reach the session's super cluster, and kubectl bound to it."""

    launcher: LocalSuperCluster
    info: TestbedInfo
    kubeconfig: Path
    server: str
    admin: pki.CertKeyPair
    state_dir: Path

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the super cluster; with ``check`` a failure raises with its stderr."""
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc


@pytest.fixture(scope="session")
def binary_settings() -> BinarySettings:
    """The upstream binaries, built (or found in the cache) once per session; failure fails the tests."""
    try:
        return binaries.ensure(BinarySettings.from_env(), progress=lambda m: print(f"==> {m}"))
    except VClusterError as exc:
        pytest.fail(f"upstream binaries unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def component_logs(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Register ``name -> log file`` here to have its tail attached to failing e2e tests."""
    return request.config.stash.setdefault(LOG_FILES, {})


@pytest.fixture(scope="session")
def testbed_settings(binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory) -> TestbedSettings:
    """Settings for an extra launcher in a fresh folder (tests replace fields as they need)."""
    return TestbedSettings(
        state_dir=tmp_path_factory.mktemp("testbed"), nodes=1, binaries=binary_settings,
    )


@contextlib.contextmanager
def running_super_cluster(settings: TestbedSettings, component_logs: dict[str, Path]) -> Iterator[SuperCluster]:
    """A started super cluster for a session fixture; a start failure fails the tests with its one line.

    Modules that need real nodes override ``super_cluster`` with ``real_nodes`` set (one test bed with
    real nodes at a time: they change host network state).
    """
    launcher = LocalSuperCluster(settings)
    for name in COMPONENTS:  # registered first: a start that fails still shows these logs
        component_logs[f"super {name}"] = launcher.layout.log(name)
    try:
        info = launcher.start()
    except VClusterError as exc:
        pytest.fail(f"the super cluster did not start: {exc}", pytrace=False)
    component_logs.update({f"super {name}": path for name, path in launcher.log_files().items()})
    try:
        yield SuperCluster(launcher=launcher, info=info, kubeconfig=launcher.kubeconfig, server=info.server,
                           admin=launcher.admin, state_dir=launcher.state_dir)
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def super_cluster(
    binary_settings: BinarySettings,
    tmp_path_factory: pytest.TempPathFactory,
    component_logs: dict[str, Path],
) -> Iterator[SuperCluster]:
    """The session's super cluster: real etcd, kube-apiserver, controller-manager, scheduler, kwok (3 nodes)."""
    yield from super_cluster_of(binary_settings, tmp_path_factory, component_logs, name="super", nodes=3)


def super_cluster_of(binary_settings: BinarySettings, tmp_path_factory: pytest.TempPathFactory,
                     component_logs: dict[str, Path], *, name: str, nodes: int,
                     real_nodes: int = 0, network_policy: bool = False) -> Iterator[SuperCluster]:
    """A super cluster with ``nodes`` kwok nodes and ``real_nodes`` real ones, for the ``super_cluster``
    fixture and the modules that override it (real nodes cost a kubelet, containerd and kube-proxy each;
    ``network_policy`` adds kube-router enforcing NetworkPolicy on the one real node)."""
    settings = TestbedSettings(state_dir=tmp_path_factory.mktemp(name), nodes=nodes, real_nodes=real_nodes,
                               network_policy=network_policy, binaries=binary_settings)
    with running_super_cluster(settings, component_logs) as cluster:
        yield cluster


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short DNS label, unique per test: ``<test name slug>-<random hex>`` (at most 30 chars)."""
    slug = _NOT_DNS.sub("-", request.node.name.lower().removeprefix("test_")).strip("-")[:20].strip("-")
    return f"{slug or 't'}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed or item.get_closest_marker("e2e") is None:
        return report
    for name, path in item.config.stash.get(LOG_FILES, {}).items():
        if path.exists():
            report.sections.append((f"{name} log ({path}, last {LOG_TAIL_LINES} lines)",
                                    tail_file(path, lines=LOG_TAIL_LINES)))
    return report
