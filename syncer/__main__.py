"""``python -m syncer --kubeconfig <super admin kubeconfig>``: run the syncer for every tenant.

Why: the syncer is one long-running process per super cluster; tenants are
discovered from ``Tenant`` objects at run time.  Bad input (a missing
kubeconfig, a bad setting) ends with one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import structlog

from syncer.engine import Syncer
from syncer.nodes import default_node_provider
from syncer.settings import SyncerSettings
from syncer.tenants import CrdTenantSource
from vcluster.errors import VClusterError
from vcluster.kube import ApiClient, ClientConfig
from vcluster.logs import configure_logging

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m syncer", description="Sync tenant objects into the super cluster.")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the super cluster (admin or syncer identity)")
    p.add_argument("--workers", type=int, default=None, help="concurrent workers (overrides VC_SYNCER_WORKERS)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="port of /metrics, /healthz, /readyz; 0 = off (overrides VC_SYNCER_METRICS_PORT)")
    return p


async def _run(args: argparse.Namespace, settings: SyncerSettings) -> None:
    config = ClientConfig.from_kubeconfig(args.kubeconfig, max_connections=settings.max_connections,
                                          user_agent="vc-syncer")
    async with ApiClient(config) as super_api:
        nodes = default_node_provider(super_api)
        syncer = Syncer(super_api, CrdTenantSource(super_api, watch_timeout=settings.watch_timeout),
                        settings=settings, nodes=nodes)
        server = None
        if settings.metrics_port:
            from vcluster.health import start_health_server

            server = await start_health_server(port=settings.metrics_port, ready=syncer.ready.is_set,
                                               registry=syncer.metrics.registry)
        runner = asyncio.create_task(
            _with_leader(super_api, settings, syncer) if settings.leader_election else syncer.run()
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.cancel)
        try:
            await runner
        except asyncio.CancelledError:
            log.info("syncer.stopped")
        finally:
            if server is not None:
                await server.stop()


async def _with_leader(super_api: ApiClient, settings: SyncerSettings, syncer: Syncer) -> None:
    from syncer.leader import LeaderElector

    elector = LeaderElector(super_api, settings=settings)
    await elector.acquire()
    run = asyncio.create_task(syncer.run())
    keep = asyncio.create_task(elector.keep())
    try:
        done, _ = await asyncio.wait({run, keep}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in (run, keep):
            task.cancel()
        await asyncio.gather(run, keep, return_exceptions=True)
        with contextlib.suppress(Exception):
            await elector.release()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = SyncerSettings.from_env()
        if args.workers is not None:
            if args.workers < 1:
                raise VClusterError("--workers must be at least 1")
            settings = _replace(settings, workers=args.workers)
        if args.metrics_port is not None:
            settings = _replace(settings, metrics_port=args.metrics_port)
        configure_logging(level=settings.log_level, json=settings.log_json)
        asyncio.run(_run(args, settings))
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _replace(settings: SyncerSettings, **changes: object) -> SyncerSettings:
    import dataclasses

    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
