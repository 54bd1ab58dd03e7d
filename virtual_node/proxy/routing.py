"""Kubelet request paths → (tenant, pod) → super kubelet path: pure decisions.

Why: this is where one tenant could reach another's pods, so every decision
(who is calling, which pod the path names, whether the super pod really is
that tenant's, what path the real kubelet gets) is a side-effect-free
function with table tests.  The proxy app only does the I/O around them.

The tenant namespace in a path is always mapped with
:func:`vcluster.naming.super_namespace` of the *caller's* key: a path that
names a super namespace (a guess at another tenant's) is translated again
and points nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from vcluster import naming

#: Kubelet endpoints a tenant may use, by first path segment, and how many segments follow.
#: (namespace, pod, [uid,] container) — ``portForward`` has no container.
ACTIONS: dict[str, tuple[int, ...]] = {
    "containerLogs": (3,),
    "exec": (3, 4),
    "attach": (3, 4),
    "portForward": (2, 3),
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_UID = re.compile(r"^[0-9a-fA-F-]{1,64}$")
_MAX_NAME = 253


class Denied(Exception):
    """A request the proxy refuses; ``status`` and ``message`` go back to the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class KubeletRequest:
    """What a kubelet path names, on the tenant side."""

    action: str
    namespace: str
    pod: str
    container: str | None
    uid: str | None


def tenant_from_identity(common_name: str, organizations: list[str]) -> str:
    """The cluster key of the calling tenant apiserver, from its client certificate."""
    if naming.KUBELET_CLIENT_GROUP not in organizations:
        raise Denied(403, f"client certificate is not in group {naming.KUBELET_CLIENT_GROUP!r}")
    if not common_name or naming.SEPARATOR in common_name or not naming.is_dns_label(common_name):
        raise Denied(403, f"client certificate CN {common_name!r} is not a tenant cluster key")
    return common_name


def _valid_name(value: str) -> bool:
    return len(value) <= _MAX_NAME and bool(_NAME.match(value))


def parse_path(path: str) -> KubeletRequest:
    """Parse a kubelet API path; anything that is not a per-pod endpoint is refused."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "":
        raise Denied(404, "not a kubelet pod endpoint")
    action, rest = parts[1], parts[2:]
    if rest and rest[-1] == "":
        rest = rest[:-1]
    shapes = ACTIONS.get(action)
    if shapes is None:
        raise Denied(403, f"kubelet endpoint /{action} is not served to tenants")
    if len(rest) not in shapes:
        raise Denied(404, f"malformed /{action} path")
    namespace, pod = rest[0], rest[1]
    if not naming.is_dns_label(namespace):
        raise Denied(404, f"{namespace!r} is not a namespace name")
    if not _valid_name(pod):
        raise Denied(404, f"{pod!r} is not a pod name")
    container: str | None = None
    uid: str | None = None
    if action == "portForward":
        if len(rest) == 3:
            uid = rest[2]
    else:
        container = rest[-1]
        if len(rest) == 4:
            uid = rest[2]
        if not naming.is_dns_label(container):
            raise Denied(404, f"{container!r} is not a container name")
    if uid is not None and not _UID.match(uid):
        raise Denied(404, f"{uid!r} is not a pod uid")
    return KubeletRequest(action=action, namespace=namespace, pod=pod, container=container, uid=uid)


def super_namespace_for(key: str, request: KubeletRequest) -> str:
    """The super namespace the caller's tenant namespace maps to (never one named in the path)."""
    try:
        return naming.super_namespace(key, request.namespace)
    except naming.NamingError as exc:
        raise Denied(404, str(exc)) from exc


def check_super_pod(key: str, request: KubeletRequest, p_pod: dict[str, Any] | None) -> str:
    """Verify the super pod belongs to the caller; return the node it runs on.

    404 (not 403) for someone else's pod, so the answer does not confirm that
    a pod exists elsewhere.
    """
    where = f"pod {request.namespace}/{request.pod}"
    if p_pod is None:
        raise Denied(404, f"{where} not found")
    meta = p_pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(naming.LABEL_CLUSTER_KEY) != key:
        raise Denied(404, f"{where} not found")
    if not naming.is_super_namespace_of(str(meta.get("namespace", "")), key):
        raise Denied(404, f"{where} not found")
    if request.uid is not None:
        tenant_uid = (meta.get("annotations") or {}).get(naming.ANN_OBJECT_UID)
        if tenant_uid != request.uid:
            raise Denied(404, f"{where} with uid {request.uid} not found")
    node = (p_pod.get("spec") or {}).get("nodeName")
    if not node:
        raise Denied(404, f"{where} is not running on a node yet")
    return str(node)


def super_path(request: KubeletRequest, *, super_namespace: str, super_uid: str | None) -> str:
    """The kubelet path for the super pod (the uid, if the tenant gave one, becomes the super uid)."""
    parts = [request.action, super_namespace, request.pod]
    if request.uid is not None:
        if not super_uid:
            raise Denied(404, f"pod {request.namespace}/{request.pod} has no uid")
        parts.append(super_uid)
    if request.container is not None:
        parts.append(request.container)
    return "/" + "/".join(quote(p, safe="") for p in parts)


def node_endpoint(p_node: dict[str, Any], *, address_types: tuple[str, ...]) -> tuple[str, int]:
    """(host, port) of a super node's real kubelet, by address-type preference."""
    status = p_node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not port:
        raise Denied(502, f"node {p_node.get('metadata', {}).get('name')} publishes no kubelet port")
    by_type: dict[str, str] = {}
    for addr in status.get("addresses") or []:
        by_type.setdefault(str(addr.get("type")), str(addr.get("address")))
    for kind in address_types:
        if by_type.get(kind):
            return by_type[kind], int(port)
    raise Denied(502, f"node {p_node.get('metadata', {}).get('name')} publishes no usable address")
