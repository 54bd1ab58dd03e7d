"""``kubectl vc``: the command line of virtualcluster (also ``python -m vcluster``).

Why: one entry point for an admin's whole day -- start the embedded default
on a laptop (``up``/``down``/``status``), manage tenants on any super cluster
(``create``/``list``/``get``/``delete``) and use them (``kubeconfig``,
``connect``).  Every failure ends as one line ``error: ...`` with exit code 1
(it did not work) or 2 (it was called wrong), never a stack trace.

Only argparse is imported up front; each verb's module is imported when it
runs (see :mod:`vcluster.cli.parser`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from vcluster.cli.errors import EXIT_ERROR, exit_code
from vcluster.errors import VClusterError


def _handler(ref: str) -> Callable[..., int]:
    module, _, func = ref.partition(":")
    handler: Callable[..., int] = getattr(importlib.import_module(module), func)
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    from vcluster.cli.parser import parse
    from vcluster.cli.settings import CliSettings

    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        from vcluster.logs import configure_logging

        configure_logging(level="ERROR")  # the CLI speaks in its own lines; library logs stay quiet
        settings = CliSettings.from_env().with_options(
            state_dir=getattr(args, "state_dir", None), kubeconfig=getattr(args, "kubeconfig", None)
        )
        return _handler(args.handler)(args, settings)
    except VClusterError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"
