"""Build the upstream Kubernetes components we run, from their Go modules.

Why this module exists: the project runs real etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok binaries, never imitations,
and the only sanctioned source for them on our machines is the Go module
proxy.  This module builds them at pinned versions with version information
stamped in, and caches them outside the repository in a folder keyed by
version, so that a second run costs nothing.  ``VC_ETCD`` may name another
etcd binary (Debian's 3.4 works but cannot serve the watch-list streams of
1.36 clients: see docs/testbed.md).

Run it as ``python -m vcluster.binaries [build|path|versions]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from vcluster.errors import VClusterError
from vcluster.settings import BinarySettings, kube_release

#: Staging modules of k8s.io/kubernetes; each is published as v0.MINOR.PATCH.
STAGING_MODULES: tuple[str, ...] = (
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime",
    "client-go", "cloud-provider", "cluster-bootstrap", "code-generator",
    "component-base", "component-helpers", "controller-manager", "cri-api",
    "cri-client", "cri-streaming", "csi-translation-lib",
    "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms",
    "kube-aggregator", "kube-controller-manager", "kube-proxy", "kube-scheduler",
    "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
    "sample-apiserver", "sample-controller", "streaming",
)

KUBE_COMPONENTS: tuple[str, ...] = (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler",
)

#: What a real node of the test bed runs besides containerd (Debian's): built with the control plane.
NODE_COMPONENTS: tuple[str, ...] = ("kubelet", "kube-proxy")

#: CoreDNS plugins compiled in: what the super cluster's DNS and the tenants' DNS use, nothing else.
COREDNS_PLUGINS: tuple[str, ...] = (
    "bind", "cache", "errors", "forward", "health", "hosts", "kubernetes", "loadbalance", "log", "loop",
    "ready", "reload", "rewrite", "template", "view", "whoami",
)

#: Every binary the cache holds, in build order.
ALL_COMPONENTS: tuple[str, ...] = ("etcd", *KUBE_COMPONENTS, *NODE_COMPONENTS, "kwok", "coredns", "pause",
                                   "local-path-provisioner", "kube-router")

#: The Go module of the NetworkPolicy enforcer of the test bed's real nodes.
KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2"

#: Newer releases of kube-router's dependencies than its own go.mod names (it asks for x/net v0.21.0,
#: protobuf v1.32.0, grpc v1.62.0), required beside it so that Go's minimal version selection builds
#: with these: the HTTP/2 and protobuf fixes that reach the code we run (client-go's watch
#: connections).  What stays is in docs/testbed.md ("kube-router").
KUBE_ROUTER_DEPENDENCY_FLOORS: tuple[str, ...] = (
    "golang.org/x/net v0.62.0",
    "google.golang.org/protobuf v1.36.12",
    "google.golang.org/grpc v1.85.0",
)

#: The Go module of the test bed's volume provisioner (a well-kept one: k3s' and kind's default storage).
LOCAL_PATH_MODULE = "github.com/rancher/local-path-provisioner"

#: kwok's own stage sets we run (nodes Ready with a lease; pods Running); kept beside the binary.
KWOK_STAGE_SETS: tuple[str, ...] = ("node/fast", "node/heartbeat-with-lease", "pod/fast")

Progress = Callable[[str], None]


class BuildError(VClusterError):
    """A binary could not be built or found; the message names the cause."""


def _staging_version(kube_version: str) -> str:
    release = kube_release(kube_version)
    if release is None or release.major != 1 or not release.patch:
        raise BuildError(f"unsupported Kubernetes version {kube_version!r}: expected v1.N.M")
    return f"v0.{release.minor}.{release.patch}"


def kube_dir(settings: BinarySettings) -> Path:
    """The cache folder of the Kubernetes binaries of one version."""
    return settings.cache_dir / f"kubernetes-{settings.kube_version}"


def etcd_dir(settings: BinarySettings) -> Path:
    """The cache folder of the etcd binary of one version."""
    return settings.cache_dir / f"etcd-{settings.etcd_version}"


def kwok_dir(settings: BinarySettings) -> Path:
    """The cache folder of the kwok binary of one version."""
    return settings.cache_dir / f"kwok-{settings.kwok_version}"


def coredns_dir(settings: BinarySettings) -> Path:
    """The cache folder of the CoreDNS binary of one version."""
    return settings.cache_dir / f"coredns-{settings.coredns_version}"


def local_path_dir(settings: BinarySettings) -> Path:
    """The cache folder of the local-path-provisioner binary of one version."""
    return settings.cache_dir / f"local-path-provisioner-{settings.local_path_version}"


def kube_router_dir(settings: BinarySettings) -> Path:
    """The cache folder of the kube-router binary of one version."""
    return settings.cache_dir / f"kube-router-{settings.kube_router_version}"


def pause_dir(settings: BinarySettings) -> Path:
    """The cache folder of the pause binary (Kubernetes' own pause.c of one Kubernetes version)."""
    return settings.cache_dir / f"pause-{settings.kube_version}"


def binary_path(name: str, settings: BinarySettings) -> Path:
    """Where a component's binary lives (whether or not it is built yet)."""
    if name == "etcd":
        return find_etcd(settings)
    if name == "kwok":
        return kwok_dir(settings) / "kwok"
    if name in KUBE_COMPONENTS or name in NODE_COMPONENTS:
        return kube_dir(settings) / name
    if name == "coredns":
        return coredns_dir(settings) / "coredns"
    if name == "pause":
        return pause_dir(settings) / "pause"
    if name == "local-path-provisioner":
        return local_path_dir(settings) / name
    if name == "kube-router":
        return kube_router_dir(settings) / name
    raise BuildError(f"unknown component {name!r}")


def find_etcd(settings: BinarySettings) -> Path:
    """etcd named by the settings (``VC_ETCD``), else the one built into the cache."""
    if settings.etcd_path is not None:
        return settings.etcd_path
    return etcd_dir(settings) / "etcd"


def missing(settings: BinarySettings) -> list[str]:
    """Names of the components whose binaries (or kwok's stages) are not in the cache yet."""
    out = [n for n in ALL_COMPONENTS if not binary_path(n, settings).is_file()]
    if "kwok" not in out and not any((kwok_dir(settings) / "stages").glob("*.yaml")):
        out.append("kwok-stages")
    return out


def _go(settings: BinarySettings) -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("Go toolchain not found on PATH: install Go >= 1.26 to build Kubernetes")
    return go


def _go_env(settings: BinarySettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOTOOLCHAIN="local")
    # Go 1.27 enables jsonv2 by default, which breaks Kubernetes' OpenAPI document.
    env["GOEXPERIMENT"] = "nojsonv2" if _go_minor(settings) >= 27 else env.get("GOEXPERIMENT", "")
    if not env["GOEXPERIMENT"]:
        del env["GOEXPERIMENT"]
    return env


def _go_minor(settings: BinarySettings) -> int:
    out = subprocess.run([_go(settings), "env", "GOVERSION"], capture_output=True, text=True, check=False)
    text = out.stdout.strip().removeprefix("go")
    try:
        return int(text.split(".")[1])
    except (IndexError, ValueError):
        return 0


_CAUSE_WORDS = ("error", "cannot", "not available", "invalid", "unknown revision", "no required module", "undefined")


def _cause(output: str) -> str:
    """The most telling line of a failed Go command's output."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if any(word in line.lower() for word in _CAUSE_WORDS):
            return line
    return lines[-1] if lines else "(no output)"


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, what: str) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        start = fh.tell()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        with log.open(errors="replace") as fh:
            fh.seek(start)
            output = fh.read()
        raise BuildError(f"building {what} failed (exit {proc.returncode}): {_cause(output)} (full log: {log})")


def _version_ldflags(settings: BinarySettings) -> str:
    version = settings.kube_version
    release = kube_release(version)
    if release is None:
        raise BuildError(f"unsupported Kubernetes version {version!r}: expected v1.N.M")
    major, minor = release.major, release.minor
    build_date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitCommit=module-{version}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={build_date}",
        ]
    return " ".join(flags)


@contextlib.contextmanager
def _wrapper_module(settings: BinarySettings, *, target: Path, prefix: str, go_mod: str,
                    imports: Sequence[str]) -> Iterator[Path]:
    """A throw-away Go module in the cache folder that imports what we build (yielded).

    The binaries built into its ``bin/`` become ``target`` when the block succeeds; the
    module is removed either way.
    """
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=settings.cache_dir))
    try:
        (work / "go.mod").write_text(go_mod)
        (work / "tools.go").write_text(
            "//go:build tools\n\npackage tools\n\nimport (\n" + "".join(f'\t_ "{i}"\n' for i in imports) + ")\n"
        )
        (work / "bin").mkdir()
        yield work
        if target.exists():
            shutil.rmtree(target)
        (work / "bin").rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_one(settings: BinarySettings, progress: Progress, *, name: str, version: str, target: Path,
               requires: Sequence[str], imports: Sequence[str], package: str, ldflags: str, what: str,
               files: Mapping[str, str] | None = None) -> Path:
    """Build one binary ``name`` of a Go module at ``version`` into ``target`` (kept when there).

    A wrapper module (:func:`_wrapper_module`) that requires ``requires`` and imports
    ``imports``, with extra source ``files`` (relative path → text), ``go mod tidy`` resolving
    the module's own dependency versions, then ``go build`` of ``package`` with ``ldflags``.
    """
    if (target / name).is_file():
        return target
    go = _go(settings)
    env = _go_env(settings)
    log = settings.cache_dir / f"build-{name}-{version}.log"
    lines = "".join(f"\t{r}\n" for r in requires)
    go_mod = f"module virtualcluster.dev/{name}build\n\ngo 1.26\n\nrequire (\n{lines})\n"
    with _wrapper_module(settings, target=target, prefix=f"{name}-build-", go_mod=go_mod, imports=imports) as work:
        log.write_text("")
        for rel, text in (files or {}).items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        progress(f"building {what} {version}")
        _run([go, "mod", "tidy", "-e"], cwd=work, env=env, log=log, what=f"go.mod for {what} {version}")
        _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(work / "bin" / name), package],
             cwd=work, env=env, log=log, what=f"{what} {version}")
    return target


def build_kubernetes(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build the kube-* binaries and the node components of ``settings.kube_version`` into the cache.

    Only the missing ones are built; those already cached are kept.
    """
    target = kube_dir(settings)
    wanted = (*KUBE_COMPONENTS, *NODE_COMPONENTS)
    todo = [n for n in wanted if not (target / n).is_file()]
    if not todo:
        return target
    go = _go(settings)
    env = _go_env(settings)
    staging = _staging_version(settings.kube_version)
    log = settings.cache_dir / f"build-kubernetes-{settings.kube_version}.log"
    replaces = "\n".join(f"\tk8s.io/{m} => k8s.io/{m} {staging}" for m in STAGING_MODULES)
    go_mod = ("module virtualcluster.dev/kubebuild\n\ngo 1.26\n\n"
              f"require k8s.io/kubernetes {settings.kube_version}\n\nreplace (\n{replaces}\n)\n")
    with _wrapper_module(settings, target=target, prefix="kube-build-", go_mod=go_mod,
                         imports=[f"k8s.io/kubernetes/cmd/{c}" for c in wanted]) as work:
        log.write_text("")
        for name in wanted:
            if name not in todo:
                shutil.copy2(target / name, work / "bin" / name)
        progress(f"resolving k8s.io/kubernetes {settings.kube_version} modules")
        _run([go, "mod", "download", f"k8s.io/kubernetes@{settings.kube_version}"], cwd=work, env=env, log=log,
             what=f"k8s.io/kubernetes {settings.kube_version} (download)")
        _run([go, "mod", "tidy", "-e"], cwd=work, env=env, log=log, what="go.mod for Kubernetes")
        for comp in todo:
            progress(f"building {comp} {settings.kube_version} (a few minutes when cold)")
            _run(
                [go, "build", "-trimpath", "-ldflags", _version_ldflags(settings),
                 "-o", str(work / "bin" / comp), f"k8s.io/kubernetes/cmd/{comp}"],
                cwd=work, env=env, log=log, what=comp,
            )
    return target


def build_coredns(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build CoreDNS at ``settings.coredns_version`` with only :data:`COREDNS_PLUGINS`, into the cache.

    A stock CoreDNS: its own ``coremain`` and plugins, chosen at compile time the way CoreDNS
    documents for external builds (a ``main`` that imports the plugins it wants); the plugin
    order is CoreDNS' own directive list.  It resolves its dependencies at its own versions, in
    a module of its own (its client-go need not match the Kubernetes build's).
    """
    version = settings.coredns_version
    main_go = (
        "// A CoreDNS with the plugins virtualcluster uses (generated by vcluster.binaries).\n"
        "package main\n\nimport (\n\t\"github.com/coredns/coredns/coremain\"\n"
        + "".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"\n' for p in COREDNS_PLUGINS)
        + ")\n\nfunc main() { coremain.Run() }\n"
    )
    return _build_one(
        settings, progress, name="coredns", version=version, target=coredns_dir(settings),
        requires=[f"github.com/coredns/coredns {version}"], imports=["github.com/coredns/coredns/coremain"],
        package="./main", files={"main/main.go": main_go},
        ldflags=f"-s -w -X github.com/coredns/coredns/coremain.GitCommit=module-{version}", what="CoreDNS",
    )


def build_pause(settings: BinarySettings, progress: Progress = print) -> Path:
    """Compile Kubernetes' own ``build/pause/linux/pause.c`` (from the k8s.io/kubernetes module) statically.

    The pause container is the sandbox image every pod's network namespace lives in; no registry
    is reachable here, so the test bed packs this binary as its sandbox image.
    """
    target = pause_dir(settings)
    if (target / "pause").is_file():
        return target
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError("a C compiler (cc) is needed for the pause binary: apt-get install gcc libc6-dev")
    env = _go_env(settings)
    log = settings.cache_dir / f"build-pause-{settings.kube_version}.log"
    out = subprocess.run(
        [_go(settings), "mod", "download", "-json", f"k8s.io/kubernetes@{settings.kube_version}"],
        capture_output=True, text=True, env=env, check=False, cwd=settings.cache_dir,
    )
    try:
        source = Path(json.loads(out.stdout)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    except (ValueError, KeyError) as exc:
        raise BuildError(f"k8s.io/kubernetes {settings.kube_version} source not found: {out.stderr.strip()}") from exc
    if not source.is_file():
        raise BuildError(f"{source} missing in the k8s.io/kubernetes module")
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pause-build-", dir=settings.cache_dir))
    try:
        progress(f"building pause ({settings.kube_version})")
        log.write_text("")
        _run([cc, "-Os", "-Wall", "-static", f'-DVERSION="{settings.kube_version}"', "-o", str(tmp / "pause"),
              str(source)], cwd=tmp, env=env, log=log, what="pause")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


#: The go.etcd.io modules of one etcd release (the server's go.mod points at the others by
#: relative ``replace`` directives, which only apply inside etcd's own repository).
ETCD_MODULES: tuple[str, ...] = ("server/v3", "api/v3", "client/pkg/v3", "client/v3", "pkg/v3")


def build_etcd(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build etcd at ``settings.etcd_version`` from the go.etcd.io modules into the cache."""
    version = settings.etcd_version
    return _build_one(
        settings, progress, name="etcd", version=version, target=etcd_dir(settings),
        requires=[f"go.etcd.io/etcd/{m} {version}" for m in ETCD_MODULES], imports=["go.etcd.io/etcd/server/v3"],
        package="go.etcd.io/etcd/server/v3",
        ldflags=f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-{version}", what="etcd",
    )


def _copy_kwok_stages(settings: BinarySettings, env: dict[str, str], dest: Path) -> None:
    """Copy kwok's stage files of the same version beside the binary.

    kwok v0.8.0 has no built-in stages; keeping them beside the binary means a
    machine with only the binary cache needs no Go module cache at run time.
    """
    out = subprocess.run(
        [_go(settings), "mod", "download", "-json", f"sigs.k8s.io/kwok@{settings.kwok_version}"],
        capture_output=True, text=True, env=env, check=False, cwd=settings.cache_dir,
    )
    try:
        module = Path(json.loads(out.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise BuildError(f"kwok {settings.kwok_version} module source not found: {out.stderr.strip()}") from exc
    dest.mkdir(parents=True, exist_ok=True)
    for stage_set in KWOK_STAGE_SETS:
        folder = module / "kustomize" / "stage" / stage_set
        files = sorted(p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            raise BuildError(f"kwok stage set {stage_set} missing in {folder}")
        for path in files:
            (dest / f"{stage_set.replace('/', '-')}-{path.name}").write_bytes(path.read_bytes())


def build_kwok(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build kwok at ``settings.kwok_version`` (and copy its stages) into the cache."""
    target = kwok_dir(settings)
    if (target / "kwok").is_file():
        if not any((target / "stages").glob("*.yaml")):
            _copy_kwok_stages(settings, _go_env(settings), target / "stages")
        return target
    version = settings.kwok_version
    return _go_install(
        settings, progress, name="kwok", version=version, target=target,
        package=f"sigs.k8s.io/kwok/cmd/kwok@{version}",
        ldflags=f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={version}",
        beside=lambda env, folder: _copy_kwok_stages(settings, env, folder / "stages"),
    )


def _go_install(settings: BinarySettings, progress: Progress, *, name: str, version: str, target: Path,
                package: str, ldflags: str, beside: Callable[[dict[str, str], Path], None] | None = None) -> Path:
    """``go install package@version`` (its own go.mod, for a main package a wrapper module cannot
    import) into a temporary ``GOBIN`` that becomes ``target``; ``beside`` adds files next to it."""
    go = _go(settings)
    env = _go_env(settings)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    log = settings.cache_dir / f"build-{name}-{version}.log"
    log.write_text("")
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-build-", dir=settings.cache_dir))
    env["GOBIN"] = str(tmp)
    progress(f"building {name} {version}")
    try:
        _run([go, "install", "-trimpath", "-ldflags", ldflags, package], cwd=tmp, env=env, log=log, what=name)
        if beside is not None:
            beside(env, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_local_path(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build rancher/local-path-provisioner at ``settings.local_path_version`` into the cache.

    The test bed's real nodes get their PersistentVolumes from it (a hostPath folder per claim,
    made and removed by a helper pod on the claim's node), as kind and k3s clusters do.  Its
    ``main`` package is the module's root, which a wrapper module cannot import
    (:func:`_build_one`), so ``go install module@version`` builds it with its own go.mod.
    """
    target = local_path_dir(settings)
    if (target / "local-path-provisioner").is_file():
        return target
    version = settings.local_path_version
    return _go_install(settings, progress, name="local-path-provisioner", version=version, target=target,
                       package=f"{LOCAL_PATH_MODULE}@{version}", ldflags=f"-s -w -X main.VERSION={version}")


def build_kube_router(settings: BinarySettings, progress: Progress = print) -> Path:
    """Build kube-router at ``settings.kube_router_version`` into the cache.

    The test bed runs only its network policy controller (``--run-firewall``), the NetworkPolicy
    enforcement of its real nodes.  A wrapper module requires it with
    :data:`KUBE_ROUTER_DEPENDENCY_FLOORS` (newer fixed dependencies than its own go.mod names) and
    builds its ``cmd/kube-router`` package.
    """
    version = settings.kube_router_version
    return _build_one(
        settings, progress, name="kube-router", version=version, target=kube_router_dir(settings),
        requires=[f"{KUBE_ROUTER_MODULE} {version}", *KUBE_ROUTER_DEPENDENCY_FLOORS],
        imports=[f"{KUBE_ROUTER_MODULE}/pkg/cmd"], package=f"{KUBE_ROUTER_MODULE}/cmd/kube-router",
        ldflags=f"-s -w -X {KUBE_ROUTER_MODULE}/pkg/version.Version={version}", what="kube-router",
    )


@contextlib.contextmanager
def _build_lock(settings: BinarySettings) -> Iterator[None]:
    """One build at a time per cache folder, across processes (tests, CLI, CI)."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with (settings.cache_dir / ".build.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(settings: BinarySettings | None = None, progress: Progress = print) -> BinarySettings:
    """Make sure every binary exists (building what is missing); return the settings used.

    Concurrent callers wait for one another; the second finds the cache full.
    """
    settings = settings or BinarySettings.from_env()
    if settings.etcd_path is not None and not settings.etcd_path.is_file():
        raise BuildError(f"etcd not found at {settings.etcd_path} (VC_ETCD)")
    if not missing(settings):
        return settings
    with _build_lock(settings):
        if settings.etcd_path is None:
            build_etcd(settings, progress)
        build_kubernetes(settings, progress)
        build_kwok(settings, progress)
        build_coredns(settings, progress)
        build_pause(settings, progress)
        build_local_path(settings, progress)
        build_kube_router(settings, progress)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vcluster.binaries", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "path", "versions"], nargs="?", default="build")
    args = parser.parse_args(argv)
    settings = BinarySettings.from_env()
    try:
        if args.command == "build":
            ensure(settings, progress=lambda m: print(f"==> {m}", file=sys.stderr))
            print(kube_dir(settings))
        elif args.command == "path":
            for name in ALL_COMPONENTS:
                print(f"{name}\t{binary_path(name, settings)}")
        else:
            print(f"etcd\t{settings.etcd_version}\nkubernetes\t{settings.kube_version}\nkwok\t{settings.kwok_version}"
                  f"\ncoredns\t{settings.coredns_version}\nlocal-path-provisioner\t{settings.local_path_version}"
                  f"\nkube-router\t{settings.kube_router_version}")
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
