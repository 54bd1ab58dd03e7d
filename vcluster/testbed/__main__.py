"""``python -m vcluster.testbed up|down|status --state-dir DIR``.

Why: a developer (and the CLI's ``up``, which wraps this) needs one command
that starts the local super cluster in the foreground and says how to reach
it, and one that stops a running one from its state folder.  Errors are one
line (``error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from pathlib import Path

from vcluster.errors import VClusterError
from vcluster.logs import configure_logging
from vcluster.testbed.cluster import LocalSuperCluster, status, stop_requested, stop_state_dir
from vcluster.testbed.settings import TestbedSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vcluster.testbed", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir", type=Path, help="state folder (default: $VC_TESTBED_STATE_DIR or .vcluster/super)"
    )
    parser.add_argument("--nodes", type=int, help="number of simulated nodes (up)")
    parser.add_argument("--apiserver-port", type=int, help="fixed kube-apiserver port (up; default: a free one)")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def _up(settings: TestbedSettings) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = LocalSuperCluster(settings)
    stopped_by_down = False
    print(f"starting the super cluster in {cluster.state_dir} ...", file=sys.stderr)
    try:
        info = cluster.start()
        print(f"super cluster ready: {info.server} with {len(info.node_names)} simulated nodes")
        print(f"export KUBECONFIG={info.kubeconfig}")
        print(f"logs: {cluster.state_dir / 'logs'}; stop with Ctrl-C or "
              f"`python -m vcluster.testbed down --state-dir {cluster.state_dir}`", flush=True)
        while not stop.wait(1.0):
            for name, proc in cluster.processes().items():
                reason = proc.exit_reason()
                if reason is None:
                    continue
                if stop_requested(cluster.state_dir) or not proc.pid_path.exists():
                    print(f"the super cluster was stopped by `down` ({name} {reason})", file=sys.stderr)
                    stopped_by_down = True  # `down` stops the rest: not both of us at once
                    return 0
                print(f"error: {name} {reason} (log: {proc.log_path}); stopping", file=sys.stderr)
                return 1
        print("stopping ...", file=sys.stderr)
        return 0
    finally:
        if not stopped_by_down:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(level=args.log_level)
    try:
        settings = TestbedSettings.from_env()
        changes: dict[str, object] = {}
        if args.state_dir is not None:
            changes["state_dir"] = args.state_dir
        if args.nodes is not None:
            changes["nodes"] = args.nodes
        if args.apiserver_port is not None:
            changes["apiserver_port"] = args.apiserver_port
        settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
        if args.command == "up":
            return _up(settings)
        if args.command == "down":
            stopped = stop_state_dir(settings.state_dir, grace=settings.stop_grace)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
            return 0
        running = status(settings.state_dir)
        for name, pid in running.items():
            print(f"{name}\t{'running pid ' + str(pid) if pid else 'stopped'}")
        return 0 if running and all(running.values()) else 3
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
