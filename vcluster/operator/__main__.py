"""``python -m vcluster.operator``: run the Tenant operator against a super cluster.

Why: one entry point that reads settings (environment, then command line),
configures logging once, makes sure ``vc-system`` exists, optionally installs
the CRDs, and then stands by until this replica holds the operator Lease
(``vc-system/vc-operator``, :mod:`vcluster.leader`): only the holder builds
the explicit Kopf registry and runs Kopf (standalone), so several operators
on one super cluster never provision the same Tenant twice.  SIGINT/SIGTERM
stops Kopf and releases the Lease; a lost Lease stops Kopf and exits 1 (the
Deployment or supervisor restarts it as a standby).  Errors meant for the
user end as one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from vcluster import naming
from vcluster.errors import VClusterError
from vcluster.operator.settings import OperatorSettings
from vcluster.settings import LogSettings

if TYPE_CHECKING:  # the heavy imports wait until run(): --help stays fast
    from vcluster.leader import LeaderElector, LeaseConfig

log = structlog.get_logger(__name__)


def _parse(argv: list[str] | None, base: OperatorSettings) -> OperatorSettings:
    parser = argparse.ArgumentParser(prog="python -m vcluster.operator", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, default=base.kubeconfig, help="super cluster kubeconfig")
    parser.add_argument("--state-dir", type=Path, default=base.state_dir, help="local backend state folder")
    parser.add_argument("--health-port", type=int, default=base.health_port, help="/healthz port (0 = free)")
    parser.add_argument("--health-host", default=base.health_host, help="address of the health server")
    parser.add_argument("--health-interval", type=float, default=base.health_interval)
    parser.add_argument("--no-install-crds", action="store_true", help="do not apply the CRDs on start")
    # Gone: the operator always elects one active replica through the Lease vc-system/vc-operator.
    parser.add_argument("--peering", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default=base.logs.level)
    parser.add_argument("--log-json", action="store_true", default=base.logs.json)
    args = parser.parse_args(argv)
    if args.peering:
        print("warning: --peering is obsolete and ignored: replicas elect one leader through the Lease "
              f"{naming.SYSTEM_NAMESPACE}/{naming.OPERATOR_LEASE_NAME}", file=sys.stderr)
    return replace(
        base,
        kubeconfig=args.kubeconfig,
        state_dir=args.state_dir,
        health_port=args.health_port,
        health_host=args.health_host,
        health_interval=args.health_interval,
        install_crds=base.install_crds and not args.no_install_crds,
        logs=LogSettings(level=args.log_level, json=args.log_json),
    )


def lease_config(settings: OperatorSettings) -> LeaseConfig:
    """The operator's Lease (``vc-system/vc-operator``) and timing (pure)."""
    from vcluster.leader import lease_config_for

    return lease_config_for(naming.OPERATOR_LEASE_NAME, settings)


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, callback)


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it); ``True`` if ``work`` finished."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, waiter):
            t.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


async def run(settings: OperatorSettings) -> None:
    """Stand by until this replica holds the operator Lease, then run Kopf while renewing it.

    SIGTERM/SIGINT: stop Kopf and release the Lease (a standby takes over at
    its next retry).  Lost Lease (another holder, or no renewal within the
    renew deadline): Kopf is cancelled at once and :class:`VClusterError` ends
    the process non-zero; if Kopf has not stopped before a standby may take
    over (lease duration − renew deadline) the process exits hard,
    as client-go's users do.
    """
    import kopf
    from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

    from vcluster import bootstrap
    from vcluster.controlplane.local import LocalBackend
    from vcluster.kube import ApiClient, ClientConfig
    from vcluster.kubeconfig import load_kubeconfig
    from vcluster.leader import LeaderElector
    from vcluster.operator.handlers import kopf_settings, register
    from vcluster.operator.reconcile import Reconciler
    from vcluster.settings import BinarySettings

    if settings.kubeconfig is None:
        raise VClusterError("no super cluster kubeconfig: pass --kubeconfig or set VC_OPERATOR_KUBECONFIG")
    connection = load_kubeconfig(settings.kubeconfig)
    stop = asyncio.Event()  # SIGTERM/SIGINT; also Kopf's stop flag
    _on_signals(stop.set)
    metrics = CollectorRegistry()
    ProcessCollector(registry=metrics)
    leader_gauge = Gauge("vc_operator_leader", "1 = this replica runs the operator; 0 = standing by",
                         registry=metrics)
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(ApiClient(ClientConfig.from_kubeconfig(settings.kubeconfig)))
        await bootstrap.ensure_system_namespace(api)
        if settings.install_crds:  # idempotent: fine for a standby too
            await bootstrap.install_crds(api)
        # A client of its own: renewals must not wait behind the handlers' requests for a pooled connection.
        lease_api = await stack.enter_async_context(ApiClient(ClientConfig.from_kubeconfig(
            settings.kubeconfig, max_connections=2, user_agent="vc-operator-leader-election")))
        elector = LeaderElector(lease_api, config=lease_config(settings),
                                on_change=lambda leading: leader_gauge.set(int(leading)))

        def ready() -> bool:
            # The leader: it holds the Lease (Kopf starts within the same second; its failure ends the
            # process).  A standby is ready while it can read the Lease (ready to take over), so a rolling
            # update is not stuck on it; vc_operator_leader tells them apart.  /healthz is OK either way.
            return elector.leading or elector.standing_by()

        acquired = await elector.attempt()  # one round trip first, so /readyz answers from the start
        if settings.health_port is not None:
            from vcluster.health import start_health_server

            health = await start_health_server(host=settings.health_host, port=settings.health_port,
                                               ready=ready, registry=metrics)
            stack.push_async_callback(health.stop)
            log.info("operator.health", port=health.port)
        if not acquired:
            log.info("operator.standing_by", holder=elector.holder or None, identity=elector.identity,
                     lease=f"{naming.SYSTEM_NAMESPACE}/{naming.OPERATOR_LEASE_NAME}")
            if not await _until_stopped(elector.acquire(), stop):
                log.info("operator.stopped", leading=False)
                return
        log.info("operator.leading", identity=elector.identity)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        reconciler = Reconciler(
            api=api,
            local=LocalBackend(state_dir=settings.state_dir, binary_settings=BinarySettings.from_env(),
                               start_timeout=settings.start_timeout, host=settings.local_host,
                               shared_etcd=settings.shared_etcd, bootstrap_seed=settings.bootstrap_seed),
            bootstrap_timeout=settings.bootstrap_timeout,
            dns=settings.dns,
            placement=settings.placement,
            default_backend=settings.default_backend,
            default_quota=settings.default_quota,
            default_limits=settings.default_limits,
            default_requests=settings.default_requests,
            image_repository=settings.image_repository,
            etcd_image=settings.etcd_image,
            lifetimes=settings.certificates,
        )
        registry = kopf.OperatorRegistry()
        register(registry, reconciler=reconciler, settings=settings, connection=connection)
        log.info("operator.start", state_dir=str(settings.state_dir), server=connection.server)
        # keep() first: Kopf cancels, when it stops, every task created after it started.
        keep = asyncio.create_task(elector.keep(), name="operator-lease")
        operator = asyncio.create_task(kopf.operator(
            registry=registry, settings=kopf_settings(settings), standalone=True, clusterwide=True,
            stop_flag=stop,
        ), name="kopf")
        await _lead(elector, keep=keep, operator=operator, stop=stop, settings=settings)


async def _lead(
    elector: LeaderElector, *, keep: asyncio.Task[None], operator: asyncio.Task[None], stop: asyncio.Event,
    settings: OperatorSettings,
) -> None:
    """Wait for Kopf to stop (signal: Kopf's own handlers stop it) or the Lease to be lost; clean up
    (:func:`vcluster.leader.lead`)."""
    from vcluster.leader import lead

    def stop_kopf(lost: bool) -> None:
        stop.set()  # Kopf's stop flag: also keeps its "ultimate exit" SIGKILL timer off
        if lost:
            operator.cancel()  # stop handlers at once: a standby may take over soon

    try:
        lost = await lead(elector, work=operator, keep=keep, stop_work=stop_kopf, component="operator",
                          clean_stop_timeout=60.0)
    finally:
        _on_signals(stop.set)  # Kopf's handlers point at its finished run
    log.info("operator.stopped", leading=False, lost=lost is not None)
    if lost is not None:
        raise VClusterError(f"{lost}: stopped the operator (a restart stands by until the lease is free)")
    if not operator.cancelled():
        operator.result()  # Kopf's own failure, if any


def main(argv: list[str] | None = None) -> int:
    from vcluster.logs import configure_logging

    try:
        settings = _parse(argv, OperatorSettings.from_env())
        configure_logging(level=settings.logs.level, json=settings.logs.json)
        if settings.logs.level.upper() != "DEBUG":
            # Kopf logs every timer/handler success at INFO; ours are the events that matter.
            logging.getLogger("kopf").setLevel(logging.WARNING)
        asyncio.run(run(settings))
    except VClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
