"""Inside an idle tenant: where its kube-apiserver, kube-controller-manager and etcd spend their CPU.

Why: issue #16 (item 4).  bench_density.py measures *how much* CPU an idle tenant burns per process;
rounds 7-9 tried the flags we knew of and stayed at 1.2-1.7 % of a core per tenant against a target
of 0.5 %.  This bench looks *inside* the processes: it starts a super cluster, the real operator and
the syncer, creates one tenant with the operator's default flags (the profiled one) and one whose
apiserver logs at ``-v=3`` (every request with its user agent, every failed ``/readyz`` with the
checks not yet finished: who polls a tenant, and where the apiserver's start goes), lets them settle,
then samples the profiled tenant's three processes with ``perf record`` (frame pointers: Go keeps
them on amd64) over one idle window.  The binaries are stripped, so the samples are symbolized with
``go tool addr2line`` (it reads the Go function table a stripped binary keeps).  It prints per
process: the CPU over the window (``/proc``), the share of samples by goroutine root (what kind of
work: a controller's loop, a timer, the GC, the scheduler), by leaf function, and cumulative by
function; the apiserver's request rate by verb and resource (``apiserver_request_total``) and by
user agent (the ``-v=3`` tenant's log); the ``-v=3`` apiserver's start timeline.  Why perf rather
than ``/debug/pprof``: the tenant controller-manager serves no port (``--secure-port=0`` is the
operator's), and one method for all three processes keeps their shares comparable.

    flock /work/.testbed.lock python bench/profile_idle.py [--window 90] [--settle 20] [--out DIR]
        [--variant default] [--extra '{"controllerManager": {...}}']
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import workdir  # noqa: E402
from bench_syncer import _TICK, _cmdline, free_port, load, super_cluster  # noqa: E402

from e2e.operator_fixtures import TenantHandle, create_tenant, running_operator  # noqa: E402
from e2e.syncer_fixtures import SyncerProcess  # noqa: E402

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
_GO_RUNTIME_ROOTS = ("runtime.goexit", "runtime.mstart", "runtime.main", "runtime.rt0_go")


def pids_of(key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = _cmdline(entry.name)
            if argv and Path(argv[0]).name in COMPONENTS and any(key in a for a in argv[1:]):
                out[Path(argv[0]).name] = int(entry.name)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def switches(pid: int) -> int:
    """Context switches of all the process's threads so far: how often it woke up (an idle Go process's
    cost is mostly its wake-ups: the scheduler's search for work, timers, the netpoller)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def request_counts(t: TenantHandle) -> collections.Counter[str]:
    text = t.kubectl("get", "--raw", "/metrics").stdout
    out: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            what = f"{labels.get('verb')} {labels.get('group') or 'core'}/{labels.get('resource')}" \
                   f"{'/' + labels['subresource'] if labels.get('subresource') else ''}"
            out[what] += int(float(line.rsplit(" ", 1)[1]))
    return out


def _load_delta(binary: str) -> int:
    """Virtual address minus file offset of the binary's first loaded segment (``perf script`` prints a
    static binary's addresses as file offsets; ``addr2line`` wants virtual ones)."""
    headers = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    load_line = next(ln.split() for ln in headers.splitlines() if ln.strip().startswith("LOAD"))
    return int(load_line[2], 16) - int(load_line[1], 16)


def symbolize(binary: str, addrs: set[int]) -> dict[int, str]:
    ordered = sorted(addrs)
    delta = _load_delta(binary)
    got = subprocess.run(["go", "tool", "addr2line", binary], input="".join(f"{a + delta:#x}\n" for a in ordered),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    names = got[0::2]
    return dict(zip(ordered, names, strict=False))


def parse_perf(script: str) -> list[tuple[int, list[tuple[int | None, str]]]]:
    """``perf script`` output → samples of (pid, frames leaf first); a frame is (user address, kernel symbol)."""
    samples: list[tuple[int, list[tuple[int | None, str]]]] = []
    pid: int | None = None
    frames: list[tuple[int | None, str]] = []
    for line in script.splitlines():
        if not line.strip():
            if pid is not None:
                samples.append((pid, frames))
            pid, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            m = re.match(r"\s*\S+\s+(\d+)", line)
            pid = int(m.group(1)) if m else None
            frames = []
            continue
        parts = line.split()
        ip, sym, dso = parts[0], " ".join(parts[1:-1]), parts[-1]
        if "kernel" in dso or "vdso" in dso:
            frames.append((None, f"[k] {sym.split('+')[0]}"))
        else:
            frames.append((int(ip, 16), ""))
    if pid is not None:
        samples.append((pid, frames))
    return samples


def analyse(perf_data: Path, binaries: dict[int, str], names: dict[int, str], out: Path) -> None:
    script = subprocess.run(["perf", "script", "-i", str(perf_data), "-F", "comm,pid,ip,sym,dso"],
                            capture_output=True, text=True, check=True).stdout
    samples = parse_perf(script)
    by_pid: dict[int, list[list[tuple[int | None, str]]]] = collections.defaultdict(list)
    for pid, frames in samples:
        if pid in binaries:
            by_pid[pid].append(frames)
    for pid, stacks in sorted(by_pid.items(), key=lambda x: names[x[0]]):
        addrs = {a - (1 if i else 0) for st in stacks for i, (a, _) in enumerate(st) if a is not None}
        table = symbolize(binaries[pid], addrs)
        named: list[list[str]] = []
        for st in stacks:
            named.append([k if a is None else table.get(a - (1 if i else 0), "?") for i, (a, k) in enumerate(st)])
        collapsed = collections.Counter(";".join(reversed(st)) for st in named)
        (out / f"{names[pid]}.collapsed").write_text("".join(f"{s} {n}\n" for s, n in collapsed.most_common()))
        total = len(named)
        flat: collections.Counter[str] = collections.Counter()
        leaf_go: collections.Counter[str] = collections.Counter()
        cum: collections.Counter[str] = collections.Counter()
        roots: collections.Counter[str] = collections.Counter()
        for fr in named:
            flat[fr[0]] += 1
            leaf_go[next((f for f in fr if not f.startswith("[k]")), "?")] += 1
            for f in set(fr):
                cum[f] += 1
            outer = [f for f in reversed(fr) if f not in _GO_RUNTIME_ROOTS and not f.startswith("[k]")]
            roots[" ← ".join(reversed(outer[:3])) if outer else "?"] += 1
        kernel = sum(1 for fr in named if fr[0].startswith("[k]"))
        print(f"\n=== {names[pid]} (pid {pid}): {total} samples, {kernel / total * 100:.0f}% in the kernel")
        for title, counter, n in (("by goroutine root (outermost 3 frames)", roots, 25),
                                  ("flat, first Go frame", leaf_go, 20), ("flat, leaf incl. kernel", flat, 12),
                                  ("cumulative", cum, 45)):
            print(f"  -- {title}")
            for what, c in counter.most_common(n):
                print(f"    {c / total * 100:5.1f}%  {what[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=90.0)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--out", default=None, help="folder for perf.data, collapsed stacks and logs")
    parser.add_argument("--extra", default="{}", help="extraArgs of the profiled tenant (JSON)")
    parser.add_argument("--freq", type=int, default=997, help="perf samples per second and thread")
    workdir.add_keep_flag(parser)
    args = parser.parse_args()
    work = workdir.make("vc-bench-profile-", keep=args.keep)
    out = Path(args.out or work / "profile")
    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = json.loads(args.extra)
    print(f"work dir: {work}; out {out}; load {load()}", flush=True)
    with super_cluster(None, work, nodes=1) as super_, \
            running_operator(super_, state_dir=work / "operator", log_path=work / "operator.log"):
        syncer = SyncerProcess(super_, log_path=work / "syncer.log", env={"VC_SYNCER_METRICS_PORT": str(free_port())})
        syncer.start()
        try:
            spec: dict[str, Any] = {"extraArgs": extra} if extra else {}
            prof = create_tenant(super_, "prof", controlPlane=spec) if spec else create_tenant(super_, "prof")
            verbose = create_tenant(super_, "verbose", controlPlane={"extraArgs": {"apiserver": {"v": "3"}}})
            print(f"tenants Ready; settling {args.settle:.0f}s (load {load()})", flush=True)
            time.sleep(args.settle)
            pids = pids_of(prof.cluster_key)
            names = {pid: name for name, pid in pids.items()}
            binaries = {pid: _cmdline(str(pid))[0] for pid in names}
            vlog = work / "operator" / verbose.cluster_key / "logs" / "kube-apiserver.log"
            mark = vlog.stat().st_size
            before_req, before_cpu = request_counts(prof), {p: cpu_seconds(p) for p in names}
            before_sw, t0 = {p: switches(p) for p in names}, time.monotonic()
            subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "--call-graph", "fp", "-o",
                            str(out / "perf.data"), "-p", ",".join(map(str, names)), "--", "sleep",
                            str(args.window)], check=True, capture_output=True)
            wall = time.monotonic() - t0
            after_cpu, after_sw = {p: cpu_seconds(p) for p in names}, {p: switches(p) for p in names}
            after_req = request_counts(prof)
            with vlog.open("rb") as fh:
                fh.seek(mark)
                window_log = fh.read().decode(errors="replace")
            shutil.copytree(work / "operator" / verbose.cluster_key / "logs", out / "verbose-logs", dirs_exist_ok=True)
            shutil.copytree(work / "operator" / prof.cluster_key / "logs", out / "prof-logs", dirs_exist_ok=True)
            shutil.copy(work / "operator.log", out / "operator.log")
        finally:
            syncer.stop()
    print(f"\nidle window {wall:.0f}s (load {load()}); CPU, % of one core, and context switches per second "
          "(the perf sampling's own included):")
    for pid, name in sorted(names.items(), key=lambda x: x[1]):
        print(f"  {name:26s} {(after_cpu[pid] - before_cpu[pid]) / wall * 100:6.2f}%  "
              f"{(after_sw[pid] - before_sw[pid]) / wall:8.1f}/s")
    print("\nprofiled apiserver: requests per minute over the window (apiserver_request_total; incl. 1 metrics GET):")
    for what, n in (after_req - before_req).most_common(25):
        print(f"  {n / wall * 60:8.1f}  {what}")
    agents: collections.Counter[str] = collections.Counter()
    for line in window_log.splitlines():
        if '"HTTP"' in line:
            verb = re.search(r'verb="(\w+)"', line)
            uri = re.search(r'URI="([^"?]*)', line)
            agent = re.search(r'userAgent="([^"/ ]*)', line)
            agents[f"{agent.group(1) if agent else '?'} {verb.group(1) if verb else '?'} "
                   f"{uri.group(1) if uri else '?'}"] += 1
    print("\n-v=3 apiserver: requests per minute by user agent, verb, path (its own log over the window):")
    for what, n in agents.most_common(25):
        print(f"  {n / wall * 60:8.1f}  {what}")
    analyse(out / "perf.data", binaries, names, out)
    print(f"\nload at the end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
