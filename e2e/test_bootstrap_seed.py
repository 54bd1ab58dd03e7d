"""The bootstrap seed on real binaries: the first new tenant leaves it, the next one starts from it.

Why: a fresh kube-apiserver writes ~300 bootstrap objects (RBAC defaults, priority classes,
priority-and-fairness configuration, APIServices) one fsynced etcd write at a time before it is ready;
:mod:`vcluster.controlplane.bootstrap_seed` writes them into a new tenant's etcd in a few transactions
instead.  What must hold: the seeded apiserver creates none of them itself, ends up with exactly the
same objects as the unseeded one, and works; a seed that is not ours is refused and the tenant starts
as without one.  No super cluster needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tenant_crd import TenantSpec
from vcluster import pki
from vcluster.controlplane import bootstrap_seed, builder, certs
from vcluster.controlplane import spec as cp
from vcluster.controlplane.local import LocalBackend
from vcluster.settings import BinarySettings

pytestmark = pytest.mark.e2e

#: What a tenant user sees of the seeded kinds (the same in every tenant of one configuration).
LISTED = ("clusterroles", "clusterrolebindings", "roles", "rolebindings", "priorityclasses",
          "flowschemas", "prioritylevelconfigurations", "apiservices")


class Tenant:
    def __init__(self, backend: LocalBackend, key: str, tmp_path: Path) -> None:
        self.backend, self.key = backend, key
        spec = TenantSpec.from_dict({})
        self.plane = builder.build(tenant_name=key.partition("-")[0], cluster_key=key, tenant=spec,
                                   cluster_version=None, layout=backend.layout(key))
        self.files, _ = certs.complete_pki({}, self.plane.certs, kubelet_ca=pki.generate_ca(common_name="k"),
                                           tenant_name=key)
        self.cm = certs.kubeconfig_for(cp.CONTROLLER_MANAGER, server=self.plane.internal_endpoint, files=self.files,
                                       cluster_name=key)
        self.admin = tmp_path / f"{key}.kubeconfig"
        self.admin.write_text(certs.kubeconfig_for(cp.ADMIN, server=self.plane.endpoint, files=self.files,
                                                   cluster_name=key))

    def apply(self) -> float:
        began = time.monotonic()
        self.backend.apply(self.plane, pki_files=self.files, cm_kubeconfig=self.cm)
        return time.monotonic() - began

    def kubectl(self, *args: str) -> str:
        got = subprocess.run(["kubectl", f"--kubeconfig={self.admin}", *args], capture_output=True, text=True,
                             check=False, timeout=60)
        assert got.returncode == 0, got.stderr
        return got.stdout

    def creates(self) -> dict[str, float]:
        """POSTs the apiserver answered per resource of the seeded kinds, from its own metrics."""
        out: dict[str, float] = {}
        for line in self.kubectl("get", "--raw", "/metrics").splitlines():
            m = re.match(r'apiserver_request_total\{(.*)\} (\S+)$', line)
            if not m or 'verb="POST"' not in m.group(1):
                continue
            res = re.search(r'resource="([^"]*)"', m.group(1))
            if res and res.group(1) in LISTED and 'code="201"' in m.group(1):
                out[res.group(1)] = out.get(res.group(1), 0.0) + float(m.group(2))
        return out

    def objects(self) -> dict[str, list[str]]:
        """Name (and namespace) of every object of the seeded kinds, with its rules or spec (not its uid)."""
        out = {}
        for kind in LISTED:
            items = json.loads(self.kubectl("get", kind, "-A", "-o", "json"))["items"]
            out[kind] = sorted(json.dumps([o["metadata"].get("namespace"), o["metadata"]["name"],
                                           o.get("rules"), o.get("roleRef"), o.get("subjects"), o.get("value"),
                                           (o.get("spec") or {})], sort_keys=True) for o in items)
        return out


def test_the_first_tenant_leaves_the_seed_and_the_next_starts_from_it(
    binary_settings: BinarySettings, tmp_path: Path
) -> None:
    backend = LocalBackend(state_dir=tmp_path / "state", binary_settings=binary_settings)
    first, second = Tenant(backend, "first-abc123", tmp_path), Tenant(backend, "second-def456", tmp_path)
    try:
        took_first = first.apply()
        seeds = list((backend.state_dir / bootstrap_seed.DIR).iterdir())
        assert len(seeds) == 1
        entries = bootstrap_seed.read(seeds[0])
        assert entries is not None
        kinds = {rel.split("/")[0] for rel, _ in entries}
        assert {"clusterroles", "clusterrolebindings", "roles", "priorityclasses", "flowschemas"} <= kinds
        assert "clusterroles/cluster-admin" in {rel for rel, _ in entries}
        assert first.creates().get("clusterroles", 0) > 50  # it bootstrapped by itself

        took_second = second.apply()
        assert list((backend.state_dir / bootstrap_seed.DIR).iterdir()) == seeds  # one seed per configuration
        print(f"apply: first {took_first:.2f}s (unseeded), second {took_second:.2f}s (seeded)")
        assert second.creates() == {}  # every bootstrap object was there already
        # the same objects (the aggregated roles' rules come from each controller-manager, a moment later)
        deadline = time.monotonic() + 60
        while (seen := second.objects()) != (want := first.objects()) and time.monotonic() < deadline:
            time.sleep(1)
        assert seen == want
        second.kubectl("create", "namespace", "shop")
        assert second.kubectl("auth", "can-i", "create", "pods", "-n", "shop").strip() == "yes"
        assert "system:basic-user" in second.kubectl("get", "clusterroles", "-o", "name")
    finally:
        backend.destroy(first.key)
        backend.destroy(second.key)


def test_a_seed_that_is_not_ours_is_refused_and_the_tenant_starts_without_it(
    binary_settings: BinarySettings, tmp_path: Path
) -> None:
    backend = LocalBackend(state_dir=tmp_path / "state", binary_settings=binary_settings)
    tenant = Tenant(backend, "third-abc123", tmp_path)
    path = backend._seed_path(tenant.plane, backend.binaries_for(tenant.plane.version))
    # a key outside the seeded kinds: e.g. a Secret planted into every new tenant
    bootstrap_seed.save(path, [("secrets/default/planted", b"k8s\x00junk")])
    try:
        tenant.apply()
        assert tenant.creates().get("clusterroles", 0) > 50  # bootstrapped by itself
        assert "planted" not in tenant.kubectl("get", "secrets", "-A", "-o", "name")
    finally:
        backend.destroy(tenant.key)
