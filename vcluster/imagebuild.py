"""Build the project's images and load them into a test bed's real nodes: ``python -m vcluster.imagebuild``.

Why this module exists: a real super cluster runs the operator, the syncer and
the kubelet proxy as pods, and the ``pods`` backend runs each tenant's etcd,
kube-apiserver, kube-controller-manager and DNS as pods; all of them need
images, and no container engine or registry is there to make or fetch them.
This command makes them from local files only (Debian's Python and the
project's wheels from PyPI for the project image; the binaries
:mod:`vcluster.binaries` builds for the control-plane images), as one OCI
archive that ``ctr images import`` loads and a registry would accept, and
with ``--load STATE_DIR`` imports it into every real node of that test bed.
The Dockerfile stays for people with a container engine and holds the same
package.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vcluster import binaries, images
from vcluster.errors import VClusterError
from vcluster.settings import BinarySettings
from vcluster.testbed import realnodes

REPO = Path(__file__).resolve().parent.parent
#: Debian's interpreter and standard library (``python3.11-minimal``, ``libpython3.11-stdlib``).
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
DEBIAN_STDLIB = Path("/usr/lib/python3.11")
#: Control-plane components of the ``pods`` backend, each its own image.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "coredns")
#: What the test bed's real nodes need besides: the volume provisioner behind its default StorageClass.
TESTBED = ("local-path-provisioner",)


def component_version(component: str, settings: BinarySettings) -> str:
    """The tag of a component's image: the version its binary was built at."""
    return {"etcd": settings.etcd_version, "coredns": settings.coredns_version,
            "local-path-provisioner": settings.local_path_version}.get(component, settings.kube_version)


@dataclass(frozen=True, slots=True)
class Built:
    archive: Path
    names: tuple[str, ...]


def project_version() -> str:
    try:
        return metadata.version("virtualcluster")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build(*, out: Path, settings: BinarySettings, version: str | None = None) -> Built:
    """Every image, in one archive under ``out``."""
    version = version or project_version()
    if not DEBIAN_PYTHON.is_file():
        raise images.ImageError(f"{DEBIAN_PYTHON} missing: apt-get install python3.11 (the project image's Python)")
    site = images.project_site(out / "site", source=REPO, pip=[sys.executable, "-m", "pip"])
    runtime = images.python_runtime(DEBIAN_PYTHON, DEBIAN_STDLIB, extensions=site)
    specs = [images.project_image(version=version, runtime=runtime, site=site)]
    for component in (*CONTROL_PLANE, *TESTBED):
        path = binaries.binary_path(component, settings)
        if not path.is_file():
            raise images.ImageError(f"{component} not built at {path}: run `python -m vcluster.binaries build`")
        specs.append(images.component_image(component, path, version=component_version(component, settings)))
    built = [images.build(spec) for spec in specs]
    archive = images.write_archive(built, out / "virtualcluster-images.tar")
    return Built(archive=archive, names=tuple(b.name for b in built))


def node_sockets(state_dir: Path) -> list[Path]:
    """The containerd socket of every real node of the test bed in ``state_dir``."""
    return sorted(realnodes.socket_root(state_dir).glob("*/containerd.sock"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vcluster.imagebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the archive (default: the binary cache)")
    parser.add_argument("--load", type=Path, default=None, metavar="STATE_DIR",
                        help="import the images into every real node of the test bed in STATE_DIR")
    args = parser.parse_args(argv)
    settings = BinarySettings.from_env()
    out = args.out or settings.cache_dir.parent / "images"
    try:
        built = build(out=out, settings=settings)
        print(built.archive)
        for name in built.names:
            print(f"  {name}")
        if args.load is not None:
            sockets = node_sockets(args.load)
            if not sockets:
                raise images.ImageError(f"no real node in {args.load} (start the test bed with --real-nodes)")
            for socket in sockets:
                images.import_into(built.archive, address=socket)
                print(f"loaded into {socket.parent.name}")
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
