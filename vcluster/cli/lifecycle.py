"""``up``, ``down`` and ``status`` of the embedded default, with progress and a summary.

Why: the mechanics live in :mod:`vcluster.cli.embedded`; this module is what
the user sees -- each long step as it runs, a summary that says how to use the
result (``export KUBECONFIG=...``, ``kubectl vc create NAME``), and plain
words for "already up", "nothing was running" and missing components.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from vcluster.cli import embedded
from vcluster.cli.errors import EXIT_OK, UsageError
from vcluster.cli.output import table
from vcluster.cli.progress import Progress
from vcluster.cli.settings import CliSettings
from vcluster.errors import VClusterError

#: ``status`` exit code when the embedded default is not (fully) up, like ``systemctl status``.
EXIT_NOT_RUNNING = 3


def up(args: argparse.Namespace, settings: CliSettings) -> int:
    layout = embedded.Layout(settings.state_dir)
    progress = Progress()
    nodes = settings.nodes if args.nodes is None else args.nodes
    real_nodes = settings.real_nodes if getattr(args, "real_nodes", None) is None else args.real_nodes
    network_policy = settings.network_policy if getattr(args, "network_policy", None) is None \
        else args.network_policy
    if network_policy and real_nodes != 1:
        raise UsageError(f"--network-policy needs exactly one real node (--real-nodes 1), got {real_nodes}: "
                         "every real node shares this host's network namespace, and one enforcer owns its rules")
    timeout = settings.start_timeout if args.timeout is None else args.timeout
    progress.info(f"virtualcluster: starting the embedded default in {layout.root}")
    result = embedded.up(
        layout, nodes=nodes, real_nodes=real_nodes, network_policy=network_policy, start_timeout=timeout,
        env=dict(settings.env or {}), step=progress.step, note=progress.note,
    )
    kc = shlex.quote(str(layout.super_kubeconfig))
    state = "" if str(layout.root) == str(embedded.Layout(CliSettings.from_env().state_dir).root) else \
        f" --state-dir {shlex.quote(str(layout.root))}"
    if result.already_up:
        print(f"virtualcluster is already up ({result.server}; running: super cluster, "
              f"{', '.join(result.adopted) or 'no components'})")
        if network_policy and not result.network_policy:
            print("  note: it runs without NetworkPolicy enforcement; to enforce: kubectl vc down, then "
                  "kubectl vc up --real-nodes 1 --network-policy")
    else:
        real = f" and {result.real_nodes} real nodes" if result.real_nodes else ""
        enforced = " (NetworkPolicy enforced by kube-router)" if result.network_policy else ""
        print(f"virtualcluster is up: super cluster {result.server} with {result.nodes} simulated nodes{real}"
              f"{enforced}")
        if result.started:
            print(f"  started: {', '.join(result.started)}")
        if result.adopted:
            print(f"  already running: {', '.join(result.adopted)}")
    if result.missing:
        print(f"  missing (not available in this installation, not started): {', '.join(result.missing)}")
    print()
    print("Use it:")
    print(f"  export KUBECONFIG={kc}")
    print("  kubectl vc create team-a --wait")
    print("  kubectl vc connect team-a -- kubectl get namespaces")
    print(f"Status: kubectl vc status{state}    Stop: kubectl vc down{state}")
    print(f"Logs: {layout.logs} and {layout.super_dir / 'logs'}")
    return EXIT_OK


def down(args: argparse.Namespace, settings: CliSettings) -> int:
    layout = embedded.Layout(settings.state_dir)
    progress = Progress()
    with progress.step(f"stopping the embedded default in {layout.root}"):
        result = embedded.down(layout)
    if result.errors:
        raise VClusterError("; ".join(result.errors))
    if not result.stopped and not result.swept:
        print("virtualcluster was not running (nothing to stop)")
    else:
        parts = []
        if result.stopped:
            parts.append(", ".join(result.stopped))
        if result.swept:
            parts.append(f"{result.swept} tenant control-plane process{'es' if result.swept != 1 else ''}")
        print(f"virtualcluster is down: stopped {'; '.join(parts)}")
    if args.purge:
        import shutil

        shutil.rmtree(layout.root, ignore_errors=True)
        print(f"removed {layout.root}")
    else:
        print(f"state kept in {layout.root} ('kubectl vc up' brings the tenants back; --purge removes it)")
    return EXIT_OK


def status(args: argparse.Namespace, settings: CliSettings) -> int:
    layout = embedded.Layout(settings.state_dir)
    rows, tenant_procs = embedded.status(layout)
    # "restarting" is not up: the supervisor is waiting out a back-off after the component exited
    up_now = bool(rows) and all(r.state == "running" for r in rows if r.state != "missing")
    up_now = up_now and embedded.super_cluster_running(layout)
    if args.output == "json":
        data = embedded.to_json(rows, tenant_procs)
        data["up"] = up_now
        data["kubeconfig"] = str(layout.super_kubeconfig) if up_now else None
        print(json.dumps(data, indent=2))
        return EXIT_OK if up_now else EXIT_NOT_RUNNING
    if not layout.super_state.exists():
        print(f"virtualcluster is not up (no state in {layout.root}); start it with 'kubectl vc up'")
        return EXIT_NOT_RUNNING
    print(table([[r.name, str(r.pid or "-"), r.state, "-" if r.restarts is None else str(r.restarts),
                  r.last_exit, r.endpoint or "-"] for r in rows],
                ("COMPONENT", "PID", "STATE", "RESTARTS", "LAST EXIT", "ENDPOINT")), end="")
    print(f"tenant control-plane processes: {tenant_procs}")
    if up_now:
        print(f"export KUBECONFIG={shlex.quote(str(layout.super_kubeconfig))}")
    else:
        print("virtualcluster is not (fully) up: 'kubectl vc up' starts what is missing", file=sys.stderr)
    return EXIT_OK if up_now else EXIT_NOT_RUNNING
