"""``create``, ``list``, ``get`` and ``delete`` of Tenants, with ``--wait``.

Why: a tenant is one Tenant object in the super cluster; these verbs are the
admin's kubectl for it, with the checks of :mod:`vcluster.cli.spec` before
anything is sent and waits that follow the status contract of
docs/architecture.md (``Ready`` condition ``True`` for the current
generation; gone after delete).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from tenant_crd import models
from vcluster import clock
from vcluster.cli import output
from vcluster.cli.errors import EXIT_OK, UsageError
from vcluster.cli.settings import CliSettings
from vcluster.cli.spec import tenant_from_options, tenant_from_text
from vcluster.cli.target import explain, super_client
from vcluster.errors import VClusterError
from vcluster.kube import AlreadyExists, ApiClient, ApiError, Invalid
from vcluster.kube.resources import TENANTS

POLL_INTERVAL = 0.5


def _read_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def tenant_body(args: argparse.Namespace) -> dict[str, Any]:
    """The Tenant to create, from ``-f`` or from the options (not both)."""
    if args.filename:
        given = [opt for opt, value in (
            ("--version", args.kube_version), ("--cluster-version", args.cluster_version),
            ("--backend", args.backend), ("--owner", args.owner), ("--owner-group", args.owner_group),
            ("--pod-security", args.pod_security), ("--quota", args.quota),
        ) if value]
        if given:
            raise UsageError(f"-f cannot be combined with {', '.join(given)}: put them in the file")
        source = "stdin" if args.filename == "-" else args.filename
        return tenant_from_text(_read_file(args.filename), source=source, name=args.name)
    if not args.name:
        raise UsageError("create needs a NAME or -f FILE (see 'kubectl vc create --help')")
    return tenant_from_options(
        name=args.name, kube_version=args.kube_version, cluster_version=args.cluster_version,
        backend=args.backend, owners=args.owner, owner_groups=args.owner_group,
        pod_security=args.pod_security, quota=args.quota,
    )


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready for the Tenant's current spec: the one rule, :func:`tenant_crd.models.is_ready`."""
    return models.is_ready(obj)


def _why(obj: dict[str, Any]) -> str:
    cond = output.ready_condition(obj) or {}
    detail = " ".join(f"{cond.get('reason') or ''}: {cond.get('message') or ''}".split()).strip(": ")
    return f"phase {output.phase(obj)}" + (f", {detail}" if detail else "")


async def wait_ready(api: ApiClient, name: str, *, seconds: float, quiet: bool = False) -> dict[str, Any]:
    """Poll the Tenant until it is Ready; fail on deletion or the deadline."""
    deadline = time.monotonic() + seconds
    last = ""
    while True:
        obj = await api.get_or_none(TENANTS, name)
        if obj is None:
            raise VClusterError(f'tenant "{name}" was deleted while waiting for it to be Ready')
        if is_ready(obj):
            return obj
        state = _why(obj)
        if state != last and not quiet:
            print(f"tenant/{name}: {state}", file=sys.stderr)
            last = state
        if time.monotonic() >= deadline:
            raise VClusterError(f'timed out after {seconds:.0f}s waiting for tenant "{name}" to be Ready ({state})')
        await asyncio.sleep(POLL_INTERVAL)


async def wait_gone(api: ApiClient, name: str, *, seconds: float) -> None:
    """Poll until the Tenant no longer exists (its finalizer ran)."""
    deadline = time.monotonic() + seconds
    while True:
        obj = await api.get_or_none(TENANTS, name)
        if obj is None:
            return
        if time.monotonic() >= deadline:
            raise VClusterError(f'timed out after {seconds:.0f}s waiting for tenant "{name}" to be deleted '
                                f"({_why(obj)})")
        await asyncio.sleep(POLL_INTERVAL)


# ---- verbs ------------------------------------------------------------------------


def create(args: argparse.Namespace, settings: CliSettings) -> int:
    body = tenant_body(args)
    name = body["metadata"]["name"]

    async def run() -> dict[str, Any]:
        async with super_client(settings) as api:
            try:
                obj = await api.create(TENANTS, body)
            except AlreadyExists:
                raise VClusterError(f'tenant "{name}" already exists') from None
            except Invalid as exc:
                raise VClusterError(f'tenant "{name}" refused by the super cluster: {exc.message}') from None
            except ApiError as exc:
                raise explain(exc, what=f'creating tenant "{name}"') from None
            if args.output not in ("yaml", "json"):
                print(f"tenant/{name} created", file=sys.stderr if args.output else sys.stdout)
            if args.wait:
                try:
                    obj = await wait_ready(api, name, seconds=args.timeout)
                except ApiError as exc:
                    raise explain(exc, what=f'waiting for tenant "{name}"') from None
                if not args.output:
                    endpoint = (obj.get("status") or {}).get("endpoint") or output.NONE
                    print(f"tenant/{name} is Ready at {endpoint}")
            return obj

    obj = asyncio.run(run())
    if args.output:
        sys.stdout.write(output.render([obj], args.output, now=clock.now(), single=True))
    return EXIT_OK


def list_(args: argparse.Namespace, settings: CliSettings) -> int:
    async def run() -> list[dict[str, Any]]:
        async with super_client(settings) as api:
            try:
                items, _ = await api.list_all(TENANTS)
            except ApiError as exc:
                raise explain(exc, what="listing tenants") from None
            return items

    items = sorted(asyncio.run(run()), key=lambda o: str((o.get("metadata") or {}).get("name", "")))
    if not items and args.output in (None, "wide"):
        print("No tenants found.", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(output.render(items, args.output, now=clock.now()))
    return EXIT_OK


async def get_tenant(api: ApiClient, name: str) -> dict[str, Any]:
    """The Tenant ``name``, or a one-line error."""
    try:
        return await api.get(TENANTS, name)
    except ApiError as exc:
        raise explain(exc, what=f'getting tenant "{name}"', missing=f'tenant "{name}" not found') from None


def get(args: argparse.Namespace, settings: CliSettings) -> int:
    async def run() -> dict[str, Any]:
        async with super_client(settings) as api:
            return await get_tenant(api, args.name)

    obj = asyncio.run(run())
    sys.stdout.write(output.render([obj], args.output, now=clock.now(), single=True))
    return EXIT_OK


def delete(args: argparse.Namespace, settings: CliSettings) -> int:
    async def run() -> None:
        async with super_client(settings) as api:
            for name in dict.fromkeys(args.names):
                try:
                    await api.delete(TENANTS, name)
                except ApiError as exc:
                    raise explain(exc, what=f'deleting tenant "{name}"', missing=f'tenant "{name}" not found') from None
                print(f"tenant/{name} deleted")
            if args.wait:
                for name in dict.fromkeys(args.names):
                    try:
                        await wait_gone(api, name, seconds=args.timeout)
                    except ApiError as exc:
                        raise explain(exc, what=f'waiting for tenant "{name}" to go') from None

    asyncio.run(run())
    return EXIT_OK
