"""The import layers of docs/architecture.md, enforced: who may import whom, and no import cycles.

Why a test rather than import-linter: the contract is a table of a dozen lines and the check is a
walk over the AST of each module (stdlib only); it runs with the unit tests, in CI and in
``scripts/test``, and its failure names the offending import.  Keep :data:`ALLOWED` and the layer
table in docs/architecture.md in step.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vcluster", "syncer", "tenant_crd", "virtual_node")

FOUNDATION = frozenset({"vcluster.errors", "vcluster.settings", "vcluster.naming", "vcluster.logs", "vcluster.clock",
                        "vcluster.files", "vcluster.process", "vcluster.health", "vcluster.kubeconfig",
                        "vcluster.pki", "vcluster.backoff", "vcluster.supervisor"})
#: Package ``__init__`` modules (re-exports only); they belong to no component of their own.
PACKAGE_ROOTS = frozenset({"vcluster", "syncer", "tenant_crd", "virtual_node"})
#: Component → the components it may import (besides itself and the foundation).
ALLOWED: dict[str, frozenset[str]] = {
    **{m: frozenset() for m in FOUNDATION},
    "vcluster.kube": frozenset(),
    "vcluster.binaries": frozenset(),
    "vcluster.images": frozenset(),
    "tenant_crd": frozenset(),
    "vcluster.leader": frozenset({"vcluster.kube"}),
    "vcluster.kubelet_ca": frozenset({"vcluster.kube"}),
    "vcluster.policy": frozenset({"tenant_crd"}),
    "vcluster.quota": frozenset({"tenant_crd"}),
    "vcluster.bootstrap": frozenset({"vcluster.kube", "tenant_crd"}),
    "vcluster.testbed": frozenset({"vcluster.binaries", "vcluster.images"}),
    "vcluster.imagebuild": frozenset({"vcluster.binaries", "vcluster.images", "vcluster.testbed"}),
    "vcluster.controlplane": frozenset({"vcluster.kube", "vcluster.binaries", "tenant_crd"}),
    "virtual_node": frozenset({"vcluster.kube", "vcluster.kubelet_ca"}),
    "syncer": frozenset({"vcluster.kube", "vcluster.leader", "vcluster.policy", "vcluster.quota", "tenant_crd",
                         "virtual_node"}),
    "vcluster.operator": frozenset({"vcluster.kube", "vcluster.leader", "vcluster.kubelet_ca", "vcluster.policy",
                                    "vcluster.quota",
                                    "vcluster.controlplane", "vcluster.bootstrap", "tenant_crd"}),
    "vcluster.cli": frozenset({"vcluster.kube", "vcluster.testbed", "vcluster.binaries", "vcluster.bootstrap",
                               "tenant_crd", "vcluster.controlplane", "vcluster.operator", "syncer", "virtual_node"}),
    "vcluster.__main__": frozenset({"vcluster.cli"}),
}
#: Inside the syncer, lower layers never import higher ones (the engine is on top, the kinds at the bottom).
SYNCER_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"syncer.__main__"}),
    frozenset({"syncer.engine"}),
    frozenset({"syncer.extra_kinds", "syncer.patrol", "syncer.reporting"}),
    frozenset({"syncer.downward", "syncer.upward"}),
    frozenset({"syncer.routing"}),
    frozenset({"syncer.shared"}),
    frozenset({"syncer.runtime", "syncer.leader", "syncer.mirror"}),
    frozenset({"syncer.informer", "syncer.queue", "syncer.retries", "syncer.metrics", "syncer.nodes", "syncer.tenants",
               "syncer.tenant_status",
               "syncer.settings"}),
    frozenset({"syncer.resources"}),
)


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(path: Path, *, top_level_only: bool = False) -> Iterator[str]:
    """Our modules imported by a file (``from pkg import mod`` resolves to ``pkg.mod`` when that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        yield from (n for n in names if n.split(".")[0] in PACKAGES)


def component(module: str) -> str:
    """The row of :data:`ALLOWED` a module belongs to (the longest matching prefix, never just ``vcluster``:
    a new ``vcluster.<x>`` module must be given its row)."""
    if module in PACKAGE_ROOTS - set(ALLOWED):
        return module
    parts = module.split(".")
    for n in range(len(parts), 1 if parts[0] == "vcluster" else 0, -1):
        if ".".join(parts[:n]) in ALLOWED:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer: add its component to ALLOWED and docs/architecture.md")


def syncer_layer(module: str) -> int:
    for i, layer in enumerate(SYNCER_LAYERS):
        if any(module == m or module.startswith(f"{m}.") for m in layer):
            return i
    raise AssertionError(f"{module} is in no syncer layer: add it to SYNCER_LAYERS and docs/architecture.md")


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_imports_follow_the_layers(module: str) -> None:
    mine = component(module)
    allowed = ALLOWED.get(mine, frozenset()) | FOUNDATION | PACKAGE_ROOTS | {mine}
    bad = sorted({imp for imp in _imports(MODULES[module]) if component(imp) not in allowed})
    assert not bad, f"{module} ({mine}) may not import {bad}"
    if mine == "syncer" and module != "syncer":
        layer = syncer_layer(module)
        upward = sorted({imp for imp in _imports(MODULES[module])
                         if imp.startswith("syncer") and imp != "syncer" and syncer_layer(imp) < layer})
        assert not upward, f"{module} may not import the higher syncer layers {upward}"


def test_no_import_cycles() -> None:
    graph = {m: {i for i in _imports(p, top_level_only=True) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n):], n]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_contract_is_checked_against_real_imports() -> None:
    """The walk finds the imports it must (a check that finds nothing would pass anything)."""
    assert "syncer.routing" in set(_imports(MODULES["syncer.engine"]))
    assert "vcluster.naming" in set(_imports(MODULES["syncer.resources.base"]))
    assert component("syncer.resources.pod") == "syncer"
    assert component("vcluster.kube.client") == "vcluster.kube"
    with pytest.raises(AssertionError, match="in no layer"):
        component("vcluster.brand_new")
