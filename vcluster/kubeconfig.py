"""Render, write and parse kubeconfig files.

Why this module exists: the test bed hands its admin credentials to kubectl and
to our own clients through a kubeconfig; the operator stores a tenant's admin
kubeconfig in a Secret that the syncer reads back.  Both directions live here
so that what one component writes, the other parses the same way: inline
``*-data`` (base64) fields and file paths (relative to the kubeconfig's folder,
as kubectl resolves them) are both understood.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vcluster.errors import VClusterError
from vcluster.files import write_atomic


class KubeconfigError(VClusterError):
    """A kubeconfig could not be read or does not say what we need."""


@dataclass(frozen=True, slots=True)
class KubeconfigInfo:
    """What a client needs from a kubeconfig's current context."""

    server: str
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    insecure_skip_tls_verify: bool = False
    context: str = ""
    namespace: str | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_kubeconfig(
    *,
    server: str,
    ca_pem: bytes | None,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    cluster_name: str = "cluster",
    user_name: str = "admin",
    context_name: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig as a dict with everything inline (``*-data`` fields)."""
    if (client_cert_pem is None) != (client_key_pem is None):
        raise KubeconfigError("a client certificate needs its key (and a key its certificate)")
    if client_cert_pem is None and token is None:
        raise KubeconfigError("a kubeconfig user needs a client certificate or a token")
    context_name = context_name or f"{user_name}@{cluster_name}"
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    user: dict[str, Any] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        user["client-certificate-data"] = _b64(client_cert_pem)
        user["client-key-data"] = _b64(client_key_pem)
    if token is not None:
        user["token"] = token
    context: dict[str, Any] = {"cluster": cluster_name, "user": user_name}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
        "preferences": {},
    }


def dump_kubeconfig(config: dict[str, Any]) -> str:
    """YAML text of a kubeconfig dict."""
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfig(path: Path, config: dict[str, Any] | str) -> Path:
    """Write a kubeconfig (dict or YAML text) with mode 0600; it holds credentials."""
    text = config if isinstance(config, str) else dump_kubeconfig(config)
    return write_atomic(path, text, mode=0o600)


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(what)
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"kubeconfig has no {what} named {name!r}")


def _data_or_file(section: dict[str, Any], key: str, base: Path | None) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"kubeconfig field {key}-data is not valid base64") from exc
    ref = section.get(key)
    if not ref:
        return None
    path = Path(str(ref)).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KubeconfigError(
            f"kubeconfig field {key} names {path}, which cannot be read: {exc.strerror}"
        ) from exc


def parse_kubeconfig(
    config: dict[str, Any], *, base_dir: Path | None = None, context: str | None = None
) -> KubeconfigInfo:
    """The server and credentials of ``context`` (default: the current context)."""
    if not isinstance(config, dict):
        raise KubeconfigError("kubeconfig is not a YAML mapping")
    ctx_name = context or config.get("current-context")
    contexts = config.get("contexts") or []
    if not ctx_name:
        if len(contexts) == 1 and isinstance(contexts[0], dict):
            ctx_name = contexts[0].get("name")
        if not ctx_name:
            raise KubeconfigError("kubeconfig has no current-context")
    ctx = _named(contexts, str(ctx_name), "context")
    cluster = _named(config.get("clusters"), str(ctx.get("cluster", "")), "cluster")
    user_name = ctx.get("user")
    user = _named(config.get("users"), str(user_name), "user") if user_name else {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token")
    token_file = user.get("tokenFile")
    if not token and token_file:
        path = Path(str(token_file))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"kubeconfig tokenFile {path} cannot be read: {exc.strerror}") from exc
    return KubeconfigInfo(
        server=str(server),
        ca_pem=_data_or_file(cluster, "certificate-authority", base_dir),
        client_cert_pem=_data_or_file(user, "client-certificate", base_dir),
        client_key_pem=_data_or_file(user, "client-key", base_dir),
        token=str(token) if token else None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        context=str(ctx_name),
        namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
    )


def load_kubeconfig(source: Path | str, *, context: str | None = None) -> KubeconfigInfo:
    """Parse a kubeconfig from a path or from YAML text.

    A :class:`~pathlib.Path`, or a string without a newline that names an
    existing file, is read from disk (relative file references resolve against
    its folder); any other string is taken as YAML text.
    """
    base_dir: Path | None = None
    if isinstance(source, Path) or ("\n" not in source and Path(source).expanduser().is_file()):
        path = Path(source).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
        base_dir = path.resolve().parent
    else:
        text = source
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig is not valid YAML: {str(exc).splitlines()[0]}") from exc
    return parse_kubeconfig(config, base_dir=base_dir, context=context)
