"""The local super cluster launcher (real etcd, kube-* components and kwok).

Why a package: the CLI's ``up``, the demo and the e2e fixtures all need the
same super cluster; it lives here as product code, with its own settings.
"""

from vcluster.testbed.cluster import (
    COMPONENTS,
    AdminClient,
    ComponentInfo,
    LocalSuperCluster,
    TestbedError,
    TestbedInfo,
    node_manifest,
    node_name,
    read_info,
    status,
    stop_state_dir,
)
from vcluster.testbed.settings import TestbedSettings

__all__ = [
    "COMPONENTS",
    "AdminClient",
    "ComponentInfo",
    "LocalSuperCluster",
    "TestbedError",
    "TestbedInfo",
    "TestbedSettings",
    "node_manifest",
    "node_name",
    "read_info",
    "status",
    "stop_state_dir",
]
