"""The CLI's usage error: bad arguments exit 2, everything else that goes wrong exits 1.

Why: scripts that call ``kubectl vc`` tell "you called me wrong" (2) from
"it did not work" (1), as kubectl and argparse do.  Everything user-facing
still derives from :class:`~vcluster.errors.VClusterError`.
"""

from __future__ import annotations

from vcluster.errors import VClusterError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(VClusterError):
    """The command line (or a file it names) is wrong; exit code 2."""


def exit_code(exc: VClusterError) -> int:
    """The process exit code for a user-facing error."""
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
