"""Copies of the super cluster's public classes in every tenant (the I/O side).

Why a component of its own: this is the only flow from shared super objects
(not owned by any tenant) to every tenant, so it does not fit the engine's
per-object keys.  One informer per mirrored kind watches the public super
classes; any change, a new tenant, or a periodic resync (which also undoes
tenant edits of the read-only copies) reconciles the tenants' copies with
:func:`syncer.resources.mirror.plan`.  Copies are created with the
mirrored-from-super label and only labelled objects are ever replaced or
deleted, so a tenant's own class of the same name is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from syncer.informer import Informer
from syncer.resources import mirror as mirror_mod
from syncer.resources.base import Obj
from vcluster.kube import AlreadyExists, ApiClient, ApiError, Conflict, NotFound

log = structlog.get_logger(__name__)


class Mirror:
    """Keeps every attached tenant's copies of the public super classes equal to the super cluster's."""

    def __init__(self, super_api: ApiClient, *, resync_period: float = 60.0, watch_timeout: int = 300) -> None:
        self.resync_period = resync_period
        self.tenants: dict[str, ApiClient] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.informers = {
            r.kind: Informer(super_api, r, handler=self._on_change, label_selector=mirror_mod.PUBLIC_SELECTOR,
                             watch_timeout=watch_timeout, name=f"super/{r.plural}/public")
            for r in mirror_mod.MIRRORED
        }

    def _on_change(self, _event: str, _obj: Obj) -> None:
        self._dirty.update(self.tenants)
        self._wake.set()

    def attach(self, key: str, api: ApiClient) -> None:
        self.tenants[key] = api
        self._dirty.add(key)
        self._wake.set()

    def detach(self, key: str) -> None:
        self.tenants.pop(key, None)
        self._dirty.discard(key)

    async def run(self) -> None:
        tasks = [asyncio.create_task(inf.run(), name=f"mirror-{k}") for k, inf in self.informers.items()]
        try:
            await asyncio.gather(*(inf.synced.wait() for inf in self.informers.values()))
            while True:
                await wait_or_timeout(self._wake, self.resync_period)
                self._wake.clear()
                keys = set(self._dirty) if self._dirty else set(self.tenants)
                self._dirty.clear()
                for key in keys:
                    api = self.tenants.get(key)
                    if api is None:
                        continue
                    try:
                        await self.reconcile(api)
                    except (ApiError, OSError) as exc:
                        self._dirty.add(key)  # next wake-up or resync
                        log.warning("mirror.failed", tenant=key, error=str(exc))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reconcile(self, api: ApiClient) -> None:
        for resource in mirror_mod.MIRRORED:
            desired = [mirror_mod.to_tenant(p, resource) for _ref, p in self.informers[resource.kind].items()
                       if mirror_mod.wanted(p)]
            existing, _rv = await api.list_all(resource, label_selector=mirror_mod.MIRRORED_SELECTOR)
            create, replace, delete = mirror_mod.plan(desired, existing, resource)
            for body in create:
                try:
                    await api.create(resource, body)
                except AlreadyExists:
                    log.warning("mirror.name_taken", kind=resource.kind, name=body["metadata"]["name"])
            for body in replace:
                with contextlib.suppress(Conflict, NotFound):
                    await api.replace(resource, body)
            for name in delete:
                with contextlib.suppress(NotFound):
                    await api.delete(resource, name)


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` passed.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives in the same
    loop turn as the event (it returns the result instead), so a cancelled loop goes on forever
    and ``Syncer.close`` waits for it (the likely cause of a hang seen once in bench_syncer).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
