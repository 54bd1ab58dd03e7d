"""Unit tests of LocalBackend.ports: a tenant keeps its ports across a restart of its components."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from tests.vcluster.dying import half_dead
from vcluster import process as proc
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import PORTS_FILE, LocalBackend, LocalPorts
from vcluster.settings import BinarySettings

KEY = "alpha-aaa111"


def test_a_port_held_by_a_dying_component_is_kept_not_replaced(tmp_path: Path) -> None:
    backend = LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings.from_env())
    saved = LocalPorts(*(proc.pick_free_port() for _ in range(3)))
    folder = backend.tenant_dir(KEY)
    (folder / "run").mkdir(parents=True)
    (folder / PORTS_FILE).write_text(json.dumps({"apiserver": saved.apiserver, "etcd_client": saved.etcd_client,
                                                 "etcd_peer": saved.etcd_peer}))
    dying = half_dead(saved.apiserver)
    (folder / "run" / f"{cp.APISERVER_COMPONENT}.pid").write_text(f"{dying.pid}\n")
    timer = threading.Timer(0.5, dying.kill)
    timer.start()
    try:
        assert backend.ports(KEY) == saved
    finally:
        timer.cancel()
        dying.kill()
        dying.wait(timeout=10)


def test_a_port_taken_by_someone_else_is_replaced(tmp_path: Path) -> None:
    backend = LocalBackend(state_dir=tmp_path, binary_settings=BinarySettings.from_env())
    saved = LocalPorts(*(proc.pick_free_port() for _ in range(3)))
    folder = backend.tenant_dir(KEY)
    folder.mkdir(parents=True)
    (folder / PORTS_FILE).write_text(json.dumps({"apiserver": saved.apiserver, "etcd_client": saved.etcd_client,
                                                 "etcd_peer": saved.etcd_peer}))
    with socket.socket() as other:
        other.bind(("127.0.0.1", saved.apiserver))
        other.listen()
        ports = backend.ports(KEY)
    assert ports.apiserver != saved.apiserver
