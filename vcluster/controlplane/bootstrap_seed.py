"""A new tenant's etcd seeded with the objects every fresh kube-apiserver writes at its first start.

Why: issue 16, Tenant → Ready.  A kube-apiserver on an empty etcd creates its default RBAC roles and
bindings, system priority classes, priority-and-fairness configuration and local APIServices before
``/readyz`` passes: ~300 objects, one request and one fsynced etcd write each, 1.3 s of a tenant's ~4 s
to Ready (round 10's trace).  They are the same for every tenant of one apiserver binary and
configuration, so the ``local`` backend keeps them once (a *seed*) and writes them into the next new
tenant's etcd in a few transactions (one fsync each) before its apiserver starts; the apiserver's
post-start hooks then find every object as they would have made it and only read.  They still
reconcile: an object the seed lacks or holds differently is written as before, so a seed can make a
start faster, never different.

Where a seed comes from, and why it is trusted: the first new tenant of a configuration captures it
from its own etcd right after its apiserver turned ready for the first time and before anything
else could write there -- before the controller-manager starts and before the operator writes the
tenant's kubeconfig Secret (anonymous requests cannot write).  Only the bootstrap kinds below are
kept, never a namespace, Service, Secret or Lease (object UIDs of the seeded kinds are then the same
in every tenant of that configuration; nothing reads them as an identity).  A seed's name is a
digest of the apiserver binary and its flags with every per-tenant value (paths, ports, cluster
key) taken out, so a different version, feature gate or extra flag gets a seed of its own.

Pure parts (the digest, the key ranges, the transaction bodies) are separate from the I/O: etcd's
JSON gateway (``/v3/kv/range``, ``/v3/kv/txn``) over the apiserver's client certificate.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import ssl
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vcluster.errors import VClusterError
from vcluster.files import write_atomic

#: Folder of the seeds under the backend's state folder (not a cluster key: those end in a hash).
DIR = "bootstrap-seeds"
#: The kinds a fresh apiserver writes by itself (their etcd paths under the etcd prefix).
SEEDED = (
    "clusterroles", "clusterrolebindings", "roles", "rolebindings", "priorityclasses",
    "flowschemas", "prioritylevelconfigurations", "apiregistration.k8s.io/apiservices",
)
#: etcd's default ``--max-txn-ops``: puts per transaction.
TXN_OPS = 128
FORMAT = 1


class SeedError(VClusterError):
    """etcd refused or failed a seed read or write."""


@dataclass(frozen=True)
class EtcdAccess:
    """How the operator reaches a tenant's etcd: its client URL and the apiserver's client certificate."""

    url: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    timeout: float = 10.0


def seed_name(binary: Path, args: Sequence[str], *, root: Path, key: str, ports: Collection[int]) -> str:
    """The seed's file name for an apiserver started as ``binary args`` in tenant folder ``root``.

    Every per-tenant value is replaced by a placeholder first (the folder, the cluster key, the ports), so
    two tenants of one configuration share a name and any other difference (the binary, a flag) does not.
    """
    stat = binary.stat()
    port = re.compile(rf"(?<=[:=])(?:{'|'.join(str(p) for p in sorted(set(ports)))})(?!\d)") if ports else None
    normal = []
    for arg in args:
        text = arg.replace(str(root), "<root>").replace(key, "<key>")
        normal.append(port.sub("<port>", text) if port else text)
    identity = [str(binary.resolve()), str(stat.st_size), str(stat.st_mtime_ns), *normal]
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:32] + ".json"


def ranges(prefix: str) -> list[tuple[bytes, bytes]]:
    """The etcd key ranges ``[start, end)`` of the seeded kinds under the apiserver's ``--etcd-prefix``."""
    base = prefix.rstrip("/")
    out = []
    for kind in SEEDED:
        start = f"{base}/{kind}/".encode()
        out.append((start, start[:-1] + b"0"))  # '0' follows '/': every key below the folder
    return out


def txn_bodies(prefix: str, entries: Sequence[tuple[str, bytes]]) -> Iterator[dict[str, Any]]:
    """etcd transactions that put ``entries`` (keys relative to the prefix) where none of them exists yet.

    One transaction per :data:`TXN_OPS` entries; each compares every key's create revision with 0, so a
    key written meanwhile (by anyone) fails its transaction and nothing of it is written.
    """
    base = prefix.rstrip("/")
    for i in range(0, len(entries), TXN_OPS):
        chunk = entries[i:i + TXN_OPS]
        keys = [_b64(f"{base}/{rel}".encode()) for rel, _ in chunk]
        yield {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"} for k in keys],
            "success": [{"request_put": {"key": k, "value": _b64(value)}} for k, (_, value) in zip(keys, chunk,
                                                                                                   strict=True)],
        }


def relative(prefix: str, key: bytes) -> str:
    """``key`` without the prefix (a seed holds keys relative to it); a key outside it is an error."""
    base = prefix.rstrip("/") + "/"
    text = key.decode()
    if not text.startswith(base) or not any(text[len(base):].startswith(f"{kind}/") for kind in SEEDED):
        raise SeedError(f"etcd key {text!r} is not one of the seeded kinds under {base!r}")
    return text[len(base):]


def encode(entries: Sequence[tuple[str, bytes]]) -> bytes:
    return json.dumps({"format": FORMAT, "entries": [[k, _b64(v)] for k, v in entries]}).encode()


def decode(data: bytes) -> list[tuple[str, bytes]]:
    """A seed file's entries; a file in another format or not one of ours is a :class:`SeedError`."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise SeedError(f"seed format {doc.get('format')!r}, expected {FORMAT}")
        out = [(str(k), base64.b64decode(v, validate=True)) for k, v in doc["entries"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SeedError(f"unreadable seed: {exc}") from exc
    for rel, _ in out:
        if not any(rel.startswith(f"{kind}/") for kind in SEEDED) or ".." in rel.split("/"):
            raise SeedError(f"seed entry {rel!r} is not one of the seeded kinds")
    return out


# ---- I/O ----------------------------------------------------------------------------------------
def capture(access: EtcdAccess, prefix: str) -> list[tuple[str, bytes]]:
    """Every object of the seeded kinds in the etcd, keys relative to ``prefix``, in key order."""
    entries: list[tuple[str, bytes]] = []
    for start, end in ranges(prefix):
        got = _post(access, "/v3/kv/range", {"key": _b64(start), "range_end": _b64(end)})
        for kv in got.get("kvs") or []:
            entries.append((relative(prefix, base64.b64decode(kv["key"])), base64.b64decode(kv.get("value", ""))))
    return entries


def load(access: EtcdAccess, prefix: str, entries: Sequence[tuple[str, bytes]]) -> int:
    """Write ``entries`` into the etcd where absent; returns how many were written."""
    written = 0
    for body in txn_bodies(prefix, entries):
        got = _post(access, "/v3/kv/txn", body)
        if got.get("succeeded"):
            written += len(body["success"])
    return written


def save(path: Path, entries: Sequence[tuple[str, bytes]]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, encode(entries), mode=0o600)


def read(path: Path) -> list[tuple[str, bytes]] | None:
    """The seed at ``path``, or None when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data)


def _post(access: EtcdAccess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(access.url)
    if parts.scheme != "https" or not parts.hostname or parts.port is None:
        raise SeedError(f"etcd URL {access.url!r}: expected https://<host>:<port>")
    ctx = ssl.create_default_context(cafile=str(access.ca_file))
    ctx.load_cert_chain(str(access.cert_file), str(access.key_file))
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=access.timeout, context=ctx)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise SeedError(f"etcd {access.url}{path}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise SeedError(f"etcd {access.url}{path}: HTTP {resp.status}: {data[:300]!r}")
    try:
        out = json.loads(data)
    except ValueError as exc:
        raise SeedError(f"etcd {access.url}{path}: not JSON: {data[:300]!r}") from exc
    if not isinstance(out, dict):
        raise SeedError(f"etcd {access.url}{path}: unexpected answer {data[:300]!r}")
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
