"""``python -m vcluster.cli.supervise <state folder>``: the process that keeps the embedded default's components up.

Why this module exists: ``kubectl vc up`` returns to the shell, yet the
operator, kubelet proxy and syncer it started must come back when they exit
(an operator that lost its Lease exits on purpose, expecting a restart).
``up`` leaves this process behind; it reads the components from
``embedded.json`` (argv, pid and log files, each one's variables), starts or
adopts them, and restarts any that exits with back-off
(:class:`vcluster.supervisor.Supervisor`, settings
:class:`vcluster.settings.SupervisorSettings`).  SIGTERM (what ``down``
sends) stops the components, last first, and then the supervisor.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

import structlog

from vcluster.backoff import BackoffPolicy
from vcluster.errors import VClusterError

log = structlog.get_logger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vcluster.cli.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", type=Path, help="the embedded default's state folder")
    args = parser.parse_args(argv)

    from vcluster.cli.embedded import COMPONENTS, Layout, read_records
    from vcluster.logs import configure_logging
    from vcluster.settings import SupervisorSettings
    from vcluster.supervisor import RestartPolicy, Supervisor, install_stop_handlers

    configure_logging(level="INFO")
    try:
        settings = SupervisorSettings.from_env()
        layout = Layout(args.state_dir)
        records = read_records(layout)
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = {**os.environ, "KUBECONFIG": str(layout.super_kubeconfig)}
    children = [records[spec.name].process(spec.name, env={**base, **records[spec.name].env})
                for spec in COMPONENTS if spec.name in records]
    policy = RestartPolicy(
        backoff=BackoffPolicy(initial=settings.backoff_initial, factor=2.0, cap=settings.backoff_max, jitter=0.0),
        reset_after=settings.backoff_reset,
    )
    supervisor = Supervisor(children, policy=policy, status_path=layout.supervisor_status)
    stop = threading.Event()
    install_stop_handlers(stop)
    log.info("supervisor.started", state_dir=str(layout.root), components=[c.name for c in children])
    errors = supervisor.run(stop, poll_interval=settings.poll_interval, grace=settings.grace)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    log.info("supervisor.stopped")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
