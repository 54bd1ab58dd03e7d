"""Recovery times of faults on the embedded default: what notices each, and how long healing takes.

Why: e2e/test_faults.py shows *that* the embedded default heals (no timing
assertions in tests); this script measures *how fast*, for the "failure
modes" table in docs/architecture.md.  Not a test: it prints numbers.

It starts its own embedded default (``python -m vcluster up``) in a
throw-away state folder with one tenant, then, one after the other:

* operator SIGKILLed → the supervisor restarts it: seconds until its
  ``/healthz`` answers again;
* syncer SIGKILLed → the same;
* tenant apiserver SIGSTOPped for ``--hang`` seconds → seconds until the
  Tenant reads ``Ready=False`` (detection), and from SIGCONT until
  ``Ready=True`` (recovery);
* tenant etcd SIGSTOPped likewise;
* tenant apiserver SIGKILLed → seconds until ``Ready=False ProcessExited``
  and until ``Ready=True`` with a new apiserver (the operator's repair);
* super etcd stopped and started again → seconds from the start until a
  tenant ConfigMap created meanwhile has its super copy;
* the syncer's connections to the super apiserver reset (``ss -K``) →
  seconds until a tenant pod created right after is Running in the tenant
  (its status came up through the super watch again);
* kubelet proxy SIGKILLed → seconds until the tenant's ``kubectl logs``
  works again (the supervisor's restart);
* a second tenant whose kubeconfig Secret is corrupted → seconds until it
  reads ``KubeconfigUnreadable`` (operator or syncer) and until it is
  Ready and Synced again (the operator writes the Secret again), and the
  first tenant's create → super copy time before and while the second is
  broken (the others' latency);
* the same second tenant told by the syncer alone: its Secret corrupted
  with the operator paused (SIGSTOP, so its repair cannot come first), its
  kube-apiserver hung, its Secret pointing at a loopback listener that
  answers garbage (e2e/broken_remote.py) → seconds until its ``Synced``
  turns False and, after the restore / SIGCONT, True again, and the first
  tenant's create → super copy time meanwhile.

Run it alone on the machine (it starts a real super cluster) and stop
nothing by hand meanwhile; it always runs ``down`` at the end::

    python bench/faults.py [--hang 20]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from e2e.broken_remote import GarbageApiserver, pointed_at  # noqa: E402
from e2e.operator_fixtures import control_plane_processes  # noqa: E402
from vcluster import naming  # noqa: E402
from vcluster.process import ManagedProcess  # noqa: E402
from vcluster.testbed import read_info  # noqa: E402

TENANT = "bench-faults"


class Embedded:
    """The CLI with a private state folder."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VC_STATE_DIR")}
        self.env.update(VC_STATE_DIR=str(state), VC_NODES="1")

    def vc(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, "-m", "vcluster", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"kubectl vc {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", f"--kubeconfig={self.state / 'super' / 'kubeconfig'}", *args],
                              capture_output=True, text=True, timeout=60, check=True).stdout

    def components(self) -> dict[str, dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-m", "vcluster", "status", "-o", "json"], capture_output=True,
                              text=True, env=self.env, timeout=60, check=False)
        return {c["name"]: c for c in json.loads(proc.stdout)["components"]}

    def health_url(self, name: str) -> str:
        records = json.loads((self.state / "embedded.json").read_text())["components"]
        return str(records[name]["health_url"])

    def ready(self) -> tuple[str, str]:
        return self.condition(TENANT, "Ready")

    def condition(self, tenant: str, type_: str) -> tuple[str, str]:
        obj = json.loads(self.kubectl("get", "tenant", tenant, "-o", "json"))
        cond: dict[str, Any] = next((c for c in obj["status"].get("conditions") or [] if c["type"] == type_), {})
        return str(cond.get("status")), str(cond.get("reason"))

    def tenant(self, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                              timeout=60, check=False)

    def copied(self, key: str, ns: str, name: str) -> bool:
        """Whether tenant ConfigMap ``ns/name`` has its super copy."""
        got = subprocess.run(["kubectl", f"--kubeconfig={self.state / 'super' / 'kubeconfig'}", "get", "cm", name,
                              "-n", naming.super_namespace(key, ns)], capture_output=True, text=True, timeout=60,
                             check=False)
        return got.returncode == 0


def until(check: Callable[[], bool], *, timeout: float = 300.0) -> float:
    """Seconds until ``check`` passes (polled every 0.2 s); raises at ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"no recovery within {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - start


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def leading(metrics_url: str) -> bool:
    """Whether the operator behind ``metrics_url`` holds the Lease (``vc_operator_leader 1``)."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return False
    return any(line.split()[:2] == ["vc_operator_leader", "1.0"] for line in text.splitlines())


def super_side_faults(bed: Embedded, tmp: Path, key: str, rows: list[tuple[str, str, str]]) -> None:
    """The super etcd restarted, the syncer's super connections reset, the kubelet proxy killed, a broken
    second tenant: rows of (fault, noticed, healed) appended to ``rows`` as they are measured."""
    kubeconfig = tmp / "tenant.kubeconfig"
    bed.vc("kubeconfig", TENANT, "-o", str(kubeconfig))
    bed.tenant(kubeconfig, "create", "namespace", "bench")
    until(lambda: bed.tenant(kubeconfig, "get", "sa", "default", "-n", "bench").returncode == 0)
    n = 0

    def one_copy() -> float:
        """Seconds from a tenant ConfigMap's create to its super copy."""
        nonlocal n
        n += 1
        bed.tenant(kubeconfig, "create", "configmap", f"cm-{n}", "-n", "bench")
        return until(lambda: bed.copied(key, "bench", f"cm-{n}"))

    baseline = sorted(one_copy() for _ in range(5))[2]
    info = read_info(tmp / "super")
    comp = info.components["etcd"]
    etcd = ManagedProcess(name="etcd", argv=list(comp.argv), log_path=Path(comp.log_file),
                          pid_path=Path(comp.pid_file))
    if etcd.adopt():
        etcd.stop(grace=10)
        n += 1
        bed.tenant(kubeconfig, "create", "configmap", f"cm-{n}", "-n", "bench")  # while the super side has no storage
        etcd.start()
        took = until(lambda: bed.copied(key, "bench", f"cm-{n}"))
        rows.append(("super etcd stopped, started", "informers/workers (retries)", f"{took:.1f}"))

    port = int(info.server.rsplit(":", 1)[1])
    syncer = bed.components()["syncer"]["pid"]
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if re.search(rf"pid={syncer},", line):
            subprocess.run(["ss", "-K", "-Htn", "src", line.split()[2], "dst", f"127.0.0.1:{port}"],
                           capture_output=True, check=False)
    start = time.monotonic()
    bed.tenant(kubeconfig, "run", "after-cut", "-n", "bench", "--image=registry.invalid/app:1")
    until(lambda: bed.tenant(kubeconfig, "get", "pod", "after-cut", "-n", "bench", "-o",
                             "jsonpath={.status.phase}").stdout == "Running")
    rows.append(("syncer's super connections reset (ss -K)", "informers (watch ends)",
                 f"{time.monotonic() - start:.1f} (pod Running)"))

    proxy = bed.components()["kubelet-proxy"]["pid"]
    os.kill(proxy, signal.SIGKILL)
    took = until(lambda: bed.tenant(kubeconfig, "logs", "after-cut", "-n", "bench").returncode == 0)
    rows.append(("kubelet proxy SIGKILL", "supervisor", f"{took:.1f} (kubectl logs works)"))

    second = "bench-broken"
    bed.vc("create", second, "--wait", "--timeout", "300")
    ref = json.loads(bed.kubectl("get", "tenant", second, "-o", "json"))["status"]["kubeconfigSecret"]
    garbage = base64.b64encode(b"clusters: [oops").decode()
    bed.kubectl("patch", "secret", ref["name"], "-n", ref["namespace"], "--type=merge", "-p",
                json.dumps({"data": {naming.KUBECONFIG_SECRET_KEY: garbage}}))
    broken = {"KubeconfigUnreadable"}
    seen = until(lambda: bed.condition(second, "Ready")[1] in broken or bed.condition(second, "Synced")[1] in broken)
    beside = sorted(one_copy() for _ in range(5))[2]
    healed = until(lambda: bed.condition(second, "Ready") == ("True", "Ready")
                   and bed.condition(second, "Synced")[0] == "True")
    rows.append(("second tenant's kubeconfig Secret corrupted", f"{seen:.1f} (KubeconfigUnreadable)",
                 f"{seen + healed:.1f} (written again, Synced); the first tenant's create-to-copy "
                 f"{baseline:.2f} s before, {beside:.2f} s beside it (medians of 5)"))
    broken_second_tenant(bed, Path(tmp), second, rows, one_copy)


def broken_second_tenant(bed: Embedded, tmp: Path, second: str, rows: list[tuple[str, str, str]],
                         one_copy: Callable[[], float]) -> None:
    """The syncer's own word on a broken second tenant: its Secret corrupted with the operator paused,
    its apiserver hung, its Secret pointing at a listener answering garbage; each with the first
    tenant's create-to-copy time meanwhile (median of 5)."""
    status = json.loads(bed.kubectl("get", "tenant", second, "-o", "json"))["status"]
    ref, key2 = status["kubeconfigSecret"], status["clusterKey"]
    secret = ["secret", ref["name"], "-n", ref["namespace"]]

    def write(data: str) -> None:
        bed.kubectl("patch", *secret, "--type=merge", "-p", json.dumps({"data": {naming.KUBECONFIG_SECRET_KEY: data}}))

    def synced() -> tuple[str, str]:
        return bed.condition(second, "Synced")

    until(lambda: synced()[0] == "True" and bed.condition(second, "Ready")[0] == "True")
    good = json.loads(bed.kubectl("get", *secret, "-o", "json"))["data"][naming.KUBECONFIG_SECRET_KEY]
    operator = bed.components()["operator"]["pid"]
    os.kill(operator, signal.SIGSTOP)  # its own repair must not come first: the syncer's check alone
    try:
        write(base64.b64encode(b"clusters: [oops").decode())
        seen = until(lambda: synced() == ("False", "KubeconfigUnreadable"))
        beside = sorted(one_copy() for _ in range(5))[2]
        write(good)
    finally:
        os.kill(operator, signal.SIGCONT)
    back = until(lambda: synced()[0] == "True")
    rows.append(("second tenant's Secret corrupted, operator paused", f"{seen:.1f} (syncer: KubeconfigUnreadable)",
                 f"{back:.1f} after the restore (Synced); first tenant's create-to-copy {beside:.2f} s beside it"))

    # the paused operator may have lost its Lease meanwhile (restarted by the supervisor): the hang below
    # is noticed by its health loop, so wait until one leads again
    metrics = bed.health_url("operator").rsplit("/", 1)[0] + "/metrics"
    until(lambda: leading(metrics) and bed.condition(second, "Ready") == ("True", "Ready") and synced()[0] == "True")
    pids = control_plane_processes(tmp.resolve() / "operator", key2).get("kube-apiserver") or []
    if len(pids) == 1:
        os.kill(pids[0], signal.SIGSTOP)
        try:
            seen = until(lambda: synced()[0] == "False")
            reason = synced()[1]
            beside = sorted(one_copy() for _ in range(5))[2]
        finally:
            os.kill(pids[0], signal.SIGCONT)
        back = until(lambda: synced()[0] == "True")
        rows.append(("second tenant's apiserver hung (SIGSTOP)", f"{seen:.1f} (Synced=False {reason})",
                     f"{back:.1f} after SIGCONT (Synced); first tenant's create-to-copy {beside:.2f} s beside it"))

    with GarbageApiserver() as garbage:
        write(pointed_at(good, f"http://127.0.0.1:{garbage.port}"))
        try:
            seen = until(lambda: synced() == ("False", "TenantUnreachable"))
            beside = sorted(one_copy() for _ in range(5))[2]
        finally:
            write(good)
    back = until(lambda: synced()[0] == "True")
    rows.append(("second tenant's Secret points at a garbage answerer", f"{seen:.1f} (Synced=False TenantUnreachable)",
                 f"{back:.1f} after the restore (Synced); first tenant's create-to-copy {beside:.2f} s beside it"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hang", type=float, default=20.0, help="seconds a hung process stays stopped")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="vc-bench-faults-") as tmp:
        bed = Embedded(Path(tmp))
        try:
            bed.vc("up")
            bed.vc("create", TENANT, "--wait", "--timeout", "300")
            for name in ("operator", "syncer"):
                old = bed.components()[name]["pid"]
                url = bed.health_url(name)
                os.kill(old, signal.SIGKILL)
                took = until(lambda: answers(url) and bed.components()[name]["pid"] not in (None, old))  # noqa: B023
                rows.append((f"{name} SIGKILL: restarted", "supervisor (polls every 1 s)", f"{took:.1f}"))
                if name == "operator":  # a new operator stands by until the old one's Lease expires
                    metrics = url.rsplit("/", 1)[0] + "/metrics"
                    leads = until(lambda: leading(metrics))  # noqa: B023
                    rows.append(("operator SIGKILL: leading again", "its Lease expires (15 s)", f"{took + leads:.1f}"))
            key = json.loads(bed.kubectl("get", "tenant", TENANT, "-o", "json"))["status"]["clusterKey"]

            def pid_of(component: str) -> int:
                """The component's pid (-1 while none runs)."""
                pids = control_plane_processes(Path(tmp).resolve() / "operator", key).get(component) or [-1]
                return pids[0]

            for component, reason in (("kube-apiserver", "ApiserverUnreachable"), ("etcd", "EtcdUnhealthy")):
                pid = pid_of(component)
                os.kill(pid, signal.SIGSTOP)
                try:
                    seen = until(lambda: bed.ready() == ("False", reason))  # noqa: B023
                    time.sleep(max(0.0, args.hang - seen))
                finally:
                    os.kill(pid, signal.SIGCONT)
                back = until(lambda: bed.ready() == ("True", "Ready"))
                rows.append((f"tenant {component} hung {args.hang:.0f}s", f"{seen:.1f} ({reason})", f"{back:.1f}"))
            pid = pid_of("kube-apiserver")
            os.kill(pid, signal.SIGKILL)
            reasons: list[str] = []

            def not_ready() -> bool:
                status, reason = bed.ready()
                reasons.append(reason)
                return status == "False"

            seen = until(not_ready)  # short-lived: the repair starts at once
            back = until(lambda: bed.ready() == ("True", "Ready") and pid_of("kube-apiserver") != pid)
            rows.append(("tenant kube-apiserver SIGKILL", f"{seen:.1f} ({reasons[-1]})", f"{seen + back:.1f}"))
            try:
                super_side_faults(bed, Path(tmp), key, rows)
            except (SystemExit, subprocess.SubprocessError, OSError) as exc:  # keep the rows measured so far
                rows.append((f"(the super-side faults stopped: {exc})", "", ""))
        finally:
            subprocess.run([sys.executable, "-m", "vcluster", "down"], env=bed.env, capture_output=True,
                           timeout=300, check=False)
    width = max(len(r[0]) for r in rows)
    print(f"{'fault':<{width}}  {'noticed after s':<30}  healed after s")
    for fault, seen_s, back_s in rows:
        print(f"{fault:<{width}}  {seen_s:<30}  {back_s}")
    print("(healed: from the kill, or from SIGCONT for a hang, until healthy / Ready=True again)")


if __name__ == "__main__":
    main()
