"""The informer's secondary index (tenant pods by node) and when its cache may answer (``current``).

Why: the virtual-node manager asks "is a pod bound to this node?" of the tenant pod informer instead of
the tenant apiserver; the answer must follow every event and relist (a pod bound, deleted, gone in a
relist) without decoding the cache, and the informer must say when it cannot be trusted (not listed,
relisting, its apiserver failing, stopped).  The informers run against the in-memory apiserver of
tests/syncer/fakeapi.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from syncer.informer import ADDED, DELETED, MODIFIED, Informer
from syncer.resources.pod import bound_node
from tests.syncer.fakeapi import FakeApi, FakeServer, Obj
from vcluster.kube import ApiClient, ApiError, Gone, WatchEvent
from vcluster.kube import resources as r


def _pod(name: str, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "app", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def _counts(inf: Informer, *nodes: str) -> list[int]:
    return [inf.count_indexed(n) for n in nodes]


def test_events_keep_the_node_index() -> None:
    inf = Informer(cast(ApiClient, None), r.PODS, index=bound_node)
    inf.apply(ADDED, _pod("a"))
    assert _counts(inf, "n1", "n2") == [0, 0]
    inf.apply(MODIFIED, _pod("a", "n1"))  # bound
    inf.apply(ADDED, _pod("b", "n1"))
    inf.apply(ADDED, _pod("c", "n2"))
    inf.apply(MODIFIED, _pod("b", "n1"))  # a status change: counted once
    assert _counts(inf, "n1", "n2") == [2, 1]
    inf.apply(DELETED, _pod("a", "n1"))
    assert _counts(inf, "n1", "n2") == [1, 1]
    inf.apply(DELETED, _pod("c", "n2"))
    assert _counts(inf, "n1", "n2") == [1, 0]
    inf.apply(MODIFIED, _pod("b"))  # deleted and made again unbound, seen as one change
    assert _counts(inf, "n1", "n2") == [0, 0]
    inf.apply(DELETED, _pod("gone-before-listed", "n1"))  # never cached
    assert _counts(inf, "n1") == [0]


def test_a_relist_rebuilds_the_index() -> None:
    inf = Informer(cast(ApiClient, None), r.PODS, index=bound_node)
    inf.replace([_pod("a", "n1"), _pod("b", "n1"), _pod("c")])
    assert _counts(inf, "n1") == [2]
    # a and b were deleted while the watch was down, d was bound to n2
    inf.replace([_pod("c"), _pod("d", "n2")])
    assert _counts(inf, "n1", "n2") == [0, 1]
    inf.apply(DELETED, _pod("d", "n2"))
    assert _counts(inf, "n2") == [0]


def test_malformed_pods_are_not_indexed() -> None:
    assert bound_node({"metadata": {"name": "x"}, "spec": "not a map"}) is None
    assert bound_node({"metadata": {"name": "x"}, "spec": {"nodeName": 7}}) is None
    assert bound_node({"metadata": {"name": "x"}, "spec": {"nodeName": ""}}) is None
    assert bound_node({"metadata": {"name": "x"}}) is None


class ScriptedApi(FakeApi):
    """The fake apiserver, with pod lists that wait for a gate and watches that fail on demand."""

    def __init__(self, server: FakeServer) -> None:
        super().__init__(server)
        self.lists_open = asyncio.Event()
        self.lists_open.set()
        self.watch_fails: type[Exception] | None = None

    async def list_all(self, *args: Any, **kw: Any) -> Any:
        await self.lists_open.wait()
        return await super().list_all(*args, **kw)

    async def watch(self, *args: Any, **kw: Any) -> AsyncIterator[WatchEvent]:
        async for event in super().watch(*args, **kw):
            if self.watch_fails is Gone:
                raise Gone(410, "Expired", "too old resource version")
            if self.watch_fails is not None:
                raise ApiError(0, "ConnectionError", "watch pods: connection reset")
            yield event


async def _until(what: str, check: Callable[[], bool]) -> None:
    """Until ``check()``; the bound only keeps a broken informer from hanging the run."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@contextlib.asynccontextmanager
async def _running(inf: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(inf.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _informer(server: FakeServer, sleep: Callable[[float], Awaitable[None]] | None = None
              ) -> tuple[Informer, ScriptedApi]:
    api = ScriptedApi(server)
    server.put(r.NAMESPACES, {"metadata": {"name": "shop"}})
    kw: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return Informer(cast(ApiClient, api), r.PODS, index=bound_node, **kw), api


async def test_current_only_while_listed_and_watching() -> None:
    server = FakeServer("tenant")
    inf, _api = _informer(server)
    inf.replace([_pod("a", "n1")])
    assert not inf.current  # filled by hand: no list of its own, no watch
    async with _running(inf) as task:
        await inf.synced.wait()
        assert inf.current
        server.put(r.PODS, _pod("b", "n1"))
        await _until("the watch delivers b", lambda: inf.count_indexed("n1") == 1)  # a was never in the server
    assert task.done()
    assert not inf.current  # stopped: the cache no longer follows


async def test_not_current_while_the_watch_fails() -> None:
    server = FakeServer("tenant")
    retry = asyncio.Event()

    async def sleep(_delay: float) -> None:  # the back-off: until the test lets it retry
        await retry.wait()
        retry.clear()

    inf, api = _informer(server, sleep)
    async with _running(inf):
        await inf.synced.wait()
        api.watch_fails = ApiError
        server.put(r.PODS, _pod("a", "n1"))  # bound while the watch breaks: the cache misses it
        await _until("the watch failed", lambda: inf.outage.down)
        assert not inf.current
        assert inf.count_indexed("n1") == 0
        api.watch_fails = None
        retry.set()
        await _until("the watch delivers again", lambda: inf.current)
        assert inf.count_indexed("n1") == 1


async def test_not_current_while_relisting_after_gone() -> None:
    server = FakeServer("tenant")
    inf, api = _informer(server)
    async with _running(inf):
        await inf.synced.wait()
        api.watch_fails, api.lists_open = Gone, asyncio.Event()
        server.put(r.PODS, _pod("a", "n1"))
        await _until("relist pending", lambda: inf.resource_version is None)
        assert not inf.current
        api.watch_fails = None
        api.lists_open.set()
        await _until("relisted", lambda: inf.current)
        assert inf.count_indexed("n1") == 1


async def test_a_restarted_loop_is_current_once_it_hears_from_the_apiserver() -> None:
    """A new client (rotated credentials) restarts the loop from its resourceVersion, no list: the cache is
    not trusted until the resumed watch delivers something."""
    server = FakeServer("tenant")
    inf, _api = _informer(server)
    async with _running(inf):
        await inf.synced.wait()
    async with _running(inf):
        await asyncio.sleep(0.05)
        assert not inf.current
        server.put(r.PODS, _pod("a", "n1"))
        await _until("resumed watch delivers", lambda: inf.current)
        assert inf.count_indexed("n1") == 1
