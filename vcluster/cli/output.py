"""Tenants as kubectl prints them: a table (NAME PHASE VERSION ENDPOINT AGE), wide, YAML, JSON, names.

Why: users of ``kubectl vc`` expect kubectl's shapes (aligned columns,
relative ages like ``5m``, ``-o yaml|json|wide|name``); the formatting is
pure, so tests pin it without a cluster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from tenant_crd import models
from vcluster.cli.spec import dumps

COLUMNS = ("NAME", "PHASE", "VERSION", "ENDPOINT", "AGE")
WIDE_COLUMNS = (*COLUMNS, "BACKEND", "KEY", "READY", "MESSAGE")
NONE = "<none>"


def age(timestamp: str | None, *, now: dt.datetime) -> str:
    """kubectl's short age: ``42s``, ``5m``, ``3h``, ``2d``; ``<unknown>`` without a timestamp."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def ready_condition(obj: dict[str, Any]) -> Mapping[str, Any] | None:
    """The Tenant's ``Ready`` condition, if the operator wrote one (:func:`tenant_crd.models.ready_condition`)."""
    return models.ready_condition(obj)


def phase(obj: dict[str, Any]) -> str:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return str((obj.get("status") or {}).get("phase") or "Pending")


def row(obj: dict[str, Any], *, now: dt.datetime, wide: bool = False) -> list[str]:
    """One table row of a Tenant."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    version = status.get("version") or (spec.get("controlPlane") or {}).get("version")
    cells = [
        str(meta.get("name", "")),
        phase(obj),
        str(version or NONE),
        str(status.get("endpoint") or NONE),
        age(meta.get("creationTimestamp"), now=now),
    ]
    if wide:
        cond = ready_condition(obj) or {}
        cells += [
            str(status.get("backend") or (spec.get("controlPlane") or {}).get("backend") or NONE),
            str(status.get("clusterKey") or NONE),
            str(cond.get("status") or "Unknown"),
            " ".join(str(cond.get("message") or "").split()) or NONE,
        ]
    return cells


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by at least three spaces, like kubectl."""
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = []
    for r in (headers, *rows):
        lines.append("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without ``metadata.managedFields`` (kubectl hides them too)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def render(objs: Sequence[dict[str, Any]], fmt: str | None, *, now: dt.datetime, single: bool = False) -> str:
    """Tenants in one of the output formats (``None`` = table).

    ``single`` prints a lone object for yaml/json (``get NAME``) instead of a List.
    """
    if fmt in ("yaml", "json"):
        shown = [without_managed_fields(o) for o in objs]
        if single and len(shown) == 1:
            return dumps(shown[0], fmt)
        return dumps({"apiVersion": "v1", "kind": "List", "items": shown}, fmt)
    if fmt == "name":
        return "".join(f"tenant/{(o.get('metadata') or {}).get('name', '')}\n" for o in objs)
    wide = fmt == "wide"
    if not objs:
        return ""
    return table([row(o, now=now, wide=wide) for o in objs], WIDE_COLUMNS if wide else COLUMNS)
