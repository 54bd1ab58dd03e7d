"""``python -m syncer --kubeconfig <super admin kubeconfig>``: run the syncer for every tenant.

Why: the syncer is one long-running process per super cluster; tenants are
discovered from ``Tenant`` objects at run time.  Bad input (a missing
kubeconfig, a bad setting) ends with one ``error:`` line and exit code 2.
With ``VC_SYNCER_LEADER_ELECTION=1`` a replica stands by until it holds the
syncer Lease; one that loses it stops its work and exits with code 1 (its
Deployment restarts it as a follower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import structlog
from prometheus_client import CollectorRegistry

from syncer.engine import Syncer
from syncer.leader import LeaderElector, LostLease
from syncer.metrics import Metrics
from syncer.nodes import default_node_provider
from syncer.settings import SyncerSettings
from syncer.tenants import CrdTenantSource
from vcluster.errors import VClusterError
from vcluster.kube import ApiClient, ClientConfig
from vcluster.leader import lead
from vcluster.logs import configure_logging

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m syncer", description="Sync tenant objects into the super cluster.")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the super cluster (admin or syncer identity)")
    p.add_argument("--workers", type=int, default=None, help="concurrent workers (overrides VC_SYNCER_WORKERS)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="port of /metrics, /healthz, /readyz; 0 = off (overrides VC_SYNCER_METRICS_PORT)")
    return p


async def _run(args: argparse.Namespace, settings: SyncerSettings) -> int:
    config = ClientConfig.from_kubeconfig(args.kubeconfig, max_connections=settings.max_connections,
                                          user_agent="vc-syncer")
    async with contextlib.AsyncExitStack() as stack:
        super_api = await stack.enter_async_context(ApiClient(config))
        registry = CollectorRegistry()
        metrics = Metrics(registry=registry)
        nodes = default_node_provider(super_api, registry=registry)
        source = CrdTenantSource(super_api, watch_timeout=settings.watch_timeout,
                                 secret_recheck=settings.secret_recheck,
                                 retry_after=settings.secret_recheck or 30.0)
        syncer = Syncer(super_api, source, settings=settings, nodes=nodes, metrics=metrics)
        # Every served tenant has a series (0 when idle), not only those with keys queued right now.
        metrics.depths = lambda: {**dict.fromkeys(syncer.tenants, 0), **syncer.queue.depths()}
        elector = None
        if settings.leader_election:
            # A client of its own: renewals must not queue behind the workers' requests for a pooled
            # connection (seen on the test bed: a busy initial sync starved the renewal past its deadline).
            lease_api = await stack.enter_async_context(ApiClient(ClientConfig.from_kubeconfig(
                args.kubeconfig, max_connections=2, user_agent="vc-syncer-leader-election")))
            elector = LeaderElector(lease_api, settings=settings, on_change=lambda on: metrics.leader.set(int(on)))

        def ready() -> bool:
            # The leader: informers synced and workers running.  A follower is ready while it can read
            # the Lease (ready to take over), so a rolling update of two replicas is not stuck on it;
            # vc_syncer_leader tells them apart.
            if elector is not None and not elector.leading:
                return elector.standing_by()
            return syncer.ready.is_set()

        server = None
        if settings.metrics_port:
            from vcluster.health import start_health_server

            server = await start_health_server(port=settings.metrics_port, ready=ready, registry=registry)
        if elector is not None:
            runner = asyncio.create_task(_with_leader(elector, settings, syncer))
        else:
            metrics.leader.set(1)
            runner = asyncio.create_task(syncer.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.cancel)
        try:
            await runner
        except asyncio.CancelledError:
            log.info("syncer.stopped")
        except LostLease:
            return 1
        finally:
            if server is not None:
                await server.stop()
    return 0


async def _with_leader(elector: LeaderElector, settings: SyncerSettings, syncer: Syncer) -> None:
    """Stand by until this replica holds the Lease, then sync while renewing it
    (:func:`vcluster.leader.lead`: a lost Lease cancels the syncer at once and
    exits hard if it has not stopped before a follower may take over)."""
    syncer.metrics.leader.set(0)
    await elector.acquire()
    run = asyncio.create_task(syncer.run())
    keep = asyncio.create_task(elector.keep())

    def stop(lost: bool) -> None:
        if lost:
            syncer.lease_lost()  # before the cancel: no tenant writes (node clean-up) on the way out
        run.cancel()

    lost = await lead(elector, work=run, keep=keep, stop_work=stop, component="syncer")
    if lost is not None:
        raise lost
    if not run.cancelled():
        run.result()


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
        configure_logging(level=settings.logs.level, json=settings.logs.json)
        return asyncio.run(_run(args, settings))
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _replace(settings: SyncerSettings, **changes: object) -> SyncerSettings:
    import dataclasses

    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
