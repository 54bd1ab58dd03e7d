"""The syncer's Lease: :mod:`vcluster.leader` configured from :class:`SyncerSettings`.

Why: two active syncers would race on every write (harmless thanks to uid
preconditions, but twice the load and AlreadyExists storms); a standby that
takes over when the leader stops renewing keeps the syncer available.  The
protocol itself lives in :mod:`vcluster.leader`, shared with the operator;
this module only says which Lease (``naming.SYNCER_LEASE_NAME`` in
``naming.SYSTEM_NAMESPACE``) and which timing the syncer uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from syncer.settings import SyncerSettings
from vcluster import leader, naming
from vcluster.kube import ApiClient
from vcluster.leader import LostLease, Observation, may_take, next_spec, record_of

__all__ = ["LeaderElector", "LostLease", "Observation", "lease_config", "may_take", "next_spec", "record_of"]


def lease_config(settings: SyncerSettings) -> leader.LeaseConfig:
    """The syncer's Lease and timing (pure)."""
    return leader.lease_config_for(naming.SYNCER_LEASE_NAME, settings)


class LeaderElector(leader.LeaderElector):
    """Acquire and keep the syncer Lease (``vc-system/vc-syncer``)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        settings: SyncerSettings,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api, config=lease_config(settings), on_change=on_change, clock=clock)
