"""``python -m virtual_node.proxy``: run the kubelet proxy until SIGTERM/SIGINT.

Why: the Deployment in manifests/kubelet-proxy/ and local demos start it this
way; configuration comes only from :meth:`ProxySettings.from_env`.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog

from vcluster.errors import VClusterError
from vcluster.logs import configure_logging
from virtual_node.proxy.server import load_credentials, start_proxy
from virtual_node.settings import ProxySettings, super_client_config

log = structlog.get_logger(__name__)


async def _main(settings: ProxySettings) -> None:
    super_config = super_client_config(settings)
    serving, client_ca = await load_credentials(settings, super_config)
    proxy = await start_proxy(settings, super_config=super_config, serving=serving, client_ca_pem=client_ca)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("kubelet_proxy.stopping")
        await proxy.stop()


def main() -> int:
    try:
        settings = ProxySettings.from_env()
        configure_logging(level=settings.logs.level, json=settings.logs.json)
        asyncio.run(_main(settings))
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
