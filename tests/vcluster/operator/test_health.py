"""The operator's tenant health loop: what it writes for which probe results, and that it repairs.

Pure parts (``transition``, ``eligible``) are table-driven; the loop runs on a fake API and a fake
reconciler with scripted probe verdicts; ``LocalBackend.exited`` runs on real processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tenant_crd import TenantStatus
from vcluster.controlplane.local import LocalBackend
from vcluster.operator.health import (
    APISERVER_UNREACHABLE,
    DEGRADED,
    ETCD_UNHEALTHY,
    KUBECONFIG_UNREADABLE,
    PROCESS_EXITED,
    HealthMonitor,
    Verdict,
    Write,
    eligible,
    renewal_due,
    transition,
)
from vcluster.settings import BinarySettings


def _status(*, phase: str = "Ready", ready: str = "True", reason: str = "Ready", generation: int = 1,
            observed: int = 1, backend: str = "local") -> dict[str, Any]:
    return {
        "phase": phase, "observedGeneration": observed, "clusterKey": "a-123456", "backend": backend,
        "version": "v1.36.3", "endpoint": "https://127.0.0.1:1",
        "kubeconfigSecret": {"namespace": "a-123456", "name": "admin-kubeconfig"},
        "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "m",
                        "observedGeneration": generation}],
    }


def _tenant(name: str = "a", **kw: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": "u", "generation": kw.pop("generation", 1)}, "status": _status(**kw)}


DOWN = Verdict(False, APISERVER_UNREACHABLE, "tenant apiserver does not answer")
GONE = Verdict(False, PROCESS_EXITED, "kube-apiserver exited", certain=True)


@pytest.mark.parametrize(
    ("status", "verdict", "failures", "expected"),
    [
        pytest.param(_status(), Verdict(True), 0, None, id="healthy-stays-quiet"),
        pytest.param(_status(), DOWN, 1, None, id="one-failed-probe-is-not-enough"),
        pytest.param(_status(), DOWN, 2, Write(False, DEGRADED, APISERVER_UNREACHABLE, DOWN.message),
                     id="threshold-reached"),
        pytest.param(_status(), GONE, 1, Write(False, DEGRADED, PROCESS_EXITED, GONE.message),
                     id="process-gone-counts-at-once"),
        pytest.param(_status(phase=DEGRADED, ready="False", reason=APISERVER_UNREACHABLE), DOWN, 5, None,
                     id="still-down-writes-nothing"),
        pytest.param(_status(phase=DEGRADED, ready="False", reason=PROCESS_EXITED),
                     Verdict(False, ETCD_UNHEALTHY, "etcd"), 3, Write(False, DEGRADED, ETCD_UNHEALTHY, "etcd"),
                     id="another-fault-changes-the-reason"),
        pytest.param(_status(phase=DEGRADED, ready="False", reason=APISERVER_UNREACHABLE), Verdict(True), 0,
                     Write(True, "Ready", "Ready",
                           "control plane (local, v1.36.3) is serving at https://127.0.0.1:1 again"),
                     id="back-to-ready"),
        pytest.param(_status(phase=DEGRADED, ready="False", reason="WaitingForApiserver"), Verdict(True), 0,
                     Write(True, "Ready", "Ready",
                           "control plane (local, v1.36.3) is serving at https://127.0.0.1:1 again"),
                     id="repair-left-waiting-then-healthy"),
        pytest.param(_status(phase="Ready", ready="False", reason="ClusterVersionNotFound"), Verdict(True), 0,
                     None, id="a-reconcile-state-is-not-ours"),
        pytest.param(_status(phase="Ready", ready="False", reason="ClusterVersionNotFound"), DOWN, 9, None,
                     id="not-ready-for-another-reason-is-left-alone"),
    ],
)
def test_transition(status: dict[str, Any], verdict: Verdict, failures: int, expected: Write | None) -> None:
    assert transition(TenantStatus.from_dict(status), verdict, failures=failures, threshold=2) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(_tenant(), True, id="ready"),
        pytest.param(_tenant(phase=DEGRADED, ready="False"), True, id="degraded"),
        pytest.param(_tenant(phase="Provisioning", ready="False"), False, id="provisioning"),
        pytest.param(_tenant(generation=2, observed=1), False, id="spec-not-reconciled-yet"),
        pytest.param({**_tenant(), "metadata": {"name": "a", "generation": 1, "deletionTimestamp": "x"}}, False,
                     id="deleting"),
    ],
)
def test_eligible(body: dict[str, Any], expected: bool) -> None:
    assert eligible(body) is expected


# ---- the loop on fakes -------------------------------------------------------------------------


class FakeApi:
    def __init__(self, tenants: list[dict[str, Any]]) -> None:
        self.tenants = tenants

    async def list_all(self, _resource: object, **_: Any) -> tuple[list[dict[str, Any]], str]:
        return self.tenants, "1"

    async def get_or_none(self, _resource: object, name: str, **_: Any) -> dict[str, Any] | None:
        return next((t for t in self.tenants if t["metadata"]["name"] == name), None)


class FakeReconciler:
    """Records status writes (applied to the fake API's objects) and reconciles (repairs)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.writes: list[tuple[str, bool, str, str]] = []
        self.reconciled: list[str] = []
        self.events: list[tuple[str, str, str, str]] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self.rolling: set[str] = set()

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _report(self, body: Mapping[str, Any], *, phase: str, ready: bool, reason: str, message: str) -> None:
        name = body["metadata"]["name"]
        self.writes.append((name, ready, phase, reason))
        for t in self.api.tenants:
            if t["metadata"]["name"] == name:
                t["status"]["phase"] = phase
                t["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                              "reason": reason, "message": message}]

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        self.reconciled.append(body["metadata"]["name"])

    async def event(self, body: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((body["metadata"]["name"], type_, reason, message))

    async def local_dns_stale(self, key: str, domain: str = "cluster.local") -> bool:
        return False  # the tenant DNS has tests of its own (test_dns_loopback)


class ScriptedMonitor(HealthMonitor):
    """Probes answer from ``verdicts[name]`` (the last one repeats)."""

    verdicts: dict[str, list[Verdict]]

    async def probe(self, status: TenantStatus) -> Verdict:
        name = "a" if status.cluster_key == "a-123456" else "b"
        script = self.verdicts[name]
        return script.pop(0) if len(script) > 1 else script[0]


def _monitor(tenants: list[dict[str, Any]], verdicts: dict[str, list[Verdict]]) -> tuple[ScriptedMonitor,
                                                                                          FakeReconciler]:
    api = FakeApi(tenants)
    reconciler = FakeReconciler(api)
    monitor = ScriptedMonitor(api=api, reconciler=reconciler, threshold=2)  # type: ignore[arg-type]
    monitor.verdicts = verdicts
    return monitor, reconciler


def test_loop_reports_down_then_back_one_write_each() -> None:
    b = _tenant("b")
    b["status"]["clusterKey"] = "b-654321"
    monitor, reconciler = _monitor([_tenant("a"), b], {
        "a": [DOWN, DOWN, DOWN, DOWN, Verdict(True), Verdict(True)],
        "b": [Verdict(True)],
    })

    async def rounds() -> None:
        for _ in range(6):
            await monitor.round()
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.writes == [("a", False, DEGRADED, APISERVER_UNREACHABLE), ("a", True, "Ready", "Ready")]
    assert reconciler.reconciled == []  # an unreachable apiserver is reported, not restarted


def test_a_failed_probe_is_confirmed_after_a_second_not_an_interval() -> None:
    monitor, _ = _monitor([_tenant("a")], {"a": [DOWN, DOWN, DOWN]})
    monitor.interval = 5.0
    delays = []

    async def rounds() -> None:
        for _ in range(3):
            await monitor.round()
            delays.append(monitor.next_delay())
        await monitor.close()

    asyncio.run(rounds())
    assert delays == [1.0, 5.0, 5.0]  # suspected, then confirmed (reported), then still down


def test_loop_repairs_an_exited_process() -> None:
    monitor, reconciler = _monitor([_tenant("a")], {"a": [GONE, Verdict(True)]})

    async def rounds() -> None:
        await monitor.round()
        await asyncio.sleep(0)  # let the repair task run
        await asyncio.gather(*list(monitor._repairs.values()))
        await monitor.round()
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.writes == [("a", False, DEGRADED, PROCESS_EXITED), ("a", True, "Ready", "Ready")]
    assert reconciler.reconciled == ["a"]


def test_loop_reports_while_a_reconcile_holds_the_tenant() -> None:
    """A reconcile stuck on a hung apiserver must not keep the status from telling the truth."""
    monitor, reconciler = _monitor([_tenant("a")], {"a": [GONE]})

    async def rounds() -> None:
        async with reconciler.lock("a"):
            await monitor.round()
            assert reconciler.writes == [("a", False, DEGRADED, PROCESS_EXITED)]
            assert reconciler.reconciled == []  # the repair waits for the lock
        await asyncio.sleep(0)
        await asyncio.gather(*list(monitor._repairs.values()))
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.reconciled == ["a"]


# ---- certificate renewal ----------------------------------------------------------------------

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"certificates": {"renewAfter": "2026-06-01T11:59:59Z"}}, True, id="passed"),
        pytest.param({"certificates": {"renewAfter": "2026-06-01T12:00:00Z"}}, True, id="now"),
        pytest.param({"certificates": {"renewAfter": "2026-06-01T12:00:01Z"}}, False, id="not-yet"),
        pytest.param({}, False, id="none-yet"),
        pytest.param({"certificates": {"renewAfter": "soon"}}, False, id="unreadable"),
        pytest.param({"certificates": "x"}, False, id="not-a-map"),
        pytest.param(None, False, id="no-status"),
    ],
)
def test_renewal_due(status: dict[str, Any] | None, expected: bool) -> None:
    assert renewal_due(status, NOW) is expected


def test_loop_reconciles_a_healthy_tenant_whose_certificates_are_due() -> None:
    due, later = _tenant("a"), _tenant("b")
    due["status"]["certificates"] = {"renewAfter": "2000-01-01T00:00:00Z"}
    later["status"]["clusterKey"] = "b-654321"
    later["status"]["certificates"] = {"renewAfter": "2999-01-01T00:00:00Z"}
    monitor, reconciler = _monitor([due, later], {"a": [Verdict(True)], "b": [Verdict(True)]})

    async def rounds() -> None:
        await monitor.round()
        await asyncio.sleep(0)
        await asyncio.gather(*list(monitor._repairs.values()))
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.reconciled == ["a"]
    assert reconciler.writes == []  # nothing wrong with it: no condition written


def test_a_failed_renewal_is_tried_again_after_a_while_not_every_round() -> None:
    due = _tenant("a")
    due["status"]["certificates"] = {"renewAfter": "2000-01-01T00:00:00Z"}  # the reconcile never moves it
    monitor, reconciler = _monitor([due], {"a": [Verdict(True)]})
    now = [100.0]
    monitor._clock = lambda: now[0]

    async def rounds() -> None:
        for step in (0.0, 5.0, 5.0, 25.0):  # at 100, 105, 110, 135 s
            now[0] += step
            await monitor.round()
            await asyncio.sleep(0)
            await asyncio.gather(*list(monitor._repairs.values()))
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.reconciled == ["a", "a"]  # at 100 s and again 30 s later


def test_a_tenant_being_restarted_for_new_certificates_is_not_probed() -> None:
    monitor, reconciler = _monitor([_tenant("a")], {"a": [DOWN]})
    reconciler.rolling.add("a-123456")

    async def rounds() -> None:
        for _ in range(3):
            await monitor.round()
        reconciler.rolling.clear()
        await monitor.round()
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.writes == []  # one failed probe after the restart: not yet confirmed
    assert monitor._failures == {"a": 1}


# ---- LocalBackend.exited on real processes -------------------------------------------------------


@pytest.fixture
def fake_plane(tmp_path: Path) -> Iterator[tuple[LocalBackend, dict[str, subprocess.Popen[bytes]]]]:
    """Processes named like the control plane's (a symlink to Python), with pid files in the tenant folder."""
    backend = LocalBackend(state_dir=tmp_path / "state", binary_settings=BinarySettings())
    root = backend.tenant_dir("a-123456")
    (root / "run").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        os.symlink(sys.executable, bin_dir / name)
        procs[name] = subprocess.Popen([str(bin_dir / name), "-c", "import time; time.sleep(300)",
                                        f"{root}/{name}.conf"])
        (root / "run" / f"{name}.pid").write_text(f"{procs[name].pid}\n")
    try:
        yield backend, procs
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_exited_names_the_dead_components(fake_plane: tuple[LocalBackend, dict[str, subprocess.Popen[bytes]]]) -> None:
    backend, procs = fake_plane
    assert backend.exited("a-123456") == []
    procs["kube-apiserver"].kill()
    procs["kube-apiserver"].wait()
    assert backend.exited("a-123456") == ["kube-apiserver"]
    (backend.tenant_dir("a-123456") / "run" / "etcd.pid").unlink()
    assert backend.exited("a-123456") == ["etcd", "kube-apiserver"]


def test_exited_ignores_a_reused_pid(fake_plane: tuple[LocalBackend, dict[str, subprocess.Popen[bytes]]]) -> None:
    backend, _ = fake_plane
    stranger = subprocess.Popen(["/bin/sleep", "300"])
    try:
        (backend.tenant_dir("a-123456") / "run" / "etcd.pid").write_text(f"{stranger.pid}\n")
        assert backend.exited("a-123456") == ["etcd"]
    finally:
        stranger.kill()
        stranger.wait()



# ---- the probe against a real (loopback HTTP) apiserver stand-in ----------------------------------


@pytest.mark.parametrize(
    ("hang", "etcd_ok", "expected"),
    [
        pytest.param({"/readyz", "/livez/ping"}, True, APISERVER_UNREACHABLE, id="apiserver-hung"),
        pytest.param({"/readyz", "/readyz/etcd"}, True, ETCD_UNHEALTHY, id="etcd-hung"),
        pytest.param({"/readyz"}, False, ETCD_UNHEALTHY, id="etcd-check-fails"),
        pytest.param(set(), True, "ApiserverNotReady", id="readyz-500-etcd-fine"),
    ],
)
def test_probe_tells_the_faults_apart_and_recovers(hang: set[str], etcd_ok: bool, expected: str) -> None:
    """Probes against a stand-in apiserver: which endpoints hang or fail decides the reason; once it
    answers again, the next probe says healthy."""
    import base64

    from aiohttp import web

    from vcluster.kubeconfig import dump_kubeconfig, render_kubeconfig

    thawed = asyncio.Event()

    async def endpoint(request: web.Request) -> web.Response:
        if thawed.is_set():
            return web.Response(text="ok")
        if request.path in hang:
            await thawed.wait()  # hung until thawed (like SIGSTOP): the request stays open
            return web.Response(text="ok")
        if request.path == "/readyz" or (request.path == "/readyz/etcd" and not etcd_ok):
            return web.Response(status=500, text="[-]etcd failed: reason withheld")
        return web.Response(text="ok")

    async def scenario() -> list[Verdict]:
        app = web.Application()
        for path in ("/readyz", "/readyz/etcd", "/livez/ping"):
            app.router.add_get(path, endpoint)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        kubeconfig = dump_kubeconfig(render_kubeconfig(server=f"http://127.0.0.1:{port}", ca_pem=None,
                                                       token="t"))
        secret = {"data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}}

        class Api(FakeApi):
            async def get(self, *_: Any, **__: Any) -> dict[str, Any]:
                return secret

        api = Api([])
        monitor = HealthMonitor(api=api, reconciler=FakeReconciler(api), probe_timeout=0.3)  # type: ignore[arg-type]
        status = TenantStatus.from_dict(_status(backend="pods"))
        verdicts = [await monitor.probe(status) for _ in range(2)]
        thawed.set()
        verdicts.append(await monitor.probe(status))
        await monitor.close()
        await runner.cleanup()
        return verdicts

    verdicts = asyncio.run(scenario())
    assert [v.reason for v in verdicts] == [expected] * 2 + ["Ready"]
    assert verdicts[-1].healthy


def test_a_stopping_apiserver_that_still_serves_is_healthy() -> None:
    """During a rolling upgrade the old apiserver pod fails ``/readyz``'s ``shutdown`` check while it still
    serves (``--shutdown-delay-duration``); the probe's kept-alive connection may be to it: not a fault."""
    import base64

    from aiohttp import web

    from vcluster.kubeconfig import dump_kubeconfig, render_kubeconfig

    async def readyz(request: web.Request) -> web.Response:
        if "shutdown" in request.query.getall("exclude", []):
            return web.Response(text="ok")
        return web.Response(status=500, text="[-]shutdown failed: reason withheld")

    async def scenario() -> Verdict:
        app = web.Application()
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        kubeconfig = dump_kubeconfig(render_kubeconfig(server=f"http://127.0.0.1:{port}", ca_pem=None, token="t"))
        secret = {"data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}}

        class Api(FakeApi):
            async def get(self, *_: Any, **__: Any) -> dict[str, Any]:
                return secret

        api = Api([])
        monitor = HealthMonitor(api=api, reconciler=FakeReconciler(api), probe_timeout=1.0)  # type: ignore[arg-type]
        verdict = await monitor.probe(TenantStatus.from_dict(_status(backend="pods")))
        await monitor.close()
        await runner.cleanup()
        return verdict

    verdict = asyncio.run(scenario())
    assert verdict.healthy, verdict


def test_report_judges_changes_against_the_current_status(tmp_path: Path) -> None:
    """A reconcile that started before the health loop marked the tenant down still posts its "back" Event."""
    from vcluster.kube import resources as r
    from vcluster.operator.reconcile import Reconciler

    current = _tenant("a", phase=DEGRADED, ready="False", reason=APISERVER_UNREACHABLE)

    class Api:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []
            self.patches: list[dict[str, Any]] = []

        async def get_or_none(self, resource: r.Resource, name: str, **_: Any) -> dict[str, Any] | None:
            assert (resource, name) == (r.TENANTS, "a")
            return current

        async def patch(self, _resource: r.Resource, _name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
            self.patches.append(body)
            return body

        async def create(self, _resource: r.Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
            self.events.append(body)
            return body

    api = Api()
    reconciler = Reconciler(api=api, local=LocalBackend(state_dir=tmp_path,  # type: ignore[arg-type]
                                                        binary_settings=BinarySettings()))
    stale = _tenant("a")  # what the reconcile read when it started: Ready=True
    asyncio.run(reconciler._report(stale, phase="Ready", ready=True, reason="Ready", message="m"))
    assert [(e["type"], e["reason"]) for e in api.events] == [("Normal", "Ready")]


# ---- the kubeconfig Secret: a broken one is told at once and written again -------------------------


def test_loop_repairs_an_unreadable_kubeconfig_secret() -> None:
    broken = Verdict(False, KUBECONFIG_UNREADABLE, "kubeconfig Secret a-123456/admin-kubeconfig is gone",
                     certain=True)
    monitor, reconciler = _monitor([_tenant("a")], {"a": [broken, Verdict(True)]})

    async def rounds() -> None:
        await monitor.round()
        await asyncio.sleep(0)
        await asyncio.gather(*list(monitor._repairs.values()))
        await monitor.round()
        await monitor.close()

    asyncio.run(rounds())
    assert reconciler.writes == [("a", False, DEGRADED, KUBECONFIG_UNREADABLE), ("a", True, "Ready", "Ready")]
    assert reconciler.reconciled == ["a"]  # the reconcile writes the Secret again


def test_probe_reads_the_secret_again_and_tells_a_broken_one() -> None:
    """Against a stand-in apiserver that always answers: only the Secret decides the verdict."""
    import base64

    from aiohttp import web

    from vcluster.kube import NotFound
    from vcluster.kubeconfig import dump_kubeconfig, render_kubeconfig

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scenario() -> list[Verdict]:
        app = web.Application()
        app.router.add_get("/readyz", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        good = base64.b64encode(dump_kubeconfig(render_kubeconfig(server=f"http://127.0.0.1:{port}", ca_pem=None,
                                                                  token="t")).encode()).decode()
        secrets: list[dict[str, Any] | None] = [
            {"data": {"kubeconfig": good}},                                          # fine
            {"data": {"kubeconfig": base64.b64encode(b"clusters: [oops").decode()}},  # corrupted
            None,                                                                    # deleted
            {"data": {"kubeconfig": "%% not base64"}},
            {"data": {}},
            {"data": {"kubeconfig": good}},                                          # written again
        ]

        class Api(FakeApi):
            async def get(self, *_: Any, **__: Any) -> dict[str, Any]:
                secret = secrets.pop(0)
                if secret is None:
                    raise NotFound(404, "NotFound", "secrets not found")
                return secret

        api = Api([])
        monitor = HealthMonitor(api=api, reconciler=FakeReconciler(api), probe_timeout=1.0,  # type: ignore[arg-type]
                                secret_recheck=0.0)
        status = TenantStatus.from_dict(_status(backend="pods"))
        verdicts = [await monitor.probe(status) for _ in range(6)]
        await monitor.close()
        await runner.cleanup()
        return verdicts

    verdicts = asyncio.run(scenario())
    assert [v.reason for v in verdicts] == ["Ready", *[KUBECONFIG_UNREADABLE] * 4, "Ready"]
    assert all(v.certain for v in verdicts[1:5])
    assert "not a usable kubeconfig" in verdicts[1].message
    assert "is gone" in verdicts[2].message
