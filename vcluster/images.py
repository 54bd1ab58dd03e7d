"""OCI images from local files, without a container engine or a registry.

Why this module exists: nothing on our machines can pull from a registry, and
no Docker daemon is there to build with, yet real nodes need images: the
sandbox (pause) image every pod lives in, a small test image, and later the
project's own image.  An OCI image is only a few JSON documents and tar
layers addressed by their sha256, so we write them ourselves: deterministic
(same files, same digests), as an OCI image-layout archive that
``ctr images import`` loads and a registry would accept.

Building is pure apart from reading the source files and writing the archive;
:func:`import_into` runs ``ctr``, :func:`shared_libraries` runs ``ldd`` and
:func:`project_site` runs ``pip``.  ``python -m vcluster.images build`` makes
the project's own image and the control-plane images the ``pods`` backend
runs (from the binaries the test bed builds), ``--load STATE_DIR`` imports
them into every real node of a test bed.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcluster.errors import VClusterError

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: The annotation ``ctr images import`` names an imported image by.
CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(VClusterError):
    """An image could not be built or imported; the message names the cause."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One path in an image layer: a file (from ``source`` or ``data``), a directory, or a symlink."""

    path: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644
    symlink: str | None = None
    directory: bool = False
    uid: int = 0
    gid: int = 0

    def __post_init__(self) -> None:
        kinds = sum(x is not None for x in (self.source, self.data, self.symlink)) + int(self.directory)
        if kinds != 1:
            raise ImageError(f"image entry {self.path!r} must be exactly one of source, data, symlink, directory")
        if not self.path or self.path.startswith("/") or ".." in self.path.split("/"):
            raise ImageError(f"image entry path {self.path!r} must be relative, without '..'")


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What an image holds and how its container starts."""

    #: Full reference, e.g. ``localhost/virtualcluster/pause:v1.36.3``.
    name: str
    entries: tuple[Entry, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    workdir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    architecture: str = "amd64"


def _tar_info(entry: Entry, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mode = entry.mode
    info.size = size
    if entry.directory:
        info.type = tarfile.DIRTYPE
    elif entry.symlink is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.symlink
    return info


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed, deterministic tar layer of ``entries`` (sorted by path; parents implied)."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, Entry(parent, directory=True, mode=0o755))
        by_path[entry.path] = entry
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            if entry.source is not None or entry.data is not None:
                try:
                    data = entry.source.read_bytes() if entry.source is not None else entry.data or b""
                except OSError as exc:
                    raise ImageError(f"cannot read {entry.source} for image entry {path}: {exc}") from exc
                tar.addfile(_tar_info(entry, len(data)), io.BytesIO(data))
            else:
                tar.addfile(_tar_info(entry))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """The blobs of one image, keyed by digest, and the digest of its manifest."""

    name: str
    manifest_digest: str
    blobs: Mapping[str, bytes]
    manifest_size: int


def build(spec: ImageSpec) -> BuiltImage:
    """The image's blobs (one layer, its config, its manifest); the same spec gives the same digests."""
    layer = layer_tar(spec.entries)
    layer_digest = _digest(layer)
    config: dict[str, Any] = {
        "architecture": spec.architecture,
        "os": "linux",
        "config": {
            k: v for k, v in {
                "Entrypoint": list(spec.entrypoint) or None,
                "Cmd": list(spec.cmd) or None,
                "Env": list(spec.env) or None,
                "User": spec.user or None,
                "WorkingDir": spec.workdir or None,
                "Labels": dict(spec.labels) or None,
            }.items() if v is not None
        },
        # the uncompressed layer's digest is its diff id
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "created": "1970-01-01T00:00:00Z",
    }
    config_bytes = _json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    manifest_bytes = _json(manifest)
    blobs = {layer_digest: layer, _digest(config_bytes): config_bytes, _digest(manifest_bytes): manifest_bytes}
    return BuiltImage(name=spec.name, manifest_digest=_digest(manifest_bytes), blobs=blobs,
                      manifest_size=len(manifest_bytes))


def write_archive(images: Sequence[BuiltImage], dest: Path) -> Path:
    """Write ``images`` as one OCI image-layout tar archive at ``dest`` (atomically)."""
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST, "digest": img.manifest_digest, "size": img.manifest_size,
                "annotations": {CONTAINERD_NAME: img.name, REF_NAME: img.name.rsplit(":", 1)[-1]},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
            for img in images
        ],
    }
    files: dict[str, bytes] = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    for img in images:
        for digest, blob in img.blobs.items():
            files[f"blobs/sha256/{digest.removeprefix('sha256:')}"] = blob
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            tar.addfile(_tar_info(Entry(folder, directory=True, mode=0o755)))
        for path in sorted(files):
            data = files[path]
            tar.addfile(_tar_info(Entry(path, data=data), len(data)), io.BytesIO(data))
    tmp.replace(dest)
    return dest


def import_into(archive: Path, *, address: Path, namespace: str = "k8s.io", ctr: str = "ctr") -> None:
    """Load an archive into the containerd at ``address`` (the namespace the CRI plugin uses)."""
    proc = subprocess.run(
        [ctr, "--address", str(address), "-n", namespace, "images", "import", "--no-unpack=false", str(archive)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode != 0:
        raise ImageError(f"ctr images import {archive} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")


# ---- the images the test bed needs ------------------------------------------------------------

#: Fixed local names: tests and pod specs refer to them; ``localhost/`` so a pull, if ever
#: attempted, goes nowhere but this machine.
PAUSE_IMAGE = "localhost/virtualcluster/pause:3.10"
BUSYBOX_IMAGE = "localhost/virtualcluster/busybox:1.35"

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def pause_image(pause_binary: Path) -> ImageSpec:
    """Kubernetes' pause (built by :func:`vcluster.binaries.build_pause`) as the sandbox image."""
    return ImageSpec(
        name=PAUSE_IMAGE,
        entries=(Entry("pause", source=pause_binary, mode=0o755),),
        entrypoint=("/pause",), user="65535:65535", env=(),
    )


def busybox_applets(busybox: Path) -> list[str]:
    """The applet paths a static busybox installs (``busybox --list-full``), e.g. ``bin/sh``."""
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=False, timeout=10)
    if proc.returncode != 0:
        raise ImageError(f"{busybox} --list-full failed: {proc.stderr.strip()}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries (and the loader) a dynamically linked binary needs, as ``ldd`` names them."""
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=10)
    if proc.returncode != 0:
        raise ImageError(f"ldd {binary} failed: {(proc.stderr or proc.stdout).strip()}")
    return parse_ldd(proc.stdout)


def parse_ldd(text: str) -> list[Path]:
    """Library paths from ``ldd`` output (``name => /path (addr)`` and ``/loader (addr)`` lines)."""
    out: list[Path] = []
    for line in text.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                out.append(Path(target))
        elif parts and parts[0].startswith("/"):
            out.append(Path(parts[0]))
    return out


def with_libraries(binary: Path, libraries: Sequence[Path]) -> list[Entry]:
    """A binary at its own path plus each library at the path the loader looks for it."""
    entries = [Entry(str(binary).lstrip("/"), source=binary, mode=0o755)]
    entries += [Entry(str(lib).lstrip("/"), source=lib.resolve(), mode=0o755) for lib in libraries]
    return entries


def busybox_image(busybox: Path, applets: Sequence[str], *, extra: Sequence[Entry] = ()) -> ImageSpec:
    """A small test image: Debian's static busybox with its applets as symlinks, ``/etc/passwd``, ``/tmp``.

    ``extra`` adds files, e.g. Debian's ``openssl`` with its libraries: busybox's own TLS speaks
    only TLS 1.2 without the signature_algorithms extension, which Go servers (every Kubernetes
    apiserver) refuse; with ``openssl`` on PATH, ``wget https://`` uses it instead.
    """
    entries = [Entry("bin/busybox", source=busybox, mode=0o755)]
    entries += [Entry(path, symlink="/bin/busybox") for path in applets if path != "bin/busybox"]
    entries += [
        Entry("etc/passwd", data=_PASSWD), Entry("etc/group", data=_GROUP),
        Entry("tmp", directory=True, mode=0o1777),
        *extra,
    ]
    return ImageSpec(name=BUSYBOX_IMAGE, entries=tuple(entries), cmd=("sh",))


# ---- the project's own image and the control-plane images -------------------------------------------

#: Where the project's Python packages live in its image (on ``PYTHONPATH``).
SITE_DIR = "opt/virtualcluster/site"
#: The project image's user: non-root, as the manifests' securityContext expects.
PROJECT_UID = 65532
#: Standard-library folders an operator, syncer and proxy never import (kept out of the image).
_STDLIB_SKIP = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
                          "__pycache__", "config-3.11-x86_64-linux-gnu", "site-packages", "dist-packages"})


def project_image_name(version: str) -> str:
    return f"localhost/virtualcluster/virtualcluster:{version}"


def component_image_name(component: str, version: str) -> str:
    return f"localhost/virtualcluster/{component}:{version}"


def tree_entries(root: Path, dest: str, *, skip: frozenset[str] = frozenset()) -> list[Entry]:
    """Every file and symlink under ``root``, placed under ``dest`` (folders named in ``skip`` left out)."""
    out: list[Entry] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if skip.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        target = f"{dest}/{rel.as_posix()}"
        if path.is_symlink():
            out.append(Entry(target, symlink=str(path.readlink())))
        elif path.is_file():
            out.append(Entry(target, source=path, mode=0o755 if path.stat().st_mode & 0o111 else 0o644))
    return out


#: Where the loader finds system libraries; libraries a wheel bundles (``*.libs/``) travel with the wheel.
_SYSTEM_LIB_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")


def python_runtime(python: Path, stdlib: Path, *, extensions: Path | None = None) -> list[Entry]:
    """Debian's Python: the interpreter, its standard library and every system shared library it, its
    extension modules and the extension modules under ``extensions`` (installed wheels) load (found by
    ``ldd``), at the paths the loader looks for them."""
    libs: dict[str, Path] = {}
    binaries = [python, *sorted((stdlib / "lib-dynload").glob("*.so"))]
    if extensions is not None:
        binaries += sorted(extensions.rglob("*.so"))
    for binary in binaries:
        for lib in shared_libraries(binary):
            if str(lib).startswith(_SYSTEM_LIB_DIRS):
                libs.setdefault(str(lib), lib)
    entries = [Entry(str(python).lstrip("/"), source=python.resolve(), mode=0o755),
               Entry("usr/bin/python3", symlink=python.name), Entry("usr/bin/python", symlink=python.name)]
    entries += [Entry(path.lstrip("/"), source=lib.resolve(), mode=0o755) for path, lib in sorted(libs.items())]
    entries += tree_entries(stdlib, str(stdlib).lstrip("/"), skip=_STDLIB_SKIP)
    return entries


def project_site(dest: Path, *, source: Path, pip: Sequence[str]) -> Path:
    """The project and its dependencies installed into ``dest`` (``pip install --target``), from PyPI's
    wheels for the image's Python (CPython 3.11, manylinux)."""
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    proc = subprocess.run(
        [*pip, "install", "-q", "--no-compile", "--target", str(dest), "--python-version", "3.11",
         "--implementation", "cp", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
         "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", str(source)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    if proc.returncode != 0:
        raise ImageError(f"pip install --target {dest} failed: {proc.stderr.strip()[-400:]}")
    return dest


def project_image(*, version: str, runtime: Sequence[Entry], site: Path) -> ImageSpec:
    """The operator, syncer and kubelet proxy in one image (the Deployments pick the module to run)."""
    passwd = _PASSWD + f"vcluster:x:{PROJECT_UID}:{PROJECT_UID}::/tmp:/usr/sbin/nologin\n".encode()
    group = _GROUP + f"vcluster:x:{PROJECT_UID}:\n".encode()
    entries = [*runtime, *tree_entries(site, SITE_DIR), Entry("etc/passwd", data=passwd),
               Entry("etc/group", data=group), Entry("tmp", directory=True, mode=0o1777)]
    return ImageSpec(
        name=project_image_name(version), entries=tuple(entries),
        env=("PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH=/{SITE_DIR}", "PYTHONDONTWRITEBYTECODE=1",
             "PYTHONUNBUFFERED=1", "VC_LOG_JSON=1"),
        cmd=("python3", "-m", "vcluster", "--help"), user=f"{PROJECT_UID}:{PROJECT_UID}", workdir="/tmp",
        labels={"org.opencontainers.image.title": "virtualcluster",
                "org.opencontainers.image.version": version},
    )


def component_image(component: str, binary: Path, *, version: str) -> ImageSpec:
    """A static upstream binary (kube-apiserver, etcd, CoreDNS, ...) alone in an image, run as non-root."""
    return ImageSpec(
        name=component_image_name(component, version),
        entries=(Entry(f"usr/local/bin/{component}", source=binary, mode=0o755),
                 Entry("etc/passwd", data=_PASSWD), Entry("etc/group", data=_GROUP),
                 Entry("tmp", directory=True, mode=0o1777)),
        entrypoint=(f"/usr/local/bin/{component}",), user="65534:65534", env=("PATH=/usr/local/bin:/bin",),
    )
