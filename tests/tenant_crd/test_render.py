"""The committed CRD YAML must equal what tenant_crd/schema.py renders."""

from __future__ import annotations

from pathlib import Path

import yaml

from tenant_crd import render, schema


def test_committed_yaml_matches_source() -> None:
    stale = render.stale(render.DEFAULT_DIR)
    assert stale == [], f"manifests/crds out of date, run `python -m tenant_crd.render`: {stale}"


def test_check_reports_drift(tmp_path: Path) -> None:
    assert render.main(["--out", str(tmp_path)]) == 0
    assert render.main(["--out", str(tmp_path), "--check"]) == 0
    victim = sorted(tmp_path.glob("*tenants.yaml"))[0]
    victim.write_text(victim.read_text().replace("tnt", "tenantz"))
    assert render.main(["--out", str(tmp_path), "--check"]) == 1


def _walk(node: object, path: str = "") -> list[str]:
    """Paths of schema nodes that are not structural (no type and not int-or-string)."""
    bad: list[str] = []
    if isinstance(node, dict):
        if "x-kubernetes-int-or-string" not in node and "type" not in node:
            bad.append(path)
        for key, sub in (node.get("properties") or {}).items():
            bad += _walk(sub, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                bad += _walk(node[key], f"{path}[{key}]")
    return bad


def test_schemas_are_structural() -> None:
    for crd in schema.all_crds().values():
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(root) == []


def test_rendered_yaml_parses_to_the_source() -> None:
    for name, text in render.rendered().items():
        if name == "kustomization.yaml":
            continue
        loaded = yaml.safe_load(text)
        assert loaded in schema.all_crds().values()
