"""OCI images written by hand: deterministic, well-formed, and what containerd's import reads."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from vcluster import images


def _spec(tmp_path: Path, *, content: bytes = b"#!/bin/sh\necho hi\n") -> images.ImageSpec:
    tool = tmp_path / "tool"
    tool.write_bytes(content)
    return images.ImageSpec(
        name="localhost/test/tool:1",
        entries=(images.Entry("usr/bin/tool", source=tool, mode=0o755),
                 images.Entry("bin/sh", symlink="/usr/bin/tool"),
                 images.Entry("etc/motd", data=b"hello\n")),
        entrypoint=("/usr/bin/tool",), user="65534:65534",
    )


def test_same_spec_same_digests_and_a_changed_file_changes_them(tmp_path: Path) -> None:
    first = images.build(_spec(tmp_path))
    again = images.build(_spec(tmp_path))
    assert first.manifest_digest == again.manifest_digest
    assert images.build(_spec(tmp_path, content=b"other")).manifest_digest != first.manifest_digest


def test_every_blob_is_addressed_by_its_sha256(tmp_path: Path) -> None:
    built = images.build(_spec(tmp_path))
    for digest, blob in built.blobs.items():
        assert digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    manifest = json.loads(built.blobs[built.manifest_digest])
    assert manifest["mediaType"] == images.MEDIA_MANIFEST
    layer = manifest["layers"][0]
    assert layer["size"] == len(built.blobs[layer["digest"]])
    config = json.loads(built.blobs[manifest["config"]["digest"]])
    # an uncompressed layer's diff id is its digest
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    assert config["config"]["Entrypoint"] == ["/usr/bin/tool"]
    assert config["config"]["User"] == "65534:65534"


def test_layer_holds_files_modes_links_and_implied_parents(tmp_path: Path) -> None:
    built = images.build(_spec(tmp_path))
    manifest = json.loads(built.blobs[built.manifest_digest])
    with tarfile.open(fileobj=io.BytesIO(built.blobs[manifest["layers"][0]["digest"]])) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["usr"].isdir()
        assert members["usr/bin"].isdir()
        assert members["usr/bin/tool"].mode == 0o755
        assert members["bin/sh"].issym()
        assert members["bin/sh"].linkname == "/usr/bin/tool"
        assert {m.mtime for m in members.values()} == {0}
        motd = tar.extractfile("etc/motd")
        assert motd is not None
        assert motd.read() == b"hello\n"


def test_archive_is_an_oci_layout_naming_each_image(tmp_path: Path) -> None:
    built = images.build(_spec(tmp_path))
    archive = images.write_archive([built], tmp_path / "out" / "images.tar")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        layout = tar.extractfile("oci-layout")
        index_file = tar.extractfile("index.json")
        assert layout is not None
        assert index_file is not None
        assert json.loads(layout.read()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(index_file.read())
    assert {f"blobs/sha256/{d.removeprefix('sha256:')}" for d in built.blobs} <= names
    [entry] = index["manifests"]
    assert entry["digest"] == built.manifest_digest
    assert entry["annotations"][images.CONTAINERD_NAME] == "localhost/test/tool:1"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param({"path": "/abs", "data": b""}, "relative", id="absolute-path"),
        pytest.param({"path": "a/../b", "data": b""}, "relative", id="dot-dot"),
        pytest.param({"path": "a", "data": b"", "symlink": "/b"}, "exactly one", id="two-kinds"),
        pytest.param({"path": "a"}, "exactly one", id="no-kind"),
    ],
)
def test_bad_entries_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(images.ImageError, match=message):
        images.Entry(**entry)  # type: ignore[arg-type]


def test_unreadable_source_is_one_clear_error(tmp_path: Path) -> None:
    spec = images.ImageSpec(name="localhost/x:1", entries=(images.Entry("x", source=tmp_path / "missing"),))
    with pytest.raises(images.ImageError, match="cannot read"):
        images.build(spec)


def test_busybox_image_links_every_applet_to_busybox(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF")
    spec = images.busybox_image(busybox, ["bin/busybox", "bin/sh", "usr/bin/wget"])
    links = {e.path: e.symlink for e in spec.entries if e.symlink}
    assert links == {"bin/sh": "/bin/busybox", "usr/bin/wget": "/bin/busybox"}
    assert spec.name == images.BUSYBOX_IMAGE


def test_ldd_output_names_each_library_and_the_loader() -> None:
    text = (
        "\tlinux-vdso.so.1 (0x00007fb815ccb000)\n"
        "\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007fb815b21000)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb81541e000)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007fb815ccd000)\n"
    )
    assert images.parse_ldd(text) == [Path("/lib/x86_64-linux-gnu/libssl.so.3"),
                                      Path("/lib/x86_64-linux-gnu/libc.so.6"),
                                      Path("/lib64/ld-linux-x86-64.so.2")]


def test_a_binary_travels_with_its_libraries(tmp_path: Path) -> None:
    binary, lib = tmp_path / "tool", tmp_path / "libx.so.1"
    binary.write_bytes(b"bin")
    lib.write_bytes(b"lib")
    entries = images.with_libraries(binary, [lib])
    assert [e.path for e in entries] == [str(binary).lstrip("/"), str(lib).lstrip("/")]
