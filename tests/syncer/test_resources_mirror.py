"""Public super classes as tenant copies: which are shown, what is copied, what changes."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.resources import mirror as mirror_mod
from vcluster import naming
from vcluster.kube import resources

PUBLIC = {naming.LABEL_PUBLIC: naming.PUBLIC_TRUE}


def sc(name: str = "fast", labels: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "labels": PUBLIC if labels is None else labels, "uid": "u",
                         "resourceVersion": "7",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true", "note": "n"}},
            "provisioner": "example.com/csi", "reclaimPolicy": "Delete", **fields}


@pytest.mark.parametrize(("obj", "shown"), [
    pytest.param(sc(), True, id="public"),
    pytest.param(sc(labels={}), False, id="unlabelled"),
    pytest.param(sc(labels={naming.LABEL_PUBLIC: "false"}), False, id="labelled-false"),
    pytest.param(sc("system-node-critical"), False, id="system-name"),
])
def test_only_public_classes_are_shown(obj: dict[str, Any], shown: bool) -> None:
    assert mirror_mod.wanted(obj) is shown


def test_storage_class_copy_is_marked_and_never_default() -> None:
    copy = mirror_mod.to_tenant(sc(), resources.STORAGECLASSES)
    assert copy["metadata"] == {"name": "fast", "labels": {naming.LABEL_MIRRORED_FROM_SUPER: "true"},
                                "annotations": {"note": "n"}}
    assert copy["provisioner"] == "example.com/csi"
    assert copy["reclaimPolicy"] == "Delete"


def test_priority_class_copy_is_never_global_default() -> None:
    pc = {"metadata": {"name": "batch", "labels": PUBLIC}, "value": 1000, "globalDefault": True,
          "description": "d"}
    copy = mirror_mod.to_tenant(pc, resources.PRIORITYCLASSES)
    assert copy["value"] == 1000
    assert copy["globalDefault"] is False
    assert copy["kind"] == "PriorityClass"


@pytest.mark.parametrize(("desired", "existing", "want"), [
    pytest.param([sc("a")], [], (["a"], [], []), id="missing-created"),
    pytest.param([], [sc("a")], ([], [], ["a"]), id="no-longer-public-deleted"),
    pytest.param([sc("a")], [sc("a")], ([], [], []), id="equal-untouched"),
    pytest.param([sc("a", reclaimPolicy="Retain")], [sc("a")], ([], ["a"], []), id="changed-replaced"),
])
def test_plan(desired: list[dict[str, Any]], existing: list[dict[str, Any]],
              want: tuple[list[str], list[str], list[str]]) -> None:
    r = resources.STORAGECLASSES
    create, replace, delete = mirror_mod.plan([mirror_mod.to_tenant(d, r) for d in desired],
                                              [mirror_mod.to_tenant(e, r) | {"metadata": {
                                                  **mirror_mod.to_tenant(e, r)["metadata"], "resourceVersion": "9"}}
                                               for e in existing], r)
    assert ([o["metadata"]["name"] for o in create], [o["metadata"]["name"] for o in replace], delete) == want
    for body in replace:
        assert body["metadata"]["resourceVersion"] == "9", "a replace is guarded by the copy's resourceVersion"
