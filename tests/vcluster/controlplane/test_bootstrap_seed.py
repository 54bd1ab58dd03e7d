"""The bootstrap seed's pure parts: its name, the key ranges, the transactions, the file format.

Why: a seed is written into every new tenant's etcd before its apiserver starts, so what goes in must
be exactly the bootstrap kinds and nothing a file could smuggle in; and a seed must be shared by
tenants of one configuration and by no other configuration.  The I/O against a real etcd is in
``e2e/test_bootstrap_seed.py``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

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
        with pytest.raises(seeds.SeedError):
            seeds.relative("/registry", key)


def test_a_seed_round_trips_through_its_file(tmp_path: Path) -> None:
    entries = [("clusterroles/admin", b"k8s\x00\x01binary"), ("priorityclasses/system-node-critical", b"\xff")]
    path = tmp_path / "seeds" / "x.json"
    seeds.save(path, entries)
    assert seeds.read(path) == entries
    assert path.stat().st_mode & 0o777 == 0o600
    assert seeds.read(tmp_path / "none.json") is None


@pytest.mark.parametrize("doc", [
    {"format": 2, "entries": []},
    {"entries": []},
    {"format": 1},
    {"format": 1, "entries": [["secrets/default/planted", "AA=="]]},
    {"format": 1, "entries": [["clusterroles/../secrets/x", "AA=="]]},
    {"format": 1, "entries": [["clusterroles/a", "not base64!"]]},
    {"format": 1, "entries": [["clusterroles/a"]]},
    [1, 2],
])
def test_a_file_that_is_not_a_seed_of_ours_is_refused(doc: object) -> None:
    with pytest.raises(seeds.SeedError):
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
        self.calls.append((path, body))
        if path == "/v3/kv/range":
            start, end = base64.b64decode(body["key"]), base64.b64decode(body["range_end"])
            kvs = [{"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()}
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
              b"/registry/secrets/default/s": b"secret", b"/registry/namespaces/default": b"ns"}
    monkeypatch.setattr(seeds, "_post", FakeGateway(source))
    entries = seeds.capture(ACCESS, "/registry")
    assert sorted(entries) == [("apiregistration.k8s.io/apiservices/v1.", b"S"), ("clusterroles/admin", b"A"),
                               ("roles/kube-system/r", b"R")]
    target = FakeGateway({})
    monkeypatch.setattr(seeds, "_post", target)
    assert seeds.load(ACCESS, "/registry", entries) == 3
    assert target.kvs == {b"/registry/clusterroles/admin": b"A", b"/registry/roles/kube-system/r": b"R",
                          b"/registry/apiregistration.k8s.io/apiservices/v1.": b"S"}


def test_load_counts_nothing_of_a_transaction_that_found_a_key_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seeds, "_post", FakeGateway({}, conflict=True))
    assert seeds.load(ACCESS, "/registry", [("clusterroles/a", b"x")]) == 0


def test_an_empty_etcd_captures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = FakeGateway({})
    monkeypatch.setattr(seeds, "_post", gateway)
    assert seeds.capture(ACCESS, "/registry") == []
    assert [path for path, _ in gateway.calls] == ["/v3/kv/range"] * len(seeds.SEEDED)
