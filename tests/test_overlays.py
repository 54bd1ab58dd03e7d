"""The test-bed overlays name exactly the images ``scripts/images`` builds (a drift fails here, not in e2e)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vcluster import imagebuild, images
from vcluster.settings import BinarySettings

OVERLAYS = Path(__file__).resolve().parent.parent / "overlays"
SETTINGS = BinarySettings()


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _image(component: str) -> str:
    return images.component_image_name(component, imagebuild.component_version(component, SETTINGS))


def test_testbed_overlay_runs_the_project_image_and_the_built_dns() -> None:
    (kustomization,) = _docs(OVERLAYS / "testbed" / "kustomization.yaml")
    (image,) = kustomization["images"]
    assert f"{image['newName']}:{image['newTag']}" == images.project_image_name(imagebuild.project_version())
    text = (OVERLAYS / "testbed" / "kustomization.yaml").read_text()
    assert f"value: {_image('coredns')}" in text


def test_testbed_tenant_uses_the_built_control_plane_images() -> None:
    (cv,) = _docs(OVERLAYS / "testbed-tenant" / "clusterversion.yaml")
    assert cv["spec"]["version"] == SETTINGS.kube_version
    assert cv["spec"]["images"] == {"etcd": _image("etcd"), "apiserver": _image("kube-apiserver"),
                                    "controllerManager": _image("kube-controller-manager")}
    (tenant,) = _docs(OVERLAYS / "testbed-tenant" / "tenant.yaml")
    assert tenant["spec"]["controlPlane"]["clusterVersionRef"] == cv["metadata"]["name"]


def test_testbed_storage_runs_the_built_provisioner_and_busybox() -> None:
    docs = _docs(OVERLAYS / "testbed-storage" / "local-path-storage.yaml")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == _image("local-path-provisioner")
    assert container["command"][container["command"].index("--helper-image") + 1] == images.BUSYBOX_IMAGE
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert f"image: {images.BUSYBOX_IMAGE}" in config["data"]["helperPod.yaml"]
    (sc,) = [d for d in docs if d["kind"] == "StorageClass"]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_testbed_operator_defaults_name_the_built_control_plane_images() -> None:
    """A Tenant without a ClusterVersion (manifests/samples/tenant.yaml) gets ``<repository>/kube-apiserver:
    <version>``: the repository and the etcd image the overlay gives the operator must be the built ones."""
    text = (OVERLAYS / "testbed" / "kustomization.yaml").read_text()
    repository = _image("kube-apiserver").rsplit("/", 1)[0]
    assert _image("kube-apiserver") == f"{repository}/kube-apiserver:{SETTINGS.kube_version}"
    assert _image("kube-controller-manager") == f"{repository}/kube-controller-manager:{SETTINGS.kube_version}"
    assert f"- name: VC_OPERATOR_IMAGE_REPOSITORY\n            value: {repository}\n" in text
    assert f"- name: VC_OPERATOR_ETCD_IMAGE\n            value: {_image('etcd')}\n" in text


def test_testbed_samples_rewrite_the_samples_images_to_the_built_ones() -> None:
    """kustomize's ``images:`` as the overlay has it, applied by hand to the shipped ClusterVersion."""
    (kustomization,) = _docs(OVERLAYS / "testbed-samples" / "kustomization.yaml")
    assert kustomization["resources"] == ["../../manifests/samples"]
    rewrites = {i["name"]: i for i in kustomization["images"]}
    (cv,) = _docs(OVERLAYS.parent / "manifests" / "samples" / "clusterversion.yaml")
    wanted = {"etcd": _image("etcd"), "apiserver": _image("kube-apiserver"),
              "controllerManager": _image("kube-controller-manager")}
    (config,) = _docs(OVERLAYS / "testbed-samples" / kustomization["configurations"][0])
    assert {f["path"] for f in config["images"]} == {f"spec/images/{field}" for field in wanted}
    for field, image in cv["spec"]["images"].items():
        name, _, tag = image.rpartition(":")
        rule = rewrites[name]
        assert f"{rule['newName']}:{rule.get('newTag', tag)}" == wanted[field], field
