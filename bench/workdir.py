"""The work folder of a benchmark: one ``vc-bench-*`` folder under /tmp, removed at the end unless ``--keep``.

Why: every bench runs its super cluster, tenant etcds, logs and kubeconfigs in a
``tempfile.mkdtemp`` folder (100-280 MB each); they were never removed and filled
/tmp run after run.  Each bench now takes ``--keep`` (keep the folder, e.g. to read
the component logs afterwards) and otherwise removes the folder when the script ends,
after its context managers have stopped the processes that wrote into it (an
``atexit`` hook: it also runs when the bench fails with an exception).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path

KEEP_HELP = "keep the work folder (component logs, state) instead of removing it at the end"


def add_keep_flag(parser: argparse.ArgumentParser) -> None:
    """``--keep``: do not remove the work folder at the end."""
    parser.add_argument("--keep", action="store_true", help=KEEP_HELP)


def mounted_under(path: Path, mounts: str) -> list[str]:
    """Mount points at or below ``path`` in a ``/proc/self/mounts`` text (pure; octal escapes decoded)."""
    root = str(path).rstrip("/")
    out = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = fields[1].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            out.append(point)
    return out


def farewell(path: Path, *, keep: bool, mounts: list[str] | None = None) -> str:
    """What the bench says about its work folder at the end (pure)."""
    if keep:
        return f"work folder kept (--keep): {path}"
    if mounts:
        return (f"work folder kept: {path} still has {len(mounts)} mount(s) below it ({mounts[0]}, ...); "
                "unmount them, then remove it")
    return f"work folder removed: {path} (--keep keeps it)"


def make(prefix: str, *, keep: bool) -> Path:
    """A new work folder under the system temp dir, removed when the interpreter exits unless ``keep``."""
    if not prefix.startswith("vc-bench-"):
        raise ValueError(f"work folder prefix {prefix!r}: must start with 'vc-bench-' (so stale ones are found)")
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(finish, path, keep=keep)
    return path


def finish(path: Path, *, keep: bool) -> None:
    """Remove ``path`` unless ``keep`` or something is still mounted below it (a real node's container
    file systems: removing through a mount would delete what it shows); say which."""
    mounts: list[str] = []
    if not keep:
        try:
            mounts = mounted_under(path.resolve(), Path("/proc/self/mounts").read_text())
        except OSError:
            mounts = []
        if not mounts:
            shutil.rmtree(path, ignore_errors=True)
    print(farewell(path, keep=keep, mounts=mounts), flush=True)
