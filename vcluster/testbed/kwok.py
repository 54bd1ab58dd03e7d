"""kwok's Stage definitions (node and pod lifecycle), taken from the pinned kwok module.

Why this module exists: kwok v0.8.0 no longer falls back to built-in stages;
without Stage configs it refuses to start ("no stages found"), and with none
for pods, pods would never go Running.  We do not write our own imitation of
the lifecycle: the stages are kwok's own ``kustomize/stage`` files of the same
version as the binary, read from the Go module the binary was built from
(or from a ``stages/`` folder beside the binary, if the builder put one there).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from vcluster.binaries import KWOK_STAGE_SETS, kwok_dir
from vcluster.errors import VClusterError
from vcluster.settings import BinarySettings

#: kwok's stage sets we run: nodes become Ready and keep a lease; pods go Running, complete, delete.
STAGE_SETS: tuple[str, ...] = KWOK_STAGE_SETS


def _module_dir(settings: BinarySettings) -> Path | None:
    go = shutil.which("go")
    module = f"sigs.k8s.io/kwok@{settings.kwok_version}"
    if go is not None:
        out = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
        cache = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
        if cache is not None and (cache / module).is_dir():
            return cache / module
        # not in the module cache (a fresh machine with a cached binary): fetch the module's source
        out = subprocess.run([go, "mod", "download", "-json", module], capture_output=True, text=True,
                             check=False, env=None)
        if out.returncode == 0:
            try:
                found = Path(json.loads(out.stdout)["Dir"])
            except (ValueError, KeyError):
                return None
            return found if found.is_dir() else None
        return None
    fallback = Path.home() / "go" / "pkg" / "mod" / module
    return fallback if fallback.is_dir() else None


def stage_files(settings: BinarySettings) -> list[Path]:
    """The YAML files of kwok's stages for ``settings.kwok_version``, or a clear error."""
    beside = kwok_dir(settings) / "stages"
    if beside.is_dir() and any(beside.glob("*.yaml")):
        return sorted(beside.glob("*.yaml"))
    module = _module_dir(settings)
    if module is None:
        raise VClusterError(
            f"kwok {settings.kwok_version} stage definitions not found (neither {beside} nor the Go module "
            f"sigs.k8s.io/kwok@{settings.kwok_version}): install Go and run `python -m vcluster.binaries build`"
        )
    files: list[Path] = []
    for stage_set in STAGE_SETS:
        folder = module / "kustomize" / "stage" / stage_set
        found = sorted(p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
        if not found:
            raise VClusterError(f"kwok stage set {stage_set} missing in {folder}")
        files.extend(found)
    return files


def kwok_config(settings: BinarySettings) -> str:
    """A multi-document kwok configuration of the Stage objects (options come from flags)."""
    # No KwokConfiguration document: with one, kwok leaves unset options at zero instead of defaulting them.
    docs = [path.read_text().strip() + "\n" for path in stage_files(settings)]
    return "---\n".join(docs)


#: The line ``kubectl logs`` shows for a simulated pod of the test bed.
SIMULATED_LOG_LINE = "simulated by kwok: this pod runs no container (virtualcluster test bed)"


def simulated_log(*, timestamp: str = "2026-01-01T00:00:00.000000000Z") -> str:
    """The CRI-format log file kwok serves for every pod."""
    return f"{timestamp} stdout F {SIMULATED_LOG_LINE}\n"


def rules_config(
    *, log_file: Path | None, attach_file: Path | None, exec_workdir: Path | None, forward_port: int | None,
) -> str:
    """kwok ClusterLogs/ClusterAttach/ClusterExec/ClusterPortForward documents covering every pod (pure).

    kwok serves the kubelet API for a pod only when a rule covers it; each argument left ``None``
    leaves that rule out.
    """
    docs: list[str] = []

    def rule(kind: str, body: str) -> None:
        docs.append(f"apiVersion: kwok.x-k8s.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: all-pods\n"
                    f"spec:\n  selector: {{}}\n{body}")

    if log_file is not None:
        rule("ClusterLogs", f"  logs:\n  - logsFile: {log_file}\n")
    if attach_file is not None:
        rule("ClusterAttach", f"  attaches:\n  - logsFile: {attach_file}\n")
    if exec_workdir is not None:
        rule("ClusterExec", f"  execs:\n  - local:\n      workDir: {exec_workdir}\n")
    if forward_port is not None:
        rule("ClusterPortForward", f"  forwards:\n  - target:\n      address: 127.0.0.1\n      port: {forward_port}\n")
    return "---\n".join(docs)
