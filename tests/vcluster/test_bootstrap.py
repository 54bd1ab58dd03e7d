"""What "the super cluster is prepared" means, shared by the operator and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from vcluster import bootstrap, naming


@pytest.mark.parametrize(("crd", "established"), [
    (None, False),
    ({}, False),
    ({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}}, False),
    ({"status": {"conditions": [{"type": "Established", "status": "False"}]}}, False),
    ({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                {"type": "Established", "status": "True"}]}}, True),
], ids=["absent", "no-status", "names-only", "not-established", "established"])
def test_is_established(crd: dict[str, Any] | None, established: bool) -> None:
    assert bootstrap.is_established(crd) is established


def test_prerequisites_are_our_namespace_and_crds() -> None:
    assert bootstrap.system_namespace()["metadata"]["name"] == naming.SYSTEM_NAMESPACE
    names = sorted(crd["metadata"]["name"] for crd in bootstrap.crds())
    assert names == sorted([f"clusterversions.{naming.GROUP}", f"tenants.{naming.GROUP}"])
