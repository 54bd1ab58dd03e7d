"""``kubeconfig`` and ``connect``: use a tenant's control plane.

Why: the operator stores each tenant's admin kubeconfig in a Secret named
by ``status.kubeconfigSecret`` (data key ``kubeconfig``, see
docs/architecture.md).  These verbs fetch it so a user never has to decode
a Secret by hand, and ``connect`` runs any command (kubectl, helm, a shell)
against the tenant with its exit code passed through.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vcluster import naming
from vcluster.cli import output
from vcluster.cli.errors import EXIT_OK
from vcluster.cli.settings import CliSettings
from vcluster.cli.target import explain, super_client
from vcluster.cli.tenants import get_tenant
from vcluster.errors import VClusterError
from vcluster.kube import ApiClient, ApiError, NotFound
from vcluster.kube.resources import SECRETS


async def fetch_kubeconfig(api: ApiClient, name: str) -> str:
    """The tenant's admin kubeconfig (YAML text), or a one-line error saying why there is none yet."""
    obj = await get_tenant(api, name)
    ref = (obj.get("status") or {}).get("kubeconfigSecret") or {}
    if not ref.get("namespace") or not ref.get("name"):
        raise VClusterError(
            f'tenant "{name}" has no kubeconfig yet (phase {output.phase(obj)}); '
            f"wait for it: kubectl vc get {name}"
        )
    try:
        secret = await api.get(SECRETS, ref["name"], namespace=ref["namespace"])
    except NotFound:
        raise VClusterError(
            f'the kubeconfig Secret {ref["namespace"]}/{ref["name"]} of tenant "{name}" does not exist (yet)'
        ) from None
    except ApiError as exc:
        raise explain(exc, what=f'reading the kubeconfig of tenant "{name}"') from None
    data = (secret.get("data") or {}).get(naming.KUBECONFIG_SECRET_KEY)
    if not data:
        raise VClusterError(
            f'the Secret {ref["namespace"]}/{ref["name"]} of tenant "{name}" has no '
            f"{naming.KUBECONFIG_SECRET_KEY!r} key"
        )
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise VClusterError(f'the kubeconfig in Secret {ref["namespace"]}/{ref["name"]} is not valid base64') from None


def _fetch(settings: CliSettings, name: str) -> str:
    async def run() -> str:
        async with super_client(settings) as api:
            return await fetch_kubeconfig(api, name)

    return asyncio.run(run())


def kubeconfig(args: argparse.Namespace, settings: CliSettings) -> int:
    text = _fetch(settings, args.name)
    if args.output:
        from vcluster.kubeconfig import write_kubeconfig

        path = Path(args.output).expanduser()
        try:
            write_kubeconfig(path, text)
        except OSError as exc:
            raise VClusterError(f"cannot write {path}: {exc.strerror}") from None
        print(f"wrote the kubeconfig of tenant {args.name} to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def connect(args: argparse.Namespace, settings: CliSettings) -> int:
    text = _fetch(settings, args.name)
    with tempfile.TemporaryDirectory(prefix="vc-connect-") as tmp:
        path = Path(tmp) / f"{args.name}.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        env = dict(settings.env or {})
        env["KUBECONFIG"] = str(path)
        try:
            proc = subprocess.run(args.command, env=env, check=False)
        except FileNotFoundError:
            raise VClusterError(f"command not found: {args.command[0]}") from None
        except PermissionError:
            raise VClusterError(f"command not executable: {args.command[0]}") from None
    code = proc.returncode
    return code if code >= 0 else 128 - code
