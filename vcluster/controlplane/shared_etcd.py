"""One etcd for the ``local`` backend's tenants, each tenant apiserver confined to its prefix by etcd's auth.

Why: an idle tenant's own etcd costs a third of an idle tenant (issue 16: 0.33 % of a core of 1.16 %,
docs/benchmarks-syncer.md round 7) and a process, ports and start-up time per tenant.  With the operator
setting ``VC_OPERATOR_SHARED_ETCD`` new tenants of the local backend store in this one etcd instead,
each apiserver with ``--etcd-prefix=/<cluster key>``.

Isolation is etcd's own: auth is enabled, every tenant apiserver authenticates with a client
certificate whose CN is its etcd user (:func:`vcluster.naming.shared_etcd_user`), and that user's only
role may read and write ``[/<key>/, /<key>0)`` -- etcd checks it on every Range, Put, DeleteRange, Txn
and Watch.  The operator administers the etcd as ``root`` (password in this folder, over the JSON
gateway: etcd refuses a client certificate with a CN there once auth is on, so the operator's own
certificate has none).  What sharing gives up is written in docs/architecture.md ("Shared etcd"):
compaction and leases are not confined by etcd's auth, one tenant's write load and the database size
are shared, and the etcd is one process for all tenants.

Deleting a tenant deletes its key range, its user and its role (:meth:`SharedEtcd.remove_tenant`).
State: ``<state_dir>/shared-etcd/`` (pki, data, root password, ports, pid file, log).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vcluster import binaries, naming, pki
from vcluster.errors import VClusterError
from vcluster.files import write_atomic
from vcluster.process import ManagedProcess, https_check, pick_free_port, pid_alive, read_cmdline
from vcluster.settings import BinarySettings

log = structlog.get_logger(__name__)

#: The shared etcd's folder under the local backend's state folder (never a cluster key: those end in a hash).
DIR = "shared-etcd"
ROOT_USER = "root"
#: etcd compacts itself (the tenant apiservers do not: their compactor's ``compact_rev_key`` is outside
#: every prefix).  Five minutes: kube-apiserver's own default interval.
COMPACTION = {"auto-compaction-mode": "periodic", "auto-compaction-retention": "5m"}


class SharedEtcdError(VClusterError):
    """The shared etcd could not be run or administered."""


def prefix_range(key: str) -> tuple[bytes, bytes]:
    """The key range ``[start, end)`` of tenant ``key``: everything under ``/<key>/`` (pure)."""
    start = f"{naming.shared_etcd_prefix(key)}/".encode()
    return start, range_end(start)


def range_end(prefix: bytes) -> bytes:
    """etcd's end of the range of all keys starting with ``prefix`` (clientv3.GetPrefixRangeEnd; pure)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


@dataclass(frozen=True, slots=True)
class ClientFiles:
    """A tenant apiserver's credentials towards the shared etcd (PEM)."""

    ca: bytes
    cert: bytes
    key: bytes


def etcd_args(root: Path, *, client_port: int, peer_port: int, host: str = "127.0.0.1") -> tuple[str, ...]:
    """The shared etcd's flags (pure): one member on loopback, client certificates required."""
    client, peer = f"https://{host}:{client_port}", f"http://{host}:{peer_port}"
    flags = {
        "name": "shared", "data-dir": str(root / "data"),
        "listen-client-urls": client, "advertise-client-urls": client,
        "listen-peer-urls": peer, "initial-advertise-peer-urls": peer,
        "initial-cluster": f"shared={peer}", "initial-cluster-state": "new",
        "cert-file": str(root / "pki" / "server.crt"), "key-file": str(root / "pki" / "server.key"),
        "trusted-ca-file": str(root / "pki" / "ca.crt"), "client-cert-auth": "true",
        "log-level": "warn", **COMPACTION,
    }
    return tuple(f"--{k}={v}" for k, v in flags.items())


class SharedEtcd:
    """The shared etcd of one local backend: run it, enable its auth, add and remove tenants."""

    def __init__(self, *, state_dir: Path, binary_settings: BinarySettings, start_timeout: float = 90.0,
                 host: str = "127.0.0.1") -> None:
        self.root = state_dir / DIR
        self.binary_settings = binary_settings
        self.start_timeout = start_timeout
        self.host = host

    # ---- files -------------------------------------------------------------------------
    def _pki(self, name: str) -> Path:
        return self.root / "pki" / name

    def _ports(self) -> tuple[int, int]:
        path = self.root / "ports.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            return int(data["client"]), int(data["peer"])
        client = pick_free_port(host=self.host)
        peer = pick_free_port(host=self.host, exclude=[client])
        write_atomic(path, json.dumps({"client": client, "peer": peer}))
        return client, peer

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self._ports()[0]}"

    def _ensure_files(self) -> None:
        for sub in ("pki", "run", "logs", "data"):
            (self.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._pki("ca.key").is_file():
            ca = pki.generate_ca(common_name="virtualcluster-shared-etcd-ca")
            # client auth too: etcd's JSON gateway dials its own gRPC server with this certificate
            server = pki.issue_server_cert(ca, common_name="shared-etcd", dns_names=("localhost",),
                                           ips=tuple(dict.fromkeys(("127.0.0.1", self.host))), client_auth=True)
            # no CN: etcd's JSON gateway refuses a client certificate with a CN once auth is on
            admin = pki.issue_client_cert(ca, common_name="", organizations=("virtualcluster-operator",))
            for name, pair in (("server", server), ("admin", admin), ("ca", ca)):  # ca.key last: the marker
                pki.write_pair(pair, cert_path=self._pki(f"{name}.crt"), key_path=self._pki(f"{name}.key"))
        if not (self.root / "root.password").is_file():
            write_atomic(self.root / "root.password", secrets.token_urlsafe(32), mode=0o600)

    def client_files(self, key: str) -> ClientFiles:
        """A new client certificate for tenant ``key``'s apiserver (CN = its etcd user) and the etcd's CA."""
        ca = pki.CertKeyPair(cert_pem=self._pki("ca.crt").read_bytes(), key_pem=self._pki("ca.key").read_bytes())
        pair = pki.issue_client_cert(ca, common_name=naming.shared_etcd_user(key))
        return ClientFiles(ca=ca.cert_pem, cert=pair.cert_pem, key=pair.key_pem)

    def ca_pem(self) -> bytes:
        return self._pki("ca.crt").read_bytes()

    # ---- process ------------------------------------------------------------------------
    def _process(self) -> ManagedProcess:
        client, peer = self._ports()
        binary = binaries.binary_path("etcd", self.binary_settings)
        return ManagedProcess(
            name=f"{DIR}/etcd", argv=[str(binary), *etcd_args(self.root, client_port=client, peer_port=peer,
                                                              host=self.host)],
            log_path=self.root / "logs" / "etcd.log", pid_path=self.root / "run" / "etcd.pid",
        )

    def running(self) -> bool:
        """Whether the shared etcd runs with its command line (cheap: a pid file and ``/proc``)."""
        try:
            pid = int((self.root / "run" / "etcd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return pid_alive(pid) and read_cmdline(pid, settle=0) == self._process().argv

    def ensure(self) -> None:
        """Run the shared etcd (start or adopt), wait until healthy, and make sure its auth is on."""
        self._ensure_files()
        proc = self._process()
        if not proc.adopt():
            proc.start()
        proc.wait_ready(https_check(f"{self.url}/health", ca_file=self._pki("ca.crt"),
                                    cert_file=self._pki("admin.crt"), key_file=self._pki("admin.key")),
                        timeout=self.start_timeout, what="the shared etcd", cap=0.2)
        self._enable_auth()

    # ---- administration (etcd's JSON gateway) ------------------------------------------------
    def _call(self, path: str, body: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        ctx = ssl.create_default_context(cafile=str(self._pki("ca.crt")))
        ctx.load_cert_chain(str(self._pki("admin.crt")), str(self._pki("admin.key")))
        conn = http.client.HTTPSConnection(self.host, self._ports()[0], timeout=10, context=ctx)
        headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
        try:
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SharedEtcdError(f"shared etcd {path}: {exc}") from exc
        finally:
            conn.close()
        data: dict[str, Any] = json.loads(raw or b"{}") if raw.strip().startswith(b"{") else {"error": raw.decode()}
        if resp.status != 200:
            message = str(data.get("message") or data.get("error") or raw[:200])
            raise SharedEtcdError(f"shared etcd {path}: HTTP {resp.status}: {message}")
        return data

    def _token(self) -> str:
        password = (self.root / "root.password").read_text().strip()
        token = self._call("/v3/auth/authenticate", {"name": ROOT_USER, "password": password}).get("token")
        if not token:
            raise SharedEtcdError("shared etcd: root authentication returned no token")
        return str(token)

    def _enable_auth(self) -> None:
        with contextlib.suppress(SharedEtcdError):
            self._token()
            return  # auth is on and root's password works
        password = (self.root / "root.password").read_text().strip()
        self._idempotent("/v3/auth/user/add", {"name": ROOT_USER, "password": password})
        self._idempotent("/v3/auth/user/grant", {"user": ROOT_USER, "role": "root"})
        self._call("/v3/auth/enable", {})
        self._token()
        log.info("controlplane.shared_etcd.auth_enabled", url=self.url)

    def _idempotent(self, path: str, body: dict[str, Any], *, token: str | None = None,
                    ok: tuple[str, ...] = ("already exists",)) -> None:
        try:
            self._call(path, body, token=token)
        except SharedEtcdError as exc:
            if not any(m in str(exc) for m in ok):
                raise

    def add_tenant(self, key: str) -> None:
        """Create tenant ``key``'s user and role: read and write its prefix, nothing else (idempotent)."""
        token = self._token()
        user = naming.shared_etcd_user(key)
        start, end = prefix_range(key)
        self._idempotent("/v3/auth/role/add", {"name": user}, token=token)
        self._call("/v3/auth/role/grant", {"name": user, "perm": {
            "permType": "READWRITE", "key": _b64(start), "range_end": _b64(end)}}, token=token)
        self._idempotent("/v3/auth/user/add", {"name": user, "options": {"no_password": True}}, token=token)
        self._call("/v3/auth/user/grant", {"user": user, "role": user}, token=token)

    def remove_tenant(self, key: str) -> int:
        """Delete tenant ``key``'s keys, user and role; the number of keys deleted."""
        token = self._token()
        user = naming.shared_etcd_user(key)
        start, end = prefix_range(key)
        got = self._call("/v3/kv/deleterange", {"key": _b64(start), "range_end": _b64(end)}, token=token)
        self._idempotent("/v3/auth/user/delete", {"name": user}, token=token, ok=("not found",))
        self._idempotent("/v3/auth/role/delete", {"role": user}, token=token, ok=("not found",))
        deleted = int(got.get("deleted", 0))
        log.info("controlplane.shared_etcd.tenant_removed", key=key, keys_deleted=deleted)
        return deleted

    def users(self) -> list[str]:
        """The etcd users (as root)."""
        return [str(u) for u in self._call("/v3/auth/user/list", {}, token=self._token()).get("users", [])]

    def count(self, key: str) -> int:
        """How many keys tenant ``key`` has (as root)."""
        start, end = prefix_range(key)
        got = self._call("/v3/kv/range", {"key": _b64(start), "range_end": _b64(end), "count_only": True},
                         token=self._token())
        return int(got.get("count", 0))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
