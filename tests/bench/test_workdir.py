"""The benchmarks' work folder: removed at the end unless ``--keep`` (bench/workdir.py).

Why: every bench left its 100-280 MB ``vc-bench-*`` folder in /tmp; the flag logic and the removal
are checked here without starting a test bed.
"""

from __future__ import annotations

import argparse
import atexit
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import workdir


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    workdir.add_keep_flag(parser)
    return parser.parse_args(list(argv))


def test_keep_flag_defaults_to_removing() -> None:
    assert _parse().keep is False
    assert _parse("--keep").keep is True


def test_finish_removes_the_folder_and_its_contents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "vc-bench-x"
    (work / "etcd" / "member").mkdir(parents=True)
    (work / "etcd" / "member" / "db").write_bytes(b"x" * 1000)
    workdir.finish(work, keep=False)
    assert not work.exists()
    assert "work folder removed" in capsys.readouterr().out


def test_finish_keeps_the_folder_with_keep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "vc-bench-x"
    work.mkdir()
    (work / "operator.log").write_text("log")
    workdir.finish(work, keep=True)
    assert (work / "operator.log").read_text() == "log"
    assert f"kept (--keep): {work}" in capsys.readouterr().out


def test_make_registers_the_removal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registered: list[tuple[object, tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **kw: registered.append((fn, a, kw)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = workdir.make("vc-bench-unit-", keep=False)
    assert path.is_dir()
    assert path.parent == tmp_path
    assert path.name.startswith("vc-bench-unit-")
    assert registered == [(workdir.finish, (path,), {"keep": False})]


def test_make_refuses_a_prefix_stale_folders_would_not_be_found_by() -> None:
    with pytest.raises(ValueError, match="vc-bench-"):
        workdir.make("bench-provisioning-", keep=True)


MOUNTS = """overlay / overlay rw 0 0
tmpfs /tmp/vc-bench-real-ab/nodes/n0/run tmpfs rw 0 0
shm /tmp/vc-bench-real-ab2/shm tmpfs rw 0 0
overlay /tmp/vc-bench-real-ab/with\\040space overlay rw 0 0
"""


def test_mounts_below_the_folder_are_found() -> None:
    found = workdir.mounted_under(Path("/tmp/vc-bench-real-ab"), MOUNTS)
    assert found == ["/tmp/vc-bench-real-ab/nodes/n0/run", "/tmp/vc-bench-real-ab/with space"]
    assert workdir.mounted_under(Path("/tmp/vc-bench-other"), MOUNTS) == []


def test_a_folder_with_mounts_below_is_kept() -> None:
    text = workdir.farewell(Path("/tmp/vc-bench-x"), keep=False, mounts=["/tmp/vc-bench-x/m"])
    assert text.startswith("work folder kept: /tmp/vc-bench-x")
    assert "/tmp/vc-bench-x/m" in text
