"""Turn ``create``'s options or file into a Tenant object, checked before it is sent.

Why: a typo in ``--quota`` or a bad tenant name should be refused on the
command line with one line naming the problem (exit 2), not as a 422 from
the apiserver.  Pure functions only (text in, dict out); the same checks as
the operator reads (:class:`tenant_crd.models.TenantSpec`) and the naming
rules (:mod:`vcluster.naming`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from tenant_crd import schema
from tenant_crd.models import SpecError, TenantSpec
from vcluster import naming
from vcluster.cli.errors import UsageError

_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")


def check_name(name: str) -> str:
    """``name`` if it can name a Tenant, else a :class:`UsageError` saying why."""
    try:
        naming.validate_tenant_name(name)
    except naming.NamingError as exc:
        raise UsageError(str(exc)) from None
    return name


def parse_quota(text: str) -> dict[str, str]:
    """``"cpu=2,memory=4Gi"`` → ``{"cpu": "2", "memory": "4Gi"}``; a bad entry is a :class:`UsageError`."""
    out: dict[str, str] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"--quota entry {part!r}: expected RESOURCE=QUANTITY, e.g. cpu=2,memory=4Gi")
        if not _RESOURCE_NAME.match(key):
            raise UsageError(f"--quota entry {part!r}: {key!r} is not a resource name")
        if not re.match(schema.QUANTITY_PATTERN, value):
            raise UsageError(f"--quota entry {part!r}: {value!r} is not a quantity (like 500m, 2, 4Gi)")
        if key in out:
            raise UsageError(f"--quota names {key!r} twice")
        out[key] = value
    if not out:
        raise UsageError("--quota is empty: expected RESOURCE=QUANTITY[,...], e.g. cpu=2,memory=4Gi")
    return out


def tenant_from_options(
    *,
    name: str,
    kube_version: str | None = None,
    cluster_version: str | None = None,
    backend: str | None = None,
    owners: Sequence[str] = (),
    owner_groups: Sequence[str] = (),
    pod_security: str | None = None,
    quota: str | None = None,
) -> dict[str, Any]:
    """A Tenant object from ``create``'s options (only what was given; the CRD defaults the rest)."""
    check_name(name)
    if kube_version and cluster_version:
        raise UsageError("give either --version or --cluster-version, not both")
    if kube_version is not None and not re.match(schema.VERSION_PATTERN, kube_version):
        raise UsageError(f"--version {kube_version!r}: expected a Kubernetes release like v1.36.3")
    control_plane: dict[str, Any] = {}
    if kube_version:
        control_plane["version"] = kube_version
    if cluster_version:
        control_plane["clusterVersionRef"] = cluster_version
    if backend:
        control_plane["backend"] = backend
    spec: dict[str, Any] = {}
    if control_plane:
        spec["controlPlane"] = control_plane
    owner_spec: dict[str, Any] = {}
    if owners:
        owner_spec["users"] = _unique(owners, "--owner")
    if owner_groups:
        owner_spec["groups"] = _unique(owner_groups, "--owner-group")
    if owner_spec:
        spec["owners"] = owner_spec
    isolation: dict[str, Any] = {}
    if pod_security:
        isolation["podSecurity"] = pod_security
    if quota is not None:
        isolation["resourceQuota"] = {"hard": parse_quota(quota)}
    if isolation:
        spec["isolation"] = isolation
    return check_tenant({"apiVersion": naming.API_VERSION, "kind": schema.TENANT_KIND,
                         "metadata": {"name": name}, "spec": spec})


def _unique(values: Sequence[str], option: str) -> list[str]:
    out: list[str] = []
    for value in values:
        if not value.strip():
            raise UsageError(f"{option} must not be empty")
        if value not in out:
            out.append(value)
    return out


def tenant_from_text(text: str, *, source: str, name: str | None = None) -> dict[str, Any]:
    """A Tenant object from a YAML/JSON manifest; ``name`` (from the command line) must agree with it."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UsageError(f"{source}: not valid YAML ({first})") from None
    if len(docs) != 1:
        raise UsageError(f"{source}: expected exactly one Tenant, found {len(docs)} documents")
    obj = docs[0]
    if not isinstance(obj, dict):
        raise UsageError(f"{source}: expected a Tenant object, got {type(obj).__name__}")
    if obj.get("kind") != schema.TENANT_KIND or obj.get("apiVersion") != naming.API_VERSION:
        raise UsageError(
            f"{source}: expected apiVersion {naming.API_VERSION} kind {schema.TENANT_KIND}, "
            f"got {obj.get('apiVersion')!r} {obj.get('kind')!r}"
        )
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise UsageError(f"{source}: metadata must be an object")
    file_name = meta.get("name")
    if name and file_name and name != file_name:
        raise UsageError(f"{source} names tenant {file_name!r} but the command line says {name!r}")
    if not (name or file_name):
        raise UsageError(f"{source}: the Tenant has no metadata.name (and no NAME was given)")
    meta["name"] = name or file_name
    obj.pop("status", None)
    return check_tenant(obj)


def check_tenant(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` if its name and spec are usable, else a :class:`UsageError` naming the field."""
    check_name(str(obj["metadata"]["name"]))
    try:
        spec = TenantSpec.from_dict(obj.get("spec"))
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    problems = spec.problems()
    if problems:
        raise UsageError("; ".join(problems))
    return obj


def dumps(obj: Any, fmt: str) -> str:
    """YAML or JSON text of ``obj``, as kubectl prints it."""
    if fmt == "json":
        return json.dumps(obj, indent=2) + "\n"
    return str(yaml.safe_dump(obj, sort_keys=False))
