"""Render, write and parse kubeconfig files.

Why this module exists: the test bed hands its admin credentials to kubectl and
to our own clients through a kubeconfig; the operator stores a tenant's admin
kubeconfig in a Secret that the syncer reads back.  Both directions live here
so that what one component writes, the other parses the same way: inline
``*-data`` (base64) fields and file paths (relative to the kubeconfig's folder,
as kubectl resolves them) are both understood.

Admins' kubeconfigs for managed clusters name their credentials rather than
holding them: an exec credential plugin (``users[].user.exec``), an OIDC
``auth-provider`` id-token, a ``tokenFile`` that rotates.  This module only
*parses* those (into :class:`ExecConfig`, ``token_file``, ``token_expiry``),
without running anything; :mod:`vcluster.kube.credentials` runs plugins and
re-reads files, because that is I/O the client does when a token is due.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vcluster.errors import VClusterError
from vcluster.files import write_atomic


class KubeconfigError(VClusterError):
    """A kubeconfig could not be read or does not say what we need."""


#: The ExecCredential API versions client-go speaks to plugins (v1alpha1 was removed in Kubernetes 1.24).
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """A user's ``exec`` credential plugin, as the kubeconfig spells it (nothing run yet)."""

    #: The command: a bare name is looked up in PATH, a relative path resolves against the kubeconfig's folder.
    command: str
    api_version: str
    args: tuple[str, ...] = ()
    #: Added to the environment the plugin inherits.
    env: tuple[tuple[str, str], ...] = ()
    interactive_mode: str = "IfAvailable"
    provide_cluster_info: bool = False
    install_hint: str = ""
    #: ``clusters[].cluster.extensions[client.authentication.k8s.io/exec].extension``, handed to the plugin.
    cluster_config: Any = None
    #: The kubeconfig's folder (a relative command resolves against it).
    base_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class KubeconfigInfo:
    """What a client needs from a kubeconfig's current context."""

    server: str
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    insecure_skip_tls_verify: bool = False
    #: ``tls-server-name``: the name for SNI and for checking the serving certificate (else the URL's host).
    tls_server_name: str | None = None
    context: str = ""
    namespace: str | None = None
    #: ``tokenFile``: ``token`` holds what it said when parsed; clients re-read it (it may rotate).
    token_file: Path | None = None
    #: When ``token`` stops being valid, if it says so (an OIDC id-token's ``exp``).
    token_expiry: _dt.datetime | None = None
    #: An exec credential plugin that gives the token or the client certificate.
    exec: ExecConfig | None = None
    #: The user's name in the kubeconfig (for messages).
    user: str = field(default="", compare=False)


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


def _parse_exec(spec: Any, user_name: str, cluster: dict[str, Any], base_dir: Path | None) -> ExecConfig:
    where = f"kubeconfig user {user_name!r}: exec"
    if not isinstance(spec, dict):
        raise KubeconfigError(f"{where} is not a mapping")
    command = spec.get("command")
    if not command or not isinstance(command, str):
        raise KubeconfigError(f"{where} has no command")
    api_version = spec.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(
            f"{where}: apiVersion {api_version!r} is not one virtualcluster speaks ({', '.join(EXEC_API_VERSIONS)})"
        )
    mode = spec.get("interactiveMode")
    if mode is None:
        if api_version.endswith("/v1"):  # as client-go: v1 must say it
            raise KubeconfigError(
                f"{where}: interactiveMode must be set for {api_version} (Never, IfAvailable or Always)"
            )
        mode = "IfAvailable"
    if mode not in INTERACTIVE_MODES:
        raise KubeconfigError(f"{where}: interactiveMode {mode!r} is not one of {', '.join(INTERACTIVE_MODES)}")
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise KubeconfigError(f"{where}: args must be a list of strings")
    env: list[tuple[str, str]] = []
    for item in spec.get("env") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "value" not in item:
            raise KubeconfigError(f"{where}: every env entry needs a name and a value")
        env.append((item["name"], str(item["value"])))
    extension = None
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            extension = ext.get("extension")
    return ExecConfig(
        command=command, api_version=str(api_version), args=tuple(args), env=tuple(env),
        interactive_mode=str(mode), provide_cluster_info=bool(spec.get("provideClusterInfo", False)),
        install_hint=str(spec.get("installHint") or ""), cluster_config=extension, base_dir=base_dir,
    )


def jwt_expiry(token: str) -> _dt.datetime | None:
    """The ``exp`` claim of a JWT (not verified: only to know when to stop using it), if it has one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return _dt.datetime.fromtimestamp(float(exp), _dt.UTC) if exp is not None else None
    except (ValueError, TypeError, OverflowError, binascii.Error):
        return None


def _parse_auth_provider(spec: Any, user_name: str) -> tuple[str, _dt.datetime | None]:
    """The bearer token of an ``auth-provider`` (only ``oidc``: the others left kubectl in 1.26)."""
    where = f"kubeconfig user {user_name!r}: auth-provider"
    name = spec.get("name") if isinstance(spec, dict) else None
    if name != "oidc":
        raise KubeconfigError(
            f"{where} {name!r} is not supported (kubectl dropped the built-in gcp and azure providers in 1.26): "
            "use the provider's exec credential plugin (gke-gcloud-auth-plugin, kubelogin, ...)"
        )
    config = spec.get("config") or {}
    token = config.get("id-token") if isinstance(config, dict) else None
    if not token or not isinstance(token, str):
        raise KubeconfigError(
            f"{where} oidc has no id-token; virtualcluster does not log in to the identity provider itself: "
            "log in with kubectl (or use an exec plugin such as kubelogin)"
        )
    return token, jwt_expiry(token)


def parse_kubeconfig(
    config: dict[str, Any], *, base_dir: Path | None = None, context: str | None = None, allow_exec: bool = True,
    allow_insecure: bool = True,
) -> KubeconfigInfo:
    """The server and credentials of ``context`` (default: the current context).

    ``allow_exec=False`` refuses a user with an exec plugin (a command to run) with a clear error;
    ``allow_insecure=False`` likewise a cluster with ``insecure-skip-tls-verify: true``.
    """
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
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r}: insecure-skip-tls-verify must be "
                              f"true or false, not {insecure!r}")
    if insecure and not allow_insecure:
        raise KubeconfigError(
            f"kubeconfig cluster {ctx.get('cluster')!r} sets insecure-skip-tls-verify; virtualcluster turns "
            "certificate checks off only for kubeconfig files an admin passes, never for kubeconfig text such "
            "as a Secret's (give the cluster's certificate-authority-data instead)"
        )
    if insecure and (cluster.get("certificate-authority") or cluster.get("certificate-authority-data")):
        # client-go's rule: with a CA named, turning the check off is a mistake, not a choice
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r} sets both a certificate authority and "
                              "insecure-skip-tls-verify: specifying a root certificates file with the insecure "
                              "flag is not allowed")
    server_name = cluster.get("tls-server-name")
    if server_name is not None and (not isinstance(server_name, str) or not server_name.strip()):
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r}: tls-server-name must be a host name, "
                              f"not {server_name!r}")
    token = user.get("token")
    token_file = user.get("tokenFile")
    token_path: Path | None = None
    token_expiry: _dt.datetime | None = None
    exec_config: ExecConfig | None = None
    if user.get("exec") is not None:
        others = [k for k in ("token", "tokenFile", "auth-provider") if user.get(k)]
        if others:  # kubectl refuses exec with an auth-provider; with a token it is unclear which one is meant
            raise KubeconfigError(
                f"kubeconfig user {user_name!r} sets both exec and {others[0]}: keep only one way to authenticate"
            )
        exec_config = _parse_exec(user["exec"], str(user_name), cluster, base_dir)
        if not allow_exec:
            raise KubeconfigError(
                f"kubeconfig user {user_name!r} names an exec credential plugin ({exec_config.command!r}); "
                "virtualcluster runs plugins only from kubeconfig files an admin passes, never from kubeconfig "
                "text such as a Secret's"
            )
    elif user.get("auth-provider") is not None:
        token, token_expiry = _parse_auth_provider(user["auth-provider"], str(user_name))
    if not token and token_file:
        token_path = Path(str(token_file)).expanduser()
        if not token_path.is_absolute() and base_dir is not None:
            token_path = base_dir / token_path
        try:
            token = token_path.read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"kubeconfig tokenFile {token_path} cannot be read: {exc.strerror}") from exc
    return KubeconfigInfo(
        server=str(server),
        ca_pem=_data_or_file(cluster, "certificate-authority", base_dir),
        client_cert_pem=_data_or_file(user, "client-certificate", base_dir),
        client_key_pem=_data_or_file(user, "client-key", base_dir),
        token=str(token) if token else None,
        insecure_skip_tls_verify=insecure,
        tls_server_name=server_name or None,
        context=str(ctx_name),
        namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
        token_file=token_path,
        token_expiry=token_expiry,
        exec=exec_config,
        user=str(user_name or ""),
    )


def load_kubeconfig(source: Path | str, *, context: str | None = None) -> KubeconfigInfo:
    """Parse a kubeconfig from a path or from YAML text.

    A :class:`~pathlib.Path`, or a string without a newline that names an
    existing file, is read from disk (relative file references resolve against
    its folder); any other string is taken as YAML text.  Exec credential
    plugins and ``insecure-skip-tls-verify`` are accepted only from a file:
    YAML text comes from Secrets (tenant-facing), and a Secret must never make a
    component run a command or stop checking the server's certificate.
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
    from_file = base_dir is not None
    return parse_kubeconfig(config, base_dir=base_dir, context=context, allow_exec=from_file,
                            allow_insecure=from_file)
