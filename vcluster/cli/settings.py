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
from vcluster.settings import SettingsError, env_bool, env_float, env_int


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
    #: Enforce NetworkPolicy on the real node (kube-router; exactly one real node).
    network_policy: bool = False
    #: Seconds each start step of ``up`` may take.
    start_timeout: float = 120.0
    #: Environment handed to the components ``up`` starts and to ``connect``'s command.
    env: Mapping[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CliSettings:
        env = dict(os.environ if env is None else env)
        kubeconfig = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), None)
        try:  # the shared readers' messages; a usage error for the CLI's exit code
            nodes = env_int("VC_NODES", 2, env=env)
            real_nodes = env_int("VC_REAL_NODES", 0, env=env)
            network_policy = env_bool("VC_NETWORK_POLICY", False, env=env)
            timeout = env_float("VC_START_TIMEOUT", 120.0, env=env)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        return cls(
            state_dir=default_state_dir(env),
            kubeconfig=Path(kubeconfig).expanduser() if kubeconfig else None,
            nodes=nodes,
            real_nodes=real_nodes,
            network_policy=network_policy,
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
