"""The bootstrap seed's pure parts: its name, the key ranges, the transactions, the file format.

Why: a seed is written into every new tenant's etcd before its apiserver starts, so what goes in must
be exactly the bootstrap kinds and nothing a file could smuggle in; and a seed must be shared by
tenants of one configuration and by no other configuration.  The I/O against a real etcd is in
``e2e/test_bootstrap_seed.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import os
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vcluster import pki
from vcluster.controlplane import bootstrap_seed as seeds


def _args(root: str, key: str, port: int, *extra: str) -> list[str]:
    return [f"--etcd-servers=https://127.0.0.1:{port + 1}", f"--secure-port={port}",
            f"--tls-cert-file={root}/{key}/pki/apiserver.crt", "--authorization-mode=RBAC", *extra]


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "kube-apiserver"
    path.write_bytes(b"\x7fELF apiserver")
    return path


def test_tenants_of_one_configuration_share_a_seed_name(binary: Path) -> None:
    a = seeds.seed_name(binary, _args("/s/a-1", "a-1", 21000), root=Path("/s/a-1"), key="a-1", ports=(21000, 21001))
    b = seeds.seed_name(binary, _args("/s/b-2", "b-2", 22345), root=Path("/s/b-2"), key="b-2", ports=(22345, 22346))
    assert a == b
    assert a.endswith(".json")


@pytest.mark.parametrize("extra", ["--feature-gates=Foo=true", "--runtime-config=api/all=true", "--v=2"])
def test_another_flag_gets_another_seed(binary: Path, extra: str) -> None:
    plain = seeds.seed_name(binary, _args("/s/a-1", "a-1", 21000), root=Path("/s/a-1"), key="a-1", ports=(21000,))
    other = seeds.seed_name(binary, _args("/s/a-1", "a-1", 21000, extra), root=Path("/s/a-1"), key="a-1",
                            ports=(21000,))
    assert plain != other


def test_the_tenant_folder_is_taken_out_even_where_it_does_not_hold_the_key(binary: Path) -> None:
    def name(root: str, key: str) -> str:
        return seeds.seed_name(binary, [f"--tls-cert-file={root}/pki/a.crt", f"--cluster-name={key}"],
                               root=Path(root), key=key, ports=())

    assert name("/state/one", "a-1") == name("/other/two", "b-2")
    assert len(name("/state/one", "a-1")) == 32 + len(".json")


def test_each_part_of_the_binarys_identity_counts(tmp_path: Path) -> None:
    """Its path, its size and its modification time: a rebuilt or replaced binary gets a seed of its own."""
    args = ["--v=0"]

    def name(path: Path) -> str:
        return seeds.seed_name(path, args, root=Path("/r"), key="k-1", ports=())

    one, two = tmp_path / "one", tmp_path / "two"
    for path in (one, two):
        path.write_bytes(b"12345678")
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert name(one) != name(two)  # same size and time, another file
    before = name(one)
    one.write_bytes(b"87654321")
    os.utime(one, ns=(1_000_000_000, 1_000_000_000))
    assert name(one) == before  # same path, size and time: the same name
    one.write_bytes(b"123456789")
    os.utime(one, ns=(1_000_000_000, 1_000_000_000))
    assert name(one) != before  # another size
    one.write_bytes(b"12345678")
    os.utime(one, ns=(2_000_000_000, 2_000_000_000))
    assert name(one) != before  # another modification time


def test_another_binary_gets_another_seed(binary: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-apiserver"
    other.write_bytes(b"\x7fELF another apiserver build")
    args = _args("/s/a-1", "a-1", 21000)
    assert seeds.seed_name(binary, args, root=Path("/s/a-1"), key="a-1", ports=(21000,)) != seeds.seed_name(
        other, args, root=Path("/s/a-1"), key="a-1", ports=(21000,))


def test_only_whole_port_numbers_are_taken_out(binary: Path) -> None:
    """Port 2100 must not blank out the 2100 in 21000: a flag value that only shares digits still counts."""
    def name(value: str) -> str:
        return seeds.seed_name(binary, [f"--x=127.0.0.1:{value}"], root=Path("/r"), key="k-1", ports=(2100,))

    assert name("2100") != name("21000")
    assert name("2100") == seeds.seed_name(binary, ["--x=127.0.0.1:2200"], root=Path("/r"), key="k-1", ports=(2200,))


def test_the_ranges_cover_each_kind_and_nothing_next_to_it() -> None:
    got = dict(seeds.ranges("/registry"))
    assert got[b"/registry/clusterroles/"] == b"/registry/clusterroles0"
    start, end = b"/registry/roles/", got[b"/registry/roles/"]
    assert start <= b"/registry/roles/kube-system/x" < end
    assert not start <= b"/registry/rolebindings/kube-system/x" < end
    assert not start <= b"/registry/roles0" < end
    assert len(got) == len(seeds.SEEDED)
    assert dict(seeds.ranges("/other/")) .keys() == {k.replace(b"/registry", b"/other") for k in got}


def test_transactions_put_only_absent_keys_in_chunks_etcd_accepts() -> None:
    entries = [(f"clusterroles/r{i}", f"v{i}".encode()) for i in range(seeds.TXN_OPS + 5)]
    bodies = list(seeds.txn_bodies("/registry", entries))
    assert [len(b["success"]) for b in bodies] == [seeds.TXN_OPS, 5]
    first = bodies[0]
    assert len(first["compare"]) == seeds.TXN_OPS
    compare, put = first["compare"][0], first["success"][0]["request_put"]
    assert base64.b64decode(compare["key"]) == b"/registry/clusterroles/r0"
    assert (compare["target"], compare["result"], compare["create_revision"]) == ("CREATE", "EQUAL", "0")
    assert base64.b64decode(put["key"]) == b"/registry/clusterroles/r0"
    assert base64.b64decode(put["value"]) == b"v0"
    assert base64.b64decode(bodies[1]["success"][-1]["request_put"]["key"]).endswith(b"/r132")


def test_keys_outside_the_seeded_kinds_are_refused_when_captured() -> None:
    assert seeds.relative("/registry", b"/registry/clusterroles/admin") == "clusterroles/admin"
    assert seeds.relative("/registry/", b"/registry/apiregistration.k8s.io/apiservices/v1.") == \
        "apiregistration.k8s.io/apiservices/v1."
    for key in (b"/registry/secrets/default/x", b"/elsewhere/clusterroles/admin", b"/registry/clusterrolesX/a"):
        with pytest.raises(seeds.SeedError, match="is not one of the seeded kinds under '/registry/'"):
            seeds.relative("/registry", key)


@pytest.mark.parametrize("prefix", ["/tenantX", "/tenantX/", "/tenantX//"])
def test_any_spelling_of_a_prefix_gives_the_same_keys(prefix: str) -> None:
    """Only slashes are trimmed off the prefix's end (a cluster key may end in any character)."""
    assert seeds.ranges(prefix)[0][0] == b"/tenantX/clusterroles/"
    body = next(seeds.txn_bodies(prefix, [("clusterroles/a", b"v")]))
    assert base64.b64decode(body["success"][0]["request_put"]["key"]) == b"/tenantX/clusterroles/a"
    assert seeds.relative(prefix, b"/tenantX/clusterroles/a") == "clusterroles/a"


def test_a_seed_round_trips_through_its_file(tmp_path: Path) -> None:
    entries = [("clusterroles/admin", b"k8s\x00\x01binary"), ("priorityclasses/system-node-critical", b"\xff")]
    path = tmp_path / "state" / "seeds" / "x.json"
    seeds.save(path, entries)
    seeds.save(path.with_name("y.json"), entries[:1])  # the folder exists by now
    assert seeds.read(path) == entries
    assert seeds.read(path.with_name("y.json")) == entries[:1]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert seeds.read(tmp_path / "none.json") is None


@pytest.mark.parametrize(("doc", "match"), [
    ({"format": 2, "entries": []}, "seed format 2, expected 1"),
    ({"entries": []}, "seed format None, expected 1"),
    ({"format": 1}, "unreadable seed"),
    ({"format": 1, "entries": [["secrets/default/planted", "AA=="]]}, "'secrets/default/planted' is not one of"),
    ({"format": 1, "entries": [["clusterroles/../secrets/x", "AA=="]]}, "is not one of the seeded kinds"),
    ({"format": 1, "entries": [["clusterroles/a", "not base64!"]]}, "unreadable seed"),
    ({"format": 1, "entries": [["clusterroles/a", "AA!=="]]}, "unreadable seed"),  # valid once '!' is dropped
    ({"format": 1, "entries": [["clusterroles/a"]]}, "unreadable seed"),
    ([1, 2], "unreadable seed"),
])
def test_a_file_that_is_not_a_seed_of_ours_is_refused(doc: object, match: str) -> None:
    with pytest.raises(seeds.SeedError, match=re.escape(match)):
        seeds.decode(json.dumps(doc).encode())


def test_garbage_is_refused() -> None:
    with pytest.raises(seeds.SeedError):
        seeds.decode(b"\x00 not json")


class FakeGateway:
    """etcd's JSON gateway as :func:`bootstrap_seed._post` sees it: ranges answered from a dict, txns recorded."""

    def __init__(self, kvs: dict[bytes, bytes], *, conflict: bool = False) -> None:
        self.kvs, self.conflict = kvs, conflict
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __call__(self, access: seeds.EtcdAccess, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert access is ACCESS
        self.calls.append((path, body))
        if path == "/v3/kv/range":
            start, end = base64.b64decode(body["key"]), base64.b64decode(body["range_end"])
            # etcd's JSON leaves an empty value out
            kvs = [{"key": base64.b64encode(k).decode(), **({"value": base64.b64encode(v).decode()} if v else {})}
                   for k, v in sorted(self.kvs.items()) if start <= k < end]
            return {"kvs": kvs} if kvs else {}
        assert path == "/v3/kv/txn"
        if self.conflict:
            return {"succeeded": False}
        for op in body["success"]:
            put = op["request_put"]
            self.kvs[base64.b64decode(put["key"])] = base64.b64decode(put["value"])
        return {"succeeded": True}


ACCESS = seeds.EtcdAccess(url="https://127.0.0.1:2379", ca_file=Path("ca"), cert_file=Path("c"), key_file=Path("k"))


def test_capture_keeps_the_seeded_kinds_only_and_load_puts_them_back(monkeypatch: pytest.MonkeyPatch) -> None:
    source = {b"/registry/clusterroles/admin": b"A", b"/registry/roles/kube-system/r": b"R",
              b"/registry/apiregistration.k8s.io/apiservices/v1.": b"S",
              b"/registry/priorityclasses/empty": b"",
              b"/registry/secrets/default/s": b"secret", b"/registry/namespaces/default": b"ns"}
    monkeypatch.setattr(seeds, "_post", FakeGateway(source))
    entries = seeds.capture(ACCESS, "/registry")
    assert sorted(entries) == [("apiregistration.k8s.io/apiservices/v1.", b"S"), ("clusterroles/admin", b"A"),
                               ("priorityclasses/empty", b""), ("roles/kube-system/r", b"R")]
    target = FakeGateway({})
    monkeypatch.setattr(seeds, "_post", target)
    assert seeds.load(ACCESS, "/registry", entries) == 4
    assert target.kvs == {b"/registry/clusterroles/admin": b"A", b"/registry/roles/kube-system/r": b"R",
                          b"/registry/priorityclasses/empty": b"",
                          b"/registry/apiregistration.k8s.io/apiservices/v1.": b"S"}


def test_load_counts_every_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seeds, "_post", FakeGateway({}))
    entries = [(f"clusterroles/r{i}", b"x") for i in range(seeds.TXN_OPS + 5)]
    assert seeds.load(ACCESS, "/registry", entries) == seeds.TXN_OPS + 5


def test_load_counts_nothing_of_a_transaction_that_found_a_key_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seeds, "_post", FakeGateway({}, conflict=True))
    assert seeds.load(ACCESS, "/registry", [("clusterroles/a", b"x")]) == 0


def test_an_empty_etcd_captures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = FakeGateway({})
    monkeypatch.setattr(seeds, "_post", gateway)
    assert seeds.capture(ACCESS, "/registry") == []
    assert [path for path, _ in gateway.calls] == ["/v3/kv/range"] * len(seeds.SEEDED)


# ---- the gateway over TLS (what _post does), against a local HTTPS server that asks for a client certificate


class _Gateway(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}
    #: (method, path, Content-Type, the client certificate's subject, the JSON body) per request.
    seen: ClassVar[list[tuple[str, str, str, dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        peer = self.connection.getpeercert()
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        self.seen.append((self.command, self.path, self.headers.get("Content-Type", ""), subject, body))
        status, data = self.answers.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[seeds.EtcdAccess]:
    ca = pki.generate_ca(common_name="etcd-ca")
    server = pki.issue_server_cert(ca, common_name="etcd", ips=("127.0.0.1",))
    client = pki.issue_client_cert(ca, common_name="kube-apiserver-etcd-client")
    for name, data in {"ca.crt": ca.cert_pem, "s.crt": server.cert_pem, "s.key": server.key_pem,
                       "c.crt": client.cert_pem, "c.key": client.key_pem}.items():
        (tmp_path / name).write_bytes(data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "s.crt"), str(tmp_path / "s.key"))
    ctx.load_verify_locations(str(tmp_path / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    _Gateway.answers, _Gateway.seen = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield seeds.EtcdAccess(url=f"https://127.0.0.1:{httpd.server_address[1]}", ca_file=tmp_path / "ca.crt",
                               cert_file=tmp_path / "c.crt", key_file=tmp_path / "c.key", timeout=5.0)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_gateway_is_asked_by_post_with_json_and_the_client_certificate(gateway: seeds.EtcdAccess) -> None:
    _Gateway.answers["/v3/kv/txn"] = (200, b'{"succeeded": true}')
    assert seeds._post(gateway, "/v3/kv/txn", {"compare": []}) == {"succeeded": True}
    method, path, content_type, subject, body = _Gateway.seen[0]
    assert (method, path, content_type) == ("POST", "/v3/kv/txn", "application/json")
    assert body == {"compare": []}
    assert subject == {"commonName": "kube-apiserver-etcd-client"}


@pytest.mark.parametrize(("status", "data", "match"), [
    (503, b'{"code": 14, "message": "bad certificate"}', "HTTP 503"),
    (200, b"not json", "not JSON"),
    (200, b"[1, 2]", "unexpected answer"),
])
def test_a_gateway_answer_that_is_not_a_result_is_an_error(
    gateway: seeds.EtcdAccess, status: int, data: bytes, match: str
) -> None:
    _Gateway.answers["/v3/kv/range"] = (status, data)
    with pytest.raises(seeds.SeedError, match=f"{gateway.url}/v3/kv/range: {match}"):
        seeds._post(gateway, "/v3/kv/range", {})


def test_an_etcd_that_does_not_answer_is_an_error_naming_it(tmp_path: Path, gateway: seeds.EtcdAccess) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = dataclasses.replace(gateway, url=f"https://127.0.0.1:{port}")
    with pytest.raises(seeds.SeedError, match=f"etcd https://127.0.0.1:{port}/v3/kv/range"):
        seeds._post(gone, "/v3/kv/range", {})


def test_a_server_the_ca_does_not_vouch_for_is_refused(tmp_path: Path, gateway: seeds.EtcdAccess) -> None:
    other = pki.generate_ca(common_name="someone else")
    (tmp_path / "other-ca.crt").write_bytes(other.cert_pem)
    with pytest.raises(seeds.SeedError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        seeds._post(dataclasses.replace(gateway, ca_file=tmp_path / "other-ca.crt"), "/v3/kv/range", {})


@pytest.mark.parametrize("url", ["https://127.0.0.1", "http://127.0.0.1:2379", "https://:2379", "127.0.0.1:2379"])
def test_an_etcd_url_without_https_host_and_port_is_an_error(url: str) -> None:
    with pytest.raises(seeds.SeedError, match="expected https://<host>:<port>"):
        seeds._post(dataclasses.replace(ACCESS, url=url), "/v3/kv/range", {})


def test_an_etcd_that_accepts_and_never_answers_is_given_up_on(gateway: seeds.EtcdAccess) -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        silent = dataclasses.replace(gateway, url=f"https://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(seeds.SeedError, match="timed out"):
            seeds._post(silent, "/v3/kv/range", {})
