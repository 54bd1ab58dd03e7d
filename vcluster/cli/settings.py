"""Settings of the ``kubectl vc`` CLI, as one frozen dataclass.

Why: the CLI finds its state folder (the embedded default's processes,
logs and kubeconfigs) and the super cluster to talk to from the environment
(``VC_STATE_DIR``, ``XDG_STATE_HOME``, ``KUBECONFIG``); command-line options
override.  Only :meth:`CliSettings.from_env` reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from vcluster.cli.errors import UsageError


def default_state_dir(env: Mapping[str, str]) -> Path:
    """``$VC_STATE_DIR``, else ``$XDG_STATE_HOME/virtualcluster``, else ``~/.local/state/virtualcluster``."""
    explicit = env.get("VC_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_STATE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".local" / "state") / "virtualcluster"


@dataclass(frozen=True, slots=True)
class CliSettings:
    """Where the embedded default lives and which super cluster to talk to."""

    #: Folder of the embedded default (``up``/``down``/``status``).
    state_dir: Path = Path(".vcluster")
    #: An explicit super-cluster kubeconfig (``--kubeconfig`` or the first entry of ``KUBECONFIG``).
    kubeconfig: Path | None = None
    #: Simulated nodes of the embedded super cluster.
    nodes: int = 2
    #: Real nodes (kubelet on containerd, root only) of the embedded super cluster.
    real_nodes: int = 0
    #: Seconds each start step of ``up`` may take.
    start_timeout: float = 120.0
    #: Environment handed to the components ``up`` starts and to ``connect``'s command.
    env: Mapping[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CliSettings:
        env = dict(os.environ if env is None else env)
        kubeconfig = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), None)
        nodes_raw = env.get("VC_NODES", "")
        try:
            nodes = int(nodes_raw) if nodes_raw else 2
        except ValueError:
            raise UsageError(f"VC_NODES must be an integer, got {nodes_raw!r}") from None
        real_raw = env.get("VC_REAL_NODES", "")
        try:
            real_nodes = int(real_raw) if real_raw else 0
        except ValueError:
            raise UsageError(f"VC_REAL_NODES must be an integer, got {real_raw!r}") from None
        timeout_raw = env.get("VC_START_TIMEOUT", "")
        try:
            timeout = float(timeout_raw) if timeout_raw else 120.0
        except ValueError:
            raise UsageError(f"VC_START_TIMEOUT must be a number, got {timeout_raw!r}") from None
        return cls(
            state_dir=default_state_dir(env),
            kubeconfig=Path(kubeconfig).expanduser() if kubeconfig else None,
            nodes=nodes,
            real_nodes=real_nodes,
            start_timeout=timeout,
            env=env,
        )

    def with_options(self, *, state_dir: str | None = None, kubeconfig: str | None = None) -> CliSettings:
        """These settings with the command line's ``--state-dir``/``--kubeconfig`` applied."""
        out = self
        if state_dir:
            out = replace(out, state_dir=Path(state_dir).expanduser())
        if kubeconfig:
            out = replace(out, kubeconfig=Path(kubeconfig).expanduser())
        return out
