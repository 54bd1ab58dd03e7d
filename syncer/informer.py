"""List + watch caches of compact raw objects.

Why: every reconcile reads the tenant's and the super cluster's view of an
object; asking the apiservers each time would halve the throughput, so each
side is mirrored in memory.  An informer lists, then watches from the list's
resourceVersion (with bookmarks), resumes after a dropped watch from the last
resourceVersion it saw, and relists after 410 Gone, reporting objects that
vanished meanwhile as deleted.  Objects are kept as compact JSON bytes of
what the syncer needs (``transform``: managedFields always stripped, super
pods reduced to keys and status), decoded on demand — a Python dict of a pod
costs about five times its JSON.

When the apiserver cannot be reached the informer retries with capped
exponential back-off and jitter (:data:`WATCH_BACKOFF`) and logs one line
per state change -- ``informer.remote.down`` / ``.still_down`` (every
``remind_every`` seconds) / ``.back`` -- not one per attempt
(:class:`vcluster.backoff.Outage`); with ``remote`` metrics it exports
``vc_remote_up{component="informer",target=<name>}``.

An informer may keep one secondary index (``index``: a value named by each
object, e.g. the node a pod is bound to), updated from the objects each event
or list already decoded, so asking "how many cached objects name X" costs a
dict lookup and decodes nothing; :attr:`Informer.current` says whether the
cache may be trusted to answer such a question (listed, watching, no outage).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import structlog

from vcluster.backoff import BackoffPolicy, Clock, Outage, Random, RemoteMetrics
from vcluster.kube import ApiClient, ApiError, Gone, Resource

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
#: Called with ``("ADDED"|"MODIFIED"|"DELETED", transformed object)``; must not block.
Handler = Callable[[str, Obj], None]
Transform = Callable[[Obj], Obj]
#: The value an object is indexed under (None: not indexed); must not raise on any object.
IndexFn = Callable[[Obj], str | None]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

#: Retry delays of a failing list/watch: 0.5 s doubling to 15 s, up to 20 % shorter at random.
WATCH_BACKOFF = BackoffPolicy(initial=0.5, factor=2.0, cap=15.0, jitter=0.2)
Sleep = Callable[[float], Awaitable[None]]


def strip_noise(obj: Obj) -> Obj:
    """The object without managedFields (noise for the syncer, often half the metadata)."""
    meta = obj.get("metadata")
    if meta and "managedFields" in meta:
        meta.pop("managedFields", None)
    return obj


def pack(obj: Obj) -> bytes:
    """Compact JSON of ``obj`` in a bytes object of exactly its size.

    orjson hands back a bytes object that keeps its growth buffer (about 4 KB
    for a 1 KB pod); copying it once into an exact-size object keeps a
    cached pod at its JSON size.
    """
    return bytes(memoryview(orjson.dumps(obj)))


def obj_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class Informer:
    """A list+watch mirror of one resource (optionally filtered by labels/fields)."""

    def __init__(
        self,
        api: ApiClient,
        resource: Resource,
        *,
        handler: Handler | None = None,
        transform: Transform = strip_noise,
        label_selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        watch_timeout: int = 300,
        store: bool = True,
        name: str = "",
        remote: RemoteMetrics | None = None,
        backoff: BackoffPolicy = WATCH_BACKOFF,
        remind_every: float = 300.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
        index: IndexFn | None = None,
    ) -> None:
        self.api = api
        self.resource = resource
        self.handler = handler
        self.transform = transform
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.namespace = namespace
        self.watch_timeout = watch_timeout
        self.store = store
        self.name = name or resource.plural
        self.synced = asyncio.Event()
        self._items: dict[tuple[str, str], bytes] = {}
        self.resource_version: str | None = None
        #: How many times the informer listed (1 + relists); for tests and metrics.
        self.lists = 0
        #: The apiserver's state as this informer sees it (back-off, state-change logging, metrics).
        self.outage = Outage(logger=log.bind(informer=self.name), event="informer.remote", policy=backoff,
                             remind_every=remind_every, clock=clock, rng=rng, metrics=remote,
                             component="informer", target=self.name)
        self._sleep = sleep
        self._index = index if store else None
        #: key → its index value, for the cached objects that have one; and how many objects have each value.
        self._indexed: dict[tuple[str, str], str] = {}
        self._index_counts: dict[str, int] = {}
        #: True once this run of :meth:`run` has heard from the apiserver (its list is in, or its watch
        #: delivered an event or bookmark); False before and after a run.
        self._following = False

    # ---- reading the cache --------------------------------------------------------
    def get(self, namespace: str, name: str) -> Obj | None:
        raw = self._items.get((namespace, name))
        if raw is None:
            return None
        obj: Obj = orjson.loads(raw)
        return obj

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._items

    def refs(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def items(self) -> Iterator[tuple[tuple[str, str], Obj]]:
        for key, raw in list(self._items.items()):
            yield key, orjson.loads(raw)

    def raw_items(self) -> list[tuple[tuple[str, str], bytes]]:
        """Every cached object as the bytes the cache holds, undecoded.  An object's bytes are replaced
        (a new ``bytes`` object) by every event and list that touches it, so a reader that kept them can
        tell by identity whether the object was touched since (the patrol's memo)."""
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def count_indexed(self, value: str) -> int:
        """How many cached objects the ``index`` function names ``value`` (a dict lookup; nothing decoded)."""
        return self._index_counts.get(value, 0)

    @property
    def current(self) -> bool:
        """Whether the cache follows the apiserver now: :meth:`run` is running and has heard from the
        apiserver since it started (a list, or a watch event or bookmark: a watch resumed after a restart
        of the loop is not trusted before that), no relist is pending and the last list/watch attempt did
        not fail.  While False, the cache may miss objects made since it last heard from the apiserver: an
        answer that must not be stale asks the apiserver."""
        return (self._following and self.synced.is_set() and self.resource_version is not None
                and not self.outage.down)

    def cached_bytes(self) -> int:
        return sum(len(v) for v in self._items.values())

    # ---- feeding ------------------------------------------------------------------
    def _emit(self, kind: str, obj: Obj) -> None:
        if self.handler is not None:
            try:
                self.handler(kind, obj)
            except Exception:  # a handler bug must not kill the informer
                log.exception("informer.handler_failed", informer=self.name)

    def apply(self, kind: str, raw_obj: Obj) -> None:
        """Apply one watch event (also used by tests to feed a cache)."""
        obj = self.transform(raw_obj)
        key = obj_key(obj)
        if kind == DELETED:
            self._items.pop(key, None)
        elif self.store:
            self._items[key] = pack(obj)
        if self._index is not None:
            self._reindex(key, None if kind == DELETED else self._index(obj))
        self._emit(kind, obj)

    def _reindex(self, key: tuple[str, str], value: str | None) -> None:
        old = self._indexed.get(key)
        if old == value:
            return
        counts = self._index_counts
        if old is not None:
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
        if value is None:
            del self._indexed[key]
        else:
            self._indexed[key] = value
            counts[value] = counts.get(value, 0) + 1

    def replace(self, raw_items: list[Obj]) -> None:
        """Install a fresh list: changed or new objects are reported, vanished ones deleted."""
        fresh: dict[tuple[str, str], bytes] = {}
        changed: list[tuple[str, Obj]] = []
        index = self._index
        indexed: dict[tuple[str, str], str] = {}
        counts: dict[str, int] = {}
        for raw_obj in raw_items:
            obj = self.transform(raw_obj)
            key = obj_key(obj)
            if index is not None and (value := index(obj)) is not None:
                indexed[key] = value
                counts[value] = counts.get(value, 0) + 1
            data = pack(obj)
            old = self._items.get(key)
            if self.store:
                fresh[key] = data
            if old != data:
                changed.append((ADDED if old is None else MODIFIED, obj))
        vanished = [(k, v) for k, v in self._items.items() if k not in fresh] if self.store else []
        self._items = fresh
        self._indexed, self._index_counts = indexed, counts
        for _key, raw in vanished:
            self._emit(DELETED, orjson.loads(raw))
        for kind, obj in changed:
            self._emit(kind, obj)

    # ---- the loop -----------------------------------------------------------------
    async def run(self) -> None:
        """List and watch until cancelled."""
        outage = self.outage
        self._following = False
        try:
            while True:
                try:
                    if self.resource_version is None:
                        items, rv = await self.api.list_all(
                            self.resource, namespace=self.namespace, label_selector=self.label_selector,
                            field_selector=self.field_selector,
                        )
                        self.lists += 1
                        outage.succeeded()
                        self.replace(items)
                        del items  # the decoded list would otherwise live as long as the watch
                        self.resource_version = rv
                        self.synced.set()
                        self._following = True
                    await self._watch()
                    outage.succeeded()
                except Gone:
                    log.info("informer.relist", informer=self.name, reason="410 Gone")
                    self.resource_version = None
                except (ApiError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    delay = outage.failed(exc)
                    if outage.failures > 3:
                        self.resource_version = None  # the rv may be the problem; start over
                    await self._sleep(delay)
        finally:
            self._following = False
            outage.forget()

    async def _watch(self) -> None:
        async for event in self.api.watch(
            self.resource, namespace=self.namespace, resource_version=self.resource_version,
            label_selector=self.label_selector, field_selector=self.field_selector,
            timeout_seconds=self.watch_timeout,
        ):
            if self.outage.down:  # the watch delivers again
                self.outage.succeeded()
            self._following = True
            rv = (event.object.get("metadata") or {}).get("resourceVersion")
            if event.type == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            self.apply(event.type, event.object)
            if rv:
                self.resource_version = rv
