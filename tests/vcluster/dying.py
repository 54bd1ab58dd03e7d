"""A process on its way out, as /proc shows a killed Go binary for a moment: for tests of waiting on exits.

Its main thread has exited (``/proc/<pid>`` reads as a zombie, the command line is empty) while another
thread lives on and holds the process's listening socket, so its port stays taken until it is killed.
"""

from __future__ import annotations

import subprocess
import sys

from vcluster import process as proc

_MAIN_THREAD_EXITS = (
    "import ctypes, socket, sys, threading, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "threading.Thread(target=lambda: time.sleep(3600)).start()\n"
    "print('ready', flush=True)\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)


def argv(port: int) -> list[str]:
    """The command line of :func:`half_dead` for ``port``."""
    return [sys.executable, "-c", _MAIN_THREAD_EXITS, str(port)]


def half_dead(port: int) -> subprocess.Popen[str]:
    """Start the process, listening on 127.0.0.1:``port``; return once its main thread has exited."""
    child = subprocess.Popen(argv(port), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    proc.wait_until(lambda: not proc.pid_alive(child.pid), timeout=10, what="the main thread's exit")
    return child
