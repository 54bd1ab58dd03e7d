"""The shared health/metrics endpoints answer with the right status codes and content."""

from __future__ import annotations

import aiohttp
import prometheus_client
import pytest

from vcluster.health import start_health_server


def _fail() -> bool:
    raise RuntimeError("boom")


async def _async_true() -> bool:
    return True


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        pytest.param(None, 200, id="default-ready"),
        pytest.param(lambda: True, 200, id="sync-true"),
        pytest.param(lambda: False, 503, id="sync-false"),
        pytest.param(_async_true, 200, id="async-true"),
        pytest.param(_fail, 503, id="raising-check-is-not-ready"),
    ],
)
async def test_readyz_follows_the_callback(ready: object, expected: int) -> None:
    server = await start_health_server(host="127.0.0.1", port=0, ready=ready)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/readyz") as resp:
                assert resp.status == expected
            async with session.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200
    finally:
        await server.stop()


async def test_metrics_serves_the_given_registry() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("vc_test_things", "things counted", registry=registry)
    counter.inc(3)
    server = await start_health_server(host="127.0.0.1", port=0, registry=registry)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            text = await resp.text()
    finally:
        await server.stop()
    assert "vc_test_things_total 3.0" in text


async def test_stop_frees_the_port() -> None:
    from vcluster.process import port_is_free

    server = await start_health_server(host="127.0.0.1", port=0)
    port = server.port
    assert port > 0
    assert not port_is_free(port)
    await server.stop()
    assert port_is_free(port)


async def test_a_taken_port_is_one_clear_error() -> None:
    from vcluster.errors import VClusterError

    first = await start_health_server(host="127.0.0.1", port=0)
    try:
        with pytest.raises(VClusterError, match=rf"health endpoint cannot listen on 127\.0\.0\.1:{first.port}: "):
            await start_health_server(host="127.0.0.1", port=first.port)
    finally:
        await first.stop()
