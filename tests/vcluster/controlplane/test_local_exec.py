"""A component without a health endpoint is ready once its process runs its own binary.

Why: right after the fork a child's command line is still its parent's; a /proc scan in that moment
(the operator's health loop, a test counting processes) would not find the component.  The local
backend waits for the exec before it calls the component started.
"""

from __future__ import annotations

import time
from pathlib import Path

from vcluster.controlplane import local
from vcluster.process import ManagedProcess


def _wait(check: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_ready_once_the_command_line_is_the_started_one(tmp_path: Path) -> None:
    proc = ManagedProcess(name="s", argv=["/bin/sleep", "30"], log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid")
    check = local._runs_argv(proc)
    assert not check()  # not started: not ready
    proc.start()
    try:
        assert _wait(check)
    finally:
        proc.stop(grace=1)
    assert not check()


def test_a_process_that_became_something_else_is_not_ready(tmp_path: Path) -> None:
    # the shell execs sleep: the process runs, but not the command line it was started with
    proc = ManagedProcess(name="s", argv=["/bin/sh", "-c", "exec /bin/sleep 30"], log_path=tmp_path / "s.log",
                          pid_path=tmp_path / "s.pid")
    proc.start()
    try:
        time.sleep(0.3)
        assert not local._runs_argv(proc)()
    finally:
        proc.stop(grace=1)


def test_inputs_digest_covers_the_files_a_component_names_under_its_folder(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "a.crt").write_bytes(b"one")
    (pki / "unused.crt").write_bytes(b"x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.crt"
    outside.write_bytes(b"o")
    args = (f"--cert-file={pki / 'a.crt'}", f"--data-dir={tmp_path}", f"--other={outside}", "--v=2")
    first = local.inputs_digest(args, tmp_path)
    (pki / "unused.crt").write_bytes(b"y")
    outside.write_bytes(b"p")
    assert local.inputs_digest(args, tmp_path) == first  # not read by this component / not ours
    (pki / "a.crt").write_bytes(b"two")
    assert local.inputs_digest(args, tmp_path) != first
    second = local.inputs_digest(args, tmp_path)
    # the Go runtime environment is read at start too: a change of it restarts the component
    assert local.inputs_digest(args, tmp_path, env=(("GOMAXPROCS", "1"),)) != second
    assert local.inputs_digest(args, tmp_path, env=()) == second  # no env: the digest from before env existed
    outside.unlink()
