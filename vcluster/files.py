"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Why: kubeconfigs, certificates, pid and port files, state records and kwok
configs are read by other processes (a tenant apiserver, the CLI, a restarted
operator) while we may be rewriting them.  Every writer goes through
:func:`write_atomic`: a temporary file in the same folder, created with its
final mode (a key is never world-readable, not even for a moment), then
renamed over the target.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644, if_changed: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically with ``mode``; parents are created.

    ``if_changed`` skips the write when the file already holds exactly ``data`` (no new mtime, no
    inotify event for a watcher).
    """
    raw = data.encode() if isinstance(data, str) else data
    if if_changed:
        with contextlib.suppress(OSError):
            if path.read_bytes() == raw:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, mode)  # the umask may have narrowed it
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
