"""The ``kubectl vc`` command line: every verb, its options and its help text.

Why: the argument parser is built from argparse alone, and each verb names
its handler as ``"module:function"``, imported only when that verb runs, so
``--help`` and usage errors never pay for aiohttp, the test bed or the API
layer.  Usage errors raise :class:`~vcluster.cli.errors.UsageError` (one
line, exit 2) instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from vcluster.cli.errors import UsageError

PROG = "kubectl vc"

OUTPUT_FORMATS = ("wide", "yaml", "json", "name")
BACKENDS = ("local", "pods")
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised as one-line :class:`UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every verb accepts, before or after the verb (``suppress`` keeps the top level's value)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--kubeconfig", metavar="FILE", default=default,
        help="kubeconfig of the super cluster (default: $KUBECONFIG, else the embedded default's when it is up)",
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", default=default,
        help="state folder of the embedded default (default: $VC_STATE_DIR or ~/.local/state/virtualcluster)",
    )


def _verb(sub: argparse._SubParsersAction[Parser], name: str, handler: str, *, help: str,
          description: str | None = None, aliases: tuple[str, ...] = ()) -> Parser:
    parser: Parser = sub.add_parser(
        name, help=help, description=description or help, aliases=list(aliases),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, suppress=True)
    parser.set_defaults(handler=handler, verb=name)
    return parser


def _wait_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"wait until the tenant is {what}")
    parser.add_argument("--timeout", type=_positive_float, default=300.0, metavar="SECONDS",
                        help="how long --wait waits (default: 300)")


def build_parser() -> Parser:
    """The whole command line."""
    parser = Parser(
        prog=PROG,
        description="virtualcluster: a Kubernetes control plane per tenant, workloads in one shared super cluster.",
        epilog="Start here: 'kubectl vc up', then 'kubectl vc create NAME --wait'. Every verb has --help.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    up = _verb(sub, "up", "vcluster.cli.lifecycle:up",
               help="start the embedded default (local super cluster and components)",
               description="Start a local super cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)\n"
                           "and the operator, syncer and kubelet proxy as background processes. Idempotent.")
    up.add_argument("--nodes", type=_nonnegative_int, default=None, metavar="N",
                    help="simulated nodes of the super cluster (default: $VC_NODES or 2)")
    up.add_argument("--real-nodes", type=_nonnegative_int, default=None, metavar="N",
                    help="real nodes (kubelet on containerd; root only) next to the simulated ones "
                         "(default: $VC_REAL_NODES or 0)")
    up.add_argument("--network-policy", action="store_true", default=None,
                    help="enforce NetworkPolicy on the real node (kube-router's policy controller; needs "
                         "--real-nodes 1; default: $VC_NETWORK_POLICY)")
    up.add_argument("--timeout", type=_positive_float, default=None, metavar="SECONDS",
                    help="deadline of each start step (default: $VC_START_TIMEOUT or 120)")

    down = _verb(sub, "down", "vcluster.cli.lifecycle:down", help="stop the embedded default; nothing keeps running",
                 description="Stop every process 'up' started (and the tenants' local control planes).\n"
                             "State is kept unless --purge is given.")
    down.add_argument("--purge", action="store_true", help="also remove the state folder (tenants are lost)")

    status = _verb(sub, "status", "vcluster.cli.lifecycle:status", help="show what the embedded default runs",
                   description="Show each component's pid, state and endpoint. Exit code 3 when not (fully) up.")
    status.add_argument("-o", "--output", choices=("json",), default=None, help="output format")

    create = _verb(sub, "create", "vcluster.cli.tenants:create", help="create a tenant (its own control plane)",
                   description="Create a Tenant from options or from a file (-f).\n\n"
                               "  kubectl vc create team-a --owner alice --quota cpu=2,memory=4Gi --wait\n"
                               "  kubectl vc create -f tenant.yaml")
    create.add_argument("name", nargs="?", metavar="NAME", help="tenant name (DNS label, at most 32 characters)")
    create.add_argument("-f", "--filename", metavar="FILE", help="a Tenant manifest (YAML or JSON; '-' reads stdin)")
    create.add_argument("--version", dest="kube_version", metavar="VERSION",
                        help="Kubernetes version of the control plane (e.g. v1.36.3)")
    create.add_argument("--cluster-version", metavar="NAME", help="a ClusterVersion to use as the template")
    create.add_argument("--backend", choices=BACKENDS,
                        help="where the control plane runs (default: the operator's; pods when it runs in a pod)")
    create.add_argument("--owner", action="append", default=[], metavar="USER",
                        help="user made cluster-admin of the tenant (repeatable)")
    create.add_argument("--owner-group", action="append", default=[], metavar="GROUP",
                        help="group made cluster-admin of the tenant (repeatable)")
    create.add_argument("--pod-security", choices=POD_SECURITY_LEVELS, help="Pod Security Standard (default: baseline)")
    create.add_argument("--quota", metavar="RES=QTY,...",
                        help="the tenant-wide quota (all its namespaces together; replaces the operator "
                             "default), e.g. cpu=2,memory=4Gi")
    create.add_argument("-o", "--output", choices=("yaml", "json", "name"), default=None,
                        help="print the created Tenant")
    _wait_options(create, what="Ready")

    ls = _verb(sub, "list", "vcluster.cli.tenants:list_", help="list tenants", aliases=("ls",))
    ls.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default=None, help="output format")

    get = _verb(sub, "get", "vcluster.cli.tenants:get", help="show one tenant")
    get.add_argument("name", metavar="NAME")
    get.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default=None, help="output format")

    delete = _verb(sub, "delete", "vcluster.cli.tenants:delete", help="delete tenants (and their control planes)",
                   aliases=("rm",))
    delete.add_argument("names", nargs="+", metavar="NAME")
    _wait_options(delete, what="gone")

    kc = _verb(sub, "kubeconfig", "vcluster.cli.access:kubeconfig", help="print or write a tenant's kubeconfig")
    kc.add_argument("name", metavar="NAME")
    kc.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (mode 0600) instead of stdout")

    connect = _verb(sub, "connect", "vcluster.cli.access:connect",
                    help="run a command with KUBECONFIG set to a tenant's kubeconfig",
                    description="Run CMD with KUBECONFIG pointing at the tenant's kubeconfig; its exit code is passed "
                                "through.\n\n  kubectl vc connect team-a -- kubectl get namespaces")
    connect.add_argument("name", metavar="NAME")
    connect.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a missing verb is a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.error("a command is required")
    if getattr(args, "verb", None) == "connect":
        command = list(args.command)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise UsageError(f"connect needs a command after '--' (see '{PROG} connect --help')")
        args.command = command
    return args
