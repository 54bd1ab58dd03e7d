"""Atomic writes: the final mode from the start, no temporary left behind, ``if_changed`` keeps the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vcluster.files import write_atomic


@pytest.mark.parametrize(("data", "mode"), [(b"key", 0o600), ("text", 0o644)], ids=["bytes-private", "text"])
def test_write_atomic_writes_with_mode_and_leaves_no_temporary(tmp_path: Path, data: bytes | str, mode: int) -> None:
    path = write_atomic(tmp_path / "sub" / "file", data, mode=mode)
    assert path.read_bytes() == (data.encode() if isinstance(data, str) else data)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in path.parent.iterdir()) == ["file"]


def test_write_atomic_if_changed_keeps_an_equal_file(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "f", "same")
    os.utime(path, (1, 1))
    write_atomic(path, "same", if_changed=True)
    assert path.stat().st_mtime == 1
    write_atomic(path, "new", if_changed=True)
    assert path.read_text() == "new"


def test_write_atomic_replaces_a_read_only_target_and_cleans_up_on_failure(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "f", "old", mode=0o400)
    write_atomic(path, "new", mode=0o400)
    assert path.read_text() == "new"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inside").write_text("")
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "d", "x")  # the target is a non-empty folder: the rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]
