"""``python -m vcluster.operator``: run the Tenant operator against a super cluster.

Why: one entry point that reads settings (environment, then command line),
configures logging once, optionally installs the CRDs, builds the explicit
Kopf registry and runs Kopf in standalone mode until SIGINT/SIGTERM.  Errors
meant for the user end as one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from vcluster.errors import VClusterError
from vcluster.operator.settings import OperatorSettings

if TYPE_CHECKING:  # the heavy imports wait until run(): --help stays fast
    from vcluster.kube import ApiClient

log = structlog.get_logger(__name__)


def _parse(argv: list[str] | None, base: OperatorSettings) -> OperatorSettings:
    parser = argparse.ArgumentParser(prog="python -m vcluster.operator", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, default=base.kubeconfig, help="super cluster kubeconfig")
    parser.add_argument("--state-dir", type=Path, default=base.state_dir, help="local backend state folder")
    parser.add_argument("--health-port", type=int, default=base.health_port, help="/healthz port (0 = free)")
    parser.add_argument("--health-host", default=base.health_host, help="address of the health server")
    parser.add_argument("--health-interval", type=float, default=base.health_interval)
    parser.add_argument("--no-install-crds", action="store_true", help="do not apply the CRDs on start")
    parser.add_argument("--peering", action="store_true", default=base.peering, help="enable Kopf peering")
    parser.add_argument("--log-level", default=base.log_level)
    parser.add_argument("--log-json", action="store_true", default=base.log_json)
    args = parser.parse_args(argv)
    return replace(
        base,
        kubeconfig=args.kubeconfig,
        state_dir=args.state_dir,
        health_port=args.health_port,
        health_host=args.health_host,
        health_interval=args.health_interval,
        install_crds=base.install_crds and not args.no_install_crds,
        peering=args.peering,
        log_level=args.log_level,
        log_json=args.log_json,
    )


async def install_crds(api: ApiClient) -> None:
    """Server-side apply the CRDs and wait until they are Established."""
    from tenant_crd import all_crds
    from vcluster.kube import resources as r

    crds = all_crds().values()
    for crd in crds:
        await api.patch(r.CRDS, crd["metadata"]["name"], crd, patch_type="apply",
                        field_manager="vc-operator", force=True)
    for crd in crds:
        for _ in range(200):
            got = await api.get(r.CRDS, crd["metadata"]["name"])
            conds = (got.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                break
            await asyncio.sleep(0.1)
        else:
            raise VClusterError(f"CRD {crd['metadata']['name']} did not become Established")


async def run(settings: OperatorSettings) -> None:
    import kopf

    from vcluster.controlplane.local import LocalBackend
    from vcluster.kube import ApiClient, ClientConfig
    from vcluster.kubeconfig import load_kubeconfig
    from vcluster.operator.handlers import kopf_settings, register
    from vcluster.operator.reconcile import Reconciler
    from vcluster.settings import BinarySettings

    if settings.kubeconfig is None:
        raise VClusterError("no super cluster kubeconfig: pass --kubeconfig or set VC_OPERATOR_KUBECONFIG")
    connection = load_kubeconfig(settings.kubeconfig)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    async with ApiClient(ClientConfig.from_kubeconfig(settings.kubeconfig)) as api:
        if settings.install_crds:
            await install_crds(api)
        reconciler = Reconciler(
            api=api,
            local=LocalBackend(state_dir=settings.state_dir, binary_settings=BinarySettings.from_env(),
                               start_timeout=settings.start_timeout),
            bootstrap_timeout=settings.bootstrap_timeout,
        )
        registry = kopf.OperatorRegistry()
        register(registry, reconciler=reconciler, settings=settings, connection=connection)
        health = None
        if settings.health_port is not None:
            from vcluster.health import start_health_server

            health = await start_health_server(host=settings.health_host, port=settings.health_port)
            log.info("operator.health", port=health.port)
        log.info("operator.start", state_dir=str(settings.state_dir), server=connection.server)
        try:
            await kopf.operator(
                registry=registry, settings=kopf_settings(settings), standalone=not settings.peering,
                clusterwide=True,
            )
        finally:
            if health is not None:
                await health.stop()


def main(argv: list[str] | None = None) -> int:
    from vcluster.logs import configure_logging

    try:
        settings = _parse(argv, OperatorSettings.from_env())
        configure_logging(level=settings.log_level, json=settings.log_json)
        if settings.log_level.upper() != "DEBUG":
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
